"""Evaluates a trained run: importance-weighted log-likelihood, ELBO, bits/dim, active units.

    tfvae-evaluate --run_dir=/tmp/vae --num_importance_samples=5000
    tfvae-evaluate --run_dir=/tmp/vae --split=valid --num_examples=1000 --seed=1
    tfvae-evaluate --run_dir=/tmp/vae --checkpoint=best   # kept by early stopping
    tfvae-evaluate --saved_model=/tmp/vae_export --data_dir=../shared/data

Prints a table and, last, one JSON line; for a --run_dir also writes log_likelihood,
bits_per_dim, active_units and elbo to TensorBoard under run_dir/eval at the checkpoint's
step. A run's data is read from where it was trained unless --data_dir or --cache_dir says
otherwise. (bin/evaluate.py is the same tool.)
"""

import sys

from absl import flags

from tfvae import cli

FLAGS = flags.FlagValues()
flags.DEFINE_string('run_dir', None, 'Run directory written by bin/train.py.',
                    flag_values=FLAGS)
flags.DEFINE_string('saved_model', None, 'Or: a SavedModel written by bin/export.py (or '
                    'bin/train.py --export_dir); results are printed, not summarised.',
                    flag_values=FLAGS)
flags.DEFINE_string('checkpoint', 'latest', 'Checkpoint to evaluate: latest, best (the best '
                    'validation ELBO, kept by early stopping) or a checkpoint path.',
                    flag_values=FLAGS)
flags.DEFINE_enum('split', 'test', ['train', 'valid', 'test'], 'Split to evaluate.',
                  flag_values=FLAGS)
flags.DEFINE_integer('num_importance_samples', 5000, 'K: posterior samples per example for '
                     'the importance-weighted log-likelihood (Burda et al. use 5000).',
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer('num_examples', 0, 'Evaluate a seeded random subset of this many '
                     'examples; 0: the whole split.', lower_bound=0, flag_values=FLAGS)
flags.DEFINE_integer('seed', 0, 'Seed of the importance samples (and of the subset and of '
                     'the binarisation of greyscale data).', flag_values=FLAGS)
flags.DEFINE_float('max_memory_mb', 0, 'Cap on the memory of the samples decoded at once '
                   '(approximate); 0: a fast default (about 100 MB for MNIST).', lower_bound=0,
                   flag_values=FLAGS)
cli.define_data_flags(FLAGS)


def main():
  # pylint: disable=import-outside-toplevel
  from tfvae import evaluation
  from tfvae.run_dir import RunDir
  # pylint: enable=import-outside-toplevel

  data_dir, cache_dir = FLAGS.data_dir, FLAGS.cache_dir
  if FLAGS.run_dir:
    data_dir, cache_dir = RunDir(FLAGS.run_dir).data_location(data_dir, cache_dir)
  results = evaluation.evaluate_run(
      FLAGS.run_dir or None, saved_model=FLAGS.saved_model or None, split=FLAGS.split,
      num_importance_samples=FLAGS.num_importance_samples, data_dir=data_dir,
      dataset=FLAGS.dataset, cache_dir=cache_dir, num_examples=FLAGS.num_examples,
      seed=FLAGS.seed, max_memory_mb=FLAGS.max_memory_mb or None, checkpoint=FLAGS.checkpoint)
  print(evaluation.results_table(results))
  print(evaluation.results_json(results), flush=True)


def run():
  """The tfvae-evaluate console script."""
  cli.run(sys.modules[__name__])


if __name__ == '__main__':
  run()
