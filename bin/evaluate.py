#!/usr/bin/env python
"""Evaluates a trained run: importance-weighted log-likelihood, ELBO, bits/dim, active units.

    python bin/evaluate.py --run_dir=/tmp/vae --num_importance_samples=5000
    python bin/evaluate.py --run_dir=/tmp/vae --split=valid --num_examples=1000 --seed=1
    python bin/evaluate.py --run_dir=/tmp/vae --checkpoint=best   # kept by early stopping
    python bin/evaluate.py --saved_model=/tmp/vae_export --data_dir=../shared/data

Prints a table and, last, one JSON line; for a --run_dir also writes log_likelihood,
bits_per_dim, active_units and elbo to TensorBoard under run_dir/eval at the checkpoint's
step.
"""

import json

from absl import flags
from absl import logging

from tfvae import cli
from tfvae import evaluation

FLAGS = flags.FLAGS
flags.DEFINE_string('run_dir', None, 'Run directory written by bin/train.py.')
flags.DEFINE_string('saved_model', None, 'Or: a SavedModel written by bin/export.py (or '
                    'bin/train.py --export_dir); results are printed, not summarised.')
flags.DEFINE_enum('split', 'test', ['train', 'valid', 'test'], 'Split to evaluate.')
flags.DEFINE_integer('num_importance_samples', 5000, 'K: posterior samples per example for '
                     'the importance-weighted log-likelihood (Burda et al. use 5000).',
                     lower_bound=1)
flags.DEFINE_string('data_dir', None, 'Folder holding the raw dataset files (e.g. '
                    '../shared/data); default: download through TFDS.')
flags.DEFINE_integer('seed', 0, 'Seed of the importance samples (and of the subset and of '
                     'the binarisation of greyscale data).')
flags.DEFINE_float('max_memory_mb', 0, 'Cap on the memory of the samples decoded at once '
                   '(approximate); 0: a fast default (about 100 MB for MNIST).', lower_bound=0)
flags.DEFINE_integer('num_examples', 0, 'Evaluate a seeded random subset of this many '
                     'examples; 0: the whole split.', lower_bound=0)
flags.DEFINE_string('checkpoint', 'latest', 'Checkpoint to evaluate: latest, best (the best '
                    'validation ELBO, kept by early stopping) or a checkpoint path.')


def _table(r):
  k = r['num_importance_samples']
  rows = [
      (f'log-likelihood (IW, K={k})',
       f'{r["log_likelihood"]:.3f} nats  (+/- {r["log_likelihood_stderr"]:.3f} s.e.)'),
      ('bits per dim', f'{r["bits_per_dim"]:.4f}'),
      ('ELBO', f'{r["elbo"]:.3f} nats'),
      ('  reconstruction', f'{r["reconstruction"]:.3f} nats'),
      ('  KL', f'{r["kl"]:.3f} nats'),
      ('active units', f'{r["active_units"]} / {r["z_size"]}'),
      ('time', f'{r["seconds"]:.1f} s'),
  ]
  head = (f'{r["config"]} at step {r["step"]}: {r["split"]} split, {r["num_examples"]} '
          f'examples, K={k}, seed {r["seed"]}')
  return '\n'.join([head] + [f'  {name:<30}{value}' for name, value in rows])


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments {argv[1:]}; flags look like --name=value')
  logging.set_verbosity(logging.INFO)
  results = evaluation.evaluate_run(
      FLAGS.run_dir or None, saved_model=FLAGS.saved_model or None, split=FLAGS.split,
      num_importance_samples=FLAGS.num_importance_samples, data_dir=FLAGS.data_dir,
      num_examples=FLAGS.num_examples, seed=FLAGS.seed,
      max_memory_mb=FLAGS.max_memory_mb or None,
      checkpoint=FLAGS.checkpoint)
  results['seed'] = FLAGS.seed
  print(_table(results))
  print(json.dumps({k: (float(v) if isinstance(v, float) else v) for k, v in results.items()},
                   sort_keys=True), flush=True)


if __name__ == '__main__':
  cli.run(main)
