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


def test_write_png_round_trip(tmp_path):
  grid = np.linspace(0.0, 1.0, 12, dtype=np.float32).reshape(3, 4, 1)
  path = images.write_png(str(tmp_path / 'sub' / 'g.png'), grid)
  np.testing.assert_array_equal(_png(path), np.round(grid * 255).astype(np.uint8))
  rgb = np.random.RandomState(0).randint(0, 256, (5, 6, 3)).astype(np.uint8)
  np.testing.assert_array_equal(_png(images.write_png(str(tmp_path / 'rgb.png'), rgb)), rgb)
  assert _png(images.write_png(str(tmp_path / 'hw.png'), grid[..., 0])).shape == (3, 4, 1)
  assert _png(images.write_png(str(tmp_path / 'c.png'), grid * 3 - 1)).max() == 255


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
  pixel)."""

  def __init__(self, image_shape):
    self.image_shape, self.z_size, self.config_name = image_shape, 2, 'fake'

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


def _split(image_shape, num=12, num_classes=3, seed=0):
  """A tfvae.data.Split of random uint8 images [num, *image_shape] with labels."""
  rng = np.random.RandomState(seed)
  info = data.DatasetInfo('fake', image_shape, False, num_classes,
                          {'train': 0, 'valid': 0, 'test': num})
  return data.Split(rng.randint(0, 256, (num,) + image_shape).astype(np.uint8),
                    rng.randint(0, num_classes, num), info)


def test_write_pictures_grid_without_title_is_pixel_exact(tmp_path):
  trained = _FakeTrained((6, 5, 1))
  path = images.write_pictures(trained, 'prior', str(tmp_path), num=5)
  assert path == str(tmp_path / 'prior.png')
  np.testing.assert_array_equal(_png(path), images.to_uint8(images.image_grid(
      trained.sample(5))))


def test_write_pictures_title_draws_a_figure_above_the_grid(tmp_path):
  trained = _FakeTrained((6, 5, 1))
  plain = _png(images.write_pictures(trained, 'prior', str(tmp_path / 'plain'), num=5))
  titled = _png(images.write_pictures(trained, 'prior', str(tmp_path / 'titled'), num=5,
                                      title='prior samples'))
  assert titled.shape[0] > plain.shape[0] + plots.TITLE_HEIGHT
  # The grid, scaled up by an integer factor without smoothing, lies below the title.
  scale = plots.TITLED_IMAGE_SIZE // max(plain.shape[:2])
  grid = np.repeat(np.repeat(plain[..., 0], scale, 0), scale, 1)
  top = titled.shape[0] - plots.IMAGE_MARGIN - grid.shape[0]
  left = (titled.shape[1] - grid.shape[1]) // 2
  np.testing.assert_array_equal(titled[top:top + grid.shape[0], left:left + grid.shape[1], 0],
                                grid)
  assert (titled[:top, :, 0] < 100).sum() > 20  # the title's text


def test_write_pictures_colour_images(tmp_path):
  trained = _FakeTrained((4, 3, 3))
  split = _split((4, 3, 3))
  prior = _png(images.write_pictures(trained, 'prior', str(tmp_path), num=4))
  assert prior.shape == _grid_size(4, 4, 3, cols=2) + (3,)
  path = images.write_pictures(trained, 'reconstruction', str(tmp_path), split=split, num=4,
                               seed=1)
  pairs = _png(path)
  assert pairs.shape == _grid_size(8, 4, 3, cols=4) + (3,)
  first = pairs[:4, :3]
  assert any((first == image).all() for image in split.images)  # an input image ...
  np.testing.assert_array_equal(pairs[:4, 4:7], 255 - first)     # ... beside its 1 - x
  titled = _png(images.write_pictures(trained, 'reconstruction', str(tmp_path / 't'),
                                      split=split, num=4, title='pairs'))
  assert titled.shape[0] > pairs.shape[0] and (titled[..., 0] != titled[..., 1]).any()


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
  expected = {
      'prior': _grid_size(10, 28, 28, cols=4),
      'reconstruction': _grid_size(20, 28, 28, cols=8),
      'manifold': _grid_size(9, 28, 28, cols=3, border=0),
      'interpolation': _grid_size(3 * 5, 28, 28, cols=5),  # 10 // 3 rows of 3 + 2 ends
  }
  for kind, size in expected.items():
    assert _png(out_dir / f'{kind}.png').shape[:2] == size, kind
  scatter = _png(out_dir / 'scatter.png')  # a matplotlib figure with a colour bar
  assert scatter.shape[-1] in (3, 4) and min(scatter.shape[:2]) >= 300


def test_sample_script_frey_face_and_errors(frey_run, tmp_path):
  run_dir, data_dir = frey_run
  out_dir = tmp_path / 'pics'
  rc, out = run_tool('sample', f'--run_dir={run_dir}', f'--output_dir={out_dir}',
                     f'--data_dir={data_dir}', '--num=6', '--kind=prior',
                     '--kind=reconstruction')
  assert rc == 0, out
  assert _png(out_dir / 'prior.png').shape == _grid_size(6, 28, 20, cols=3) + (1,)
  assert _png(out_dir / 'reconstruction.png').shape == _grid_size(12, 28, 20, cols=6) + (1,)
  rc, out = run_tool('sample', f'--run_dir={run_dir}', f'--output_dir={out_dir}',
                     '--kind=manifold')
  assert rc == 1, out
  assert out.strip().splitlines()[-1] == (
      'error: --kind=manifold needs a 2-D latent space, but config frey_face_fc has '
      'z_size=3; train mnist_fc_z2 or frey_face_fc_z2 (or any config with '
      '--hparams=z_size=2)')
  assert not os.path.exists(out_dir / 'manifold.png')
