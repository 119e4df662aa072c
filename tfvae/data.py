"""Image datasets for tfvae: loaders for upstream raw files and TFDS, and the training order.

Four datasets are supported (see `DATASET_NAMES`), each with the splits `SPLITS`:

* ``mnist`` and ``fashion_mnist``: 28x28 greyscale digits / clothes with 10 classes. ``train`` is
  the first 5/6 of the upstream training set, ``valid`` its last 1/6 (``len(train) // 6``
  examples: 50,000 / 10,000 for the real data) and ``test`` the upstream test set.
* ``binarized_mnist``: the statically binarized MNIST of Larochelle & Murray (2011) with its own
  train / valid / test splits (50,000 / 10,000 / 10,000); pixels are already 0/1.
* ``frey_face``: 1965 greyscale 28x20 faces without an official split; a fixed permutation
  (``np.random.RandomState(0)``) gives ``test`` = 200, ``valid`` = 200 and ``train`` = the rest.

`load_split` reads a split into memory (uint8 NumPy arrays, cached per process), either from the
upstream files in a local ``data_dir`` or, without one, through TensorFlow Datasets (frey_face:
a download from its upstream URL). `index_batches` gives the example indices of any training
step (a pure function of seed and step); `model_input` scales (and optionally binarises) a
gathered uint8 batch.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
import socket
import zipfile
import zlib

import numpy as np
import scipy.io
import tensorflow as tf

from tfvae import noise
from tfvae.errors import UserError


class DataError(UserError):
  """A user-facing data problem; str(err) is one line naming the dataset, the files and a fix."""


DATASET_NAMES = ('binarized_mnist', 'fashion_mnist', 'frey_face', 'mnist')
SPLITS = ('train', 'valid', 'test')
_TFDS_HOST = 'storage.googleapis.com'
FREY_FACE_URL = 'https://cs.nyu.edu/~roweis/data/frey_rawface.mat'


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Static description of a dataset; `split_sizes` maps each of `SPLITS` to its example count."""

  name: str
  image_shape: tuple
  binary: bool
  num_classes: int | None
  split_sizes: dict


@dataclasses.dataclass(frozen=True)
class Split:
  """One split in memory: images uint8 [N, H, W, 1], labels int64 [N] or None, and its info."""

  images: np.ndarray
  labels: np.ndarray | None
  info: DatasetInfo


def _mnist_like_info(name: str, binary: bool, num_classes: int | None) -> DatasetInfo:
  """Info for a 28x28 MNIST-style dataset with the canonical 50k/10k/10k split sizes."""
  sizes = {'train': 50_000, 'valid': 10_000, 'test': 10_000}
  return DatasetInfo(name, (28, 28, 1), binary, num_classes, sizes)


_INFOS = {
    'binarized_mnist': _mnist_like_info('binarized_mnist', binary=True, num_classes=None),
    'fashion_mnist': _mnist_like_info('fashion_mnist', binary=False, num_classes=10),
    'frey_face': DatasetInfo('frey_face', (28, 20, 1), False, None,
                             {'train': 1565, 'valid': 200, 'test': 200}),
    'mnist': _mnist_like_info('mnist', binary=False, num_classes=10),
}

_IDX_FILES = ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
              't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')
_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049
_AMAT_FILES = tuple(f'binarized_mnist_{split}.amat' for split in SPLITS)
_FREY_HOLDOUT = 200  # examples in each of frey_face's test and valid splits
_TFDS_CHUNK = 10_000  # examples per batch when reading a TFDS split into memory
_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, zipfile.BadZipFile,
                scipy.io.matlab.MatReadError)

# The files `load_split(name, split, data_dir=DIR)` accepts, for error messages.
_FILES_HINT = {
    'binarized_mnist': 'binarized_mnist.npz (keys train/valid/test) or ' + ', '.join(_AMAT_FILES),
    'fashion_mnist': ', '.join(_IDX_FILES) + ' (directly or in DIR/fashion_mnist_idx/)',
    'frey_face': 'frey_rawface.mat (or frey_rawface.npz with key ff)',
    'mnist': ', '.join(_IDX_FILES) + ' (directly or in DIR/mnist_idx/), or mnist.npz',
}

