"""Tests for tfvae.sources on tiny folders, arrays and TFDS datasets written into tmp_path."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfvae import data
from tfvae import sources
from tfvae.sources import builtin
from tfvae.sources import folder
from tfvae.sources import tfds_reader

tfds.disable_progress_bar()


class TfvaeTinyImages(tfds.core.GeneratorBasedBuilder):
  """12 train and 4 test images 5x7x1 whose pixels are their example id (test: 100 + i), labels
  id % 3; a second Image feature `aux` (all 200) comes first, so `image` must be chosen by name."""

  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'aux': tfds.features.Image(shape=(5, 7, 1)),
        'image': tfds.features.Image(shape=(5, 7, 1)),
        'label': tfds.features.ClassLabel(num_classes=3)}))

  def _split_generators(self, dl_manager):
    return {'train': self._generate_examples(0, 12), 'test': self._generate_examples(100, 4)}

  def _generate_examples(self, first_id, count):
    for i in range(count):
      yield i, {'aux': np.full((5, 7, 1), 200, np.uint8),
                'image': np.full((5, 7, 1), first_id + i, np.uint8), 'label': i % 3}


class TfvaeVariedImages(tfds.core.GeneratorBasedBuilder):
  """5 train RGB images of unknown shape: four 6x9, the last 8x8."""

  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'picture': tfds.features.Image(shape=(None, None, 3))}))

  def _split_generators(self, dl_manager):
    return {'train': self._generate_examples()}

  def _generate_examples(self):
    for i in range(5):
      yield i, {'picture': np.full((8, 8, 3) if i == 4 else (6, 9, 3), 10 * i, np.uint8)}


class TfvaeNoImages(tfds.core.GeneratorBasedBuilder):
  """3 train examples without an image feature."""

  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'vector': tfds.features.Tensor(shape=(3,), dtype=np.float32),
        'label': tfds.features.ClassLabel(num_classes=2)}))

  def _split_generators(self, dl_manager):
    return {'train': self._generate_examples()}

  def _generate_examples(self):
    for i in range(3):
      yield i, {'vector': np.zeros(3, np.float32), 'label': i % 2}


@pytest.fixture(scope='module')
def tfds_dir(tmp_path_factory):
  """A TFDS data dir with the three builders above prepared in it (no download)."""
  path = str(tmp_path_factory.mktemp('tfds'))
  for builder_class in (TfvaeTinyImages, TfvaeVariedImages, TfvaeNoImages):
    builder_class(data_dir=path).download_and_prepare()
  return path


@pytest.fixture(autouse=True)
def _fresh(tmp_path, monkeypatch):
  """No Source or parsed built-in carries over between tests; the default cache is in tmp_path."""
  sources._SOURCES.clear()
  builtin._CACHE.clear()
  monkeypatch.setenv('TFVAE_CACHE_DIR', str(tmp_path / 'env_cache'))
  yield
  sources._SOURCES.clear()
  builtin._CACHE.clear()


def _error(function, *args, **kwargs):
  """The message of the DataError that function(*args, **kwargs) raises, checked to be one line."""
  with pytest.raises(data.DataError) as info:
    function(*args, **kwargs)
  message = str(info.value)
  assert '\n' not in message and len(message) < 600, message
  return message


def _load_all(spec, **kwargs):
  """make_source(spec, **kwargs) with each split read: (source, {split: data.Split})."""
  source = sources.make_source(spec, **kwargs)
  return source, {split: source.split(split) for split in data.SPLITS}


def _carved(num_examples, missing=('test', 'valid')):
  """The documented carve-out: {split: sorted source indices}."""
  order = np.random.RandomState(0).permutation(num_examples)
  take = max(1, num_examples // 10)
  out = {split: np.sort(order[i * take:(i + 1) * take]) for i, split in enumerate(missing)}
  out['train'] = np.sort(order[len(missing) * take:])
  return out


def _write_image(path, array):
  """Writes uint8 [h, w, c] as a PNG, or a JPEG (quality 100) when path ends in .jpg/.jpeg."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  array = tf.constant(np.asarray(array, np.uint8))
  is_jpeg = str(path).lower().endswith(('.jpg', '.jpeg'))
  encoded = tf.io.encode_jpeg(array, quality=100) if is_jpeg else tf.io.encode_png(array)
  tf.io.write_file(str(path), encoded)


