"""Tests for tfvae.data and the built-ins' reader (tfvae.sources.builtin) on tiny raw files
written into tmp_path and on mocked TFDS."""

import gzip
import os
import socket

import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from tfvae import data
from tfvae import noise
from tfvae.sources import builtin
from tfvae.sources import tfds_reader


@pytest.fixture(autouse=True)
def _clear_cache():
  """Every test parses its own files (and mocked TFDS data never leaks into the cache)."""
  builtin._CACHE.clear()
  yield
  builtin._CACHE.clear()


def _write_idx(path, array, magic):
  """Writes uint8 `array` as a gzipped IDX file with the given magic number."""
  header = magic.to_bytes(4, 'big') + b''.join(d.to_bytes(4, 'big') for d in array.shape)
  with gzip.open(path, 'wb') as f:
    f.write(header + np.asarray(array, np.uint8).tobytes())


def _numbered_images(n, height=28, width=28, binary=False):
  """uint8 [n, height, width] images whose example index can be read back by `_ids`."""
  rng = np.random.RandomState(n)
  if binary:
    images = rng.randint(0, 2, size=(n, height, width))
    images[:, 0, :12] = (np.arange(n)[:, None] >> np.arange(12)) & 1
  else:
    images = rng.randint(0, 256, size=(n, height, width))
    images[:, 0, 0], images[:, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
  return images.astype(np.uint8)


def _ids(batch):
  """The example indices of a float batch [B, H, W, 1] of `_numbered_images` greyscale data."""
  pixels = np.round(np.asarray(batch)[:, 0, :2, 0] * 255).astype(np.int64)
  return list(pixels[:, 0] + 256 * pixels[:, 1])


def _write_mnist_idx(folder, num_train=48, num_test=10):
  """Writes the four MNIST IDX files into `folder`; returns (x_train, y_train, x_test, y_test)."""
  os.makedirs(folder, exist_ok=True)
  x_train, x_test = _numbered_images(num_train), _numbered_images(num_test)
  y_train, y_test = np.arange(num_train) % 10, (np.arange(num_test) * 3) % 10
  for filename, array, magic in (('train-images-idx3-ubyte.gz', x_train, 2051),
                                 ('train-labels-idx1-ubyte.gz', y_train, 2049),
                                 ('t10k-images-idx3-ubyte.gz', x_test, 2051),
                                 ('t10k-labels-idx1-ubyte.gz', y_test, 2049)):
    _write_idx(os.path.join(folder, filename), array, magic)
  return x_train, y_train, x_test, y_test


@pytest.fixture
def mnist_dir(tmp_path):
  """A data_dir with 48 training (40 train + 8 valid) and 10 test MNIST-format images."""
  _write_mnist_idx(tmp_path)
  return tmp_path


# Raw-file readers.


@pytest.mark.parametrize('name, subfolder', [('mnist', ''), ('mnist', 'mnist_idx'),
                                             ('fashion_mnist', ''),
                                             ('fashion_mnist', 'fashion_mnist_idx')])
def test_idx_reader_and_split_rule(tmp_path, name, subfolder):
  x_train, y_train, x_test, y_test = _write_mnist_idx(tmp_path / subfolder, 60, 7)
  splits = {split: builtin.load_split(name, split, tmp_path) for split in data.SPLITS}
  # valid = the last len(train) // 6 upstream training images (10,000 of 60,000 for real MNIST).
  assert {s: len(v.images) for s, v in splits.items()} == {'train': 50, 'valid': 10, 'test': 7}
  assert splits['train'].info.split_sizes == {'train': 50, 'valid': 10, 'test': 7}
  for split, images, labels in (('train', x_train[:50], y_train[:50]),
                                ('valid', x_train[50:], y_train[50:]),
                                ('test', x_test, y_test)):
    got = splits[split]
    assert got.images.dtype == np.uint8 and got.images.shape == (len(images), 28, 28, 1)
    np.testing.assert_array_equal(got.images[..., 0], images)
    assert got.labels.dtype == np.int64
    np.testing.assert_array_equal(got.labels, labels)
    assert got.info.name == name and got.info.num_classes == 10 and not got.info.binary


def test_mnist_npz_matches_idx(tmp_path):
  x_train, y_train, x_test, y_test = _write_mnist_idx(tmp_path / 'idx', 60, 7)
  os.makedirs(tmp_path / 'npz')
  np.savez(tmp_path / 'npz' / 'mnist.npz', x_train=x_train, y_train=y_train.astype(np.uint8),
           x_test=x_test, y_test=y_test.astype(np.uint8))
  for split in data.SPLITS:
    from_idx = builtin.load_split('mnist', split, tmp_path / 'idx')
    from_npz = builtin.load_split('mnist', split, str(tmp_path / 'npz'))
    np.testing.assert_array_equal(from_idx.images, from_npz.images)
    np.testing.assert_array_equal(from_idx.labels, from_npz.labels)
    assert from_npz.labels.dtype == np.int64


def test_binarized_npz_and_amat_agree(tmp_path):
  sizes = {'train': 9, 'valid': 4, 'test': 5}
  flat = {s: _numbered_images(n, binary=True).reshape(n, 784) for s, n in sizes.items()}
  os.makedirs(tmp_path / 'npz')
  np.savez(tmp_path / 'npz' / 'binarized_mnist.npz', **flat)
  os.makedirs(tmp_path / 'amat')
  for split, x in flat.items():
    np.savetxt(tmp_path / 'amat' / f'binarized_mnist_{split}.amat', x, fmt='%d')
  for split, x in flat.items():
    from_npz = builtin.load_split('binarized_mnist', split, tmp_path / 'npz')
    from_amat = builtin.load_split('binarized_mnist', split, tmp_path / 'amat')
    for got in (from_npz, from_amat):
      assert got.images.dtype == np.uint8 and got.images.shape == (sizes[split], 28, 28, 1)
      np.testing.assert_array_equal(got.images.reshape(-1, 784), x)
      assert got.labels is None and got.info.binary
      assert got.info.split_sizes == sizes


def test_frey_mat_and_npz_agree(tmp_path):
  faces = _numbered_images(410, 28, 20)
  scipy.io.savemat(tmp_path / 'frey_rawface.mat', {'ff': faces.reshape(410, 560).T})
  os.makedirs(tmp_path / 'npz')
  np.savez(tmp_path / 'npz' / 'frey_rawface.npz', ff=faces)
  order = np.random.RandomState(0).permutation(410)
  expected = {'train': order[400:], 'valid': order[200:400], 'test': order[:200]}
  for split in data.SPLITS:
    from_mat = builtin.load_split('frey_face', split, tmp_path)
    from_npz = builtin.load_split('frey_face', split, tmp_path / 'npz')
    for got in (from_mat, from_npz):
      assert got.images.dtype == np.uint8 and got.images.shape[1:] == (28, 20, 1)
      np.testing.assert_array_equal(got.images[..., 0], faces[expected[split]])
      assert got.labels is None and got.info.image_shape == (28, 20, 1)
      assert got.info.split_sizes == {'train': 10, 'valid': 200, 'test': 200}


def test_load_split_is_cached_and_read_only(mnist_dir):
  first = builtin.load_split('mnist', 'train', mnist_dir)
  assert builtin.load_split('mnist', 'train', str(mnist_dir)) is first
  with pytest.raises(ValueError):
    first.images[0, 0, 0, 0] = 1


def test_dataset_info():
  assert data.DATASET_NAMES == ('binarized_mnist', 'fashion_mnist', 'frey_face', 'mnist')
  assert data.SPLITS == ('train', 'valid', 'test')
  assert data.dataset_info('mnist') == data.DatasetInfo(
      'mnist', (28, 28, 1), False, 10, {'train': 50000, 'valid': 10000, 'test': 10000})
  assert data.dataset_info('binarized_mnist').binary
  assert data.dataset_info('binarized_mnist').num_classes is None
  frey = data.dataset_info('frey_face')
  assert frey.image_shape == (28, 20, 1)
  assert frey.split_sizes == {'train': 1565, 'valid': 200, 'test': 200}


# The TFDS path (mocked: no downloads; the network probe before a download is replaced).


@pytest.fixture
def online(monkeypatch):
  monkeypatch.setattr(tfds_reader, 'check_reachable', lambda label, fix: None)


def test_tfds_mnist_mocked(online):
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=12):
    splits = {split: builtin.load_split('mnist', split) for split in data.SPLITS}
    batch = data.to_float(splits['train'].images[:4], splits['train'].info)
  assert {s: len(v.images) for s, v in splits.items()} == {'train': 10, 'valid': 2, 'test': 12}
  for got in splits.values():
    assert got.images.dtype == np.uint8 and got.images.shape[1:] == (28, 28, 1)
    assert got.labels.dtype == np.int64 and 0 <= got.labels.min() <= got.labels.max() < 10
  assert batch.shape == (4, 28, 28, 1) and batch.dtype == tf.float32


