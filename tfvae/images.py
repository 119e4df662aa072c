"""Pictures of what a VAE learned: image grids, PNG files, the 2-D manifold and scatter plots.

Images are float [N, H, W, C] in [0, 1] (or uint8), C 1 (greyscale) or 3 (RGB), rows top to
bottom as stored, so every dataset, Frey Face's 28x20 faces included, comes out right side
up. Plain grids are written pixel for pixel with tf.io.encode_png and tf.io.gfile; the scatter
plot and grids with a title are matplotlib figures (tfvae.plots).

`write_pictures` makes the pictures bin/sample.py offers (the paper's figures 4 and 5 and
more); `summary_images` makes TensorBoard grids during training.
"""

import math
import os

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import data
from tfvae import noise
from tfvae import plots

KINDS = ('prior', 'reconstruction', 'manifold', 'interpolation', 'scatter')
NEEDS_DATA = ('reconstruction', 'interpolation', 'scatter')
NEEDS_Z2 = ('manifold', 'scatter')

# Colour bar names of the labelled datasets whose labels are not their own names.
CLASS_NAMES = {'fashion_mnist': ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                                 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')}


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
  eps = noise.normal(noise.key(seed, 'eval_posterior'), rows, 1, model.z_size)[0]
  z_posterior = model.posterior_sample(x, eps)
  z_prior = model.prior_sample(num, seed)
  decoded = model.decode_images(tf.concat([z_posterior, z_prior], 0)).numpy()
  count = int(rows)
  return {'reconstructions': _pairs_grid(x.numpy(), decoded[:count])[None],
          'prior_samples': image_grid(decoded[count:])[None]}


def float_images(split, rows=slice(None)):
  """Images `rows` (default all) of a tfvae.data.Split as float32 [N, H, W, C] in [0, 1]."""
  return data.to_float(split.images[rows], split.info).numpy()


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
                   method='linear', title=None, temperature=1.0):
  """Writes the picture `kind` of a TrainedModel to output_dir/<kind>.png; returns its path.

  Grids are written pixel for pixel, or, given a `title`, as a figure with the title above
  the grid (tfvae.plots.titled_image); the scatter plot is a matplotlib figure, titled if given.

  prior:          num samples from the prior N(0, temperature^2 I), ceil(sqrt(num)) a row
                  (the paper's figure 5).
  reconstruction: num images of `split` (a tfvae.data.Split), each beside its reconstruction.
  manifold:       decoded means over a floor(sqrt(num))^2 grid of z (figure 4; z_size 2).
  interpolation:  max(1, num // num_steps) rows: a test image, num_steps decoded steps
                  between its posterior mean and another's (`method` linear or slerp), the
                  other image.
  scatter:        the posterior means of every image of `split`, coloured by label with a
                  colour bar (one colour without labels); z_size 2.
  """
  check_picture(trained, kind)
  if kind in NEEDS_DATA and split is None:
    raise ValueError(f'--kind={kind} needs images of the dataset')
  path = os.path.join(output_dir, f'{kind}.png')
  if kind == 'scatter':
    means = np.concatenate([trained.encode(float_images(split, slice(i, i + 1000)))[0]
                            for i in range(0, len(split.images), 1000)])
    return plots.scatter(means, split.labels, path, title=title,
                         class_names=CLASS_NAMES.get(split.info.name))
  if kind == 'prior':
    grid = image_grid(trained.sample(num, temperature=temperature, seed=seed))
  elif kind == 'manifold':
    side = max(1, math.isqrt(num))
    grid = image_grid(trained.decode(manifold_latents(side, trained.z_size)), num_cols=side,
                      border=0)
  elif kind == 'reconstruction':
    x = float_images(split, _picks(len(split.images), num, seed))
    grid = _pairs_grid(x, trained.reconstruct(x, seed=seed))
  else:
    rows = max(1, num // num_steps)
    x = float_images(split, _picks(len(split.images), 2 * rows, seed))
    if len(x) < 2:
      raise ValueError('--kind=interpolation needs at least 2 images in the split')
    strips = [np.concatenate([x[i:i + 1], trained.interpolate(x[i], x[i + 1], num_steps,
                                                              method), x[i + 1:i + 2]])
              for i in range(0, len(x) - 1, 2)]
    grid = image_grid(np.concatenate(strips), num_cols=num_steps + 2)
  return write_png(path, grid) if title is None else plots.titled_image(grid, path, title)
