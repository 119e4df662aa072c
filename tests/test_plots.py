"""tfvae.plots: the matplotlib scatter plot, figure 2 and labelled tables of images."""

import csv

import matplotlib
import matplotlib.colors
import numpy as np
import pytest
import tensorflow as tf

from tfvae import plots


def _png(path):
  """A PNG file's pixels, uint8 [H, W, 3] (alpha dropped)."""
  return tf.io.decode_png(tf.io.read_file(str(path)), channels=3).numpy()


def _mask_of(pixels, colour, tolerance=0.06):
  """[H, W] bool: pixels whose hue is within `tolerance` (of a turn) of `colour`'s and that
  are clearly coloured (saturation and value above 0.3), so text and white are left out."""
  hsv = matplotlib.colors.rgb_to_hsv(pixels / 255.0)
  hue = matplotlib.colors.rgb_to_hsv(matplotlib.colors.to_rgb(colour))[0]
  distance = np.abs((hsv[..., 0] - hue + 0.5) % 1.0 - 0.5)
  return (distance < tolerance) & (hsv[..., 1] > 0.3) & (hsv[..., 2] > 0.3)


def _hues(pixels, min_pixels=50):
  """How many of 12 hue bins hold at least min_pixels clearly coloured pixels."""
  hsv = matplotlib.colors.rgb_to_hsv(pixels / 255.0).reshape(-1, 3)
  coloured = hsv[(hsv[:, 1] > 0.3) & (hsv[:, 2] > 0.3)]
  counts = np.bincount((coloured[:, 0] * 12).astype(int) % 12, minlength=12)
  return int((counts >= min_pixels).sum())


def test_scatter_colours_classes_and_decodes(tmp_path):
  rng = np.random.RandomState(0)
  labels = np.repeat([0, 1, 2], 200)
  points = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])[labels] + rng.randn(600, 2) * 0.3
  path = plots.scatter(points, labels, str(tmp_path / 'sub' / 's.png'), title='posterior')
  assert path == str(tmp_path / 'sub' / 's.png')
  labelled = _png(path)
  plain = _png(plots.scatter(points, None, str(tmp_path / 'p.png')))
  for pixels in (labelled, plain):
    assert 300 <= pixels.shape[0] <= 1200 and 300 <= pixels.shape[1] <= 1200
  assert _hues(labelled) >= 3 and _hues(plain) == 1
  assert labelled.shape[1] > plain.shape[1]  # the colour bar's room
  assert len(np.unique(labelled.reshape(-1, 3), axis=0)) > len(
      np.unique(plain.reshape(-1, 3), axis=0))


def test_scatter_puts_far_apart_clusters_in_different_places(tmp_path):
  rng = np.random.RandomState(1)
  labels = np.repeat([0, 1], 300)
  # Class 0 low on the left, class 1 high on the right: y points up, as in the colour bar.
  points = np.array([[-10.0, -10.0], [10.0, 10.0]])[labels] + rng.randn(600, 2) * 0.5
  pixels = _png(plots.scatter(points, labels, str(tmp_path / 's.png')))
  blue, orange = _mask_of(pixels, 'tab:blue'), _mask_of(pixels, 'tab:orange')
  half = pixels.shape[1] // 2
  assert blue[:, :half].sum() > 100 and orange[:, :half].sum() == 0
  assert orange[:, half:].sum() > 100
  # The colour bar holds both colours in equal bands, so the points decide where each
  # colour's centre lies: class 1 to the right of and above class 0.
  rows_b, cols_b = np.nonzero(blue)
  rows_o, cols_o = np.nonzero(orange)
  assert cols_o.mean() > cols_b.mean() + 50
  assert rows_o.mean() < rows_b.mean() - 50