# Specs and fitting.


def test_parse_spec():
  assert sources.parse_spec('mnist') == sources.SourceSpec('builtin', 'mnist')
  assert sources.parse_spec('tfds:cifar10') == sources.SourceSpec('tfds', 'cifar10')
  assert sources.parse_spec('tfds:imagenet_resized/32x32:0.1.0') == sources.SourceSpec(
      'tfds', 'imagenet_resized', '32x32', '0.1.0')
  assert sources.parse_spec('folder:a:b/c') == sources.SourceSpec('folder', 'a:b/c')
  assert sources.parse_spec('npy:x.npy').kind == 'npy'
  for bad in ('foo:bar', 'tfds:', 'tfds:Bad Name', 'folder:', 'cifar10', 'tfds:a:1.0'):
    message = _error(sources.parse_spec, bad)
    assert repr(bad) in message and 'tfds:NAME[/CONFIG][:VERSION]' in message
  # "did you mean" for a misspelt built-in or kind, and a bare TFDS name.
  assert '(did you mean mnist?)' in _error(sources.parse_spec, 'mnsit')
  assert '(did you mean folder:/data/x?)' in _error(sources.parse_spec, 'fodler:/data/x')
  assert '(did you mean npz:x.npz?)' in _error(sources.parse_spec, 'npzz:x.npz')
  assert '(a TFDS dataset is tfds:cifar10)' in _error(sources.parse_spec, 'cifar10')
  assert 'did you mean' not in _error(sources.parse_spec, 'tfds:')


def test_fit_images_crop_resize_and_channels():
  # No resize when the shorter side already is image_size: a pure centre crop.
  wide = np.arange(12 * 16, dtype=np.uint8).reshape(1, 12, 16, 1)
  np.testing.assert_array_equal(sources.fit_images(wide, 12), wide[:, :, 2:14])
  tall = np.arange(16 * 12, dtype=np.uint8).reshape(1, 16, 12, 1)
  np.testing.assert_array_equal(sources.fit_images(tall, 12), tall[:, 2:14])
  # 20x40, left half 0 and right half 200 -> 10x20 -> columns 5..14: the edge is in the middle.
  halves = np.zeros((1, 20, 40, 1), np.uint8)
  halves[:, :, 20:] = 200
  fitted = sources.fit_images(halves, 10)
  assert fitted.shape == (1, 10, 10, 1)
  assert (fitted[0, :, :4] == 0).all() and (fitted[0, :, 6:] == 200).all()
  assert 0 < fitted[0, 0, 4] < 200
  assert sources.fit_images(np.zeros((2, 13, 17, 3), np.uint8), 32).shape == (2, 32, 32, 3)
  # Channels: luminance, grey tiled to RGB, alpha dropped.
  rgba = np.broadcast_to(np.array([10, 20, 30, 99], np.uint8), (1, 2, 3, 4))
  assert (sources.fit_images(rgba, channels=1) == 18).all()  # round(2.99 + 11.74 + 3.42)
  np.testing.assert_array_equal(sources.fit_images(rgba, channels=3), rgba[..., :3])
  grey_alpha = np.broadcast_to(np.array([70, 5], np.uint8), (1, 2, 3, 2))
  assert (sources.fit_images(grey_alpha, channels=3) == 70).all()
  assert sources.fit_images(grey_alpha, channels=1).shape == (1, 2, 3, 1)
  assert sources.fit_images(grey_alpha).shape == (1, 2, 3, 2)
  for knobs in ({'channels': 2}, {'image_size': -1}):
    with pytest.raises(ValueError, match='channels=2|image_size=-1'):
      sources.fit_images(wide, **knobs)


