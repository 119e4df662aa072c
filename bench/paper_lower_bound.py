#!/usr/bin/env python
"""The paper's figure 2: the variational lower bound (ELBO) on train and test data against
the number of training samples evaluated, for several latent sizes.

    python bench/paper_lower_bound.py --out_dir=/tmp/fig2 --data_dir=../shared/data
    python bench/paper_lower_bound.py --out_dir=/tmp/fig2_frey --config=frey_face_fc
    python bench/paper_lower_bound.py --out_dir=/tmp/fig2_quick --z_sizes=3,20 --num_steps=500

For each latent size it trains the config with the library Trainer (one run directory per
size under --out_dir) and, at --num_evals log-spaced points, evaluates the ELBO on fixed
seeded subsets of the train and test splits (tfvae.evaluation, K=--eval_samples posterior
samples per image). It writes lower_bound.csv and lower_bound.png (tfvae.plots.lower_bound: one
panel per latent size, train solid, test dashed, log x axis) to --out_dir.

The paper trained for up to 10^8 samples (Adagrad); the default budget here is 10^6 samples
(20 MNIST epochs), with the config's optimiser. Frey Face: --config=frey_face_fc (latent
sizes 2, 5, 10, 20 by default).
"""

import csv
import math
import os
import time

import sys

from tfvae import cli  # first: it keeps TensorFlow's start-up chatter quiet

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-order
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-order
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-order
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-order

from tfvae import configs  # pylint: disable=g-import-not-at-top
from tfvae import evaluation  # pylint: disable=g-import-not-at-top
from tfvae import hooks  # pylint: disable=g-import-not-at-top
from tfvae import plots  # pylint: disable=g-import-not-at-top
from tfvae import sources  # pylint: disable=g-import-not-at-top
from tfvae import training  # pylint: disable=g-import-not-at-top
from tfvae.errors import UserError  # pylint: disable=g-import-not-at-top
from tfvae.run_dir import Run  # pylint: disable=g-import-not-at-top
from tfvae.run_dir import RunDir  # pylint: disable=g-import-not-at-top

DEFAULT_Z_SIZES = {'frey_face': [2, 5, 10, 20]}
PAPER_Z_SIZES = [3, 5, 10, 20, 200]

FLAGS = flags.FLAGS
flags.DEFINE_string('out_dir', None, 'Folder for the runs (one per latent size), the CSV '
                    'and the PNG. Must not hold runs of an earlier call.')
flags.DEFINE_string('config', 'binarized_mnist_fc', 'binarized_mnist_fc or mnist_fc (the '
                    "paper's MNIST model), frey_face_fc (Frey Face), or any config.")
flags.DEFINE_list('z_sizes', None, 'Latent sizes; default 3,5,10,20,200 (MNIST) or '
                  '2,5,10,20 (Frey Face), as in the paper.')
flags.DEFINE_string('hparams', '', 'Hparam overrides for every run, e.g. "optimizer=adagrad,'
                    'learning_rate=0.02".')
flags.DEFINE_integer('budget_examples', 10**6, 'Training samples per latent size.',
                     lower_bound=1)
flags.DEFINE_integer('num_steps', 0, 'Training steps per latent size; overrides '
                     '--budget_examples.', lower_bound=0)
flags.DEFINE_integer('num_evals', 15, 'Evaluation points, log-spaced over training.',
                     lower_bound=1)
flags.DEFINE_integer('eval_examples', 1000, 'Examples in each of the fixed train and test '
                     'subsets (0: whole splits).', lower_bound=0)
flags.DEFINE_integer('eval_samples', 10, 'Posterior samples per image for the ELBO.',
                     lower_bound=1)
flags.DEFINE_string('data_dir', None, 'Folder holding the raw dataset files.')
flags.DEFINE_integer('seed', 0, 'Seed for initialisation, data order, noise and subsets.')

COLUMNS = ('config', 'z_size', 'step', 'examples', 'train_elbo', 'test_elbo', 'seconds')


