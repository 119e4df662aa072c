"""tfvae.images (grids, PNGs, manifold, write_pictures, summaries) and bin/sample.py end to
end."""

import math
import os
import types

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from conftest import run_tool
from tfvae import data
from tfvae import decoders
from tfvae import encoders
from tfvae import images
from tfvae import plots
from tfvae.model import VAE
from tfvae.model import default_hparams


def _png(path):
  """A PNG file's pixels, uint8 [H, W, C]."""
  return tf.io.decode_png(tf.io.read_file(str(path))).numpy()


def _grid_size(n, height, width, cols, border=1):
  """(H', W') of image_grid on n tiles of height x width in `cols` columns."""
  rows = math.ceil(n / cols)
  return rows * height + (rows - 1) * border, cols * width + (cols - 1) * border


def test_image_grid_layout():
  tiles = np.stack([np.full((3, 2, 1), i / 10.0) for i in range(5)])
  grid = images.image_grid(tiles, num_cols=2, border=1, border_value=1.0)
  assert grid.shape == _grid_size(5, 3, 2, cols=2) + (1,) == (11, 5, 1)
  np.testing.assert_allclose(grid[0:3, 0:2], 0.0)
  np.testing.assert_allclose(grid[0:3, 3:5], 0.1)
  np.testing.assert_allclose(grid[4:7, 0:2], 0.2)
  np.testing.assert_allclose(grid[8:11, 0:2], 0.4)
  np.testing.assert_allclose(grid[8:11, 3:5], 1.0)  # the empty cell
  np.testing.assert_allclose(grid[3, :], 1.0)       # a border row
  np.testing.assert_allclose(grid[:, 2], 1.0)       # a border column
  assert images.image_grid(tiles[:4]).shape == (7, 5, 1)  # ceil(sqrt(4)) = 2 columns
  assert images.image_grid(tiles, num_cols=5, border=0).shape == (3, 10, 1)
  with pytest.raises(ValueError, match=r'non-empty batch \[N, H, W, C\]'):
    images.image_grid(np.zeros((3, 2, 1)))


def test_image_grid_keeps_images_right_side_up():
  face = np.zeros((28, 20, 1), np.float32)
  face[:5] = 1.0  # a bright band at the top
  grid = images.image_grid(np.stack([face] * 3), num_cols=3)
  assert grid.shape == (28, 62, 1)
  assert grid[:5, :20].min() == 1.0 and grid[5:, :20].max() == 0.0


def test_manifold_latents():
  z = images.manifold_latents(4)
  ticks = scipy.stats.norm.ppf([0.125, 0.375, 0.625, 0.875])
  assert z.shape == (16, 2)
  np.testing.assert_allclose(z[:4, 0], ticks, rtol=1e-5)        # z_1 rises along a row
  np.testing.assert_allclose(z[::4, 1], ticks[::-1], rtol=1e-5)  # z_2 falls down the rows
  z5 = images.manifold_latents(3, z_size=5)
  assert z5.shape == (9, 5) and not z5[:, 2:].any()
  with pytest.raises(ValueError, match='z_size >= 2'):
    images.manifold_latents(3, z_size=1)


class _FakeTrained:
  """What write_pictures uses of a TrainedModel, for images [H, W, C]: sample i of n is the
  flat grey level i / n, reconstructions are 1 - x, the posterior mean is (mean of x, first
  pixel), decoded images are flat at sigmoid(z_1), interpolations blend the two images."""

  def __init__(self, image_shape):
    self.image_shape, self.z_size, self.config_name, self.step = image_shape, 2, 'fake', 7

  def sample(self, n, temperature=1.0, seed=None):
    del temperature, seed
    levels = np.arange(n, dtype=np.float32) / n
    return np.ones((n,) + self.image_shape, np.float32) * levels[:, None, None, None]

  def reconstruct(self, x, seed=0):
    del seed
    return 1.0 - x

  def encode(self, x):
    flat = x.reshape(len(x), -1)
    return np.stack([flat.mean(1), flat[:, 0]], 1), np.ones((len(x), 2), np.float32)

  def decode(self, z):
    level = 1 / (1 + np.exp(-z[:, 0]))
    return np.ones((len(z),) + self.image_shape, np.float32) * level[:, None, None, None]

  def interpolate(self, x1, x2, num_steps, method):
    del method
    t = np.linspace(0, 1, num_steps, dtype=np.float32)[:, None, None, None]
    return (1 - t) * x1 + t * x2


