"""Dataset sources: a dataset spec string -> fitted uint8 image splits, prepared once into a cache.

Spec forms (`parse_spec`):

* ``mnist``, ``fashion_mnist``, ``binarized_mnist``, ``frey_face``: the built-ins, read by
  `data.load_split` (``data_dir``: their raw files, as for `tfvae.data`).
* ``tfds:NAME[/CONFIG][:VERSION]``: a TFDS dataset (``data_dir``: the TFDS data dir). Images: the
  `tfds.features.Image` feature named ``image``, else the first Image feature; labels: a
  `ClassLabel` named ``label``, else none. Splits: ``train``, ``validation`` (or ``valid``),
  ``test``. A dataset prepared in data_dir is read from its files by name (TFDS's read-only
  builder), so its builder class need not be importable.
* ``folder:PATH``: the ``.png``, ``.jpg`` and ``.jpeg`` files (any case) under PATH, recursively,
  in sorted order of relative path (hidden files and folders, ``.name``, are skipped: macOS's
  ``._name.png`` are not images). With a ``PATH/train`` folder, ``train/``, ``valid/`` (or
  ``validation/``) and ``test/`` are the splits (nothing else is read); else all of PATH is one
  pool. The first folder level below PATH (below the split folder if there are split folders)
  names the class: label = index among the sorted class folder names; if any file sits directly
  in PATH (or a split folder), the whole dataset has no labels.
* ``npz:PATH``: arrays [N, H, W] or [N, H, W, C] (C in 1..4) under the keys ``train``, ``valid``
  (or ``validation``) and ``test``, or exactly one array under any key; each with optional
  integer labels under ``<key>_labels``. ``npy:PATH``: one such array. Images are uint8; integer
  arrays with all values in 0..255 are accepted and cast. An .npz array is read into memory
  whole, a .npy one is memory-mapped. PATH is relative to the current folder.

Carve-out: with no split of its own, a fixed permutation ``np.random.RandomState(0).permutation(N)``
gives ``test`` = its first ``max(1, N // 10)`` examples, ``valid`` the next ``max(1, N // 10)``,
``train`` the rest (sorted back into source order within each split); fewer than 3 examples is an
error. When only valid (or only test) is missing, that one is carved out of train the same way
(the first ``max(1, N // 10)`` of the permutation of train's N examples).

Fitting (`fit_images`, knobs ``image_size`` and ``channels``, 0 = native): channels first
(1: luminance round(0.299 R + 0.587 G + 0.114 B); 3: grey tiled to RGB; alpha is dropped), then
with image_size = S a resize that makes the shorter side S (the longer one round(long * S / short))
with TensorFlow's antialiased bilinear filter, and a centre crop to S x S at offset
(size - S) // 2. Every image of a source must come out the same shape.

Cache: every source except a built-in that the knobs leave unchanged is prepared once into
``ROOT/<kind>-<name>-<hash>/`` (ROOT: the ``cache_dir`` argument, else $TFVAE_CACHE_DIR, else
~/.cache/tfvae): ``<split>.npy`` uint8 [N, H, W, C], ``<split>_labels.npy`` int64 [N] when
labelled, and ``info.json``. The hash covers a format version, the kind and resolved source, the
knobs and the source's signature (every file's relative path, size and mtime_ns; a TFDS
dataset's full name, version and split sizes). Splits are decoded, fitted and written in chunks
into memory-mapped files in a temporary sibling folder renamed into place with `os.replace`, so
sources larger than memory work and concurrent processes never see a partial cache.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import zipfile
from typing import Callable, Iterator

from absl import logging
import numpy as np
import tensorflow as tf

from tfvae import data

CACHE_FORMAT = 1
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')
SPEC_FORMS = ('|'.join(data.DATASET_NAMES), 'tfds:NAME[/CONFIG][:VERSION]', 'folder:PATH',
              'npz:PATH', 'npy:PATH')
_TFDS_SPEC = re.compile(  # NAME[/CONFIG][:VERSION]
    r'([a-z][a-z0-9_]*)(?:/([A-Za-z0-9_.+-]+))?(?::([0-9*]+\.[0-9*]+\.[0-9*]+))?')
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 luminance weights
_MAX_CHUNK = 1000  # images decoded, fitted and written at once
_CHUNK_BYTES = 1 << 26  # ... or fewer, so that a chunk of native images stays under 64 MiB
_SOURCES: dict = {}  # Source objects keyed by (spec, data_dir, cache root, image_size, channels)


@dataclasses.dataclass(frozen=True)
class SourceSpec:
  """A parsed spec: kind in builtin/tfds/folder/npz/npy; target = the built-in or TFDS name, or
  the path as written; config and version: a TFDS dataset's (else None)."""

  kind: str
  target: str
  config: str | None = None
  version: str | None = None


