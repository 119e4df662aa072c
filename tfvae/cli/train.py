"""Trains (or evaluates) a tfvae config.

    tfvae-train --config=mnist_fc --hparams=free_bits=0 --run_dir=/tmp/vae --data_dir=DIR
    tensorboard --logdir=/tmp/vae
    tfvae-train --run_dir=/tmp/vae --num_steps=20000    # resumes; remembers config and data
    tfvae-train --run_dir=/tmp/vae --mode=eval
    tfvae-train --config=conv_vae --dataset=folder:/data/faces --hparams=image_size=64 \\
        --run_dir=/tmp/faces

A resume may change the learning-rate schedule, clipping and early stopping (--hparams), not
what the run models, reads or minimises. (bin/train.py is the same tool.)
"""

import sys

from absl import flags
from absl import logging

from tfvae import cli

# tfvae.strategies.STRATEGIES and tfvae.training.DEFAULT_DATA_MEMORY_MB, written out so that
# --help imports no TensorFlow (a test keeps them equal).
STRATEGIES = ('default', 'one_device', 'mirrored', 'multi_worker_mirrored', 'tpu')
DEFAULT_DATA_MEMORY_MB = 2048

FLAGS = flags.FlagValues()
flags.DEFINE_string('config', None, 'Name of the config (listed below); may be left out '
                    'when resuming a run_dir.', flag_values=FLAGS)
flags.DEFINE_string('hparams', '', 'Hparam overrides, e.g. "free_bits=0,z_size=2,'
                    'hidden_sizes=[500,500]".', flag_values=FLAGS)
flags.DEFINE_string('run_dir', None, 'Folder for checkpoints (run_dir/train), summaries '
                    'and evaluation (run_dir/eval). Reusing it resumes training.',
                    flag_values=FLAGS)
flags.DEFINE_enum('mode', 'train', ['train', 'eval'], 'train, or eval the latest '
                  'checkpoint on --eval_split.', flag_values=FLAGS)
flags.DEFINE_integer('num_steps', 10000, 'Train until this global step.', lower_bound=1,
                     flag_values=FLAGS)
cli.define_data_flags(FLAGS)
flags.DEFINE_float('data_memory_mb', DEFAULT_DATA_MEMORY_MB, 'A training split larger than '
                   'this is streamed from disk instead of held on the device.', lower_bound=0,
                   flag_values=FLAGS)
flags.DEFINE_enum('eval_split', 'test', ['train', 'valid', 'test'], 'Split --mode=eval '
                  'evaluates.', flag_values=FLAGS)
flags.DEFINE_integer('eval_num_examples', 0, '--mode=eval: a seeded random subset of this '
                     'many examples; 0 = the whole split.', lower_bound=0, flag_values=FLAGS)
