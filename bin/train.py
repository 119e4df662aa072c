#!/usr/bin/env python
"""Trains (or evaluates) a tfvae config.

    python bin/train.py --config=mnist_fc --hparams=free_bits=0 --run_dir=/tmp/vae
    tensorboard --logdir=/tmp/vae
    python bin/train.py --run_dir=/tmp/vae --mode=eval
"""

from absl import flags
from absl import logging
import keras

from tfvae import cli
from tfvae import strategies
from tfvae import training
from tfvae.run_dir import RunDir
from tfvae.run_dir import resolve_config

FLAGS = flags.FLAGS
flags.DEFINE_string('config', None, 'Name of the config (see README); may be left out '
                    'when resuming a run_dir.')
flags.DEFINE_string('hparams', '', 'Hparam overrides, e.g. "free_bits=0,z_size=2,'
                    'hidden_sizes=[500,500]".')
flags.DEFINE_string('run_dir', None, 'Folder for checkpoints (run_dir/train), summaries '
                    'and evaluation (run_dir/eval). Reusing it resumes training.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval'], 'train, or eval the latest '
                  'checkpoint on --eval_split.')
flags.DEFINE_integer('num_steps', 10000, 'Train until this global step.', lower_bound=1)
flags.DEFINE_string('data_dir', None, 'Folder holding the raw dataset files (e.g. '
                    '../shared/data); default: download through TFDS.')
flags.DEFINE_string('eval_split', 'test', 'Split --mode=eval evaluates: train, valid or test.')
flags.DEFINE_integer('eval_num_batches', 0, 'Batches to evaluate; 0 = the whole split.',
                     lower_bound=0)
flags.DEFINE_integer('checkpoints_to_keep', 5, 'Checkpoints kept in run_dir/train.',
                     lower_bound=1)
flags.DEFINE_float('checkpoint_every_secs', 60.0, 'Seconds between checkpoints (one is '
                   'also written at the end and when stopped by Ctrl-C or SIGTERM).')
flags.DEFINE_integer('log_every_n_steps', 100, 'Steps between progress lines and '
                     'TensorBoard scalars.', lower_bound=1)
flags.DEFINE_integer('steps_per_loop', 100, 'Training steps per compiled loop call '
                     '(fewer host round trips).', lower_bound=1)
flags.DEFINE_integer('seed', 0, 'Seed for initialisation, data order and noise.')
flags.DEFINE_enum('strategy', 'default', strategies.STRATEGIES, 'tf.distribute strategy.')
flags.DEFINE_integer('num_cpu_devices', 1, 'Split the CPU into this many logical devices '
                     '(for mirrored runs without accelerators).', lower_bound=1)
flags.DEFINE_string('tpu', None, 'TPU name or address for --strategy=tpu.')
flags.DEFINE_integer('image_every_n_steps', 1000, 'Steps between reconstruction and '
                     'prior-sample image summaries; 0 turns them off.', lower_bound=0)
flags.DEFINE_float('max_train_minutes', 0.0, 'Stop (with a checkpoint) after this many '
                   'minutes of training in this invocation; 0: no limit.', lower_bound=0.0)
flags.DEFINE_string('export_dir', None, 'Write a SavedModel here when training ends.')


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments {argv[1:]}; flags look like --name=value')
  logging.set_verbosity(logging.INFO)
  run_dir = RunDir(FLAGS.run_dir)
  config, hparams = resolve_config(run_dir, FLAGS.config, FLAGS.hparams)
  if FLAGS.mode == 'eval':
    training.evaluate(run_dir, split=FLAGS.eval_split,
                      data_dir=FLAGS.data_dir, num_batches=FLAGS.eval_num_batches,
                      seed=FLAGS.seed)
    return
  # Devices and strategy come first: multi-worker collectives must be configured before
  # anything else initialises TensorFlow's runtime.
  strategies.split_cpu(FLAGS.num_cpu_devices)
  strategy = strategies.make_strategy(FLAGS.strategy, tpu=FLAGS.tpu)
  logging.info('Running under %s.', strategies.describe(strategy))
  keras.utils.set_random_seed(FLAGS.seed)
  trainer = training.Trainer(config, hparams, run_dir, strategy=strategy, seed=FLAGS.seed,
                             data_dir=FLAGS.data_dir,
                             checkpoints_to_keep=FLAGS.checkpoints_to_keep)
  if trainer.is_chief:
    run_dir.save_config(config, hparams)
  reason = trainer.train(FLAGS.num_steps, log_every_n_steps=FLAGS.log_every_n_steps,
                         steps_per_loop=FLAGS.steps_per_loop,
                         checkpoint_every_secs=FLAGS.checkpoint_every_secs,
                         image_every_n_steps=FLAGS.image_every_n_steps,
                         max_train_seconds=FLAGS.max_train_minutes * 60)
  if FLAGS.export_dir and trainer.is_chief and reason != 'signal':
    from tfvae import export  # pylint: disable=g-import-not-at-top
    logging.info('Exported a SavedModel to %s.',
                 export.export_saved_model(run_dir, FLAGS.export_dir))


if __name__ == '__main__':
  flags.mark_flag_as_required('run_dir')
  cli.run(main)