@dataclasses.dataclass(frozen=True)
class _Stream:
  """One split as its source holds it: `size` examples; read() yields them in order in chunks
  (images: uint8 array [n, h, w, c] or an iterable of [h, w, c]; labels int64 [n] or None;
  names: one string per example, for errors)."""

  size: int
  read: Callable[[], Iterator[tuple]]


def parse_spec(spec: str) -> SourceSpec:
  """The parts of a dataset spec; DataError listing the allowed forms if it is malformed."""
  kind, colon, rest = str(spec).partition(':')
  if not colon and kind in data.DATASET_NAMES:
    return SourceSpec('builtin', kind)
  if kind == 'tfds' and (match := _TFDS_SPEC.fullmatch(rest)):
    return SourceSpec('tfds', *match.groups())
  if kind in ('folder', 'npz', 'npy') and rest:
    return SourceSpec(kind, rest)
  raise data.DataError(f'malformed dataset spec {spec!r}; use one of {", ".join(SPEC_FORMS)}')


def absolute_spec(spec: str) -> str:
  """`spec` with a folder:, npz: or npy: path made absolute, so that a run records where its
  data is whatever folder later tools start in."""
  parsed = parse_spec(spec)
  if parsed.kind in ('folder', 'npz', 'npy'):
    return f'{parsed.kind}:{os.path.abspath(os.path.expanduser(parsed.target))}'
  return spec


def make_source(spec: str, data_dir=None, cache_dir=None, image_size: int = 0,
                channels: int = 0) -> Source:
  """The Source of `spec` fitted by the knobs, made once per process for the same arguments."""
  _check_knobs(image_size, channels)
  data_dir = None if data_dir is None else os.path.abspath(os.path.expanduser(data_dir))
  root = cache_dir or os.environ.get('TFVAE_CACHE_DIR') or '~/.cache/tfvae'
  root = os.path.abspath(os.path.expanduser(root))
  key = (spec, data_dir, root, image_size, channels)
  if key not in _SOURCES:
    _SOURCES[key] = Source(spec, data_dir, root, image_size, channels)
  return _SOURCES[key]