# Parsed splits keyed by (name, split, absolute data_dir or None).
_CACHE: dict = {}


def _error(name: str, problem: str) -> DataError:
  """A one-line DataError for `name` that ends with how to supply the dataset's files."""
  message = f'{name}: {problem}; pass --data_dir=DIR holding {_FILES_HINT[name]}'
  return DataError(' '.join(message.split()))


def _describe(exc: BaseException) -> str:
  """A short one-line description of an exception, for embedding in a DataError."""
  text = ' '.join(str(exc).split())
  return f'{type(exc).__name__}: {text[:300]}' if text else type(exc).__name__


def dataset_info(name: str) -> DatasetInfo:
  """The DatasetInfo of `name` with the canonical split sizes of the real data."""
  if name not in _INFOS:
    raise DataError(f'unknown dataset {name!r}; choose one of {", ".join(DATASET_NAMES)}')
  return _INFOS[name]


def load_split(name: str, split: str, data_dir: str | os.PathLike | None = None) -> Split:
  """Split `split` of dataset `name` from the files in `data_dir`, or from TFDS when None."""
  info = dataset_info(name)
  if split not in SPLITS:
    raise DataError(f'{name}: unknown split {split!r}; choose one of {", ".join(SPLITS)}')
  folder = None if data_dir is None else os.path.abspath(os.fspath(data_dir))
  key = (name, split, folder)
  if key not in _CACHE:
    parts = _read_local(name, folder) if folder is not None else _read_remote(name)
    split_info = dataclasses.replace(
        info, split_sizes={s: len(images) for s, (images, _) in parts.items()})
    for s, (images, labels) in parts.items():
      images.setflags(write=False)
      if labels is not None:
        labels.setflags(write=False)
      _CACHE[(name, s, folder)] = Split(images, labels, split_info)
  return _CACHE[key]


def _read_local(name: str, folder: str) -> dict:
  """All splits of `name` from the upstream files in `folder`: {split: (images, labels)}."""
  if not os.path.isdir(folder):
    raise _error(name, f'data directory {folder} does not exist')
  if name in ('mnist', 'fashion_mnist'):
    return _read_mnist_like(name, folder)
  if name == 'binarized_mnist':
    return _read_binarized_mnist(folder)
  return _read_frey_face(folder)


def _read_remote(name: str) -> dict:
  """All splits of `name` through TFDS (frey_face: a cached download from FREY_FACE_URL)."""
  if name == 'frey_face':
    try:
      path = tf.keras.utils.get_file('frey_rawface.mat', FREY_FACE_URL)
    except Exception as exc:  # Any download failure (offline, HTTP error, ...) is a DataError.
      raise _error(name, f'could not download {FREY_FACE_URL} ({_describe(exc)})') from exc
    return _split_frey_face(_read_frey_mat(path))
  tfds_splits = ['train', 'validation', 'test'] if name == 'binarized_mnist' else ['train', 'test']
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    if not tfds.builder(name).is_prepared():
      _check_online(name)
    datasets = tfds.load(name, split=tfds_splits, batch_size=_TFDS_CHUNK)
    chunks = [list(tfds.as_numpy(ds)) for ds in datasets]
  except DataError:
    raise
  except Exception as exc:  # Any TFDS failure (offline, not prepared, ...) is a DataError.
    problem = f'could not load it through TensorFlow Datasets ({_describe(exc)})'
    raise _error(name, problem) from exc
  arrays = [{key: np.concatenate([c[key] for c in split_chunks]) for key in split_chunks[0]}
            for split_chunks in chunks]
  source = f'TFDS {name}'
  if name == 'binarized_mnist':
    return {split: (_as_images(name, source, a['image']), None)
            for split, a in zip(SPLITS, arrays)}
  train, test = arrays
  return _split_mnist_like(name, source, train['image'], train['label'],
                           test['image'], test['label'])


