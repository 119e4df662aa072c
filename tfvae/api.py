"""Training from Python: `train`, what `tfvae-train` does, as one call that returns the model.

    model = tfvae.train(config='mnist_fc', dataset='mnist', data_dir='../shared/data',
                        run_dir='/tmp/vae', num_steps=2000)       # -> tfvae.TrainedModel
    model = tfvae.train(config='conv_vae', dataset=images, hparams={'image_size': 32},
                        run_dir='/tmp/mine', num_steps=500)        # images: uint8 [N, H, W, C]

The command-line trainer and `train` share `run_training` (the trainer, its hooks, config.json
and the export), so a run directory made either way is the same, and every tool (evaluate,
sample, export, TrainedModel) opens it. `train` prints the trainer's progress lines to
sys.stdout (a notebook's cell output) while it runs.
"""

import contextlib
import dataclasses
import logging as std_logging
import math
import numbers
import os
import sys

from absl import logging
import keras
import tensorflow as tf

from tfvae import checkpoints
from tfvae import configs
from tfvae import hooks as hooks_lib
from tfvae import run_data
from tfvae import sources
from tfvae import strategies
from tfvae import training
from tfvae.errors import UserError
from tfvae.hparams import HParams
from tfvae.run_dir import Run
from tfvae.run_dir import RunDir
from tfvae.run_dir import check_resume
from tfvae.run_dir import check_writable
from tfvae.run_dir import resolve_run


class ArgumentError(UserError):
  """An argument of tfvae.train or tfvae.keras_model of the wrong kind or out of range."""


def config_name(config):
  """The name of `config`: a registered config's name, or a configs.Config that is one (its
  dataset may differ); None stays None. A run directory records configs by name, so a
  modified Config is an ArgumentError."""
  if config is None:
    return None
  if isinstance(config, str):
    return configs.get_config(config).name
  if isinstance(config, configs.Config):
    registered = configs.get_config(config.name)
    if dataclasses.replace(config, dataset=registered.dataset) != registered:
      raise ArgumentError(f'config={config.name!r} is a modified Config; a run records its '
                          'config by name: pass the name, with your changes in hparams= and '
                          'dataset=')
    return config.name
  raise ArgumentError(f'config= got a {type(config).__name__}; give a config name (one of '
                      f'{", ".join(sorted(configs.CONFIG_MAP))}) or a tfvae.configs.Config')


def apply_hparams(base, hparams):
  """`base` (HParams) with `hparams` applied: an override string 'a=1,b=[2,3]', a dict, an
  HParams (its values) or None."""
  if hparams is None or isinstance(hparams, str):
    return base.parse(hparams or '')
  if isinstance(hparams, HParams):
    return base.override(**hparams.values())
  if isinstance(hparams, dict):
    return base.override(**hparams)
  raise ArgumentError(f'hparams= got a {type(hparams).__name__}; give a string such as '
                      '"z_size=2,hidden_sizes=[500,500]", a dict or a tfvae HParams')


def check_count(name, value, minimum):
  """An integer argument >= minimum, or an ArgumentError naming it."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
    raise ArgumentError(f'{name}={value!r}: give an integer >= {minimum}')
  return int(value)


def _non_negative(name, value):
  """A finite number >= 0, or an ArgumentError naming it."""
  if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
      or value < 0):
    raise ArgumentError(f'{name}={value!r}: give a number >= 0')
  return float(value)


class _OnlyTfvae(std_logging.Filter):
  """Warnings and errors from anywhere, INFO lines from tfvae's own modules only."""

  _PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep

  def filter(self, record):
    return (record.levelno >= std_logging.WARNING
            or os.path.abspath(record.pathname).startswith(self._PACKAGE))


class _CurrentStdout(std_logging.StreamHandler):
  """Writes to whatever sys.stdout is when a line is logged (a notebook swaps it per cell)."""

  @property
  def stream(self):
    return sys.stdout

  @stream.setter
  def stream(self, value):
    del value


@contextlib.contextmanager
def progress_to_stdout():
  """Within the block, tfvae's INFO lines (progress, resuming, done) and all warnings are
  printed to sys.stdout as the command-line tools show them, one message a line (warnings
  with a 'warning: ' prefix), and nowhere else; absl's verbosity and handlers come back
  after it."""
  logger = logging.get_absl_logger()
  handler = _CurrentStdout()
  handler.setFormatter(_MessageFormatter())
  handler.addFilter(_OnlyTfvae())
  verbosity, propagate = logging.get_verbosity(), logger.propagate
  logger.addHandler(handler)
  logger.propagate = False
  logging.set_verbosity(logging.INFO)
  try:
    yield
  finally:
    logging.set_verbosity(verbosity)
    logger.propagate = propagate
    logger.removeHandler(handler)


class _MessageFormatter(std_logging.Formatter):

  def format(self, record):
    message = record.getMessage()
    return message if record.levelno < std_logging.WARNING else f'warning: {message}'


