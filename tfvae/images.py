"""Pictures of what a VAE learned: image grids, PNG files, the 2-D manifold and scatter plots.

Images are float [N, H, W, C] in [0, 1] (or uint8), C 1 (greyscale) or 3 (RGB), rows top to
bottom as stored, so every dataset, Frey Face's 28x20 faces included, comes out right side
up.

`write_pictures` makes the pictures bin/sample.py offers (the paper's figures 4 and 5 and
more), titled, labelled and scaled to be read without the README (tfvae.plots.image_table);
`summary_images` makes plain grids (image_grid) for TensorBoard during training.
"""

import math
import os

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import data
from tfvae import noise
from tfvae import plots
from tfvae.errors import UserError
from tfvae.errors import did_you_mean

KINDS = ('prior', 'reconstruction', 'manifold', 'interpolation', 'scatter', 'temperatures',
         'levels')
NEEDS_DATA = ('reconstruction', 'interpolation', 'scatter', 'levels')
# temperatures: one row of prior samples per temperature
TEMPERATURES = (0.0, 0.4, 0.6, 0.8, 1.0)
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
    raise UserError(f'image_grid wants a non-empty batch [N, H, W, C], got shape '
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


def manifold_latents(num_per_side, z_size=2):
  """z [num_per_side^2, z_size] on the grid Phi^-1((i + 0.5) / num_per_side) (the paper's
  figure 4): row r of the grid holds z_2 from high (r = 0) to low, z_1 rises along it;
  dimensions past the second are 0."""
  if z_size < 2:
    raise UserError(f'a 2-D manifold needs z_size >= 2, got {z_size}')
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


def _images_of(split, count, seed, kind, split_name):
  """`count` seeded picks of the split's images as floats [n, H, W, C], n = min(count, the
  split's size); a warning naming both numbers when the split has fewer."""
  available = len(split.images)
  if count > available:
    logging.warning('%s: %d images asked for, but the %s split has %d; drawing %d.', kind,
                    count, split_name, available, available)
  return float_images(split, _picks(available, count, seed))


def check_picture(trained, kind):
  """Raises a one-line UserError unless the TrainedModel can draw picture `kind`."""
  if kind not in KINDS:
    raise UserError(f'unknown picture kind {kind!r}{did_you_mean(kind, KINDS)}; valid: '
                    f'{", ".join(KINDS)}')
  if kind in NEEDS_Z2 and trained.z_size != 2:
    raise UserError(f'--kind={kind} needs a 2-D latent space, but config '
                    f'{trained.config_name} has z_size={trained.z_size}; train mnist_fc_z2 '
                    'or frey_face_fc_z2 (or any config with --hparams=z_size=2)')


def _rows(images, num_cols):
  """images [N, H, W, C] as table rows [ceil(N / num_cols), num_cols, H, W, C], the last
  row padded with white."""
  rows = math.ceil(len(images) / num_cols)
  padded = np.ones((rows * num_cols,) + images.shape[1:], np.float32)
  padded[:len(images)] = images
  return padded.reshape((rows, num_cols) + images.shape[1:])


def write_pictures(trained, kind, output_dir, split=None, num=64, seed=0, num_steps=8,
                   method='linear', title=None, temperature=1.0, split_name='test'):
  """Writes the picture `kind` of a TrainedModel to output_dir/<kind>.png; returns its path.

  Every picture reads without the README: a title (default: the config, its step and what is
  shown; '' for none), a caption or labels saying what each image is, and images scaled up to
  a legible size (tfvae.plots.image_table). `split` is a tfvae.data.Split called split_name.

  prior:          num samples from the prior N(0, temperature^2 I), ceil(sqrt(num)) a row
                  (the paper's figure 5).
  reconstruction: num images of `split`, each above its reconstruction, rows labelled.
  manifold:       decoded means over a floor(sqrt(num))^2 grid of z (figure 4; z_size 2), its
                  axes labelled z1, z2.
  interpolation:  max(1, num // num_steps) rows: a framed test image, num_steps images decoded
                  along the path (`method` linear or slerp) between its posterior mean and
                  another's (t from 0 to 1 in the column labels), the other image, framed.
  scatter:        the posterior means of every image of `split`, coloured by label with a
                  colour bar (one colour without labels); z_size 2.
  temperatures:   one row of ceil(sqrt(num)) prior samples per temperature in TEMPERATURES
                  (every group's prior scale times T), the same noise in every row.
  levels:         what each latent level encodes: for ceil(sqrt(num)) images of `split`
                  (columns), the image, then rows decoded keeping the posterior of the top
                  k groups and sampling the rest from their priors (temperature), k from
                  every group (a reconstruction) down to none (a prior sample).
  Asking for more images than the split has draws them all, with a warning.
  """
  check_picture(trained, kind)
  if kind in NEEDS_DATA and split is None:
    raise UserError(f'--kind={kind} needs images of the dataset')
  path = os.path.join(output_dir, f'{kind}.png')
  heading = f'{trained.config_name}, step {trained.step}: '
  if kind == 'scatter':
    means = np.concatenate([trained.encode(float_images(split, slice(i, i + 1000)))[0]
                            for i in range(0, len(split.images), 1000)])
    default = f'posterior means of the {len(means)} {split_name} images'
    return plots.scatter(means, split.labels, path, title=_title(title, heading + default),
                         class_names=CLASS_NAMES.get(split.info.name))
  if kind == 'prior':
    x = trained.sample(num, temperature=temperature, seed=seed)
    return plots.image_table(
        _rows(x, math.ceil(math.sqrt(num))), path,
        _title(title, heading + f'{num} samples from the prior'),
        caption=f'each: the decoder\'s mean at z ~ N(0, {temperature:g}\u00b2 I)')
  if kind == 'temperatures':
    cols = math.ceil(math.sqrt(num))
    x = np.stack([trained.sample(cols, temperature=t, seed=seed) for t in TEMPERATURES])
    return plots.image_table(
        x, path, _title(title, heading + 'prior samples at several temperatures'),
        caption='row T: z of every group drawn from its prior with the scale times T '
                '(the same noise in every row)',
        row_labels=[f'T={t:g}' for t in TEMPERATURES])
  if kind == 'levels':
    x = _images_of(split, math.ceil(math.sqrt(num)), seed, kind, split_name)
    names = [name for name, _ in trained.groups]
    kept = range(len(names), -1, -1)
    rows = [x] + [trained.resample(x, k, temperature=temperature, seed=seed) for k in kept]
    labels = ['original'] + [
        'keeps ' + (f'{names[0]}..{names[k - 1]}' if k > 1 else names[0]) if k else 'keeps none'
        for k in kept]
    return plots.image_table(
        np.stack(rows), path,
        _title(title, heading + f'what each of the {len(names)} latent levels encodes'),
        caption=f'row "keeps A..B": those groups from the posterior of the {split_name} image '
                f'above, the lower ones drawn from their priors (T={temperature:g})',
        row_labels=labels)
  if kind == 'manifold':
    side = max(1, math.isqrt(num))
    x = trained.decode(manifold_latents(side, trained.z_size))
    return plots.image_table(
        x.reshape((side, side) + x.shape[1:]), path,
        _title(title, heading + 'the learned 2-D manifold'),
        caption=f'decoded means at z on a {side}\u00d7{side} grid of normal quantiles',
        axis_labels=('z\u2081 \u2192', 'z\u2082 \u2192'), gap=0)
  if kind == 'reconstruction':
    x = _images_of(split, num, seed, kind, split_name)
    cols = math.ceil(math.sqrt(len(x)))
    originals, reconstructions = _rows(x, cols), _rows(trained.reconstruct(x, seed=seed), cols)
    table = np.stack([originals, reconstructions], 1).reshape((-1,) + originals.shape[1:])
    return plots.image_table(
        table, path, _title(title, heading + f'{len(x)} {split_name} images, reconstructed'),
        row_labels=['original', 'reconstruction'] * len(originals), row_group=2)
  rows = max(1, num // num_steps)
  x = _images_of(split, 2 * rows, seed, kind, split_name)
  if len(x) < 2:
    raise UserError('--kind=interpolation needs at least 2 images in the split')
  strips = [np.concatenate([x[i:i + 1], trained.interpolate(x[i], x[i + 1], num_steps,
                                                            method), x[i + 1:i + 2]])
            for i in range(0, len(x) - 1, 2)]
  steps = [f't={t:.2g}' for t in np.linspace(0.0, 1.0, num_steps)]
  return plots.image_table(
      np.stack(strips), path,
      _title(title, heading + f'{method} interpolations between {split_name} images'),
      caption=f'framed: two {split_name} images; between them: decoded at {num_steps} points '
              'of the path between their posterior means',
      column_labels=['image'] + steps + ['image'], framed_columns=(0, -1))


def _title(title, default):
  """The title to draw: `title` as given ('' for none), or `default` when it is None."""
  return default if title is None else title or None
