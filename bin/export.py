#!/usr/bin/env python
"""Exports a training run's latest (or a named) checkpoint as a standalone SavedModel.

    python bin/export.py --run_dir=/tmp/vae --export_dir=/tmp/vae_export
    saved_model_cli show --all --dir=/tmp/vae_export

Signatures: encode, decode, sample, reconstruct (= serving_default) and elbo; see
tfvae/export.py for their inputs and outputs.
"""

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


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments {argv[1:]}; flags look like --name=value')
  if not FLAGS['verbosity'].present:  # TensorFlow's INFO chatter is not for this tool's user
    logging.set_verbosity(logging.WARNING)
  path = export.export_saved_model(FLAGS.run_dir, FLAGS.export_dir, FLAGS.checkpoint)
  print(f'wrote {path} (signatures: {", ".join(export.SIGNATURES)})')


if __name__ == '__main__':
  flags.mark_flags_as_required(['run_dir', 'export_dir'])
  cli.run(main)
