"""Writes PNG pictures of what a trained VAE learned.

    tfvae-sample --run_dir=/tmp/vae --output_dir=/tmp/pics --kind=prior --temperature=0.8
    tfvae-sample --run_dir=/tmp/vae_z2 --output_dir=/tmp/pics --kind=manifold \\
        --kind=scatter --num=400
    tfvae-sample --saved_model=/tmp/vae_export --output_dir=/tmp/pics --kind=prior
    tfvae-sample --run_dir=/tmp/photos_run --output_dir=/tmp/pics --kind=temperatures \\
        --kind=levels --num=8

Kinds (repeat --kind for several): prior (samples, the paper's figure 5), reconstruction
(images of --split above their reconstructions), manifold (decoded grid over the 2-D latent
space, figure 4), interpolation (rows of decoded steps between two framed images), scatter
(2-D posterior means of --split coloured by label), temperatures (a row of prior samples at
each of T = 0 .. 1) and levels (for a hierarchy: images of --split, then rows keeping the
posterior of the top k latent groups and sampling the rest, k from all to none: what each
level encodes). manifold and scatter need z_size 2. Each
picture is titled with the config, the step and what it shows (--title replaces that) and
scaled up to a legible size. A run's data is read from where it was trained unless
--data_dir or --cache_dir says otherwise. (bin/sample.py is the same tool.)
"""

import sys

from absl import flags

from tfvae import cli
from tfvae.errors import UserError

# tfvae.images.KINDS and tfvae.trained_model.INTERPOLATION_METHODS, written out so that --help
# imports no TensorFlow (a test keeps them equal).
KINDS = ('prior', 'reconstruction', 'manifold', 'interpolation', 'scatter', 'temperatures',
         'levels')
INTERPOLATION_METHODS = ('linear', 'slerp')

FLAGS = flags.FlagValues()
flags.DEFINE_string('run_dir', None, 'The training run to draw (see bin/train.py).',
                    flag_values=FLAGS)
flags.DEFINE_string('saved_model', None, 'Or: a SavedModel written by bin/export.py.',
                    flag_values=FLAGS)
flags.DEFINE_string('checkpoint', None, 'With --run_dir: latest (default), best or a path.',
                    flag_values=FLAGS)
flags.DEFINE_string('output_dir', None, 'Folder for the PNGs (<kind>.png).', flag_values=FLAGS)
flags.DEFINE_multi_enum('kind', None, KINDS, 'Picture(s) to draw; repeat for several.',
                        flag_values=FLAGS)
flags.DEFINE_enum('split', 'test', ['train', 'valid', 'test'], 'Split the images come from.',
                  flag_values=FLAGS)
flags.DEFINE_integer('num', 64, 'prior: samples; reconstruction: images; manifold: '
                     'floor(sqrt(num)) per side; interpolation: num // num_steps rows; temperatures, '
                     'levels: ceil(sqrt(num)) columns.',
                     lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer('num_steps', 8, 'interpolation: decoded steps between the two images.',
                     lower_bound=2, flag_values=FLAGS)
flags.DEFINE_enum('method', 'linear', INTERPOLATION_METHODS, 'interpolation: linear or slerp.',
                  flag_values=FLAGS)
flags.DEFINE_float('temperature', 1.0, 'prior: z ~ N(0, temperature^2 I) (a hierarchy: every group\'s prior scale times it); '
                   'levels: of the groups drawn from their priors.', lower_bound=0,
                   flag_values=FLAGS)
flags.DEFINE_string('title', None, 'The title drawn above each picture, instead of the config, '
                    'step and what it shows; --title= draws none.', flag_values=FLAGS)
flags.DEFINE_integer('seed', 0, 'Seed for samples, posterior noise and the images picked.',
                     flag_values=FLAGS)
cli.define_data_flags(FLAGS)


def main():
  # pylint: disable=import-outside-toplevel
  from tfvae import images
  from tfvae import sources
  from tfvae.run_dir import RunDir
  from tfvae.run_dir import check_writable
  from tfvae.trained_model import TrainedModel
  # pylint: enable=import-outside-toplevel

  if not FLAGS.output_dir or not FLAGS.kind:
    raise UserError('--output_dir and at least one --kind are required')
  check_writable(FLAGS.output_dir, '--output_dir')
  data_dir, cache_dir = FLAGS.data_dir, FLAGS.cache_dir
  if FLAGS.saved_model:
    if FLAGS.run_dir or FLAGS.checkpoint:
      raise UserError('give either --saved_model or --run_dir (with --checkpoint), not both')
    trained = TrainedModel(saved_model_dir=FLAGS.saved_model)
  else:
    trained = TrainedModel(run_dir=FLAGS.run_dir or None, checkpoint=FLAGS.checkpoint)
    data_dir, cache_dir = RunDir(FLAGS.run_dir).data_location(data_dir, cache_dir)
  for kind in FLAGS.kind:
    images.check_picture(trained, kind)
  split = None
  if any(kind in images.NEEDS_DATA for kind in FLAGS.kind):
    source = sources.for_trained(trained, FLAGS.dataset, data_dir, cache_dir)
    split = source.split(FLAGS.split)
  for kind in FLAGS.kind:
    path = images.write_pictures(trained, kind, FLAGS.output_dir, split=split, num=FLAGS.num,
                                 seed=FLAGS.seed, num_steps=FLAGS.num_steps,
                                 method=FLAGS.method, temperature=FLAGS.temperature,
                                 title=FLAGS.title, split_name=FLAGS.split)
    print(f'wrote {path}')


def run():
  """The tfvae-sample console script."""
  cli.run(sys.modules[__name__])


if __name__ == '__main__':
  run()
