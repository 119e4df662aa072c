"""Pictures of what a VAE learned: image grids, PNG files, the 2-D manifold and scatter plots.

Images are float [N, H, W, C] in [0, 1] (or uint8), rows top to bottom as stored, so every
dataset, Frey Face's 28x20 faces included, comes out right side up. PNGs are written with
tf.io.encode_png and tf.io.gfile (no plotting library).

`write_pictures` makes the pictures bin/sample.py offers (the paper's figures 4 and 5 and
more); `summary_images` makes TensorBoard grids during training.
"""

import math
import os

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import data
from tfvae import export

KINDS = ('prior', 'reconstruction', 'manifold', 'interpolation', 'scatter')
NEEDS_DATA = ('reconstruction', 'interpolation', 'scatter')
NEEDS_Z2 = ('manifold', 'scatter')

# Matplotlib's tab10 colours, one per class label (mod 10), as RGB uint8.
PALETTE = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40],
                    [148, 103, 189], [140, 86, 75], [227, 119, 194], [127, 127, 127],
                    [188, 189, 34], [23, 190, 207]], np.uint8)

# Scatter plot layout, in pixels: the square plot area, the margins around it (room for
# tick labels on the left and bottom), and the legend column added when there are labels.
SCATTER_PLOT_SIZE = 480
SCATTER_MARGIN = 30
SCATTER_LEGEND_WIDTH = 50

# A 3x5 pixel font for tick, legend and plot labels (bench/ plots use it too).
_GLYPHS = {
    '0': '111101101101111', '1': '010110010010111', '2': '111001111100111',
    '3': '111001111001111', '4': '101101111001001', '5': '111100111001111',
    '6': '111100111101111', '7': '111001001001001', '8': '111101111101111',
    '9': '111101111001111', '-': '000000111000000', '.': '000000000000010',
    '=': '000111000111000', ' ': '000000000000000', 'e': '000111111100111',
    '+': '000010111010000',
    'z': '000111011110111', 't': '010111010010011', 'r': '000101110100100',
    'a': '000011101101011', 'i': '010000010010010', 'n': '000110101101101',
    's': '000011110011110',
}
_FONT_SCALE = 2