# Folders.


def test_folder_pool_with_classes(tmp_path):
  root = tmp_path / 'pool'
  for i in range(30):
    extension = '.PNG' if i == 3 else '.png'
    _write_image(root / ('cat' if i < 15 else 'dog') / f'{i:02d}{extension}',
                 np.full((13, 17, 1), 8 * i))
  (root / 'cat' / 'notes.txt').write_text('not an image')
  (root / 'cat' / '._00.png').write_bytes(b'macOS metadata, not an image')
  _write_image(root / '.thumbnails' / 'x.png', np.zeros((3, 3, 1)))
  source, splits = _load_all(f'folder:{root}', cache_dir=tmp_path / 'cache')
  assert source.info.image_shape == (13, 17, 1) and source.info.num_classes == 2
  assert source.info.split_sizes == {'train': 24, 'valid': 3, 'test': 3}
  assert not source.info.binary
  for split, ids in _carved(30).items():
    images = splits[split].images
    assert isinstance(images, np.memmap) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[:, 5, 6, 0], 8 * ids)
    np.testing.assert_array_equal(splits[split].labels, (ids >= 15).astype(np.int64))


def test_folder_split_folders_png_and_jpeg(tmp_path):
  root = tmp_path / 'splits'
  colours = [(10 * i, 100, 250 - 10 * i) for i in range(8)]
  for i, colour in enumerate(colours):
    _write_image(root / 'train' / f'{i}.png', np.broadcast_to(colour, (13, 17, 3)))
  _write_image(root / 'valid' / 'a.JPG', np.full((13, 17, 3), 60))
  _write_image(root / 'valid' / 'b.jpeg', np.full((13, 17, 3), 90))
  source, splits = _load_all(f'folder:{root}', cache_dir=tmp_path / 'cache', channels=1)
  assert source.info.image_shape == (13, 17, 1) and source.info.num_classes is None
  assert source.info.split_sizes == {'train': 7, 'valid': 2, 'test': 1}  # test carved from train
  for split, ids in _carved(8, missing=('test',)).items():
    luminance = [round(0.299 * r + 0.587 * g + 0.114 * b) for r, g, b in np.array(colours)[ids]]
    np.testing.assert_array_equal(splits[split].images[:, 0, 0, 0], luminance)
    assert splits[split].labels is None
  np.testing.assert_allclose(splits['valid'].images[:, 6, 8, 0], [60, 90], atol=2)
  resized = sources.make_source(f'folder:{root}', cache_dir=tmp_path / 'cache', image_size=8)
  assert resized.split('valid').images.shape == (2, 8, 8, 3)

  labelled = tmp_path / 'labelled'
  for path in ('train/b/1.png', 'train/a/2.png', 'train/b/3.png', 'test/b/4.png', 'test/c/5.png'):
    _write_image(labelled / path, np.full((4, 4, 1), int(path[-5])))
  _, splits = _load_all(f'folder:{labelled}', cache_dir=tmp_path / 'cache')
  assert splits['train'].info.num_classes == 3  # a, b, c
  assert splits['train'].info.split_sizes == {'train': 2, 'valid': 1, 'test': 2}
  np.testing.assert_array_equal(splits['test'].labels, [1, 2])
  np.testing.assert_array_equal(splits['test'].images[:, 0, 0, 0], [4, 5])


@pytest.mark.parametrize('shapes, second, fixes, knobs, fitted', [
    ([(13, 17, 1), (13, 17, 1), (13, 17, 3)], 'c.png is 13x17x3', ('channels=1', 'channels=3'),
     {'channels': 3}, (13, 17, 3)),
    ([(13, 17, 1), (10, 10, 1), (13, 17, 1)], 'b.png is 10x10x1', ('image_size=N',),
     {'image_size': 8}, (8, 8, 1))])
