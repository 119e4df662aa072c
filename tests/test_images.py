"""tfvae.images (grids, PNGs, manifold, scatter, summaries) and bin/sample.py end to end."""

import math
import os
import types

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from conftest import run_script
from tfvae import decoders
from tfvae import encoders
from tfvae import images
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


def test_scatter_png(tmp_path):
  points = np.array([[-2.0, -1.0], [2.0, 1.0], [0.0, 0.0]])
  labels = np.array([0, 1, 2])
  canvas = _png(images.scatter_png(points, labels, str(tmp_path / 's.png')))
  side = images.SCATTER_PLOT_SIZE + 2 * images.SCATTER_MARGIN
  assert canvas.shape == (side, side + images.SCATTER_LEGEND_WIDTH, 3)
  colors = {tuple(c) for c in canvas.reshape(-1, 3)}
  assert {tuple(images.PALETTE[i]) for i in range(3)} <= colors
  # y points up: label 1 at y = 1 lies above label 0 at y = -1, and right of it (x = 2 > -2).
  rows0, cols0 = np.nonzero((canvas == images.PALETTE[0]).all(-1))
  rows1, cols1 = np.nonzero((canvas == images.PALETTE[1]).all(-1))
  in_plot0, in_plot1 = cols0 < side, cols1 < side  # leave out the legend's swatches
  assert rows1[in_plot1].mean() < rows0[in_plot0].mean()
  assert cols1[in_plot1].mean() > cols0[in_plot0].mean()
  edge = images.SCATTER_MARGIN - 1
  assert (canvas[edge, edge:side - edge] == 0).all()  # the frame's top edge
  plain = _png(images.scatter_png(points, None, str(tmp_path / 'p.png')))
  assert plain.shape == (side, side, 3)
  assert tuple(images.PALETTE[1]) not in {tuple(c) for c in plain.reshape(-1, 3)}
  with pytest.raises(ValueError, match=r'points \[N, 2\]'):
    images.scatter_png(np.zeros((4, 3)), None, str(tmp_path / 'bad.png'))


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


def test_sample_script_writes_every_kind(mnist_z2_run, tmp_path):
  run_dir, data_dir = mnist_z2_run
  out_dir = tmp_path / 'pics'
  rc, out = run_script('sample.py', f'--run_dir={run_dir}', f'--output_dir={out_dir}',
                       f'--data_dir={data_dir}', '--num=10', '--num_steps=3',
                       *[f'--kind={kind}' for kind in images.KINDS])
  assert rc == 0, out
  for kind in images.KINDS:
    assert f'wrote {out_dir / kind}.png' in out, out
  side = images.SCATTER_PLOT_SIZE + 2 * images.SCATTER_MARGIN
  expected = {
      'prior': _grid_size(10, 28, 28, cols=4),
      'reconstruction': _grid_size(20, 28, 28, cols=8),
      'manifold': _grid_size(9, 28, 28, cols=3, border=0),
      'interpolation': _grid_size(3 * 5, 28, 28, cols=5),  # 10 // 3 rows of 3 + 2 ends
      'scatter': (side, side + images.SCATTER_LEGEND_WIDTH),
  }
  for kind, size in expected.items():
    assert _png(out_dir / f'{kind}.png').shape[:2] == size, kind


def test_sample_script_frey_face_and_errors(frey_run, tmp_path):
  run_dir, data_dir = frey_run
  out_dir = tmp_path / 'pics'
  rc, out = run_script('sample.py', f'--run_dir={run_dir}', f'--output_dir={out_dir}',
                       f'--data_dir={data_dir}', '--num=6', '--kind=prior',
                       '--kind=reconstruction')
  assert rc == 0, out
  assert _png(out_dir / 'prior.png').shape == _grid_size(6, 28, 20, cols=3) + (1,)
  assert _png(out_dir / 'reconstruction.png').shape == _grid_size(12, 28, 20, cols=6) + (1,)
  rc, out = run_script('sample.py', f'--run_dir={run_dir}', f'--output_dir={out_dir}',
                       '--kind=manifold')
  assert rc == 1, out
  assert out.strip().splitlines()[-1] == (
      'error: --kind=manifold needs a 2-D latent space, but config frey_face_fc has '
      'z_size=3; train mnist_fc_z2 or frey_face_fc_z2 (or any config with '
      '--hparams=z_size=2)')
  assert not os.path.exists(out_dir / 'manifold.png')
