"""Dataset sources: a dataset spec -> fitted uint8 image splits, prepared once into a cache.

    source = sources.make_source('folder:/data/faces', image_size=64, channels=3)
    source.info                 # data.DatasetInfo: image shape, binary, classes, split sizes
    source.split('train')       # data.Split: uint8 [N, 64, 64, 3] (memory-mapped) and labels
    source.split_file('train')  # the prepared .npy file (the streaming input path reads it)

The package, one idea a module:

    specs        the spec strings: parse_spec, absolute_spec, "did you mean"
    builtin      the built-ins from their upstream raw files (or TFDS)        readers of the
    tfds_reader  tfds:NAME[/CONFIG][:VERSION] (and the built-ins' TFDS path)  five kinds, each
    folder       folder:PATH, PNG and JPEG files                              a resolve() that
    arrays       npz:PATH, npy:PATH                                           gives a Resolved
    streams      what a reader gives: Resolved, chunked Streams of a split
    carving      the valid/test splits of a source without them (a fixed permutation)
    fitting      image_size and channels: every image to one shape
    cache        the prepared folders: writing, locking, stale removal, listing, pruning

A built-in that the knobs leave unchanged is read directly (in memory); every other source is
prepared once into the cache and read memory-mapped. Whether a source is binary is what its
reader declares (streams.Resolved.binary), recorded in the cache's info.json.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from tfvae import data
from tfvae.errors import DataError
from tfvae.errors import did_you_mean
from tfvae.sources import arrays
from tfvae.sources import builtin
from tfvae.sources import cache
from tfvae.sources import fitting
from tfvae.sources import folder
from tfvae.sources import tfds_reader
from tfvae.sources.fitting import fit_images
from tfvae.sources.fitting import fitted_shape
from tfvae.sources.specs import SPEC_FORMS
from tfvae.sources.specs import SourceSpec
from tfvae.sources.specs import absolute_spec
from tfvae.sources.specs import parse_spec

__all__ = ['SPEC_FORMS', 'Source', 'SourceSpec', 'absolute_spec', 'fit_images', 'fitted_shape',
           'for_model', 'for_run', 'for_trained', 'make_source', 'parse_spec']

_READERS = {'builtin': builtin.resolve, 'tfds': tfds_reader.resolve, 'folder': folder.resolve,
            'npz': arrays.resolve_npz, 'npy': arrays.resolve_npy}
_SOURCES: dict = {}  # Source objects keyed by (spec, data_dir, cache root, image_size, channels)


def make_source(spec: str, data_dir=None, cache_dir=None, image_size: int = 0,
                channels: int = 0) -> Source:
  """The Source of `spec` fitted by the knobs, made once per process for the same arguments."""
  fitting.check_knobs(image_size, channels)
  data_dir = None if data_dir is None else os.path.abspath(os.path.expanduser(data_dir))
  key = (spec, data_dir, cache.root(cache_dir), image_size, channels)
  if key not in _SOURCES:
    _SOURCES[key] = Source(spec, data_dir, key[2], image_size, channels)
  return _SOURCES[key]


def for_model(dataset, hparams, image_shape, data_dir=None, cache_dir=None):
  """The Source a trained model reads: `dataset` (a spec) fitted by the run's image_size and
  channels hparams (a dict or HParams); one-line ValueError unless its images have the
  model's image_shape (H, W, C)."""
  values = hparams if isinstance(hparams, dict) else hparams.values()
  source = make_source(dataset, data_dir=data_dir, cache_dir=cache_dir,
                       image_size=values.get('image_size', 0), channels=values.get('channels', 0))
  if tuple(source.info.image_shape) != tuple(image_shape):
    raise DataError(f'dataset {dataset!r} has images of shape {tuple(source.info.image_shape)}, '
                    f'but the model takes {tuple(image_shape)}; pass a --dataset of that shape')
  return source