def _check_online(name: str) -> None:
  """Fails fast with a DataError when TFDS's download host cannot be reached (offline, TFDS
  would otherwise retry for minutes)."""
  try:
    socket.create_connection((_TFDS_HOST, 443), timeout=5).close()
  except OSError as exc:
    raise _error(name, f'it is not in the TFDS cache and {_TFDS_HOST} cannot be reached to '
                 f'download it ({_describe(exc)})') from exc


def _read_mnist_like(name: str, folder: str) -> dict:
  """(Fashion-)MNIST from the four IDX files in `folder` or `folder/<name>_idx`, or mnist.npz."""
  looked_for = []
  for candidate in (folder, os.path.join(folder, f'{name}_idx')):
    paths = [os.path.join(candidate, filename) for filename in _IDX_FILES]
    looked_for += paths
    if all(os.path.isfile(path) for path in paths):
      train_x, test_x = (_read_idx(name, paths[i], _IDX_IMAGES_MAGIC) for i in (0, 2))
      train_y, test_y = (_read_idx(name, paths[i], _IDX_LABELS_MAGIC) for i in (1, 3))
      return _split_mnist_like(name, candidate, train_x, train_y, test_x, test_y)
  if name == 'mnist':
    path = os.path.join(folder, 'mnist.npz')
    looked_for.append(path)
    if os.path.isfile(path):
      arrays = _read_npz(name, path, ('x_train', 'y_train', 'x_test', 'y_test'))
      return _split_mnist_like(name, path, *arrays)
  raise _error(name, f'no data files found; looked for {", ".join(looked_for)}')


def _read_idx(name: str, path: str, magic: int) -> np.ndarray:
  """A gzipped IDX file of unsigned bytes as uint8 [N, rows, cols] (2051) or [N] (2049)."""
  kind, ndim = ('images', 3) if magic == _IDX_IMAGES_MAGIC else ('labels', 1)
  try:
    with gzip.open(path, 'rb') as f:
      data = f.read()
  except _READ_ERRORS as exc:
    problem = f'cannot read {path} as a gzipped IDX {kind} file ({_describe(exc)})'
    raise _error(name, problem) from exc
  header_size = 4 + 4 * ndim
  found = int.from_bytes(data[:4], 'big') if len(data) >= 4 else None
  if found != magic:
    raise _error(name, f'{path} is not an IDX {kind} file: magic number {found}, '
                       f'expected {magic}')
  if len(data) < header_size:
    raise _error(name, f'{path} is truncated: {len(data)} bytes, shorter than its header')
  shape = tuple(int(d) for d in np.frombuffer(data, '>u4', count=ndim, offset=4))
  expected_size = header_size + int(np.prod(shape))
  if len(data) != expected_size:
    raise _error(name, f'{path} has {len(data)} bytes, expected {expected_size} for '
                       f'{kind} of shape {shape}')
  return np.frombuffer(data, np.uint8, offset=header_size).reshape(shape)


def _read_npz(name: str, path: str, keys: tuple) -> list:
  """The arrays stored under `keys` in the .npz file `path`, in that order."""
  try:
    with np.load(path, allow_pickle=False) as npz:
      missing = [key for key in keys if key not in npz.files]
      if missing:
        raise _error(name, f'{path} lacks the key(s) {", ".join(missing)} '
                           f'(expected keys {", ".join(keys)})')
      return [npz[key] for key in keys]
  except _READ_ERRORS as exc:
    raise _error(name, f'cannot read {path} as a .npz file ({_describe(exc)})') from exc


def _read_binarized_mnist(folder: str) -> dict:
  """Binarized MNIST from binarized_mnist.npz or the three binarized_mnist_*.amat files."""
  name = 'binarized_mnist'
  npz_path = os.path.join(folder, 'binarized_mnist.npz')
  amat_paths = [os.path.join(folder, filename) for filename in _AMAT_FILES]
  if os.path.isfile(npz_path):
    arrays = _read_npz(name, npz_path, SPLITS)
    sources = [npz_path] * len(SPLITS)
  elif all(os.path.isfile(path) for path in amat_paths):
    arrays = [_read_amat(path) for path in amat_paths]
    sources = amat_paths
  else:
    raise _error(name, f'no data files found; looked for {npz_path}, {", ".join(amat_paths)}')
  return {split: (_as_images(name, source, x), None)
          for split, source, x in zip(SPLITS, sources, arrays)}


