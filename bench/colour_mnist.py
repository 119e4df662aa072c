#!/usr/bin/env python
"""Writes a folder of colour PNG images made from MNIST, to try `--dataset=folder:` on real
images without downloading anything:

    python bench/colour_mnist.py --data_dir=../shared/data --out_dir=/tmp/colour_mnist
    python bin/train.py --config=conv_vae --dataset=folder:/tmp/colour_mnist --run_dir=/tmp/colour

Each digit is painted in a random colour on a random background of contrasting lightness:
pixel = background + intensity * (foreground - background), intensity the MNIST value in
[0, 1]. The folder has `train/` and `test/` (valid is carved out of train by tfvae's rule) with
one subfolder per digit, so the digit is the label.
"""

import os
import sys

from tfvae import cli  # first: it keeps TensorFlow's start-up chatter quiet

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-order
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-order
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-order

from tfvae.errors import UserError  # pylint: disable=g-import-not-at-top
from tfvae.sources import builtin  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
flags.DEFINE_string('data_dir', None, 'Folder with the MNIST files (e.g. ../shared/data).')
flags.DEFINE_string('out_dir', None, 'Folder to write the PNGs to.')
flags.DEFINE_integer('num_train', 20000, 'Training images written.', lower_bound=1)
flags.DEFINE_integer('num_test', 2000, 'Test images written.', lower_bound=1)
flags.DEFINE_integer('seed', 0, 'Seed of the colours.')


def colourise(images, rng):
  """uint8 [N, 28, 28, 1] greyscale -> uint8 [N, 28, 28, 3]: a random foreground colour over
  a random background whose lightness contrasts with it."""
  n = len(images)
  foreground = rng.uniform(0.0, 1.0, (n, 1, 1, 3))
  dark = foreground.mean(axis=-1, keepdims=True) > 0.5
  background = np.where(dark, rng.uniform(0.0, 0.3, (n, 1, 1, 3)),
                        rng.uniform(0.7, 1.0, (n, 1, 1, 3)))
  intensity = images.astype(np.float32) / 255.0
  return np.round(255 * (background + intensity * (foreground - background))).astype(np.uint8)


def main():
  if not FLAGS.out_dir:
    raise UserError('--out_dir is required')
  rng = np.random.RandomState(FLAGS.seed)
  for split, count in (('train', FLAGS.num_train), ('test', FLAGS.num_test)):
    source = builtin.load_split('mnist', split, FLAGS.data_dir)
    count = min(count, len(source.images))
    rgb = colourise(source.images[:count], rng)
    for i, (image, label) in enumerate(zip(rgb, source.labels[:count])):
      folder = os.path.join(FLAGS.out_dir, split, str(label))
      tf.io.gfile.makedirs(folder)
      with open(os.path.join(folder, f'{i:05d}.png'), 'wb') as f:
        f.write(tf.io.encode_png(image).numpy())
    print(f'wrote {count} {split} images under {os.path.join(FLAGS.out_dir, split)}')


if __name__ == '__main__':
  cli.run(sys.modules[__name__])