def test_folder_of_mixed_shapes(tmp_path, shapes, second, fixes, knobs, fitted):
  root = tmp_path / 'mixed'
  for name, shape, value in zip('abc', shapes, (1, 1, 0)):
    _write_image(root / f'{name}.png', np.full(shape, value))
  message = _error(lambda: sources.make_source(f'folder:{root}').info)
  assert 'a.png is 13x17x1' in message and second in message
  assert all(fix in message for fix in fixes)
  source, splits = _load_all(f'folder:{root}', **knobs)
  assert all(s.images.shape[1:] == fitted for s in splits.values())
  # Pixels 0 and 1 only, but a PNG holds intensities: binary is declared, never guessed.
  assert not source.info.binary
  assert not any('.tmp-' in name for name in os.listdir(tmp_path / 'env_cache'))


def test_folder_errors(tmp_path):
  (tmp_path / 'empty' / 'sub').mkdir(parents=True)
  (tmp_path / 'empty' / 'sub' / 'readme.txt').write_text('x')
  message = _error(sources.make_source, f'folder:{tmp_path / "empty"}')
  assert str(tmp_path / 'empty') in message and '.png' in message and '.jpeg' in message
  message = _error(sources.make_source, f'folder:{tmp_path / "missing"}')
  assert str(tmp_path / 'missing') in message
  corrupt = tmp_path / 'corrupt'
  for name in ('a.png', 'b.png'):
    _write_image(corrupt / name, np.zeros((4, 4, 1)))
  (corrupt / 'bad.png').write_bytes(b'\x89PNG not really')
  message = _error(lambda: sources.make_source(f'folder:{corrupt}').info)
  assert str(corrupt / 'bad.png') in message
  assert not os.listdir(tmp_path / 'env_cache')  # the failed preparation left nothing behind


# Arrays.


def test_npz_split_keys_with_labels(tmp_path):
  rng = np.random.RandomState(0)
  arrays = {'train': rng.randint(0, 256, (20, 6, 5)), 'validation': rng.randint(0, 256, (4, 6, 5)),
            'test': rng.randint(0, 256, (3, 6, 5))}
  labels = {f'{key}_labels': rng.randint(0, 7, len(x)) for key, x in arrays.items()}
  labels['test_labels'][0] = 8
  path = tmp_path / 'splits.npz'
  np.savez(path, **{k: x.astype(np.uint8) for k, x in arrays.items()}, **labels)
  source, splits = _load_all(f'npz:{path}', cache_dir=tmp_path / 'cache')
  assert source.info.image_shape == (6, 5, 1) and source.info.num_classes == 9
  for split, key in (('train', 'train'), ('valid', 'validation'), ('test', 'test')):
    np.testing.assert_array_equal(splits[split].images[..., 0], arrays[key])
    np.testing.assert_array_equal(splits[split].labels, labels[f'{key}_labels'])
    assert splits[split].labels.dtype == np.int64


def test_npz_single_array_and_npy_carve_out(tmp_path):
  images = np.random.RandomState(1).randint(0, 256, (25, 4, 4, 3))
  images[:, 0, 0, 0] = np.arange(25)
  labels = np.arange(25) % 4
  np.savez(tmp_path / 'one.npz', faces=images.astype(np.uint8), faces_labels=labels)
  np.save(tmp_path / 'one.npy', images.astype(np.int64))  # integers in 0..255 are accepted
  from_npz, npz_splits = _load_all(f'npz:{tmp_path / "one.npz"}', cache_dir=tmp_path / 'a')
  from_npy, npy_splits = _load_all(f'npy:{tmp_path / "one.npy"}', cache_dir=tmp_path / 'b')
  assert from_npz.info.split_sizes == {'train': 21, 'valid': 2, 'test': 2}
  assert from_npz.info.num_classes == 4 and from_npy.info.num_classes is None
  for split, ids in _carved(25).items():
    np.testing.assert_array_equal(npz_splits[split].images, images[ids])
    np.testing.assert_array_equal(npz_splits[split].labels, labels[ids])
    np.testing.assert_array_equal(npy_splits[split].images, images[ids])
    assert npy_splits[split].labels is None


