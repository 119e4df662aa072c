#!/usr/bin/env python
"""Writes PNG pictures of what a trained VAE learned.

    python bin/sample.py --run_dir=/tmp/vae --output_dir=/tmp/pics --kind=prior
    python bin/sample.py --run_dir=/tmp/vae_z2 --output_dir=/tmp/pics --kind=manifold \\
        --kind=scatter --num=400 --data_dir=../shared/data

Kinds (repeat --kind for several): prior (samples, the paper's figure 5), reconstruction
(images of --split beside their reconstructions), manifold (decoded grid over the 2-D latent
space, figure 4), interpolation (rows of decoded steps between two images), scatter (2-D
posterior means of --split coloured by label). manifold and scatter need z_size 2.
"""

from absl import flags
from absl import logging

from tfvae import cli
from tfvae import data
from tfvae import images
from tfvae.trained_model import INTERPOLATION_METHODS
from tfvae.trained_model import TrainedModel

FLAGS = flags.FLAGS
flags.DEFINE_string('run_dir', None, 'The training run to draw (see bin/train.py).')
flags.DEFINE_string('checkpoint', None, 'Checkpoint path; default: the latest.')
flags.DEFINE_string('output_dir', None, 'Folder for the PNGs (<kind>.png).')
flags.DEFINE_multi_enum('kind', None, images.KINDS, 'Picture(s) to draw.')
flags.DEFINE_string('data_dir', None, 'Folder holding the raw dataset files (e.g. '
                    '../shared/data); default: download through TFDS.')
flags.DEFINE_string('split', 'test', 'Split the images come from: train, valid or test.')
flags.DEFINE_integer('num', 64, 'prior: samples; reconstruction: images; manifold: '
                     'floor(sqrt(num)) per side; interpolation: num // num_steps rows.',
                     lower_bound=1)
flags.DEFINE_integer('num_steps', 8, 'interpolation: decoded steps between the two images.',
                     lower_bound=2)
flags.DEFINE_enum('method', 'linear', INTERPOLATION_METHODS, 'interpolation: linear or slerp.')
flags.DEFINE_integer('seed', 0, 'Seed for samples, posterior noise and the images picked.')


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments {argv[1:]}; flags look like --name=value')
  if not FLAGS['verbosity'].present:  # TensorFlow's INFO chatter is not for this tool's user
    logging.set_verbosity(logging.WARNING)
  trained = TrainedModel(run_dir=FLAGS.run_dir, checkpoint=FLAGS.checkpoint)
  for kind in FLAGS.kind:
    images.check_picture(trained, kind)
  split = None
  for kind in FLAGS.kind:
    if kind in images.NEEDS_DATA and split is None:
      split = data.load_split(trained.dataset, FLAGS.split, FLAGS.data_dir)
    path = images.write_pictures(trained, kind, FLAGS.output_dir, split=split, num=FLAGS.num,
                                 seed=FLAGS.seed, num_steps=FLAGS.num_steps,
                                 method=FLAGS.method)
    print(f'wrote {path}')


if __name__ == '__main__':
  flags.mark_flags_as_required(['run_dir', 'output_dir', 'kind'])
  cli.run(main)