def for_model(dataset, hparams, image_shape, data_dir=None, cache_dir=None):
  """The Source a trained model reads: `dataset` (a spec) fitted by the run's image_size and
  channels hparams (a dict or HParams); one-line ValueError unless its images have the
  model's image_shape (H, W, C)."""
  values = hparams if isinstance(hparams, dict) else hparams.values()
  source = make_source(dataset, data_dir=data_dir, cache_dir=cache_dir,
                       image_size=values.get('image_size', 0), channels=values.get('channels', 0))
  if tuple(source.info.image_shape) != tuple(image_shape):
    raise ValueError(f'dataset {dataset!r} has images of shape {tuple(source.info.image_shape)}, '
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
  """One dataset spec with its fitting knobs: `info`, `split(name)` and `split_file(name)`."""

  def __init__(self, spec: str, data_dir: str | None, cache_root: str, image_size: int,
               channels: int):
    self.spec, self.image_size, self.channels = spec, image_size, channels
    self._parsed, self._data_dir = parse_spec(spec), data_dir
    resolve = {'builtin': _builtin, 'tfds': _tfds, 'folder': _folder, 'npz': _npz,
               'npy': _npy}[self._parsed.kind]
    target, signature, self._open_streams = resolve(spec, self._parsed, data_dir)
    key = [CACHE_FORMAT, self._parsed.kind, target, image_size, channels, signature]
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    name = os.path.basename(os.path.normpath(self._parsed.target))
    slug = re.sub(r'[^A-Za-z0-9_.-]+', '_', name)[:40]
    self.cache_folder = os.path.join(cache_root, f'{self._parsed.kind}-{slug}-{digest}')
    self._splits = {}

  @functools.cached_property
  def _direct(self) -> bool:
    """A built-in the knobs leave unchanged: its splits come straight from data.load_split."""
    if self._parsed.kind != 'builtin':
      return False
    native = data.dataset_info(self._parsed.target).image_shape
    return fitted_shape(native, self.image_size, self.channels) == native

  @functools.cached_property
  def info(self) -> data.DatasetInfo:
    """image_shape (H, W, C) after fitting, binary, num_classes and split sizes."""
    if self._direct:
      return data.load_split(self._parsed.target, 'train', self._data_dir).info
    self._prepare()
    with open(os.path.join(self.cache_folder, 'info.json'), encoding='utf-8') as f:
      saved = json.load(f)
    return data.DatasetInfo(self.spec, tuple(saved['image_shape']), saved['binary'],
                            saved['num_classes'], saved['split_sizes'])

  def split(self, name: str) -> data.Split:
    """Split `name` of data.SPLITS: in memory for a direct built-in, else memory-mapped."""
    if self._direct:
      return data.load_split(self._parsed.target, name, self._data_dir)
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
      raise data.DataError(f'{self.spec}: unknown split {name!r}; choose one of '
                           f'{", ".join(data.SPLITS)}')
    self._prepare()
    return os.path.join(self.cache_folder, f'{name}.npy')

  def _prepare(self) -> None:
    """Writes the cache folder (every split fitted, and info.json) unless it exists."""
    if os.path.isfile(os.path.join(self.cache_folder, 'info.json')):
      return
    streams, num_classes = self._open_streams()
    routes, sizes = _routes(self.spec, {split: s.size for split, s in streams.items()})
    logging.info('Preparing %s: %d images into %s', self.spec, sum(sizes.values()),
                 self.cache_folder)
    root = os.path.dirname(self.cache_folder)
    try:
      os.makedirs(root, exist_ok=True)
      temporary = tempfile.mkdtemp(prefix=os.path.basename(self.cache_folder) + '.tmp-', dir=root)
      try:
        writer = _Writer(temporary, self.spec, sizes, num_classes, self.image_size, self.channels)
        for split, stream in streams.items():
          writer.write(stream, *routes[split])
        writer.finish()
        try:
          os.replace(temporary, self.cache_folder)
        except OSError:  # Another process got there first: use its folder.
          if not os.path.isfile(os.path.join(self.cache_folder, 'info.json')):
            raise
      finally:
        shutil.rmtree(temporary, ignore_errors=True)
    except OSError as exc:
      raise data.DataError(f'{self.spec}: cannot write the prepared dataset under {root} '
                           f'({data._describe(exc)}); set TFVAE_CACHE_DIR to a writable '
                           'folder') from exc


def _check_knobs(image_size: int, channels: int) -> None:
  """ValueError unless image_size >= 0 and channels is 0, 1 or 3."""
  if not isinstance(image_size, (int, np.integer)) or image_size < 0:
    raise ValueError(f'image_size={image_size!r}: use 0 (native size) or a positive side length')
  if channels not in (0, 1, 3):
    raise ValueError(f'channels={channels!r}: use 0 (native), 1 (greyscale) or 3 (RGB)')


def fitted_shape(shape: tuple, image_size: int, channels: int) -> tuple:
  """The (H, W, C) that `fit_images` gives an image of native shape (h, w, c)."""
  height, width, depth = shape
  if image_size:
    height = width = image_size
  return (height, width, channels or depth)


def fit_images(images: np.ndarray, image_size: int = 0, channels: int = 0) -> np.ndarray:
  """uint8 [N, h, w, c] (c in 1..4) -> uint8 [N, H, W, C]: channels converted, then the shorter
  side resized to image_size and centre-cropped to image_size x image_size (module docstring)."""
  _check_knobs(image_size, channels)
  images = np.asarray(images)
  if images.dtype != np.uint8 or images.ndim != 4 or not 1 <= images.shape[-1] <= 4:
    raise ValueError(f'fit_images needs uint8 [N, h, w, c] with c in 1..4, got {images.dtype} '
                     f'{images.shape}')
  images = _convert_channels(images, channels)
  return _resize_and_crop(images, image_size) if image_size else images


def _convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
  """[N, h, w, c] -> [N, h, w, channels]: alpha dropped, luminance for 1, grey tiled for 3."""
  depth = images.shape[-1]
  if channels in (0, depth):
    return images
  colour = images[..., :3] if depth >= 3 else images[..., :1]
  if colour.shape[-1] == channels:
    return colour
  if channels == 3:
    return np.repeat(colour, 3, axis=-1)
  luminance = np.round(colour.astype(np.float32) @ _LUMA)
  return np.clip(luminance, 0, 255).astype(np.uint8)[..., None]


def _resize_and_crop(images: np.ndarray, size: int) -> np.ndarray:
  """[N, h, w, c] -> [N, size, size, c]: shorter side resized to size (antialiased bilinear),
  the longer one to round(long * size / short), then the centre size x size."""
  height, width = images.shape[1:3]
  scale = size / min(height, width)
  new_height, new_width = (max(size, int(side * scale + 0.5)) for side in (height, width))
  if (new_height, new_width) != (height, width):
    resized = tf.image.resize(images, (new_height, new_width), method='bilinear', antialias=True)
    images = np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)
  top, left = (new_height - size) // 2, (new_width - size) // 2
  return images[:, top:top + size, left:left + size]