flags.DEFINE_integer('eval_num_samples', 1, '--mode=eval: K, posterior samples per example '
                     '(the ELBO averages them; the log-likelihood is their IW bound).',
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer('checkpoints_to_keep', 5, 'Checkpoints kept in run_dir/train.',
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_float('checkpoint_every_secs', 60.0, 'Seconds between checkpoints (one is '
                   'also written at the end and when stopped by Ctrl-C or SIGTERM).',
                   lower_bound=0, flag_values=FLAGS)
flags.DEFINE_integer('log_every_n_steps', 100, 'Steps between progress lines and '
                     'TensorBoard scalars.', lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer('steps_per_loop', 100, 'At most this many training steps per compiled '
                     'loop call (fewer host round trips).', lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer('seed', 0, 'Seed for initialisation, data order and noise (and for '
                     '--mode=eval: its noise and subset).', flag_values=FLAGS)
flags.DEFINE_enum('strategy', 'default', STRATEGIES, 'tf.distribute strategy.',
                  flag_values=FLAGS)
flags.DEFINE_integer('num_cpu_devices', 1, 'Split the CPU into this many logical devices '
                     '(for mirrored runs without accelerators).', lower_bound=1,
                     flag_values=FLAGS)
flags.DEFINE_string('tpu', None, 'TPU name or address for --strategy=tpu.', flag_values=FLAGS)
flags.DEFINE_integer('image_every_n_steps', 1000, 'Steps between reconstruction and '
                     'prior-sample image summaries; 0 turns them off.', lower_bound=0,
                     flag_values=FLAGS)
flags.DEFINE_float('max_train_minutes', 0.0, 'Stop (with a checkpoint) after this many '
                   'minutes of training in this invocation; 0: no limit.', lower_bound=0.0,
                   flag_values=FLAGS)
flags.DEFINE_string('export_dir', None, 'Write a SavedModel here when training ends.',
                    flag_values=FLAGS)


def main():
  # pylint: disable=import-outside-toplevel
  import keras
  from tfvae import evaluation
  from tfvae import hooks as hooks_lib
  from tfvae import sources
  from tfvae import strategies
  from tfvae import training
  from tfvae.run_dir import Run
  from tfvae.run_dir import RunDir
  from tfvae.run_dir import check_writable
  from tfvae.run_dir import resolve_run
  # pylint: enable=import-outside-toplevel

  run_dir = RunDir(FLAGS.run_dir)
  data_dir, cache_dir = run_dir.data_location(FLAGS.data_dir, FLAGS.cache_dir)
  if FLAGS.mode == 'eval':
    results = evaluation.evaluate_run(
        run_dir, split=FLAGS.eval_split, num_importance_samples=FLAGS.eval_num_samples,
        data_dir=data_dir, dataset=FLAGS.dataset, cache_dir=cache_dir,
        num_examples=FLAGS.eval_num_examples, seed=FLAGS.seed)
    print(evaluation.results_table(results))
    print(evaluation.results_json(results), flush=True)
    return
  config, hparams = resolve_run(run_dir, FLAGS.config, FLAGS.hparams, FLAGS.dataset)
  check_writable(FLAGS.run_dir, '--run_dir')
  if FLAGS.export_dir:
    check_writable(FLAGS.export_dir, '--export_dir')
  # Devices and strategy come first: multi-worker collectives must be configured before
  # anything else initialises TensorFlow's runtime.
  strategies.split_cpu(FLAGS.num_cpu_devices)
  strategy = strategies.make_strategy(FLAGS.strategy, tpu=FLAGS.tpu)
  logging.info('Running under %s.', strategies.describe(strategy))
  keras.utils.set_random_seed(FLAGS.seed)  # the initial weights
  source = sources.make_source(config.dataset, data_dir=data_dir, cache_dir=cache_dir,
                               image_size=hparams.image_size, channels=hparams.channels)
  trainer = training.Trainer(config, hparams, run_dir, source, strategy=strategy,
                             seed=FLAGS.seed, checkpoints_to_keep=FLAGS.checkpoints_to_keep,
                             steps_per_loop=FLAGS.steps_per_loop,
                             data_memory_mb=FLAGS.data_memory_mb)
  hooks = hooks_lib.standard(
      trainer, FLAGS.num_steps, log_every_n_steps=FLAGS.log_every_n_steps,
      checkpoint_every_secs=FLAGS.checkpoint_every_secs,
      image_every_n_steps=FLAGS.image_every_n_steps,
      max_train_seconds=FLAGS.max_train_minutes * 60)
  record = Run(config, hparams, source.info.image_shape, source.info.binary, data_dir=data_dir,
               cache_dir=cache_dir)
  reason = trainer.train(FLAGS.num_steps, hooks, record=record)
  if FLAGS.export_dir and trainer.is_chief and reason != 'signal':
    from tfvae import export  # pylint: disable=import-outside-toplevel
    logging.info('Exported a SavedModel to %s.',
                 export.export_saved_model(run_dir, FLAGS.export_dir))


def run():
  """The tfvae-train console script."""
  cli.run(sys.modules[__name__])


if __name__ == '__main__':
  run()