def image_grid(images, num_cols=None, border=1, border_value=1.0):
  """Tiles images [N, H, W, C] row by row into one float32 image [H', W', C] with
  H' = rows * H + (rows - 1) * border, W' = cols * W + (cols - 1) * border,
  cols = num_cols or ceil(sqrt(N)), rows = ceil(N / cols); empty cells are border_value."""
  images = np.asarray(images, np.float32)
  if images.ndim != 4 or not len(images):
    raise ValueError(f'image_grid wants a non-empty batch [N, H, W, C], got shape '
                     f'{images.shape}')
  n, height, width, channels = images.shape
  cols = num_cols or math.ceil(math.sqrt(n))
  rows = math.ceil(n / cols)
  grid = np.full((rows * height + (rows - 1) * border, cols * width + (cols - 1) * border,
                  channels), border_value, np.float32)
  for i, image in enumerate(images):
    top, left = (i // cols) * (height + border), (i % cols) * (width + border)
    grid[top:top + height, left:left + width] = image
  return grid


def to_uint8(image):
  """uint8 pixels of a float image in [0, 1] (clipped, rounded); uint8 passes through."""
  image = np.asarray(image)
  if image.dtype == np.uint8:
    return image
  return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def write_png(path, image):
  """Writes image [H, W], [H, W, 1] or [H, W, 3] (float in [0, 1] or uint8) as a PNG."""
  image = to_uint8(image)
  if image.ndim == 2:
    image = image[:, :, None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
    raise ValueError(f'write_png wants an image [H, W, C] with C in 1, 3, 4; got shape '
                     f'{image.shape}')
  folder = os.path.dirname(path)
  if folder:
    tf.io.gfile.makedirs(folder)
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(tf.io.encode_png(image).numpy())
  return path


def manifold_latents(num_per_side, z_size=2):
  """z [num_per_side^2, z_size] on the grid Phi^-1((i + 0.5) / num_per_side) (the paper's
  figure 4): row r of the grid holds z_2 from high (r = 0) to low, z_1 rises along it;
  dimensions past the second are 0."""
  if z_size < 2:
    raise ValueError(f'a 2-D manifold needs z_size >= 2, got {z_size}')
  p = (np.arange(num_per_side, dtype=np.float32) + 0.5) / num_per_side
  ticks = tfp.distributions.Normal(0.0, 1.0).quantile(p).numpy()
  z1, z2 = np.meshgrid(ticks, ticks[::-1])
  z = np.zeros((num_per_side * num_per_side, z_size), np.float32)
  z[:, 0], z[:, 1] = z1.ravel(), z2.ravel()
  return z


def draw_text(canvas, text, left, top, color=(0, 0, 0), s=_FONT_SCALE):
  """Draws `text` (the characters of _GLYPHS), pixels s x s, top-left corner at (left, top)."""
  for k, char in enumerate(text):
    bits = np.array([int(b) for b in _GLYPHS[char]], bool).reshape(5, 3)
    mask = np.kron(bits, np.ones((s, s), bool))
    x0 = left + k * 4 * s
    region = canvas[top:top + 5 * s, x0:x0 + 3 * s]
    region[mask[:region.shape[0], :region.shape[1]]] = color


def _tick_step(span):
  """An integer step giving at most about 8 ticks over `span`."""
  return max(1, math.ceil(span / 8))


def scatter_png(points, labels, path, point_radius=1):
  """Writes a scatter plot of points [N, 2] (x right, y up) coloured by integer labels [N]
  (PALETTE[label % 10]; None: one colour), with a frame, integer ticks, the axes through 0
  and a legend of the labels; returns path."""
  points = np.asarray(points, np.float64)
  if points.ndim != 2 or points.shape[1] != 2 or not len(points):
    raise ValueError(f'scatter_png wants points [N, 2], got shape {points.shape}')
  size, margin = SCATTER_PLOT_SIZE, SCATTER_MARGIN
  legend = 0 if labels is None else SCATTER_LEGEND_WIDTH
  canvas = np.full((size + 2 * margin, size + 2 * margin + legend, 3), 255, np.uint8)
  low, high = points.min(axis=0), points.max(axis=0)
  pad = np.maximum(0.05 * (high - low), 0.5)
  low, high = low - pad, high + pad

  def to_pixels(values, axis):
    """Canvas columns (axis 0) or rows (axis 1, flipped so y points up) of values."""
    frac = (np.asarray(values) - low[axis]) / (high[axis] - low[axis])
    offset = np.round(frac * (size - 1)).astype(np.int64)
    return margin + (offset if axis == 0 else size - 1 - offset)

  grey, black = (200, 200, 200), (0, 0, 0)
  step = _tick_step(max(high - low))
  for axis in (0, 1):
    for tick in range(math.ceil(low[axis] / step) * step, math.floor(high[axis]) + 1, step):
      pos = to_pixels(tick, axis)
      label = str(tick)
      if axis == 0:
        if tick == 0:
          canvas[margin:margin + size, pos] = grey
        canvas[margin + size:margin + size + 4, pos] = black
        draw_text(canvas, label, pos - len(label) * 4 * _FONT_SCALE // 2 + 1,
                   margin + size + 6)
      else:
        if tick == 0:
          canvas[pos, margin:margin + size] = grey
        canvas[pos, margin - 4:margin] = black
        draw_text(canvas, label, margin - 6 - len(label) * 4 * _FONT_SCALE + _FONT_SCALE,
                   pos - 5 * _FONT_SCALE // 2)
  colors = (np.broadcast_to(PALETTE[0], (len(points), 3)) if labels is None
            else PALETTE[np.asarray(labels) % len(PALETTE)])
  cols, rows = to_pixels(points[:, 0], 0), to_pixels(points[:, 1], 1)
  for dy in range(-point_radius, point_radius + 1):
    for dx in range(-point_radius, point_radius + 1):
      if dx * dx + dy * dy <= point_radius * point_radius + point_radius:
        canvas[rows + dy, cols + dx] = colors
  canvas[margin - 1, margin - 1:margin + size + 1] = black
  canvas[margin + size, margin - 1:margin + size + 1] = black
  canvas[margin - 1:margin + size + 1, margin - 1] = black
  canvas[margin - 1:margin + size + 1, margin + size] = black
  if labels is not None:
    left = 2 * margin + size
    for k, label in enumerate(np.unique(labels)):
      top = margin + k * 8 * _FONT_SCALE
      canvas[top:top + 5 * _FONT_SCALE, left:left + 5 * _FONT_SCALE] = (
          PALETTE[label % len(PALETTE)])
      draw_text(canvas, str(label), left + 7 * _FONT_SCALE, top)
  return write_png(path, canvas)


def _pairs_grid(x, y):
  """A grid of images x [N, ...] each beside its counterpart in y, ceil(sqrt(N)) pairs a row."""
  pairs = np.stack([x, y], axis=1).reshape((-1,) + x.shape[1:])
  return image_grid(pairs, num_cols=2 * math.ceil(math.sqrt(len(x))))


def summary_images(model, x, num=16, seed=0):
  """TensorBoard grids [1, H', W', C] in [0, 1] from one encoder and one decoder pass:
  'reconstructions' (the first num images of x [B, H, W, C] beside their reconstructions)
  and 'prior_samples' (num decoded means at z ~ N(0, I))."""
  x = tf.convert_to_tensor(x, tf.float32)[:num]
  rows = tf.shape(x)[0]
  q = model.encode(x)
  z_posterior = q.mean() + q.stddev() * export.noise(tf.shape(q.mean()), seed)
  z_prior = export.noise([num, model.z_size], seed + 1)
  decoded = model.decode_images(tf.concat([z_posterior, z_prior], 0)).numpy()
  count = int(rows)
  return {'reconstructions': _pairs_grid(x.numpy(), decoded[:count])[None],
          'prior_samples': image_grid(decoded[count:])[None]}


def float_images(split):
  """The images of a tfvae.data.Split as float32 [N, H, W, 1] in [0, 1]."""
  return data.to_float(split.images, split.info).numpy()


def _picks(num_images, count, seed):
  """`count` distinct indices (fewer if there are not enough) into num_images, seeded."""
  return np.random.RandomState(seed).permutation(num_images)[:count]


def check_picture(trained, kind):
  """Raises a one-line ValueError unless the TrainedModel can draw picture `kind`."""
  if kind not in KINDS:
    raise ValueError(f'unknown picture kind {kind!r}; valid: {", ".join(KINDS)}')
  if kind in NEEDS_Z2 and trained.z_size != 2:
    raise ValueError(f'--kind={kind} needs a 2-D latent space, but config '
                     f'{trained.config_name} has z_size={trained.z_size}; train mnist_fc_z2 '
                     'or frey_face_fc_z2 (or any config with --hparams=z_size=2)')


def write_pictures(trained, kind, output_dir, split=None, num=64, seed=0, num_steps=8,
                   method='linear'):
  """Writes the picture `kind` of a TrainedModel to output_dir/<kind>.png; returns its path.

  prior:          num samples from the prior, ceil(sqrt(num)) a row (the paper's figure 5).
  reconstruction: num images of `split` (a tfvae.data.Split), each beside its reconstruction.
  manifold:       decoded means over a floor(sqrt(num))^2 grid of z (figure 4; z_size 2).
  interpolation:  max(1, num // num_steps) rows: a test image, num_steps decoded steps
                  between its posterior mean and another's (`method` linear or slerp), the
                  other image.
  scatter:        the posterior means of every image of `split`, coloured by label (z_size 2).
  """
  check_picture(trained, kind)
  if kind in NEEDS_DATA and split is None:
    raise ValueError(f'--kind={kind} needs images of the dataset')
  path = os.path.join(output_dir, f'{kind}.png')
  if kind == 'scatter':
    x = float_images(split)
    means = np.concatenate([trained.encode(x[i:i + 1000])[0] for i in range(0, len(x), 1000)])
    return scatter_png(means, split.labels, path)
  if kind == 'prior':
    grid = image_grid(trained.sample(num, seed=seed))
  elif kind == 'manifold':
    side = max(1, math.isqrt(num))
    grid = image_grid(trained.decode(manifold_latents(side, trained.z_size)), num_cols=side,
                      border=0)
  elif kind == 'reconstruction':
    x = float_images(split)[_picks(len(split.images), num, seed)]
    grid = _pairs_grid(x, trained.reconstruct(x, seed=seed))
  else:
    rows = max(1, num // num_steps)
    x = float_images(split)[_picks(len(split.images), 2 * rows, seed)]
    if len(x) < 2:
      raise ValueError('--kind=interpolation needs at least 2 images in the split')
    strips = [np.concatenate([x[i:i + 1], trained.interpolate(x[i], x[i + 1], num_steps,
                                                              method), x[i + 1:i + 2]])
              for i in range(0, len(x) - 1, 2)]
    grid = image_grid(np.concatenate(strips), num_cols=num_steps + 2)
  return write_png(path, grid)