def test_tfds_binarized_mnist_mocked(online):
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=12, max_value=2):  # pixels in {0, 1}
    splits = {split: builtin.load_split('binarized_mnist', split) for split in data.SPLITS}
    batch = data.model_input(splits['valid'].images[:5], splits['valid'].info, True,
                             noise.key(0, 'train_binarize'), 5)
  for got in splits.values():
    assert got.images.shape == (12, 28, 28, 1) and got.images.dtype == np.uint8
    assert set(np.unique(got.images)) <= {0, 1} and got.labels is None
  assert batch.shape == (5, 28, 28, 1) and set(np.unique(batch.numpy())) <= {0.0, 1.0}


def test_tfds_failure_is_a_data_error(monkeypatch, online):
  import tensorflow_datasets as tfds

  def offline(*args, **kwargs):
    raise ConnectionError('Failed to resolve storage.googleapis.com\n(retries exhausted)')

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare', offline)
  with pytest.raises(data.DataError) as err:
    builtin.load_split('mnist', 'test')
  message = str(err.value)
  assert '\n' not in message and message.startswith('mnist:')
  assert 'ConnectionError' in message and '--data_dir=DIR' in message
  assert 't10k-images-idx3-ubyte.gz' in message


def test_frey_download_failure_is_a_data_error(monkeypatch):
  def offline(*args, **kwargs):
    raise Exception('URL fetch failure on https://cs.nyu.edu/~roweis/data/frey_rawface.mat')

  monkeypatch.setattr(tf.keras.utils, 'get_file', offline)
  with pytest.raises(data.DataError, match=r'^frey_face: could not download .*frey_rawface\.mat'):
    builtin.load_split('frey_face', 'train')