def test_scatter_class_names_and_errors(tmp_path):
  points = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
  labels = np.array([0, 2, 2])
  path = plots.scatter(points, labels, str(tmp_path / 'n.png'), class_names=['a', 'b', 'c'])
  assert _png(path).ndim == 3
  assert len(plots.class_colours(25)) == 25
  assert len({tuple(c) for c in plots.class_colours(12)}) == 12
  with pytest.raises(ValueError, match=r'points \[N, 2\]'):
    plots.scatter(np.zeros((4, 3)), None, str(tmp_path / 'bad.png'))
  with pytest.raises(ValueError, match='1 points with NaN'):
    plots.scatter(np.array([[0.0, np.nan], [1.0, 1.0]]), None, str(tmp_path / 'bad.png'))
  with pytest.raises(ValueError, match=r'one label per point, shape \(3,\)'):
    plots.scatter(points, labels[:2], str(tmp_path / 'bad.png'))
  with pytest.raises(ValueError, match='integer class labels, got dtype float64'):
    plots.scatter(points, labels * 1.0, str(tmp_path / 'bad.png'))
  with pytest.raises(ValueError, match='class_names has 2 names, but the labels run from 0 '
                                       'to 2'):
    plots.scatter(points, labels, str(tmp_path / 'bad.png'), class_names=['a', 'b'])


def _fake_rows(z_sizes):
  """Two fake figure-2 curves per latent size: the ELBO rising with log10(examples)."""
  rows = []
  for z_size in z_sizes:
    for examples in (100, 1000, 10_000, 100_000):
      log = np.log10(examples)
      rows.append(dict(config='fake', z_size=z_size, step=examples // 100, examples=examples,
                       train_elbo=-200 + 20 * log, test_elbo=-205 + 20 * log, seconds=1.0))
  return rows


def test_lower_bound_panels_and_curves(tmp_path):
  two = _png(plots.lower_bound(_fake_rows([3, 20]), str(tmp_path / 'two.png'), title='fake'))
  one = _png(plots.lower_bound(_fake_rows([3]), str(tmp_path / 'one.png')))
  assert two.shape[0] == one.shape[0] and two.shape[1] > 1.6 * one.shape[1]
  assert two.shape[1] > two.shape[0]  # panels side by side
  # Train in blue, test in red, in both panels.
  half = two.shape[1] // 2
  for panel in (two[:, :half], two[:, half:]):
    assert _mask_of(panel, 'tab:blue').sum() > 100
    assert _mask_of(panel, 'tab:red').sum() > 100


def test_lower_bound_reads_csv_rows(tmp_path):
  path = tmp_path / 'lower_bound.csv'
  rows = _fake_rows([5])
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, list(rows[0]))
    writer.writeheader()
    writer.writerows(reversed(rows))  # any order: each curve is sorted by examples
  with open(path, newline='') as f:
    assert _png(plots.lower_bound(csv.DictReader(f), str(tmp_path / 'csv.png'))).shape[1] > 300
  with pytest.raises(ValueError, match='no rows'):
    plots.lower_bound([], str(tmp_path / 'bad.png'))
  with pytest.raises(ValueError, match='row 0 lacks test_elbo; each row needs z_size, '
                                       'examples, train_elbo, test_elbo'):
    plots.lower_bound([dict(z_size=3, examples=10, train_elbo=-100.0)], str(tmp_path / 'b.png'))
  with pytest.raises(ValueError, match="row 0 has a non-numeric value among z_size=3, "
                                       "examples='many'"):
    plots.lower_bound([dict(z_size=3, examples='many', train_elbo=-1, test_elbo=-1)],
                      str(tmp_path / 'b.png'))
  with pytest.raises(ValueError, match='examples > 0'):
    plots.lower_bound([dict(z_size=3, examples=0, train_elbo=-1, test_elbo=-1)],
                      str(tmp_path / 'b.png'))


