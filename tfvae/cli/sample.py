"""Writes PNG pictures of what a trained VAE learned.

    tfvae-sample --run_dir=/tmp/vae --output_dir=/tmp/pics --kind=prior --temperature=0.8
    tfvae-sample --run_dir=/tmp/vae_z2 --output_dir=/tmp/pics --kind=manifold \\
        --kind=scatter --num=400 --data_dir=../shared/data
    tfvae-sample --saved_model=/tmp/vae_export --output_dir=/tmp/pics --kind=prior

Kinds (repeat --kind for several): prior (samples, the paper's figure 5), reconstruction
(images of --split beside their reconstructions), manifold (decoded grid over the 2-D latent
space, figure 4), interpolation (rows of decoded steps between two images), scatter (2-D
posterior means of --split coloured by label). manifold and scatter need z_size 2.
(bin/sample.py is the same tool.)
"""

import sys

from absl import flags
from absl import logging

from tfvae import cli
from tfvae import images
from tfvae import sources
from tfvae.run_dir import check_writable
from tfvae.trained_model import INTERPOLATION_METHODS
from tfvae.trained_model import TrainedModel

FLAGS = flags.FLAGS
flags.DEFINE_string('run_dir', None, 'The training run to draw (see bin/train.py).')
flags.DEFINE_string('saved_model', None, 'Or: a SavedModel written by bin/export.py.')
flags.DEFINE_string('checkpoint', None, 'With --run_dir: latest (default), best or a path.')
flags.DEFINE_string('output_dir', None, 'Folder for the PNGs (<kind>.png).')
flags.DEFINE_multi_enum('kind', None, images.KINDS, 'Picture(s) to draw.')
cli.define_data_flags()
flags.DEFINE_enum('split', 'test', ['train', 'valid', 'test'], 'Split the images come from.')
flags.DEFINE_integer('num', 64, 'prior: samples; reconstruction: images; manifold: '
                     'floor(sqrt(num)) per side; interpolation: num // num_steps rows.',
                     lower_bound=1)
flags.DEFINE_integer('num_steps', 8, 'interpolation: decoded steps between the two images.',
                     lower_bound=2)
flags.DEFINE_enum('method', 'linear', INTERPOLATION_METHODS, 'interpolation: linear or slerp.')
flags.DEFINE_float('temperature', 1.0, 'prior: z ~ N(0, temperature^2 I).', lower_bound=0)
flags.DEFINE_string('title', None, 'A title drawn above each picture.')
flags.DEFINE_integer('seed', 0, 'Seed for samples, posterior noise and the images picked.')


def main():
  if not FLAGS['verbosity'].present:  # TensorFlow's INFO chatter is not for this tool's user
    logging.set_verbosity(logging.WARNING)
  if not FLAGS.output_dir or not FLAGS.kind:
    raise ValueError('--output_dir and at least one --kind are required')
  check_writable(FLAGS.output_dir, '--output_dir')
  if FLAGS.saved_model:
    if FLAGS.run_dir or FLAGS.checkpoint:
      raise ValueError('give either --saved_model or --run_dir (with --checkpoint), not both')
    trained = TrainedModel(saved_model_dir=FLAGS.saved_model)
  else:
    trained = TrainedModel(run_dir=FLAGS.run_dir or None, checkpoint=FLAGS.checkpoint)
  for kind in FLAGS.kind:
    images.check_picture(trained, kind)
  split = None
  if any(kind in images.NEEDS_DATA for kind in FLAGS.kind):
    source = sources.for_trained(trained, FLAGS.dataset, FLAGS.data_dir, FLAGS.cache_dir)
    split = source.split(FLAGS.split)
  for kind in FLAGS.kind:
    path = images.write_pictures(trained, kind, FLAGS.output_dir, split=split, num=FLAGS.num,
                                 seed=FLAGS.seed, num_steps=FLAGS.num_steps,
                                 method=FLAGS.method, temperature=FLAGS.temperature,
                                 title=FLAGS.title)
    print(f'wrote {path}')


def run():
  """The tfvae-sample console script."""
  cli.run(sys.modules[__name__])


if __name__ == '__main__':
  run()
