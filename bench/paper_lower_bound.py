#!/usr/bin/env python
"""The paper's figure 2: the variational lower bound (ELBO) on train and test data against
the number of training samples evaluated, for several latent sizes.

    python bench/paper_lower_bound.py --out_dir=/tmp/fig2 --data_dir=../shared/data
    python bench/paper_lower_bound.py --out_dir=/tmp/fig2_frey --config=frey_face_fc
    python bench/paper_lower_bound.py --out_dir=/tmp/fig2_quick --z_sizes=3,20 --num_steps=500

For each latent size it trains the config with the library Trainer (one run directory per
size under --out_dir) and, at --num_evals log-spaced points, evaluates the ELBO on fixed
seeded subsets of the train and test splits (tfvae.evaluation, K=--eval_samples posterior
samples per image). It writes lower_bound.csv and lower_bound.png (one panel per latent size,
train solid, test dashed, log x axis) to --out_dir.

The paper trained for up to 10^8 samples (Adagrad); the default budget here is 10^6 samples
(20 MNIST epochs), with the config's optimiser. Frey Face: --config=frey_face_fc (latent
sizes 2, 5, 10, 20 by default).
"""

import csv
import math
import os
import time

from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from tfvae import cli
from tfvae import configs
from tfvae import evaluation
from tfvae import images
from tfvae import training
from tfvae.run_dir import RunDir

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
  subsets = {split: evaluation.load_images(config, hparams, split, data_dir, eval_examples,
                                           seed)
             for split in ('train', 'test')}
  steps = eval_steps(num_steps, num_evals)
  rows = []
  for z_size in z_sizes:
    hp = hparams.override(z_size=z_size)
    run_dir = RunDir(os.path.join(out_dir, f'z{z_size}'))
    if tf.train.latest_checkpoint(run_dir.train_dir):
      raise ValueError(f'{run_dir.path} already holds a run; pass a new --out_dir')
    run_dir.save_config(config, hp)
    trainer = training.Trainer(config, hp, run_dir, seed=seed, data_dir=data_dir)
    start = time.time()
    for step in steps:
      # Trainer.train resumes in process from the checkpoint it saved at the last target.
      trainer.train(step, log_every_n_steps=max(100, num_steps // 10),
                    checkpoint_every_secs=math.inf)
      elbo = {split: evaluation.evaluate_split(trainer.model, x, eval_samples, seed=seed,
                                               example_ids=ids, log_every_secs=math.inf)['elbo']
              for split, (x, ids) in subsets.items()}
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


# A tiny raster plot: numpy lines and tfvae.images' 3x5 pixel font, written as a PNG.

_SCALE = 2
_PANEL_W, _PANEL_H = 300, 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 50, 12, 28, 34
_TRAIN, _TEST = (31, 119, 180), (214, 39, 40)


def _line(canvas, xs, ys, color, dashed=False, width=2):
  """Draws a polyline through pixel coordinates (xs, ys)."""
  travelled = 0.0
  for x0, y0, x1, y1 in zip(xs[:-1], ys[:-1], xs[1:], ys[1:]):
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    for t in np.linspace(0.0, 1.0, n):
      x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
      if not dashed or (travelled + t * math.hypot(x1 - x0, y1 - y0)) % 12 < 7:
        canvas[int(round(y)):int(round(y)) + width, int(round(x)):int(round(x)) + width] = color
    travelled += math.hypot(x1 - x0, y1 - y0)


def plot(rows, path):
  """Writes one panel per latent size: train (solid) and test (dashed) ELBO against
  log10(training samples evaluated); returns the image [H, W, 3] uint8."""
  z_sizes = sorted({r['z_size'] for r in rows})
  canvas = np.full((_PANEL_H, _PANEL_W * len(z_sizes), 3), 255, np.uint8)
  examples = np.array([r['examples'] for r in rows], float)
  lo_x, hi_x = math.floor(np.log10(examples.min())), math.ceil(np.log10(examples.max()))
  hi_x = max(hi_x, lo_x + 1)
  values = np.array([[r['train_elbo'], r['test_elbo']] for r in rows])
  # Leave out the first quarter of the (log-spaced) evaluations when choosing the y range,
  # as the paper's figure does, so that the converged part is readable.
  late = values[examples >= 10**(np.log10(examples.min()) +
                                 0.25 * np.log10(examples.max() / examples.min()))]
  lo_y, hi_y = float(late.min()), float(values.max())
  step_y = 10 ** math.floor(math.log10(max(hi_y - lo_y, 1e-3) / 2))
  step_y *= 2 if (hi_y - lo_y) / step_y > 8 else 1
  step_y *= 2.5 if (hi_y - lo_y) / step_y > 8 else 1
  lo_y, hi_y = math.floor(lo_y / step_y) * step_y, math.ceil(hi_y / step_y) * step_y
  plot_w, plot_h = _PANEL_W - _LEFT - _RIGHT, _PANEL_H - _TOP - _BOTTOM

  for p, z_size in enumerate(z_sizes):
    left, right = p * _PANEL_W + _LEFT, p * _PANEL_W + _LEFT + plot_w
    top, bottom = _TOP, _TOP + plot_h

    def px(e, left=left):
      return left + (np.log10(e) - lo_x) / (hi_x - lo_x) * (plot_w - 1)

    def py(v, top=top):
      return top + (hi_y - np.clip(v, lo_y, hi_y)) / (hi_y - lo_y) * (plot_h - 1)

    for decade in range(lo_x, hi_x + 1):
      x = int(round(px(10.0**decade)))
      canvas[top:bottom, x] = 225
      images.draw_text(canvas, f'1e{decade}', x - 8, bottom + 6)
    for v in np.arange(lo_y, hi_y + step_y / 2, step_y):
      y = int(round(py(v)))
      canvas[y, left:right] = 225
      label = f'{v:g}'
      images.draw_text(canvas, label, left - 6 - len(label) * 4 * _SCALE, y - 5)
    canvas[top:bottom, left] = canvas[top:bottom, right] = 0
    canvas[top, left:right + 1] = canvas[bottom, left:right + 1] = 0
    images.draw_text(canvas, f'z={z_size}', left + plot_w // 2 - 16, 8)
    mine = sorted((r for r in rows if r['z_size'] == z_size), key=lambda r: r['step'])
    xs = [px(r['examples']) for r in mine]
    _line(canvas, xs, [py(r['train_elbo']) for r in mine], _TRAIN)
    _line(canvas, xs, [py(r['test_elbo']) for r in mine], _TEST, dashed=True)
  # Legend, bottom right of the last panel.
  x0, y0 = canvas.shape[1] - _RIGHT - 90, _TOP + plot_h - 40
  _line(canvas, [x0, x0 + 24], [y0 + 4, y0 + 4], _TRAIN)
  images.draw_text(canvas, 'train', x0 + 30, y0)
  _line(canvas, [x0, x0 + 24], [y0 + 20, y0 + 20], _TEST, dashed=True)
  images.draw_text(canvas, 'test', x0 + 30, y0 + 16)
  images.write_png(path, canvas)
  return canvas


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments {argv[1:]}; flags look like --name=value')
  logging.set_verbosity(logging.INFO)
  tf.keras.utils.set_random_seed(FLAGS.seed)
  config = configs.get_config(FLAGS.config)
  hparams = config.hparams.parse(FLAGS.hparams)
  if FLAGS.z_sizes:
    try:
      z_sizes = [int(z) for z in FLAGS.z_sizes]
    except ValueError:
      raise ValueError(f'--z_sizes wants integers, got {",".join(FLAGS.z_sizes)}') from None
  else:
    z_sizes = DEFAULT_Z_SIZES.get(config.dataset, PAPER_Z_SIZES)
  num_steps = FLAGS.num_steps or max(1, FLAGS.budget_examples // hparams.batch_size)
  tf.io.gfile.makedirs(FLAGS.out_dir)
  csv_path = os.path.join(FLAGS.out_dir, 'lower_bound.csv')
  png_path = os.path.join(FLAGS.out_dir, 'lower_bound.png')
  rows = run(config, hparams, z_sizes, num_steps, FLAGS.out_dir, data_dir=FLAGS.data_dir,
             num_evals=FLAGS.num_evals, eval_examples=FLAGS.eval_examples,
             eval_samples=FLAGS.eval_samples, seed=FLAGS.seed, csv_path=csv_path)
  plot(rows, png_path)
  print(f'{"z":>4} {"samples":>10} {"train ELBO":>11} {"test ELBO":>10}')
  for z_size in z_sizes:
    last = [r for r in rows if r['z_size'] == z_size][-1]
    print(f'{z_size:>4} {last["examples"]:>10} {last["train_elbo"]:>11.2f} '
          f'{last["test_elbo"]:>10.2f}')
  print(f'wrote {csv_path} and {png_path}')


if __name__ == '__main__':
  flags.mark_flag_as_required('out_dir')
  cli.run(main)
