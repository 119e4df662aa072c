"""Exports a training run's latest (or a named) checkpoint as a standalone SavedModel.

    tfvae-export --run_dir=/tmp/vae --export_dir=/tmp/vae_export [--tflite]
    saved_model_cli show --all --dir=/tmp/vae_export

Signatures: encode, decode, sample, reconstruct (= serving_default) and elbo; see
tfvae/export.py for their inputs and outputs. --tflite also writes decode.tflite (the
decoder for TensorFlow Lite). (bin/export.py is the same tool.)
"""

import sys

from absl import flags
from absl import logging

from tfvae import cli
from tfvae import export

FLAGS = flags.FLAGS
flags.DEFINE_string('run_dir', None, 'The training run to export (see bin/train.py).')
flags.DEFINE_string('export_dir', None, 'Folder to write the SavedModel to.')
flags.DEFINE_string('checkpoint', 'latest', 'Checkpoint to export: latest, best (the best '
                    'validation ELBO, kept by early stopping) or a path such as '
                    'RUN_DIR/train/ckpt-2000.')
flags.DEFINE_boolean('tflite', False, 'Also write export_dir/decode.tflite.')


def main():
  if not FLAGS['verbosity'].present:  # TensorFlow's INFO chatter is not for this tool's user
    logging.set_verbosity(logging.WARNING)
  for name in ('run_dir', 'export_dir'):
    if not FLAGS[name].value:
      raise ValueError(f'--{name} is required')
  path = export.export_saved_model(FLAGS.run_dir, FLAGS.export_dir, FLAGS.checkpoint,
                                   tflite=FLAGS.tflite)
  extra = f' and {export.TFLITE_FILE}' if FLAGS.tflite else ''
  print(f'wrote {path} (signatures: {", ".join(export.SIGNATURES)}){extra}')


def run():
  """The tfvae-export console script."""
  cli.run(sys.modules[__name__])


if __name__ == '__main__':
  run()