def _read_amat(path: str) -> np.ndarray:
  """A .amat text file (one image a line, 784 space-separated 0/1 values) as uint8 [N, 784]."""
  name = 'binarized_mnist'
  try:
    with open(path, 'rb') as f:
      text = f.read().decode('ascii')
    values = np.fromstring(text, dtype=np.uint8, sep=' ')
  except (OSError, ValueError) as exc:  # ValueError: not ASCII, or a token that is not 0/1.
    raise _error(name, f'cannot read {path} as lines of 784 space-separated 0/1 values '
                       f'({_describe(exc)})') from exc
  num_lines = sum(1 for line in text.splitlines() if line.strip())
  if values.size != num_lines * 784:
    raise _error(name, f'{path} has {values.size} values on {num_lines} lines, '
                       f'expected 784 space-separated 0/1 values a line')
  return values.reshape(num_lines, 784)


def _read_frey_face(folder: str) -> dict:
  """Frey Face splits from frey_rawface.mat (or frey_rawface.npz) in `folder`."""
  mat_path = os.path.join(folder, 'frey_rawface.mat')
  npz_path = os.path.join(folder, 'frey_rawface.npz')
  if os.path.isfile(mat_path):
    return _split_frey_face(_read_frey_mat(mat_path))
  if os.path.isfile(npz_path):
    (faces,) = _read_npz('frey_face', npz_path, ('ff',))
    return _split_frey_face(_as_images('frey_face', npz_path, faces))
  raise _error('frey_face', f'no data files found; looked for {mat_path}, {npz_path}')


def _read_frey_mat(path: str) -> np.ndarray:
  """Upstream frey_rawface.mat (variable ff, one 28x20 image a column) as uint8 [N, 28, 20, 1]."""
  name = 'frey_face'
  try:
    ff = scipy.io.loadmat(path, variable_names=['ff']).get('ff')
  except _READ_ERRORS as exc:
    raise _error(name, f'cannot read {path} as a MATLAB file ({_describe(exc)})') from exc
  if ff is None or ff.ndim != 2 or ff.shape[0] != 28 * 20:
    shape = None if ff is None else ff.shape
    raise _error(name, f'{path} variable ff has shape {shape}, expected (560, N): '
                       f'one 28x20 image a column')
  return _as_images(name, path, ff.T)


def _split_frey_face(images: np.ndarray) -> dict:
  """Frey Face splits from a fixed permutation: test and valid 200 images each, train the rest."""
  if len(images) <= 2 * _FREY_HOLDOUT:
    raise _error('frey_face', f'only {len(images)} images, need more than {2 * _FREY_HOLDOUT} '
                              f'for the test and valid splits')
  order = np.random.RandomState(0).permutation(len(images))
  parts = {'train': order[2 * _FREY_HOLDOUT:], 'valid': order[_FREY_HOLDOUT:2 * _FREY_HOLDOUT],
           'test': order[:_FREY_HOLDOUT]}
  return {split: (images[parts[split]], None) for split in SPLITS}


def _split_mnist_like(name: str, source: str, train_x, train_y, test_x, test_y) -> dict:
  """train = the first 5/6 of the upstream train set, valid = its last len // 6, test = test."""
  train_x, test_x = _as_images(name, source, train_x), _as_images(name, source, test_x)
  train_y = _as_labels(name, source, train_y, len(train_x))
  test_y = _as_labels(name, source, test_y, len(test_x))
  cut = len(train_x) - len(train_x) // 6
  return {'train': (train_x[:cut], train_y[:cut]), 'valid': (train_x[cut:], train_y[cut:]),
          'test': (test_x, test_y)}


