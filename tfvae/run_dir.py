"""The layout of a run directory, and the config + hparams saved in it.

    RUN_DIR/config.json   the config name and the final hparams (written by the trainer)
    RUN_DIR/train/        checkpoints and training summaries
    RUN_DIR/best/         the checkpoint with the best validation ELBO (early stopping)
    RUN_DIR/eval/         evaluation summaries

Later tools (evaluate, export, sample) need only --run_dir: they read config.json.
"""

import json
import os

import tensorflow as tf

from tfvae import configs
from tfvae import optimization
from tfvae import __version__


class RunDirError(ValueError):
  """A run directory that cannot be used as asked."""


class RunDir:
  """Paths inside one run directory."""

  def __init__(self, path):
    if not path:
      raise RunDirError('--run_dir is required: the folder for checkpoints and summaries')
    self.path = path
    self.train_dir = os.path.join(path, 'train')
    self.eval_dir = os.path.join(path, 'eval')
    self.best_dir = os.path.join(path, 'best')
    self.config_path = os.path.join(path, 'config.json')

  def has_config(self):
    return tf.io.gfile.exists(self.config_path)

  def save_config(self, config, hparams):
    """Writes config.json: the config name and the hparams the run uses."""
    tf.io.gfile.makedirs(self.path)
    record = {'config': config.name, 'hparams': hparams.values(), 'tfvae_version': __version__}
    with tf.io.gfile.GFile(self.config_path, 'w') as f:
      f.write(json.dumps(record, indent=2, sort_keys=True) + '\n')

  def load_config(self):
    """(Config, HParams) saved in config.json, or RunDirError."""
    if not self.has_config():
      raise RunDirError(f'{self.path} is not a tfvae run directory: no {self.config_path}; '
                        'train into it first with bin/train.py --run_dir=...')
    with tf.io.gfile.GFile(self.config_path) as f:
      record = json.load(f)
    config = configs.get_config(record['config'])
    return config, config.hparams.override(**record['hparams'])

  def latest_checkpoint(self):
    """Path of the newest checkpoint in train/, or RunDirError if there is none."""
    path = tf.train.latest_checkpoint(self.train_dir)
    if not path:
      raise RunDirError(f'no checkpoint in {self.train_dir}: train first with '
                        f'bin/train.py --run_dir={self.path}')
    return path

  def checkpoint_path(self, which='latest'):
    """The checkpoint called `which`: 'latest' (in train/), 'best' (in best/, kept when
    training with early stopping) or a checkpoint path; RunDirError if there is none."""
    if which == 'latest':
      return self.latest_checkpoint()
    if which == 'best':
      path = tf.train.latest_checkpoint(self.best_dir)
      if not path:
        raise RunDirError(f'no checkpoint in {self.best_dir}: it is kept only by runs trained '
                          'with early_stopping_patience > 0; use --checkpoint=latest')
      return path
    if not tf.io.gfile.exists(which + '.index'):
      raise RunDirError(f'checkpoint {which!r} does not exist; use latest, best or a path '
                        f'such as {os.path.join(self.train_dir, "ckpt-1000")}')
    return which

  def restore_model(self, checkpoint='latest'):
    """(config, hparams, model, step) from the checkpoint `checkpoint` names (see
    checkpoint_path; None means latest); the model holds the Polyak-averaged weights when the
    run keeps them (hparams.ema_decay)."""
    config, hparams = self.load_config()
    checkpoint = self.checkpoint_path(checkpoint or 'latest')
    model = config.build_model(hparams)
    model.build_variables()
    optimizer = optimization.make_optimizer(hparams)
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    status = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step).restore(checkpoint)
    status.assert_existing_objects_matched().expect_partial()
    optimization.load_averaged_weights(optimizer, model.trainable_variables)
    return config, hparams, model, int(step.numpy())


def resolve_config(run_dir, config_name, hparams_spec):
  """The (Config, HParams) a run uses: a new run takes --config; a resumed one its saved
  config, with --hparams applied on top of the saved hparams in both cases."""
  if run_dir.has_config():
    config, hparams = run_dir.load_config()
    if config_name and config_name != config.name:
      raise RunDirError(f'{run_dir.path} holds a run of config {config.name!r}, not '
                        f'{config_name!r}: pass --config={config.name} or a new --run_dir')
  else:
    if not config_name:
      raise RunDirError(f'--config is required for a new run_dir; valid configs: '
                        f'{", ".join(sorted(configs.CONFIG_MAP))}')
    config = configs.get_config(config_name)
    hparams = config.hparams
  return config, hparams.parse(hparams_spec)