def for_run(run, dataset=None, data_dir=None, cache_dir=None):
  """for_model for a run_dir.Run: its own dataset, or `dataset` of the same image shape."""
  return for_model(dataset or run.config.dataset, run.hparams, run.image_shape, data_dir,
                   cache_dir)


def for_trained(trained, dataset=None, data_dir=None, cache_dir=None):
  """for_model for a TrainedModel: its own dataset, or `dataset` of the same image shape."""
  return for_model(dataset or trained.dataset, trained.hparams, trained.image_shape, data_dir,
                   cache_dir)


class Source:
  """One dataset spec with its fitting knobs: `info`, `split(name)` and `split_file(name)`;
  `cache_folder`, where it is (or would be) prepared."""

  def __init__(self, spec: str, data_dir: str | None, cache_root: str, image_size: int,
               channels: int):
    self.spec, self.image_size, self.channels = spec, image_size, channels
    self._parsed, self._data_dir = parse_spec(spec), data_dir
    self._resolved = _READERS[self._parsed.kind](spec, self._parsed, data_dir)
    self._identity = cache.identity(self._parsed.kind, self._resolved.target, image_size,
                                    channels)
    self.cache_folder = cache.folder(cache_root, self._parsed.kind, self._parsed.target,
                                     self._identity, self._resolved.signature)
    self._splits = {}
    self._hold = None  # the shared lock on cache_folder, once it is read

  @functools.cached_property
  def _direct(self) -> bool:
    """A built-in the knobs leave unchanged: its splits come straight from builtin.load_split."""
    if self._parsed.kind != 'builtin':
      return False
    native = data.dataset_info(self._parsed.target).image_shape
    return fitted_shape(native, self.image_size, self.channels) == native

  @functools.cached_property
  def info(self) -> data.DatasetInfo:
    """image_shape (H, W, C) after fitting, binary, num_classes and split sizes."""
    if self._direct:
      return builtin.load_split(self._parsed.target, 'train', self._data_dir).info
    self._prepare()
    saved = cache.read_info(self.cache_folder)
    return data.DatasetInfo(self.spec, tuple(saved['image_shape']), saved['binary'],
                            saved['num_classes'], saved['split_sizes'])

  def split(self, name: str) -> data.Split:
    """Split `name` of data.SPLITS: in memory for a direct built-in, else memory-mapped."""
    if self._direct:
      return builtin.load_split(self._parsed.target, name, self._data_dir)
    if name not in self._splits:
      images = np.load(self.split_file(name), mmap_mode='r')
      labels_path = os.path.join(self.cache_folder, f'{name}_labels.npy')
      labels = np.load(labels_path) if os.path.isfile(labels_path) else None
      if labels is not None:
        labels.setflags(write=False)
      self._splits[name] = data.Split(images, labels, self.info)
    return self._splits[name]

  def split_file(self, name: str) -> str:
    """The .npy file holding split `name` as uint8 [N, H, W, C] (prepared on first use)."""
    if name not in data.SPLITS:
      raise DataError(f'{self.spec}: unknown split {name!r}; choose one of '
                      f'{", ".join(data.SPLITS)}{did_you_mean(name, data.SPLITS)}')
    self._prepare()
    return os.path.join(self.cache_folder, f'{name}.npy')

  def _prepare(self) -> None:
    """Writes the cache folder unless it exists, and holds it (cache.hold) from then on."""
    while self._hold is None:
      if not cache.is_prepared(self.cache_folder):
        own_streams, num_classes = self._resolved.open_streams()
        record = dict(self._identity, spec=absolute_spec(self.spec),
                      binary=self._resolved.binary)
        cache.write(self.cache_folder, self.spec, own_streams, num_classes,
                    fitting.Fitter(self.spec, self.image_size, self.channels), record)
      try:
        self._hold = cache.hold(self.cache_folder)
      except FileNotFoundError:  # pruned between the two: prepare it again
        pass