@pytest.mark.parametrize('array, expected', [
    (np.zeros((5, 784), np.uint8), '(5, 784)'),
    (np.zeros((5, 4, 4), np.float32), 'float32'),
    (np.zeros((5, 4, 4, 6), np.uint8), '(5, 4, 4, 6)'),
    (np.zeros((0, 4, 4), np.uint8), '(0, 4, 4)'),
    (np.full((5, 4, 4), 300, np.int32), 'outside 0..255')])
def test_npy_errors(tmp_path, array, expected):
  path = tmp_path / 'bad.npy'
  np.save(path, array)
  message = _error(lambda: sources.make_source(f'npy:{path}').info)
  assert str(path) in message and expected in message


def test_npz_errors(tmp_path):
  message = _error(sources.make_source, f'npz:{tmp_path / "missing.npz"}')
  assert str(tmp_path / 'missing.npz') in message
  np.savez(tmp_path / 'two.npz', images=np.zeros((5, 4, 4), np.uint8), other=np.zeros(3))
  message = _error(sources.make_source, f'npz:{tmp_path / "two.npz"}')
  assert 'images, other' in message and 'train' in message
  np.savez(tmp_path / 'partial.npz', train=np.zeros((5, 4, 4), np.uint8), train_labels=np.zeros(5),
           test=np.zeros((2, 4, 4), np.uint8))
  assert 'test_labels' in _error(sources.make_source, f'npz:{tmp_path / "partial.npz"}')
  (tmp_path / 'junk.npz').write_text('not a zip')
  assert 'junk.npz' in _error(sources.make_source, f'npz:{tmp_path / "junk.npz"}')
  np.savez(tmp_path / 'mixed.npz', train=np.zeros((5, 4, 4), bool),
           test=np.zeros((2, 4, 4), np.uint8))
  message = _error(sources.make_source, f'npz:{tmp_path / "mixed.npz"}')
  assert 'train is bool (binary) but test is uint8' in message
  np.save(tmp_path / 'two_images.npy', np.zeros((2, 4, 4), np.uint8))
  message = _error(lambda: sources.make_source(f'npy:{tmp_path / "two_images.npy"}').info)
  assert 'need at least 3' in message


def test_bool_arrays_are_binary(tmp_path):
  """Binary is declared (a bool array), never guessed: uint8 0/1 values are intensities."""
  pixels = np.random.RandomState(2).rand(12, 3, 4) < 0.5
  np.save(tmp_path / 'bool.npy', pixels)
  np.save(tmp_path / 'uint8.npy', pixels.astype(np.uint8))
  as_bool, bool_splits = _load_all(f'npy:{tmp_path / "bool.npy"}', cache_dir=tmp_path / 'c')
  as_uint8 = sources.make_source(f'npy:{tmp_path / "uint8.npy"}', cache_dir=tmp_path / 'c')
  assert as_bool.info.binary and not as_uint8.info.binary
  for split, ids in _carved(12).items():
    np.testing.assert_array_equal(bool_splits[split].images[..., 0], pixels[ids])
    assert bool_splits[split].images.dtype == np.uint8
  with open(os.path.join(as_bool.cache_folder, 'info.json'), encoding='utf-8') as f:
    assert json.load(f)['binary'] is True


# The cache.