def _split(image_shape, num=12, num_classes=3, seed=0):
  """A tfvae.data.Split of random uint8 images [num, *image_shape] with labels."""
  rng = np.random.RandomState(seed)
  info = data.DatasetInfo('fake', image_shape, False, num_classes,
                          {'train': 0, 'valid': 0, 'test': num})
  return data.Split(rng.randint(0, 256, (num,) + image_shape).astype(np.uint8),
                    rng.randint(0, num_classes, num), info)


@pytest.fixture
def tables(monkeypatch):
  """The calls write_pictures makes of plots.image_table: [(tiles, title, keyword args)]."""
  calls = []

  def record(tiles, path, title=None, **kwargs):
    calls.append((np.asarray(tiles), title, kwargs))
    return path

  monkeypatch.setattr(plots, 'image_table', record)
  return calls


def test_write_pictures_titles_and_labels_what_each_picture_shows(tmp_path, tables):
  trained, split = _FakeTrained((6, 5, 1)), _split((6, 5, 1))
  x = images.float_images(split)
  path = images.write_pictures(trained, 'prior', str(tmp_path), num=5, temperature=0.5)
  assert path == str(tmp_path / 'prior.png')
  tiles, title, kwargs = tables[-1]
  assert title == 'fake, step 7: 5 samples from the prior'
  assert '0.5' in kwargs['caption'] and tiles.shape == (2, 3, 6, 5, 1)
  np.testing.assert_allclose(tiles.reshape(6, 6, 5, 1)[:5], trained.sample(5))
  assert (tiles[1, 2] == 1).all()  # the empty cell is white

  images.write_pictures(trained, 'reconstruction', str(tmp_path), split=split, num=4,
                        split_name='valid')
  tiles, title, kwargs = tables[-1]
  assert title == 'fake, step 7: 4 valid images, reconstructed'
  assert kwargs['row_labels'] == ['original', 'reconstruction'] * 2
  assert tiles.shape == (4, 2, 6, 5, 1) and kwargs['row_group'] == 2
  np.testing.assert_allclose(tiles[1], 1 - tiles[0])  # each original above its reconstruction
  assert any(np.allclose(tiles[0, 0], image) for image in x)

  images.write_pictures(trained, 'interpolation', str(tmp_path), split=split, num=8,
                        num_steps=4, title='my own')
  tiles, title, kwargs = tables[-1]
  assert title == 'my own' and tiles.shape == (2, 6, 6, 5, 1)
  assert kwargs['framed_columns'] == (0, -1)
  assert kwargs['column_labels'] == ['image', 't=0', 't=0.33', 't=0.67', 't=1', 'image']
  np.testing.assert_allclose(tiles[:, 1], tiles[:, 0])   # the path starts at the first image
  np.testing.assert_allclose(tiles[:, -2], tiles[:, -1])  # and ends at the second

  images.write_pictures(trained, 'manifold', str(tmp_path), num=10, title='')
  tiles, title, kwargs = tables[-1]
  assert title is None and tiles.shape == (3, 3, 6, 5, 1) and kwargs['axis_labels']


def test_asking_for_more_images_than_the_split_has_warns(tmp_path, tables, caplog):
  trained, split = _FakeTrained((6, 5, 1)), _split((6, 5, 1), num=12)
  with caplog.at_level('WARNING'):
    images.write_pictures(trained, 'reconstruction', str(tmp_path), split=split, num=64)
  assert 'reconstruction: 64 images asked for, but the test split has 12; drawing 12' in (
      caplog.text)
  assert tables[-1][0].shape == (6, 4, 6, 5, 1)  # 12 images, 4 a row: 3 pairs of rows


def test_write_pictures_colour_images_are_legible_figures(tmp_path):
  trained = _FakeTrained((4, 3, 3))
  split = _split((4, 3, 3))
  path = images.write_pictures(trained, 'reconstruction', str(tmp_path), split=split, num=4,
                               seed=1)
  pixels = _png(path)
  scale = plots.tile_scale((4, 3), 4, 2)
  assert scale == 20 and pixels.shape[-1] in (3, 4)
  assert pixels.shape[0] > 4 * 4 * scale and pixels.shape[1] > 2 * 3 * scale
  first = images.float_images(split, images._picks(12, 4, 1))[0]  # pylint: disable=protected-access
  block = np.repeat(np.repeat(np.round(first * 255).astype(np.uint8), scale, 0), scale, 1)
  found = (pixels[..., :3] == block[0, 0]).all(-1)
  assert found.sum() >= scale * scale  # the first image's top-left pixel, as a block


