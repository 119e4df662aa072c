"""Exports a training run's latest (or a named) checkpoint as a standalone SavedModel.

    tfvae-export --run_dir=/tmp/vae --export_dir=/tmp/vae_export [--tflite]
    saved_model_cli show --all --dir=/tmp/vae_export

Signatures: encode, decode, sample, reconstruct (= serving_default) and elbo; see
tfvae/export.py for their inputs and outputs. --tflite also writes decode.tflite (the
decoder for TensorFlow Lite). (bin/export.py is the same tool.)
"""

import sys

from absl import flags

from tfvae import cli
from tfvae.errors import UserError

FLAGS = flags.FlagValues()
flags.DEFINE_string('run_dir', None, 'The training run to export (see bin/train.py).',
                    flag_values=FLAGS)
flags.DEFINE_string('export_dir', None, 'Folder to write the SavedModel to.',
                    flag_values=FLAGS)
flags.DEFINE_string('checkpoint', 'latest', 'Checkpoint to export: latest, best (the best '
                    'validation ELBO, kept by early stopping) or a path such as '
                    'RUN_DIR/train/ckpt-2000.', flag_values=FLAGS)
flags.DEFINE_boolean('tflite', False, 'Also write export_dir/decode.tflite: the decoder for '
                     'TensorFlow Lite.', flag_values=FLAGS)


def main():
  from tfvae import export  # pylint: disable=import-outside-toplevel
  for name in ('run_dir', 'export_dir'):
    if not FLAGS[name].value:
      raise UserError(f'--{name} is required')
  path = export.export_saved_model(FLAGS.run_dir, FLAGS.export_dir, FLAGS.checkpoint,
                                   tflite=FLAGS.tflite)
  extra = f' and {export.TFLITE_FILE}' if FLAGS.tflite else ''
  print(f'wrote {path} (signatures: {", ".join(export.SIGNATURES)}){extra}')


def run():
  """The tfvae-export console script."""
  cli.run(sys.modules[__name__])


if __name__ == '__main__':
  run()