# The training order and scaling.


def test_index_batches_walk_a_seeded_permutation_per_epoch():
  batches = data.index_batches(43, 10, seed=3, start_step=0, num_steps=12)  # 4 steps an epoch
  assert batches.shape == (12, 10) and batches.dtype == np.int32
  epochs = [batches[i:i + 4].ravel() for i in (0, 4, 8)]
  for epoch in epochs:  # 40 distinct examples; the 3 left over differ by epoch
    assert len(set(epoch)) == 40 and 0 <= epoch.min() and epoch.max() < 43
  assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
  assert not np.array_equal(epochs[0], np.arange(40))
  np.testing.assert_array_equal(batches, data.index_batches(43, 10, 3, 0, 12))
  assert not np.array_equal(batches, data.index_batches(43, 10, 4, 0, 12))


def test_index_batches_are_a_function_of_the_step():
  whole = data.index_batches(43, 10, seed=1, start_step=0, num_steps=30)
  for start, count in ((0, 7), (7, 1), (8, 13), (21, 9)):  # any split into loops, as on resume
    np.testing.assert_array_equal(data.index_batches(43, 10, 1, start, count),
                                  whole[start:start + count])
  assert data.steps_per_epoch(43, 10) == 4
  with pytest.raises(data.DataError, match='batch size 44 exceeds the 43 training examples') \
      as err:
    data.index_batches(43, 44, 0, 0, 1)
  _assert_one_line(err)


