"""The layout of a run directory, and the record of the run saved in it.

    RUN_DIR/config.json   config name, dataset spec, image shape, binary and final hparams
    RUN_DIR/train/        checkpoints and training summaries
    RUN_DIR/best/         the checkpoint with the best validation ELBO (early stopping)
    RUN_DIR/eval/         evaluation summaries

Later tools (evaluate, export, sample) need only --run_dir: they read config.json.
"""

import dataclasses
import json
import os
import tempfile

import tensorflow as tf

from tfvae import checkpoints
from tfvae import configs
from tfvae import data
from tfvae import sources
from tfvae import __version__
from tfvae.errors import UserError


class RunDirError(UserError):
  """A run directory that cannot be used as asked."""


@dataclasses.dataclass(frozen=True)
class Run:
  """What a run trains: its config (with the run's dataset spec), hparams, image shape and
  whether its dataset is binary (uint8 0/1, not intensities; the source's info.binary; None:
  as the spec declares it, for records from before it was kept)."""
  config: configs.Config
  hparams: object
  image_shape: tuple
  binary: bool | None = None

  def __post_init__(self):
    if self.binary is None:
      object.__setattr__(self, 'binary', sources.specs.declared_binary(self.config.dataset))


def check_writable(path, flag):
  """A one-line ValueError naming `flag` unless files can be written in the folder `path`
  (made later if missing): a probe file is created and removed in its nearest existing
  ancestor, and nothing is left behind. Remote paths (gs://...) are left to the write."""
  if '://' in path:
    return
  ancestor = os.path.abspath(path)
  while not os.path.exists(ancestor):
    ancestor = os.path.dirname(ancestor)
  problem = None
  if not os.path.isdir(ancestor):
    problem = f'{ancestor} is a file, not a folder'
  else:
    try:
      fd, probe = tempfile.mkstemp(prefix='.tfvae-write-check-', dir=ancestor)
      os.close(fd)
      os.remove(probe)
    except OSError as e:
      problem = f'{ancestor} is not writable ({e.strerror or type(e).__name__})'
  if problem:
    raise ValueError(f'{flag}={path} cannot be written: {problem}; pass a folder you can '
                     'write to')


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

  def save(self, run):
    """Writes config.json for `run` (a Run)."""
    tf.io.gfile.makedirs(self.path)
    record = {'config': run.config.name, 'dataset': run.config.dataset,
              'image_shape': list(run.image_shape), 'binary': run.binary,
              'hparams': run.hparams.values(),
              'tfvae_version': __version__}
    checkpoints.write_atomically(self.config_path,
                                 json.dumps(record, indent=2, sort_keys=True) + '\n')

  def load(self):
    """The Run saved in config.json, or RunDirError."""
    if not self.has_config():
      raise RunDirError(f'{self.path} is not a tfvae run directory: no {self.config_path}; '
                        'train into it first with bin/train.py --run_dir=...')
    # Damaged records (cut short, edited by hand) fail anywhere here, e.g. a list for a dict.
    try:
      with tf.io.gfile.GFile(self.config_path) as f:
        record = json.load(f)
      config = configs.get_config(record['config'])
      # Runs from before datasets were configurable recorded neither; they used the config's.
      dataset = record.get('dataset', config.dataset)
      image_shape = record.get('image_shape') or data.dataset_info(config.dataset).image_shape
      return Run(dataclasses.replace(config, dataset=dataset),
                 config.hparams.override(**record['hparams']), tuple(image_shape),
                 record.get('binary'))
    except (ValueError, KeyError, TypeError, AttributeError, tf.errors.OpError) as e:
      raise RunDirError(f'{self.config_path} is not a readable tfvae run record '
                        f'({type(e).__name__}: {" ".join(str(e).split())})') from None

  def checkpoint(self, which='latest'):
    """(folder, path) of the checkpoint called `which`: 'latest' (the newest readable in
    train/), 'best' (best/, kept when training with early stopping) or a checkpoint path;
    RunDirError if there is none."""
    if which in (None, 'latest'):
      if not checkpoints.listed(self.train_dir):
        raise RunDirError(f'no checkpoint in {self.train_dir}: train first with '
                          f'bin/train.py --run_dir={self.path}')
      return self.train_dir, None
    if which == 'best':
      if not checkpoints.listed(self.best_dir):
        raise RunDirError(f'no checkpoint in {self.best_dir}: it is kept only by runs trained '
                          'with early_stopping_patience > 0; use --checkpoint=latest')
      return self.best_dir, None
    if not tf.io.gfile.exists(which + '.index'):
      raise RunDirError(f'checkpoint {which!r} does not exist; use latest, best or a path '
                        f'such as {os.path.join(self.train_dir, "ckpt-1000")}')
    return None, which


def load_run(run_dir, checkpoint='latest'):
  """(Run, model, step) of the checkpoint of `run_dir` (a path or RunDir) that `checkpoint`
  names (see RunDir.checkpoint); the model holds the Polyak-averaged weights when the run
  keeps them."""
  run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
  run = run_dir.load()
  folder, path = run_dir.checkpoint(checkpoint)
  model, step = checkpoints.load_model(run.config, run.hparams, run.image_shape, folder, path)
  return run, model, step


def resolve_run(run_dir, config_name, hparams_spec, dataset=None):
  """The (config, hparams) a run uses: a new run takes --config (and --dataset, default the
  config's); a resumed one its saved config and dataset; --hparams applies on top of the
  saved hparams in both cases."""
  if run_dir.has_config():
    run = run_dir.load()
    config, hparams = run.config, run.hparams
    if config_name and config_name != config.name:
      raise RunDirError(f'{run_dir.path} holds a run of config {config.name!r}, not '
                        f'{config_name!r}: pass --config={config.name} or a new --run_dir')
    if dataset and dataset != config.dataset:
      raise RunDirError(f'{run_dir.path} holds a run on dataset {config.dataset!r}, not '
                        f'{dataset!r}: leave --dataset out or use a new --run_dir')
  else:
    if not config_name:
      raise RunDirError(f'--config is required for a new run_dir; valid configs: '
                        f'{", ".join(sorted(configs.CONFIG_MAP))}')
    config = configs.get_config(config_name)
    if dataset:
      config = dataclasses.replace(config, dataset=dataset)
    if not config.dataset:
      raise RunDirError(f'config {config.name} trains on your own images: pass '
                        '--dataset=folder:PATH (or npz:PATH, npy:PATH, tfds:NAME)')
    config = dataclasses.replace(config, dataset=sources.absolute_spec(config.dataset))
    hparams = config.hparams
  return config, hparams.parse(hparams_spec)