def _as_images(name: str, source: str, images: np.ndarray) -> np.ndarray:
  """Checked images [N, H, W], [N, H, W, 1] or [N, H*W] as uint8 [N, H, W, 1]."""
  info = _INFOS[name]
  height, width, _ = info.image_shape
  images = np.asarray(images)
  if images.ndim < 2 or images.shape[1:] not in ((height, width), info.image_shape,
                                                   (height * width,)):
    raise _error(name, f'{source}: images have shape {images.shape}, expected '
                       f'[N, {height}, {width}] or [N, {height * width}]')
  if images.dtype != np.uint8 and not (
      np.issubdtype(images.dtype, np.integer)
      and (images.size == 0 or 0 <= images.min() <= images.max() <= 255)):
    raise _error(name, f'{source}: images have dtype {images.dtype}, expected uint8')
  if info.binary and images.size and images.max() > 1:
    raise _error(name, f'{source}: pixel value {images.max()} found, expected only 0 and 1')
  return images.astype(np.uint8, copy=False).reshape((len(images),) + info.image_shape)


def _as_labels(name: str, source: str, labels: np.ndarray, num_images: int) -> np.ndarray:
  """Checked class labels as int64 [num_images] in [0, num_classes)."""
  num_classes = _INFOS[name].num_classes
  labels = np.asarray(labels)
  if labels.shape != (num_images,) or not np.issubdtype(labels.dtype, np.integer):
    raise _error(name, f'{source}: labels have shape {labels.shape} and dtype {labels.dtype}, '
                       f'expected integers of shape ({num_images},)')
  if labels.size and not 0 <= labels.min() <= labels.max() < num_classes:
    raise _error(name, f'{source}: labels outside [0, {num_classes})')
  return labels.astype(np.int64)


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Full batches in one pass over num_examples (the remainder is left out that epoch);
  DataError if there is not even one."""
  if batch_size > num_examples:
    raise DataError(f'batch size {batch_size} exceeds the {num_examples} training examples; '
                    'use a smaller batch_size')
  return num_examples // batch_size


def index_batches(num_examples: int, batch_size: int, seed: int, start_step: int,
                  num_steps: int) -> np.ndarray:
  """The example indices of training steps [start_step, start_step + num_steps): int32
  [num_steps, batch_size].

  Step s takes rows (s mod E) * B ... + B of epoch s // E's permutation of the examples
  (E = steps_per_epoch, B = batch_size; the permutation is seeded by (seed, epoch)). The data
  order is a pure function of (seed, step), so a resumed run sees exactly the batches an
  uninterrupted one would.
  """
  per_epoch = steps_per_epoch(num_examples, batch_size)
  out = np.empty((num_steps, batch_size), np.int32)
  step, end = start_step, start_step + num_steps
  while step < end:  # one epoch's run of steps at a time
    epoch, first = divmod(step, per_epoch)
    count = min(per_epoch - first, end - step)
    order = _epoch_permutation(num_examples, seed, epoch)
    out[step - start_step:step - start_step + count] = order[
        first * batch_size:(first + count) * batch_size].reshape(count, batch_size)
    step += count
  return out


@functools.lru_cache(maxsize=4)
def _epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """A permutation of range(num_examples), int32, fixed by (seed, epoch)."""
  order = np.random.default_rng([seed, epoch]).permutation(num_examples).astype(np.int32)
  order.setflags(write=False)
  return order


def to_float(images, info: DatasetInfo) -> tf.Tensor:
  """uint8 images [B, H, W, C] -> float32 intensities in [0, 1] (binary data: 0/1 as is)."""
  return tf.cast(images, tf.float32) / (1.0 if info.binary else 255.0)


def model_input(images, info: DatasetInfo, binarize: bool, key=None, rows=None,
                step=0) -> tf.Tensor:
  """What the model sees of uint8 images [B, H, W, C]: their intensities in [0, 1], or with
  `binarize` (greyscale data only; binary data pass as they are) x ~ Bernoulli(intensity),
  drawn by noise.bernoulli from `key`, the images' rows (ids [B]) and `step`."""
  x = to_float(images, info)
  if not binarize or info.binary:
    return x
  return noise.bernoulli(x, key, rows, step)