def test_model_input_scales_and_binarize_samples_bernoulli(mnist_dir):
  split = builtin.load_split('mnist', 'train', mnist_dir)
  images = tf.constant(split.images)
  scaled = data.to_float(images, split.info).numpy()
  assert scaled.dtype == np.float32
  np.testing.assert_array_equal(scaled, split.images.astype(np.float32) / 255)
  assert _ids(scaled) == list(range(len(split.images)))

  def binarized(seed, step=0):
    return data.model_input(images, split.info, True, noise.key(seed, 'train_binarize'),
                            len(split.images), step).numpy()

  x = binarized(1)
  assert set(np.unique(x)) == {0.0, 1.0}
  np.testing.assert_array_equal(x, binarized(1))
  assert not np.array_equal(x, binarized(2)) and not np.array_equal(x, binarized(1, step=1))
  np.testing.assert_array_equal(data.model_input(images, split.info, False), scaled)
  probs = split.images / 255.0
  assert abs(x.mean() - probs.mean()) < 0.01  # E[x] = intensity
  assert np.all(x[probs == 0.0] == 0.0) and np.all(x[probs == 1.0] == 1.0)


def test_binarize_is_a_no_op_for_binary_data(tmp_path):
  flat = {s: _numbered_images(6, binary=True).reshape(6, 784) for s in data.SPLITS}
  np.savez(tmp_path / 'binarized_mnist.npz', **flat)
  split = builtin.load_split('binarized_mnist', 'test', tmp_path)
  x = data.model_input(split.images, split.info, True, noise.key(0, 'train_binarize'), 6)
  np.testing.assert_array_equal(x.numpy().reshape(6, 784), flat['test'])


# Errors.


def _assert_one_line(err):
  assert '\n' not in str(err.value) and str(err.value).strip() == str(err.value)


def test_missing_files(tmp_path):
  for name, filenames in (('mnist', ['train-images-idx3-ubyte.gz', 'mnist_idx', 'mnist.npz']),
                          ('fashion_mnist', ['t10k-labels-idx1-ubyte.gz', 'fashion_mnist_idx']),
                          ('binarized_mnist', ['binarized_mnist.npz',
                                               'binarized_mnist_valid.amat']),
                          ('frey_face', ['frey_rawface.mat', 'frey_rawface.npz'])):
    with pytest.raises(data.DataError) as err:
      builtin.load_split(name, 'train', tmp_path)
    _assert_one_line(err)
    message = str(err.value)
    assert message.startswith(f'{name}: no data files found; looked for {tmp_path}')
    assert '--data_dir=DIR' in message
    for filename in filenames:
      assert os.path.join(str(tmp_path), filename) in message


def test_missing_data_dir(tmp_path):
  with pytest.raises(data.DataError, match='does not exist') as err:
    builtin.load_split('mnist', 'train', tmp_path / 'nowhere')
  _assert_one_line(err)


def test_bad_magic(mnist_dir):
  path = mnist_dir / 'train-images-idx3-ubyte.gz'
  _write_idx(path, np.zeros((3, 28, 28), np.uint8), 2049)
  with pytest.raises(data.DataError) as err:
    builtin.load_split('mnist', 'train', mnist_dir)
  _assert_one_line(err)
  assert f'{path} is not an IDX images file: magic number 2049, expected 2051' in str(err.value)