def test_cache_is_reused_and_keyed(tmp_path, monkeypatch):
  root = tmp_path / 'images'
  for i in range(5):
    _write_image(root / f'{i}.png', np.full((6, 6, 1), i))
  cache = tmp_path / 'cache'
  first = sources.make_source(f'folder:{root}', cache_dir=cache)
  train = np.array(first.split('train').images)
  assert os.listdir(cache) == [os.path.basename(first.cache_folder)]
  with open(os.path.join(first.cache_folder, 'info.json'), encoding='utf-8') as f:
    assert json.load(f)['split_sizes'] == {'train': 3, 'valid': 1, 'test': 1}

  decoded = []
  decode = folder.decode_image
  monkeypatch.setattr(folder, 'decode_image', lambda path: decoded.append(path) or decode(path))
  sources._SOURCES.clear()
  again = sources.make_source(f'folder:{root}', cache_dir=cache)
  np.testing.assert_array_equal(again.split('train').images, train)
  assert decoded == [] and os.listdir(cache) == [os.path.basename(first.cache_folder)]
  assert sources.make_source(f'folder:{root}', cache_dir=cache) is again

  resized = sources.make_source(f'folder:{root}', cache_dir=cache, image_size=4)
  assert resized.info.image_shape == (4, 4, 1) and len(decoded) == 5
  os.utime(root / '0.png', ns=(1, 1))  # a changed file signs a new cache
  sources._SOURCES.clear()
  changed = sources.make_source(f'folder:{root}', cache_dir=cache)
  assert changed.info.split_sizes['train'] == 3 and len(os.listdir(cache)) == 3
  from_env = sources.make_source(f'folder:{root}')
  assert from_env.cache_folder.startswith(str(tmp_path / 'env_cache'))
  from_env.split_file('test')
  assert os.path.isdir(from_env.cache_folder)
  assert _error(from_env.split_file, 'validation').count('train, valid, test') == 1


# Built-ins.


def test_builtin_is_data_load_split(tmp_path):
  rng = np.random.RandomState(0)
  flat = {s: (rng.rand(n, 784) < 0.3).astype(np.uint8)
          for s, n in (('train', 9), ('valid', 4), ('test', 5))}
  np.savez(tmp_path / 'binarized_mnist.npz', **flat)
  cache = tmp_path / 'cache'
  source = sources.make_source('binarized_mnist', data_dir=tmp_path, cache_dir=cache)
  assert source.info == builtin.load_split('binarized_mnist', 'train', tmp_path).info
  for split in data.SPLITS:
    assert source.split(split).images is builtin.load_split('binarized_mnist', split,
                                                         tmp_path).images
  assert not cache.exists()  # nothing prepared until a file is asked for
  for split in data.SPLITS:
    written = np.load(source.split_file(split))
    assert written.dtype == np.uint8
    np.testing.assert_array_equal(written, builtin.load_split('binarized_mnist', split,
                                                           tmp_path).images)


def test_builtin_fitted(tmp_path):
  rng = np.random.RandomState(0)
  np.savez(tmp_path / 'mnist.npz', x_train=rng.randint(0, 256, (60, 28, 28)).astype(np.uint8),
           y_train=rng.randint(0, 10, 60), x_test=rng.randint(0, 256, (7, 28, 28)).astype(np.uint8),
           y_test=rng.randint(0, 10, 7))
  source, splits = _load_all('mnist', data_dir=tmp_path, cache_dir=tmp_path / 'c', image_size=32,
                             channels=3)
  assert source.info.image_shape == (32, 32, 3) and source.info.num_classes == 10
  assert source.info.split_sizes == {'train': 50, 'valid': 10, 'test': 7}
  for split, got in splits.items():
    native = builtin.load_split('mnist', split, tmp_path)
    np.testing.assert_array_equal(got.images, sources.fit_images(native.images, 32, 3))
    np.testing.assert_array_equal(got.labels, native.labels)


# TFDS.