def _flat_tiles(rows, cols, height, width):
  """tiles [rows, cols, height, width, 3] uint8, each one flat colour none of the others (nor
  grey text, nor white, nor the frame) has."""
  colours = [(40 + 30 * i, 200 - 25 * i, 90 + 7 * i) for i in range(rows * cols)]
  tiles = np.array(colours, np.uint8).reshape(rows, cols, 1, 1, 3)
  return np.broadcast_to(tiles, (rows, cols, height, width, 3)).copy(), colours


def test_image_table_scales_tiles_without_smoothing_and_labels_them(tmp_path):
  tiles, colours = _flat_tiles(2, 3, 10, 7)
  scale = plots.tile_scale((10, 7), 2, 3)
  assert scale == 8  # the longer side reaches MIN_TILE = 80
  pixels = _png(plots.image_table(tiles, str(tmp_path / 't.png'), 'a title', 'a caption',
                                  row_labels=['first', 'second'],
                                  column_labels=['a', 'b', 'c'], framed_columns=(0,)))
  boxes = []
  for colour in colours:
    rows, cols = np.nonzero((pixels == colour).all(-1))
    assert len(rows) == 10 * scale * 7 * scale  # a whole block per pixel, nothing smoothed
    assert (np.ptp(rows) + 1, np.ptp(cols) + 1) == (10 * scale, 7 * scale)
    boxes.append((rows.min(), cols.min()))
  (top, left), (_, second_col), (second_row, _) = boxes[0], boxes[1], boxes[3]
  assert second_col > left + 7 * scale and second_row > top + 10 * scale  # row by row
  assert tf.io.decode_png(tf.io.read_file(str(tmp_path / 't.png'))).shape[-1] == 3
  framed = (pixels == plots.FRAME_COLOUR).all(-1)
  assert framed[:, left - 1].any() and not framed[:, boxes[1][1] - 1].any()  # column 0 only
  dark = pixels.max(-1) < 100
  assert dark[:top].sum() > 50            # title, caption and column labels above
  assert dark[top:, :left - 10].sum() > 20  # row labels left of the table


def test_image_table_greyscale_axis_labels_and_errors(tmp_path):
  grey = np.linspace(0, 1, 4 * 5 * 6, dtype=np.float32).reshape(2, 2, 5, 6, 1)
  pixels = _png(plots.image_table(grey, str(tmp_path / 'g.png'), axis_labels=('x', 'y'),
                                  gap=0))
  assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
  stored = tf.io.decode_png(tf.io.read_file(str(tmp_path / 'g.png'))).numpy()
  assert stored.shape[-1] == 1  # greyscale images make a greyscale PNG
  scale = plots.tile_scale((5, 6), 2, 2)
  assert pixels.shape[0] > 10 * scale and pixels.shape[1] > 12 * scale
  # 64-px tiles are doubled, unless that makes the table wider than MAX_SIDE.
  assert plots.tile_scale((64, 64), 1, 8) == 2 and plots.tile_scale((64, 64), 1, 20) == 1
  wide = np.zeros((1, 20, 64, 64, 1), np.float32)
  assert _png(plots.image_table(wide, str(tmp_path / 'w.png'))).shape[1] <= plots.MAX_SIDE
  with pytest.raises(ValueError, match=r'tiles \[R, C, H, W, ch\] with ch 1 or 3'):
    plots.image_table(np.zeros((2, 4, 4, 2)), str(tmp_path / 'bad.png'))


def test_user_style_neither_changes_the_figures_nor_is_changed(tmp_path):
  points = np.array([[0.0, 0.0], [1.0, 1.0]])
  default = _png(plots.scatter(points, None, str(tmp_path / 'default.png')))
  with matplotlib.rc_context({'axes.facecolor': 'black', 'figure.figsize': (2.0, 2.0)}):
    styled = _png(plots.scatter(points, None, str(tmp_path / 'styled.png')))
    assert matplotlib.rcParams['axes.facecolor'] == 'black'
  np.testing.assert_array_equal(styled, default)