def _routes(spec: str, own_sizes: dict) -> tuple:
  """Where each example of the source's own splits goes, missing valid/test carved out of train:
  ({own split: (split index into data.SPLITS [n], row there [n])}, {split: size})."""
  empty = [split for split, size in own_sizes.items() if size == 0]
  if empty:
    raise data.DataError(f'{spec}: split {empty[0]} has no examples')
  num_train = own_sizes['train']
  missing = [split for split in ('test', 'valid') if split not in own_sizes]
  take = max(1, num_train // 10)
  if num_train - take * len(missing) < 1:
    raise data.DataError(f'{spec}: {num_train} example(s) are too few to carve out '
                         f'{" and ".join(missing)}; need at least {len(missing) + 1}')
  codes = {split: np.full(size, data.SPLITS.index(split), np.int8)
           for split, size in own_sizes.items()}
  order = np.random.RandomState(0).permutation(num_train)
  for i, split in enumerate(missing):
    codes['train'][order[i * take:(i + 1) * take]] = data.SPLITS.index(split)
  routes, sizes = {}, {}
  for own, split_codes in codes.items():
    rows = np.zeros(len(split_codes), np.int64)
    for code in np.unique(split_codes):
      chosen = split_codes == code
      rows[chosen] = np.arange(np.count_nonzero(chosen))
      sizes[data.SPLITS[code]] = int(np.count_nonzero(chosen))
    routes[own] = (split_codes, rows)
  return routes, {split: sizes[split] for split in data.SPLITS}


class _Writer:
  """Fits chunks of images and writes them to their rows of the memory-mapped split files."""

  def __init__(self, folder: str, spec: str, sizes: dict, num_classes: int | None,
               image_size: int, channels: int):
    self.folder, self.spec, self.sizes, self.num_classes = folder, spec, sizes, num_classes
    self.knobs = (image_size, channels)
    self.images = {}  # split -> memmap, opened at its first image
    self.labels = {split: np.zeros(size, np.int64) for split, size in sizes.items()}
    self.first = None  # (name, native shape, fitted shape) of the first image
    self.binary = True

  def write(self, stream: _Stream, codes: np.ndarray, rows: np.ndarray) -> None:
    """Writes example i of `stream` to row rows[i] of split data.SPLITS[codes[i]]."""
    start = 0
    for images, labels, names in stream.read():
      fitted = self._fit(images, names)
      end = start + len(fitted)
      self.binary = self.binary and fitted.max() <= 1
      for code, split in enumerate(data.SPLITS):
        chosen = codes[start:end] == code
        if chosen.any():
          self._file(split, fitted.shape[1:])[rows[start:end][chosen]] = fitted[chosen]
          if labels is not None:
            self.labels[split][rows[start:end][chosen]] = labels[chosen]
      start = end

  def _fit(self, images, names: list) -> np.ndarray:
    """Native images (array [n, h, w, c] or iterable of [h, w, c]) -> fitted [n, H, W, C];
    runs of one native shape (up to _CHUNK_BYTES) are fitted together."""
    if isinstance(images, np.ndarray):
      self._check_shape(names[0], images.shape[1:])
      return fit_images(images, *self.knobs)
    fitted, run = [], []
    for name, image in zip(names, images):
      self._check_shape(name, image.shape)
      if run and (image.shape != run[0].shape or (len(run) + 1) * image.nbytes > _CHUNK_BYTES):
        fitted.append(fit_images(np.stack(run), *self.knobs))
        run = []
      run.append(image)
    fitted.append(fit_images(np.stack(run), *self.knobs))
    return np.concatenate(fitted)

  def _check_shape(self, name: str, native: tuple) -> None:
    """DataError unless an image of native shape (h, w, c) fits to the first image's shape."""
    fitted = fitted_shape(native, *self.knobs)
    if self.first is None:
      self.first = (name, native, fitted)
    first_name, first_native, first_fitted = self.first
    if fitted == first_fitted:
      return
    if fitted[:2] != first_fitted[:2]:
      fix = 'resize and centre-crop them all with --hparams=image_size=N'
    else:
      fix = 'convert them with --hparams=channels=1 (greyscale) or channels=3 (RGB)'
    shapes = 'x'.join(map(str, first_native)), 'x'.join(map(str, native))
    raise data.DataError(f'{self.spec}: {first_name} is {shapes[0]} but {name} is {shapes[1]} '
                         f'(HxWxC); images must share one shape: {fix}')

  def _file(self, split: str, shape: tuple) -> np.ndarray:
    """The memmap of split's uint8 [N, H, W, C] .npy file, created at its first image."""
    if split not in self.images:
      path = os.path.join(self.folder, f'{split}.npy')
      self.images[split] = np.lib.format.open_memmap(path, 'w+', np.uint8,
                                                     (self.sizes[split],) + tuple(shape))
    return self.images[split]

  def finish(self) -> None:
    """Flushes the split files and writes the labels and info.json."""
    for memmap in self.images.values():
      memmap.flush()
    self.images.clear()
    if self.num_classes is not None:
      for split, labels in self.labels.items():
        np.save(os.path.join(self.folder, f'{split}_labels.npy'), labels)
    info = {'spec': self.spec, 'image_shape': list(self.first[2]), 'binary': bool(self.binary),
            'num_classes': self.num_classes, 'split_sizes': self.sizes}
    with open(os.path.join(self.folder, 'info.json'), 'w', encoding='utf-8') as f:
      json.dump(info, f, indent=1)


def _chunk_rows(image_bytes: int) -> int:
  """Images per chunk: at most _MAX_CHUNK and _CHUNK_BYTES of native pixels, at least one."""
  return int(np.clip(_CHUNK_BYTES // max(1, image_bytes), 1, _MAX_CHUNK))


def _array_stream(load: Callable, shape: tuple, dtype: np.dtype, labels, where: str) -> _Stream:
  """A stream over an image array [N, h, w] or [N, h, w, c] (checked from its shape and dtype
  first; load() gives the array, which may be a memmap) with labels int [N] or None."""
  if (len(shape) not in (3, 4) or not shape[0] or (len(shape) == 4 and not 1 <= shape[3] <= 4)
      or not np.issubdtype(dtype, np.integer)):
    raise data.DataError(f'{where} has shape {tuple(shape)} and dtype {dtype}; expected uint8 '
                         '[N, H, W] or [N, H, W, C] with N > 0 and C in 1..4')
  if labels is not None:
    labels = np.asarray(labels)
    if labels.shape != shape[:1] or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
      raise data.DataError(f'{where}: labels have shape {labels.shape} and dtype {labels.dtype}; '
                           f'expected non-negative integers of shape ({shape[0]},)')
    labels = labels.astype(np.int64)
  rows = _chunk_rows(int(np.prod(shape[1:])) * np.dtype(dtype).itemsize)

  def read():
    array = load()
    for start in range(0, shape[0], rows):
      chunk = np.asarray(array[start:start + rows])
      if chunk.dtype != np.uint8:
        if chunk.min() < 0 or chunk.max() > 255:
          raise data.DataError(f'{where} has dtype {dtype} with values outside 0..255 (from '
                               f'{chunk.min()} to {chunk.max()}); expected uint8 images')
        chunk = chunk.astype(np.uint8)
      chunk = chunk if chunk.ndim == 4 else chunk[..., None]
      chunk_labels = None if labels is None else labels[start:start + rows]
      yield chunk, chunk_labels, [f'{where} image {i}' for i in range(start, start + len(chunk))]

  return _Stream(shape[0], read)


def _builtin(spec: str, parsed: SourceSpec, data_dir: str | None) -> tuple:
  """(target, signature, open_streams) of a built-in: the files directly in data_dir and in
  data_dir/<name>_idx sign it."""
  name = parsed.target
  folders = [data_dir, os.path.join(data_dir, f'{name}_idx')] if data_dir else []
  paths = sorted(entry.path for folder in folders if os.path.isdir(folder)
                 for entry in os.scandir(folder) if entry.is_file())
  signature = [[os.path.relpath(path, data_dir)] + _file_signature(path) for path in paths]

  def open_streams():
    splits = {split: data.load_split(name, split, data_dir) for split in data.SPLITS}
    streams = {split: _array_stream(lambda images=s.images: images, s.images.shape,
                                    s.images.dtype, s.labels, f'{name} {split}')
               for split, s in splits.items()}
    return streams, splits['train'].info.num_classes

  return f'{name}@{data_dir}', signature, open_streams


def _file_signature(path: str) -> list:
  """[size, mtime_ns] of the file `path`."""
  stat = os.stat(path)
  return [stat.st_size, stat.st_mtime_ns]


def _existing_file(spec: str, path: str) -> str:
  """The absolute path of the file `path`; DataError if there is none."""
  path = os.path.abspath(os.path.expanduser(path))
  if not os.path.isfile(path):
    raise data.DataError(f'{spec}: file {path} does not exist')
  return path


def _npy(spec: str, parsed: SourceSpec, data_dir: str | None) -> tuple:
  """(target, signature, open_streams) of one .npy image array, carved into three splits."""
  del data_dir  # Paths are relative to the current folder.
  path = _existing_file(spec, parsed.target)
  try:
    array = np.load(path, mmap_mode='r', allow_pickle=False)
  except (OSError, ValueError) as exc:
    raise data.DataError(f'{spec}: cannot read {path} as a .npy array '
                         f'({data._describe(exc)})') from exc
  stream = _array_stream(lambda: array, array.shape, array.dtype, None, path)
  return path, _file_signature(path), lambda: ({'train': stream}, None)


def _npz_headers(spec: str, path: str) -> dict:
  """{key: (shape, dtype)} of the arrays in the .npz file `path`, read from their headers."""
  headers = {}
  try:
    with zipfile.ZipFile(path) as archive:
      for member in archive.namelist():
        with archive.open(member) as f:
          version = np.lib.format.read_magic(f)
          read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                         else np.lib.format.read_array_header_2_0)
          shape, _, dtype = read_header(f)
        headers[member.removesuffix('.npy')] = (shape, dtype)
  except (OSError, ValueError, zipfile.BadZipFile) as exc:
    raise data.DataError(f'{spec}: cannot read {path} as a .npz file '
                         f'({data._describe(exc)})') from exc
  return headers


def _npz_split_keys(spec: str, path: str, keys: list) -> dict:
  """{own split: key} of an .npz's image arrays: train/valid/validation/test, or its only one."""
  image_keys = [key for key in keys if not (key.endswith('_labels') and key[:-7] in keys)]
  aliases = {'train': 'train', 'valid': 'valid', 'validation': 'valid', 'test': 'test'}
  own = {aliases[key]: key for key in image_keys if key in aliases}
  if 'train' in own and len(own) == len(image_keys):
    return own
  if len(image_keys) == 1:
    return {'train': image_keys[0]}
  raise data.DataError(f'{spec}: {path} has the keys {", ".join(keys) or "(none)"}; expected '
                       'train with optional valid (or validation) and test, or exactly one '
                       'image array, each with optional <key>_labels')


def _npz_array(path: str, key: str) -> np.ndarray:
  """The array under `key` in the .npz file `path`, read into memory."""
  with np.load(path, allow_pickle=False) as npz:
    return npz[key]


def _npz(spec: str, parsed: SourceSpec, data_dir: str | None) -> tuple:
  """(target, signature, open_streams) of an .npz with split arrays or one array to carve."""
  del data_dir  # Paths are relative to the current folder.
  path = _existing_file(spec, parsed.target)
  headers = _npz_headers(spec, path)
  own = _npz_split_keys(spec, path, list(headers))
  labelled = [key for key in own.values() if f'{key}_labels' in headers]
  if labelled and len(labelled) != len(own):
    unlabelled = sorted(set(own.values()) - set(labelled))
    raise data.DataError(f'{spec}: {path} has {labelled[0]}_labels but no {unlabelled[0]}_labels; '
                         'give labels for every image array or for none')
  labels = {key: _npz_array(path, f'{key}_labels') for key in labelled}
  streams = {split: _array_stream(functools.partial(_npz_array, path, key), *headers[key],
                                  labels.get(key), f'{path} key {key}')
             for split, key in own.items()}
  num_classes = int(max(y.max() for y in labels.values())) + 1 if labels else None
  return path, _file_signature(path), lambda: (streams, num_classes)


def _image_files(spec: str, folder: str) -> list:
  """Sorted relative paths (with /) of the image files under `folder`, hidden ones (.name)
  left out; DataError if there are none."""
  found = []
  for parent, subfolders, filenames in os.walk(folder):
    subfolders[:] = [name for name in subfolders if not name.startswith('.')]
    found += [os.path.relpath(os.path.join(parent, filename), folder).replace(os.sep, '/')
              for filename in filenames
              if filename.lower().endswith(IMAGE_EXTENSIONS) and not filename.startswith('.')]
  if not found:
    raise data.DataError(f'{spec}: no image files ({", ".join(IMAGE_EXTENSIONS)}, any case) '
                         f'under {folder}')
  return sorted(found)


def _split_folders(spec: str, root: str) -> dict:
  """{own split: folder}: train/ and valid/ (or validation/) and test/ if root has train/,
  else {'train': root} (a pool to carve)."""
  if not os.path.isdir(os.path.join(root, 'train')):
    return {'train': root}
  valid = [name for name in ('valid', 'validation') if os.path.isdir(os.path.join(root, name))]
  if len(valid) > 1:
    raise data.DataError(f'{spec}: {root} has both valid/ and validation/; keep one')
  names = {'train': 'train', 'valid': valid[0] if valid else None, 'test': 'test'}
  return {split: os.path.join(root, name) for split, name in names.items()
          if name and os.path.isdir(os.path.join(root, name))}


def _folder(spec: str, parsed: SourceSpec, data_dir: str | None) -> tuple:
  """(target, signature, open_streams) of a folder of PNG/JPEG files (module docstring)."""
  del data_dir  # Paths are relative to the current folder.
  root = os.path.abspath(os.path.expanduser(parsed.target))
  if not os.path.isdir(root):
    raise data.DataError(f'{spec}: folder {root} does not exist')
  folders = _split_folders(spec, root)
  files = {split: _image_files(spec, folder) for split, folder in folders.items()}
  class_of = {split: [rel.split('/')[0] if '/' in rel else None for rel in rels]
              for split, rels in files.items()}
  all_classes = [name for names in class_of.values() for name in names]
  classes = None if None in all_classes else sorted(set(all_classes))
  paths = {split: [os.path.join(folders[split], rel) for rel in rels]
           for split, rels in files.items()}
  signature = [[os.path.relpath(path, root)] + _file_signature(path)
               for split in files for path in paths[split]]

  label_of = {name: label for label, name in enumerate(classes or [])}

  def stream(split):
    split_paths = paths[split]
    labels = None if classes is None else np.array([label_of[c] for c in class_of[split]])

    def read():
      for start in range(0, len(split_paths), _MAX_CHUNK):
        chunk = split_paths[start:start + _MAX_CHUNK]
        yield (map(_decode_image, chunk),
               None if labels is None else labels[start:start + _MAX_CHUNK], chunk)

    return _Stream(len(split_paths), read)

  return root, signature, lambda: ({split: stream(split) for split in files},
                                   None if classes is None else len(classes))


def _decode_image(path: str) -> np.ndarray:
  """The PNG or JPEG file `path` as uint8 [h, w, c]; DataError naming it if it cannot be read."""
  try:
    with open(path, 'rb') as f:
      contents = f.read()
    return tf.io.decode_image(contents, dtype=tf.uint8, expand_animations=False).numpy()
  except (OSError, tf.errors.OpError) as exc:
    raise data.DataError(f'cannot decode {path} as a PNG or JPEG image '
                         f'({_tf_message(exc)})') from exc


def _tf_message(exc: BaseException) -> str:
  """A TensorFlow error's message without its '{{function_node ...}}' and '[Op:...]' parts."""
  text = re.sub(r'\{\{[^}]*\}\}|\[Op:[^\]]*\]', '', getattr(exc, 'message', str(exc)))
  return ' '.join(text.split())[:300] or type(exc).__name__


def _tfds_builder(spec: str, parsed: SourceSpec, data_dir: str | None):
  """The TFDS builder of the spec: registered, or read-only from files prepared in data_dir."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  name = (parsed.target + (f'/{parsed.config}' if parsed.config else '')
          + (f':{parsed.version}' if parsed.version else ''))
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.DatasetNotFoundError as exc:
    where = data_dir or 'the default TFDS data dir'
    raise data.DataError(f'{spec}: TFDS has no dataset {name!r}: it is neither registered nor '
                         f'prepared in {where}') from exc
  except Exception as exc:  # Any other TFDS failure (unknown config or version, ...).
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(':')
    raise data.DataError(f'{spec}: TFDS cannot open {name!r} ({first_line[:300]})') from exc


def _ensure_prepared(spec: str, builder) -> None:
  """Downloads and prepares a TFDS dataset that is not prepared, failing fast when offline."""
  if builder.is_prepared():
    return
  try:
    socket.create_connection((data._TFDS_HOST, 443), timeout=5).close()
  except OSError as exc:
    raise data.DataError(f'{spec}: it is not in the TFDS cache and {data._TFDS_HOST} cannot be '
                         f'reached to download it ({data._describe(exc)}); pass --data_dir=DIR '
                         'holding the prepared dataset') from exc
  try:
    builder.download_and_prepare()
  except Exception as exc:  # Any download or preparation failure is a DataError.
    raise data.DataError(f'{spec}: TFDS could not download and prepare it '
                         f'({data._describe(exc)})') from exc


def _tfds(spec: str, parsed: SourceSpec, data_dir: str | None) -> tuple:
  """(target, signature, open_streams) of a TFDS dataset (module docstring)."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  builder = _tfds_builder(spec, parsed, data_dir)
  features = builder.info.features
  images = [key for key, f in features.items() if isinstance(f, tfds.features.Image)]
  if not images:
    raise data.DataError(f'{spec}: TFDS dataset {builder.info.full_name} has no image feature; '
                         f'its features are {", ".join(features.keys())}')
  image_key = 'image' if 'image' in images else images[0]
  if features[image_key].np_dtype != np.uint8:
    raise data.DataError(f'{spec}: its image feature {image_key!r} has dtype '
                         f'{features[image_key].np_dtype.__name__}; only uint8 is supported')
  label = features['label'] if 'label' in features.keys() else None
  num_classes = label.num_classes if isinstance(label, tfds.features.ClassLabel) else None
  _ensure_prepared(spec, builder)
  own = {}
  for split, names in (('train', ('train',)), ('valid', ('validation', 'valid')),
                       ('test', ('test',))):
    found = [name for name in names if name in builder.info.splits]
    if found:
      own[split] = found[0]
  if 'train' not in own:
    raise data.DataError(f'{spec}: TFDS dataset {builder.info.full_name} has no train split; '
                         f'its splits are {", ".join(builder.info.splits)}')
  sizes = {name: builder.info.splits[name].num_examples for name in own.values()}
  signature = [builder.info.full_name, str(builder.version), sizes]

  def open_streams():
    return ({split: _tfds_stream(spec, builder, name, image_key, num_classes)
             for split, name in own.items()}, num_classes)

  return builder.data_dir, signature, open_streams


def _tfds_stream(spec: str, builder, split: str, image_key: str,
                 num_classes: int | None) -> _Stream:
  """A stream over TFDS split `split`, in file order: batches of a fixed image shape, else one
  image a chunk."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  shape = builder.info.features[image_key].shape
  rows = _chunk_rows(int(np.prod(shape))) if None not in shape else 1

  def read():
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    dataset = dataset.map(lambda example: (
        example[image_key], example['label'] if num_classes is not None else 0)).batch(rows)
    start = 0
    try:
      for images, labels in tfds.as_numpy(dataset):
        names = [f'{split} example {i}' for i in range(start, start + len(images))]
        yield images, labels.astype(np.int64) if num_classes is not None else None, names
        start += len(images)
    except tf.errors.OpError as exc:
      raise data.DataError(f'{spec}: cannot read TFDS split {split} ({_tf_message(exc)})') from exc

  return _Stream(builder.info.splits[split].num_examples, read)