def test_tfds_splits_labels_and_image_feature(tfds_dir, tmp_path):
  source, splits = _load_all('tfds:tfvae_tiny_images', data_dir=tfds_dir,
                             cache_dir=tmp_path / 'cache')
  assert source.info.image_shape == (5, 7, 1) and source.info.num_classes == 3
  assert source.info.split_sizes == {'train': 11, 'valid': 1, 'test': 4}
  # The examples' file order is TFDS's (by hashed key), so follow the ids in the pixels.
  train_order = np.array([example['image'][0, 0, 0] for example in tfds.as_numpy(
      TfvaeTinyImages(data_dir=tfds_dir).as_dataset(split='train', shuffle_files=False))])
  for split, positions in _carved(12, missing=('valid',)).items():
    ids = train_order[positions]
    np.testing.assert_array_equal(splits[split].images[:, 2, 3, 0], ids)
    np.testing.assert_array_equal(splits[split].labels, ids % 3)
  test_ids = splits['test'].images[:, 0, 0, 0]
  assert sorted(test_ids) == [100, 101, 102, 103]
  np.testing.assert_array_equal(splits['test'].labels, (test_ids - 100) % 3)
  versioned = sources.make_source('tfds:tfvae_tiny_images:1.0.0', data_dir=tfds_dir,
                                  cache_dir=tmp_path / 'cache')
  np.testing.assert_array_equal(versioned.split('test').images, splits['test'].images)


def test_tfds_reads_prepared_files_without_the_builder_class(tfds_dir, tmp_path):
  script = ('import json, sys\n'
            'from tfvae import sources\n'
            'source = sources.make_source(sys.argv[1], data_dir=sys.argv[2],\n'
            '                             cache_dir=sys.argv[3])\n'
            'print(json.dumps({s: source.split(s).images[:, 0, 0, 0].tolist() + '
            'source.split(s).labels.tolist() for s in ("train", "valid", "test")}))\n')
  result = subprocess.run([sys.executable, '-c', script, 'tfds:tfvae_tiny_images', tfds_dir,
                           str(tmp_path / 'subprocess_cache')], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
  assert result.returncode == 0, result.stderr
  _, splits = _load_all('tfds:tfvae_tiny_images', data_dir=tfds_dir, cache_dir=tmp_path / 'c')
  expected = {s: split.images[:, 0, 0, 0].tolist() + split.labels.tolist()
              for s, split in splits.items()}
  assert json.loads(result.stdout.strip().splitlines()[-1]) == expected


def test_tfds_unknown_shapes(tfds_dir):
  message = _error(lambda: sources.make_source('tfds:tfvae_varied_images', data_dir=tfds_dir).info)
  assert 'train example' in message and 'is 6x9x3' in message and 'is 8x8x3' in message
  assert 'image_size=N' in message
  source = sources.make_source('tfds:tfvae_varied_images', data_dir=tfds_dir, image_size=4)
  assert source.info.image_shape == (4, 4, 3) and source.info.num_classes is None
  assert source.info.split_sizes == {'train': 3, 'valid': 1, 'test': 1}
  values = np.concatenate([source.split(s).images[:, 0, 0, 0] for s in data.SPLITS])
  assert sorted(values) == [0, 10, 20, 30, 40]


def test_tfds_errors(tfds_dir, tmp_path, monkeypatch):
  message = _error(sources.make_source, 'tfds:tfvae_no_images', data_dir=tfds_dir)
  assert 'tfvae_no_images' in message and 'vector' in message and 'label' in message
  message = _error(sources.make_source, 'tfds:no_such_dataset_xyz', data_dir=tfds_dir)
  assert "'no_such_dataset_xyz'" in message and tfds_dir in message
  message = _error(sources.make_source, 'tfds:svhn_croped', data_dir=tfds_dir)
  assert "TFDS has no dataset 'svhn_croped' (did you mean 'svhn_cropped'?)" in message

  def unreachable(*args, **kwargs):
    raise OSError('network is unreachable')

  monkeypatch.setattr(tfds_reader.socket, 'create_connection', unreachable)
  message = _error(sources.make_source, 'tfds:mnist', data_dir=tmp_path / 'empty_tfds')
  assert 'not in the TFDS cache' in message and '--data_dir' in message