def test_truncated_gzip_and_wrong_size(mnist_dir):
  path = mnist_dir / 't10k-labels-idx1-ubyte.gz'
  blob = path.read_bytes()
  path.write_bytes(blob[:len(blob) // 2])
  with pytest.raises(data.DataError, match='cannot read .*t10k-labels-idx1-ubyte.gz') as err:
    builtin.load_split('mnist', 'test', mnist_dir)
  _assert_one_line(err)
  _write_idx(path, np.zeros(3, np.uint8), 2049)  # 3 labels for 10 images
  with pytest.raises(data.DataError, match='labels have shape'):
    builtin.load_split('mnist', 'test', mnist_dir)
  with gzip.open(path, 'wb') as f:  # header promises 10 labels, holds 4
    f.write((2049).to_bytes(4, 'big') + (10).to_bytes(4, 'big') + bytes(4))
  with pytest.raises(data.DataError, match='has 12 bytes, expected 18'):
    builtin.load_split('mnist', 'test', mnist_dir)


def test_bad_npz_amat_and_mat(tmp_path):
  np.savez(tmp_path / 'binarized_mnist.npz', train=np.zeros((2, 784), np.uint8))
  with pytest.raises(data.DataError, match='lacks the key.*valid, test'):
    builtin.load_split('binarized_mnist', 'train', tmp_path)
  np.savez(tmp_path / 'binarized_mnist.npz',
           **{s: np.full((2, 784), 7, np.uint8) for s in data.SPLITS})
  with pytest.raises(data.DataError, match='pixel value 7 found, expected only 0 and 1'):
    builtin.load_split('binarized_mnist', 'train', tmp_path)
  os.remove(tmp_path / 'binarized_mnist.npz')
  for split in data.SPLITS:
    (tmp_path / f'binarized_mnist_{split}.amat').write_text('0 1 0\n1 1 0\n')
  with pytest.raises(data.DataError, match='6 values on 2 lines, expected 784') as err:
    builtin.load_split('binarized_mnist', 'train', tmp_path)
  _assert_one_line(err)
  (tmp_path / 'frey_rawface.mat').write_bytes(b'not a MATLAB file')
  with pytest.raises(data.DataError, match='cannot read .*frey_rawface.mat') as err:
    builtin.load_split('frey_face', 'train', tmp_path)
  _assert_one_line(err)
  scipy.io.savemat(tmp_path / 'frey_rawface.mat', {'ff': np.zeros((28, 500), np.uint8)})
  with pytest.raises(data.DataError, match=r'ff has shape \(28, 500\), expected \(560, N\)'):
    builtin.load_split('frey_face', 'train', tmp_path)


def test_unknown_dataset_and_split(mnist_dir):
  with pytest.raises(data.DataError) as err:
    builtin.load_split('cifar10', 'train', mnist_dir)
  _assert_one_line(err)
  assert 'cifar10' in str(err.value) and ', '.join(data.DATASET_NAMES) in str(err.value)
  with pytest.raises(data.DataError):
    data.dataset_info('cifar10')
  with pytest.raises(data.DataError, match=r"unknown dataset 'fashion_mnst' \(did you mean "
                                           r"'fashion_mnist'\?\); choose one of"):
    data.dataset_info('fashion_mnst')
  with pytest.raises(data.DataError, match="unknown split 'validation'; choose one of "
                                           r"train, valid, test \(did you mean 'valid'\?\)") as err:
    builtin.load_split('mnist', 'validation', mnist_dir)
  _assert_one_line(err)


def test_tfds_offline_fails_fast_with_one_line(monkeypatch):
  def unreachable(address, timeout):
    raise OSError('Network is unreachable')
  monkeypatch.setattr(socket, 'create_connection', unreachable)
  builtin._CACHE.clear()
  with pytest.raises(data.DataError) as info:
    builtin.load_split('mnist', 'train')
  message = str(info.value)
  assert message.startswith('mnist: it is not in the TFDS cache and storage.googleapis.com')
  assert '--data_dir=DIR holding' in message and '\n' not in message