def eval_steps(num_steps, num_evals):
  """About num_evals distinct steps, log-spaced from ~num_steps/1000 to num_steps."""
  first = max(1, num_steps // 1000)
  steps = np.unique(np.round(np.geomspace(first, num_steps, num_evals)).astype(int))
  return [int(s) for s in steps]


def run(config, hparams, z_sizes, num_steps, out_dir, data_dir=None, num_evals=15,
        eval_examples=1000, eval_samples=10, seed=0, csv_path=None):
  """Trains config at each latent size, evaluating train/test ELBO on the way; returns the
  rows (dicts with COLUMNS), also written to csv_path after every evaluation."""
  source = sources.make_source(config.dataset, data_dir=data_dir,
                               image_size=hparams.image_size, channels=hparams.channels)
  subsets = {}
  for split in ('train', 'test'):
    images = source.split(split)
    subsets[split] = (images, evaluation.subset(eval_examples, len(images.images), seed))
  steps = eval_steps(num_steps, num_evals)
  rows = []
  for z_size in z_sizes:
    hp = hparams.override(z_size=z_size)
    run_dir = RunDir(os.path.join(out_dir, f'z{z_size}'))
    if tf.train.latest_checkpoint(run_dir.train_dir):
      raise UserError(f'{run_dir.path} already holds a run; pass a new --out_dir')
    run_dir.save(Run(config, hp, source.info.image_shape, source.info.binary))
    trainer = training.Trainer(config, hp, run_dir, source, seed=seed)
    start = time.time()
    for step in steps:
      # Trainer.train resumes in process from the checkpoint it saved at the last target.
      trainer.train(step, hooks.standard(trainer, step,
                                         log_every_n_steps=max(100, num_steps // 10),
                                         checkpoint_every_secs=math.inf))
      elbo = {split: evaluation.evaluate_split(trainer.model, images, eval_samples, seed=seed,
                                               binarize=hp.binarize, example_ids=ids,
                                               log_every_secs=math.inf)['elbo']
              for split, (images, ids) in subsets.items()}
      rows.append(dict(config=config.name, z_size=z_size, step=step,
                       examples=step * hp.batch_size, train_elbo=elbo['train'],
                       test_elbo=elbo['test'], seconds=time.time() - start))
      logging.info('z=%d step %d (%d samples): train ELBO %.2f, test ELBO %.2f', z_size,
                   step, step * hp.batch_size, elbo['train'], elbo['test'])
      if csv_path:
        write_csv(csv_path, rows)
  return rows


def write_csv(path, rows):
  with tf.io.gfile.GFile(path, 'w') as f:
    writer = csv.DictWriter(f, COLUMNS)
    writer.writeheader()
    writer.writerows(rows)


def main():
  logging.set_verbosity(logging.INFO)
  tf.keras.utils.set_random_seed(FLAGS.seed)
  config = configs.get_config(FLAGS.config)
  hparams = config.hparams.parse(FLAGS.hparams)
  if FLAGS.z_sizes:
    try:
      z_sizes = [int(z) for z in FLAGS.z_sizes]
    except ValueError:
      raise UserError(f'--z_sizes wants integers, got {",".join(FLAGS.z_sizes)}') from None
  else:
    z_sizes = DEFAULT_Z_SIZES.get(config.dataset, PAPER_Z_SIZES)
  num_steps = FLAGS.num_steps or max(1, FLAGS.budget_examples // hparams.batch_size)
  tf.io.gfile.makedirs(FLAGS.out_dir)
  csv_path = os.path.join(FLAGS.out_dir, 'lower_bound.csv')
  png_path = os.path.join(FLAGS.out_dir, 'lower_bound.png')
  rows = run(config, hparams, z_sizes, num_steps, FLAGS.out_dir, data_dir=FLAGS.data_dir,
             num_evals=FLAGS.num_evals, eval_examples=FLAGS.eval_examples,
             eval_samples=FLAGS.eval_samples, seed=FLAGS.seed, csv_path=csv_path)
  plots.lower_bound(rows, png_path, title=config.name)
  print(f'{"z":>4} {"samples":>10} {"train ELBO":>11} {"test ELBO":>10}')
  for z_size in z_sizes:
    last = [r for r in rows if r['z_size'] == z_size][-1]
    print(f'{z_size:>4} {last["examples"]:>10} {last["train_elbo"]:>11.2f} '
          f'{last["test_elbo"]:>10.2f}')
  print(f'wrote {csv_path} and {png_path}')


if __name__ == '__main__':
  flags.mark_flag_as_required('out_dir')
  cli.run(sys.modules[__name__])
