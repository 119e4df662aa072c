"""The built-in datasets (`tfvae.data.DATASET_NAMES`), read from their upstream raw files.

With a ``data_dir``, `load_split` reads the upstream files under their canonical names (see
`_FILES_HINT`); without one, through TFDS (`tfvae.sources.tfds_reader`; frey_face: a download
from its upstream URL). Splits as `tfvae.data` describes them: (Fashion-)MNIST's valid is the
last 1/6 of the upstream training set, binarized MNIST has its own three, Frey Face's are carved
by the fixed permutation (`tfvae.sources.carving`). Each split is parsed once per process and
held read-only in memory. As a source (`resolve`), a built-in is signed by the files directly in
data_dir and in data_dir/<name>_idx, and is binary as its info says.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import zipfile
import zlib

import numpy as np
import scipy.io
import tensorflow as tf

from tfvae import data
from tfvae.data import SPLITS
from tfvae.errors import DataError
from tfvae.errors import describe
from tfvae.sources import carving
from tfvae.sources import streams
from tfvae.sources import tfds_reader

FREY_FACE_URL = 'https://cs.nyu.edu/~roweis/data/frey_rawface.mat'
_IDX_FILES = ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
              't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')
_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049
_AMAT_FILES = tuple(f'binarized_mnist_{split}.amat' for split in SPLITS)
_TFDS_SPLITS = {'binarized_mnist': ('train', 'validation', 'test'),  # read through TFDS
                'fashion_mnist': ('train', 'test'), 'mnist': ('train', 'test')}
_FREY_HOLDOUT = 200  # examples in each of frey_face's test and valid splits
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


def _fix(name: str) -> str:
  """How to supply the files of `name` without a download."""
  return f'pass --data_dir=DIR holding {_FILES_HINT[name]}'


def _error(name: str, problem: str) -> DataError:
  """A one-line DataError for `name` that ends with how to supply the dataset's files."""
  return DataError(' '.join(f'{name}: {problem}; {_fix(name)}'.split()))


def load_split(name: str, split: str, data_dir: str | os.PathLike | None = None) -> data.Split:
  """Split `split` of the built-in `name` from the files in `data_dir`, or through TFDS when
  None (frey_face: a download from FREY_FACE_URL); read once per process, read-only."""
  info = data.dataset_info(name)
  data.check_split(name, split)
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
      _CACHE[(name, s, folder)] = data.Split(images, labels, split_info)
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
      raise _error(name, f'could not download {FREY_FACE_URL} ({describe(exc)})') from exc
    return _split_frey_face(_read_frey_mat(path))
  builder = tfds_reader.prepared_builder(name, name, None, _fix(name))
  image_key, num_classes = tfds_reader.image_feature(name, builder)
  tfds_splits = _TFDS_SPLITS[name]
  arrays = [tfds_reader.read_split(name, builder, tfds_split, image_key, num_classes)
            for tfds_split in tfds_splits]
  source = f'TFDS {name}'
  if name == 'binarized_mnist':
    return {split: (_as_images(name, source, images), None)
            for split, (images, _) in zip(SPLITS, arrays)}
  (train_x, train_y), (test_x, test_y) = arrays
  return _split_mnist_like(name, source, train_x, train_y, test_x, test_y)


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
    problem = f'cannot read {path} as a gzipped IDX {kind} file ({describe(exc)})'
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
    raise _error(name, f'cannot read {path} as a .npz file ({describe(exc)})') from exc


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
                       f'({describe(exc)})') from exc
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
    raise _error(name, f'cannot read {path} as a MATLAB file ({describe(exc)})') from exc
  if ff is None or ff.ndim != 2 or ff.shape[0] != 28 * 20:
    shape = None if ff is None else ff.shape
    raise _error(name, f'{path} variable ff has shape {shape}, expected (560, N): '
                       f'one 28x20 image a column')
  return _as_images(name, path, ff.T)


def _split_frey_face(images: np.ndarray) -> dict:
  """Frey Face splits carved by the fixed permutation (tfvae.sources.carving): test and valid
  200 images each, train the rest, in the permutation's order."""
  if len(images) <= 2 * _FREY_HOLDOUT:
    raise _error('frey_face', f'only {len(images)} images, need more than {2 * _FREY_HOLDOUT} '
                              f'for the test and valid splits')
  parts = carving.carve(len(images), _FREY_HOLDOUT)
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
  info = data.dataset_info(name)
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
  num_classes = data.dataset_info(name).num_classes
  labels = np.asarray(labels)
  if labels.shape != (num_images,) or not np.issubdtype(labels.dtype, np.integer):
    raise _error(name, f'{source}: labels have shape {labels.shape} and dtype {labels.dtype}, '
                       f'expected integers of shape ({num_images},)')
  if labels.size and not 0 <= labels.min() <= labels.max() < num_classes:
    raise _error(name, f'{source}: labels outside [0, {num_classes})')
  return labels.astype(np.int64)


def resolve(spec: str, parsed, data_dir: str | None) -> streams.Resolved:
  """A built-in as a source to fit and prepare (module docstring)."""
  name = parsed.target
  folders = [data_dir, os.path.join(data_dir, f'{name}_idx')] if data_dir else []
  paths = sorted(entry.path for folder in folders if os.path.isdir(folder)
                 for entry in os.scandir(folder) if entry.is_file())
  signature = [[os.path.relpath(path, data_dir)] + streams.file_signature(path) for path in paths]

  def open_streams():
    splits = {split: load_split(name, split, data_dir) for split in SPLITS}
    return ({split: streams.array_stream(lambda images=s.images: images, s.images.shape,
                                         s.images.dtype, s.labels, f'{name} {split}')
             for split, s in splits.items()}, splits['train'].info.num_classes)

  return streams.Resolved(f'{name}@{data_dir}', signature, data.dataset_info(name).binary,
                          open_streams)