def run_training(run_dir, config, hparams, strategy, num_steps, *, data_dir=None, cache_dir=None,
                 seed=0, checkpoints_to_keep=5, steps_per_loop=100,
                 data_memory_mb=training.DEFAULT_DATA_MEMORY_MB, log_every_n_steps=100,
                 checkpoint_every_secs=60.0, image_every_n_steps=1000, max_train_minutes=0.0,
                 export_dir=None):
  """Trains the resolved run (tfvae.run_dir.resolve_run's config and hparams) in run_dir (a
  RunDir) until step num_steps, as tfvae-train does: seeds Keras (the initial weights), reads
  the data, writes config.json (the chief, after the restore), trains with the standard hooks and, with
  export_dir, exports a SavedModel at the end. Returns why training stopped ('done',
  'signal', 'time_budget', 'early_stopping')."""
  logging.info('Running under %s.', strategies.describe(strategy))
  keras.utils.set_random_seed(seed)  # the initial weights
  source = sources.make_source(config.dataset, data_dir=data_dir, cache_dir=cache_dir,
                               image_size=hparams.image_size, channels=hparams.channels)
  trainer = training.Trainer(config, hparams, run_dir, source, strategy=strategy, seed=seed,
                             checkpoints_to_keep=checkpoints_to_keep,
                             steps_per_loop=steps_per_loop, data_memory_mb=data_memory_mb)
  hooks = hooks_lib.standard(
      trainer, num_steps, log_every_n_steps=log_every_n_steps,
      checkpoint_every_secs=checkpoint_every_secs, image_every_n_steps=image_every_n_steps,
      max_train_seconds=max_train_minutes * 60)
  # The chief writes config.json once the restore has succeeded: the run stays whole.
  record = Run(config, hparams, source.info.image_shape, source.info.binary, data_dir=data_dir,
               cache_dir=cache_dir)
  reason = trainer.train(num_steps, hooks, record=record)
  if export_dir and trainer.is_chief and reason != 'signal':
    from tfvae import export  # pylint: disable=import-outside-toplevel
    logging.info('Exported a SavedModel to %s.', export.export_saved_model(run_dir, export_dir))
  return reason


def train(config=None, dataset=None, hparams=None, run_dir=None, num_steps=10000, *,
          data_dir=None, cache_dir=None, seed=0, strategy='default', tpu=None,
          log_every_n_steps=100, checkpoint_every_secs=60.0, image_every_n_steps=1000,
          steps_per_loop=100, data_memory_mb=training.DEFAULT_DATA_MEMORY_MB,
          max_train_minutes=0.0, checkpoints_to_keep=5, export_dir=None, verbose=True):
  """Trains `config` on `dataset` into run_dir until step num_steps (resuming what run_dir
  holds) and returns a tfvae.TrainedModel of its latest checkpoint.

  config: a config name (or a tfvae.configs.Config); may be left out when resuming.
  dataset: a spec string, uint8 images [N, H, W(, C)], (images, labels), a dict of split
    arrays, or a finite tf.data.Dataset of images (tfvae.run_data: arrays and tf.data are
    saved into run_dir); None: the config's (or the resumed run's).
  hparams: overrides, as a string 'z_size=2,free_bits=0', a dict or an HParams.
  strategy: a name in tfvae.strategies.STRATEGIES (tpu: its address) or a
    tf.distribute.Strategy.
  The other arguments are tfvae-train's flags of the same names. verbose: print the
  progress lines to sys.stdout (else they go to absl's logging as it is set up).
  """
  if not run_dir:
    raise ArgumentError('run_dir= is required: the folder for checkpoints, summaries and '
                        'config.json')
  num_steps = check_count('num_steps', num_steps, 1)
  counts = {name: check_count(name, value, minimum) for name, value, minimum in [
      ('log_every_n_steps', log_every_n_steps, 1), ('steps_per_loop', steps_per_loop, 1),
      ('checkpoints_to_keep', checkpoints_to_keep, 1),
      ('image_every_n_steps', image_every_n_steps, 0), ('seed', seed, 0)]}
  amounts = {name: _non_negative(name, value) for name, value in [
      ('checkpoint_every_secs', checkpoint_every_secs), ('max_train_minutes', max_train_minutes),
      ('data_memory_mb', data_memory_mb)]}
  if not (isinstance(strategy, tf.distribute.Strategy) or strategy in strategies.STRATEGIES):
    raise ArgumentError(f'strategy={strategy!r}: give one of {", ".join(strategies.STRATEGIES)} '
                        'or a tf.distribute.Strategy')
  run_dir = RunDir(os.fspath(run_dir))
  name = config_name(config)
  check_writable(run_dir.path, 'run_dir')
  if export_dir:
    check_writable(export_dir, 'export_dir')
  # Hparams are checked before any images are written into run_dir.
  if run_dir.has_config():
    apply_hparams(run_dir.load().hparams, hparams)
  elif name is None:
    raise ArgumentError('config= is required for a new run_dir; valid configs: '
                        f'{", ".join(sorted(configs.CONFIG_MAP))}')
  else:
    apply_hparams(configs.get_config(name).hparams, hparams)
  with progress_to_stdout() if verbose else contextlib.nullcontext():
    spec = run_data.spec_for(dataset, run_dir)
    if spec is None and isinstance(config, configs.Config) and not run_dir.has_config():
      spec = config.dataset or None
    config, base = resolve_run(run_dir, name, '', spec)
    hparams = apply_hparams(base, hparams)
    if run_dir.has_config() and checkpoints.listed(run_dir.train_dir):
      check_resume(run_dir, base, hparams)  # what tfvae-train refuses, refused here too
    data_dir, cache_dir = run_dir.data_location(data_dir, cache_dir)
    if isinstance(strategy, str):
      strategy = strategies.make_strategy(strategy, tpu=tpu)
    run_training(run_dir, config, hparams, strategy, num_steps, data_dir=data_dir,
                 cache_dir=cache_dir, export_dir=export_dir, **counts, **amounts)
  from tfvae.trained_model import TrainedModel  # pylint: disable=import-outside-toplevel
  return TrainedModel(run_dir=run_dir.path)