def test_write_pictures_scatter(tmp_path):
  trained = _FakeTrained((4, 4, 1))
  split = _split((4, 4, 1), num=40)
  path = images.write_pictures(trained, 'scatter', str(tmp_path), split=split, title='means')
  assert path == str(tmp_path / 'scatter.png')
  pixels = _png(path)
  assert pixels.ndim == 3 and pixels.shape[0] >= 300 and pixels.shape[1] >= 300
  unlabelled = data.Split(split.images, None, split.info)
  plain = _png(images.write_pictures(trained, 'scatter', str(tmp_path / 'p'),
                                     split=unlabelled))
  assert plain.shape[1] < pixels.shape[1]  # no colour bar without labels


def test_summary_images():
  hparams = default_hparams().override(hidden_sizes=[8], z_size=3)
  model = VAE(encoders.MLPEncoder(hparams, (28, 20, 1)),
              decoders.MLPDecoder(hparams, (28, 20, 1)), hparams)
  model.build_variables()
  x = np.random.RandomState(0).rand(20, 28, 20, 1).astype(np.float32)
  grids = images.summary_images(model, x, num=9, seed=0)
  assert set(grids) == {'reconstructions', 'prior_samples'}
  # 9 inputs beside their reconstructions: 3 pairs a row, 3 rows.
  assert grids['reconstructions'].shape == (1,) + _grid_size(18, 28, 20, cols=6) + (1,)
  assert grids['prior_samples'].shape == (1,) + _grid_size(9, 28, 20, cols=3) + (1,)
  recon = grids['reconstructions'][0]
  np.testing.assert_allclose(recon[:28, :20], x[0])  # input 0, then its reconstruction
  for grid in grids.values():
    assert 0.0 <= grid.min() and grid.max() <= 1.0
  assert images.summary_images(model, x[:2], num=16)['reconstructions'].shape == (
      1,) + _grid_size(4, 28, 20, cols=4) + (1,)


def test_check_picture_wants_a_2d_latent_space():
  trained = types.SimpleNamespace(z_size=20, config_name='mnist_fc')
  with pytest.raises(ValueError, match='needs a 2-D latent space, but config mnist_fc has '
                                       'z_size=20; train mnist_fc_z2 or frey_face_fc_z2'):
    images.check_picture(trained, 'manifold')
  with pytest.raises(ValueError, match="unknown picture kind 'nope'"):
    images.check_picture(trained, 'nope')
  images.check_picture(trained, 'prior')


def test_sample_script_writes_every_kind(tiny_run, tmp_path):
  run_dir, data_dir = tiny_run
  out_dir = tmp_path / 'pics'
  rc, out = run_tool('sample', f'--run_dir={run_dir}', f'--output_dir={out_dir}',
                     f'--data_dir={data_dir}', '--num=10', '--num_steps=3',
                     *[f'--kind={kind}' for kind in images.KINDS])
  assert rc == 0, out
  for kind in images.KINDS:
    assert f'wrote {out_dir / kind}.png' in out, out
  scale = plots.tile_scale((28, 28), 1, 1)
  for kind in ('prior', 'reconstruction', 'manifold', 'interpolation'):
    height, width = _png(out_dir / f'{kind}.png').shape[:2]
    assert height > 3 * 28 * scale and width > 3 * 28 * scale, kind  # scaled up, legibly
  scatter = _png(out_dir / 'scatter.png')  # a matplotlib figure with a colour bar
  assert scatter.shape[-1] in (3, 4) and min(scatter.shape[:2]) >= 300


def test_sample_script_frey_face_and_errors(frey_run, tmp_path):
  run_dir, data_dir = frey_run
  out_dir = tmp_path / 'pics'
  rc, out = run_tool('sample', f'--run_dir={run_dir}', f'--output_dir={out_dir}',
                     f'--data_dir={data_dir}', '--num=6', '--kind=prior',
                     '--kind=reconstruction')
  assert rc == 0, out
  for kind in ('prior', 'reconstruction'):
    assert _png(out_dir / f'{kind}.png').shape[0] > 2 * 28 * plots.tile_scale((28, 20), 1, 1)
  rc, out = run_tool('sample', f'--run_dir={run_dir}', f'--output_dir={out_dir}',
                     '--kind=manifold')
  assert rc == 1, out
  assert out.strip().splitlines()[-1] == (
      'error: --kind=manifold needs a 2-D latent space, but config frey_face_fc has '
      'z_size=3; train mnist_fc_z2 or frey_face_fc_z2 (or any config with '
      '--hparams=z_size=2)')
  assert not os.path.exists(out_dir / 'manifold.png')
