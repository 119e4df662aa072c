"""The layout of a run directory, and the record of the run saved in it.

    RUN_DIR/config.json   config name, dataset spec, image shape, binary, final hparams, and
                          the --data_dir and --cache_dir it was trained with
    RUN_DIR/train/        checkpoints and training summaries
    RUN_DIR/best/         the checkpoint with the best validation ELBO (early stopping)
    RUN_DIR/eval/         evaluation summaries

Later tools (evaluate, export, sample) and resumed runs need only --run_dir: they read
config.json (a --data_dir or --cache_dir given again overrides the recorded one). A resumed run
may change only the hparams in RESUMABLE; any other changes the model's variables, the data or
the objective, and is refused before anything is written.
"""

import dataclasses
import json
import os
import tempfile

from absl import logging
import tensorflow as tf

from tfvae import checkpoints
from tfvae import configs
from tfvae import data
from tfvae import sources
from tfvae import __version__
from tfvae.errors import UserError

# The hparams a resumed run may change: how it optimises (the learning-rate schedule,
# clipping, skipping, weight decay, early stopping, compilation), not what it models, reads or
# minimises.
RESUMABLE = ('learning_rate', 'decay_rate', 'min_learning_rate', 'grad_clip',
             'grad_skip_threshold', 'weight_decay', 'early_stopping_patience', 'jit_compile')


class RunDirError(UserError):
  """A run directory that cannot be used as asked."""


@dataclasses.dataclass(frozen=True)
class Run:
  """What a run trains: its config (with the run's dataset spec), hparams, image shape,
  whether its dataset is binary (uint8 0/1, not intensities; the source's info.binary; None:
  as the spec declares it, for records from before it was kept), and where its data was read
  from (None: the default)."""
  config: configs.Config
  hparams: object
  image_shape: tuple
  binary: bool | None = None
  data_dir: str | None = None
  cache_dir: str | None = None

  def __post_init__(self):
    if self.binary is None:
      object.__setattr__(self, 'binary', sources.specs.declared_binary(self.config.dataset))


def _absolute(path):
  """`path` made absolute, so that a run is found from any folder; remote paths unchanged."""
  return path if not path or '://' in path else os.path.abspath(path)


def check_writable(path, flag):
  """A one-line RunDirError naming `flag` unless files can be written in the folder `path`
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
    raise RunDirError(f'{flag}={path} cannot be written: {problem}; pass a folder you can '
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
              'data_dir': _absolute(run.data_dir), 'cache_dir': _absolute(run.cache_dir),
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
                 record.get('binary'), record.get('data_dir'), record.get('cache_dir'))
    except (ValueError, KeyError, TypeError, AttributeError, tf.errors.OpError) as e:
      raise RunDirError(f'{self.config_path} is not a readable tfvae run record '
                        f'({type(e).__name__}: {" ".join(str(e).split())})') from None

  def data_location(self, data_dir=None, cache_dir=None):
    """(data_dir, cache_dir) to read this run's data with: each the one given, else the one
    config.json recorded (None for a new run, or a run trained with the defaults)."""
    if (data_dir and cache_dir) or not self.has_config():
      return data_dir or None, cache_dir or None
    run = self.load()
    return data_dir or run.data_dir, cache_dir or run.cache_dir

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


def _changed(before, after):
  """{name: (before's value, after's)} of the hparams whose values differ."""
  old, new = before.values(), after.values()
  return {name: (old[name], new[name]) for name in old if old[name] != new[name]}


def check_resume(run_dir, stored, hparams):
  """Raises a one-line RunDirError naming the hparams that `hparams` changes from the
  `stored` ones of the run in run_dir (a RunDir) and are not RESUMABLE, with their stored
  values; logs the RESUMABLE ones it changes."""
  changed = _changed(stored, hparams)
  refused = {name: values for name, values in changed.items() if name not in RESUMABLE}
  if refused:
    listed = ', '.join(f'{name}={_text(new)} (the run has {_text(old)})'
                       for name, (old, new) in refused.items())
    one = len(refused) == 1
    raise RunDirError(
        f'cannot resume {run_dir.path} with {listed}: '
        f'{"this hparam changes" if one else "these hparams change"} the model\'s variables, '
        f'its data or its objective; leave {"it" if one else "them"} out of --hparams (the run '
        'keeps its values) or train into a new --run_dir; a resume may change '
        f'{", ".join(RESUMABLE)}')
  for name, (old, new) in changed.items():
    logging.info('Resuming with %s=%s (was %s).', name, _text(new), _text(old))


def _text(value):
  """An hparam value as --hparams writes it: [16,16], true, 0.001."""
  if isinstance(value, list):
    return '[' + ','.join(map(_text, value)) + ']'
  return str(value).lower() if isinstance(value, bool) else str(value)


def resolve_run(run_dir, config_name, hparams_spec, dataset=None):
  """The (config, hparams) a run uses: a new run takes --config (and --dataset, default the
  config's); a resumed one its saved config and dataset, and --hparams may change only the
  RESUMABLE hparams of the saved ones (check_resume)."""
  if run_dir.has_config():
    run = run_dir.load()
    config = run.config
    if config_name and config_name != config.name:
      raise RunDirError(f'{run_dir.path} holds a run of config {config.name!r}, not '
                        f'{config_name!r}: pass --config={config.name} or a new --run_dir')
    if dataset and dataset != config.dataset:
      raise RunDirError(f'{run_dir.path} holds a run on dataset {config.dataset!r}, not '
                        f'{dataset!r}: leave --dataset out or use a new --run_dir')
    hparams = run.hparams.parse(hparams_spec)
    if checkpoints.listed(run_dir.train_dir):  # else nothing was trained that could break
      check_resume(run_dir, run.hparams, hparams)
    return config, hparams
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
  return config, config.hparams.parse(hparams_spec)
