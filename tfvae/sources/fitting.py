"""Fitting images to one size and channel count: the knobs image_size and channels (0: native).

Channels first (1: luminance round(0.299 R + 0.587 G + 0.114 B); 3: grey tiled to RGB; alpha is
dropped), then with image_size = S a resize that makes the shorter side S (the longer one
round(long * S / short)) with TensorFlow's antialiased bilinear filter, and a centre crop to
S x S at offset (size - S) // 2. Every image of a source must come out the same shape
(`Fitter` says which two differ and which knob fixes it). 0/1 images stay 0/1.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfvae.errors import DataError
from tfvae.sources.streams import CHUNK_BYTES

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 luminance weights


def check_knobs(image_size: int, channels: int) -> None:
  """ValueError unless image_size >= 0 and channels is 0, 1 or 3."""
  if not isinstance(image_size, (int, np.integer)) or image_size < 0:
    raise DataError(f'image_size={image_size!r}: use 0 (native size) or a positive side length')
  if channels not in (0, 1, 3):
    raise DataError(f'channels={channels!r}: use 0 (native), 1 (greyscale) or 3 (RGB)')


def fitted_shape(shape: tuple, image_size: int, channels: int) -> tuple:
  """The (H, W, C) that `fit_images` gives an image of native shape (h, w, c)."""
  height, width, depth = shape
  if image_size:
    height = width = image_size
  return (height, width, channels or depth)


def fit_images(images: np.ndarray, image_size: int = 0, channels: int = 0) -> np.ndarray:
  """uint8 [N, h, w, c] (c in 1..4) -> uint8 [N, H, W, C]: channels converted, then the shorter
  side resized to image_size and centre-cropped to image_size x image_size (module docstring)."""
  check_knobs(image_size, channels)
  images = np.asarray(images)
  if images.dtype != np.uint8 or images.ndim != 4 or not 1 <= images.shape[-1] <= 4:
    raise ValueError(f'fit_images needs uint8 [N, h, w, c] with c in 1..4, got {images.dtype} '
                     f'{images.shape}')
  images = _convert_channels(images, channels)
  return _resize_and_crop(images, image_size) if image_size else images


def _convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
  """[N, h, w, c] -> [N, h, w, channels]: alpha dropped, luminance for 1, grey tiled for 3."""
  depth = images.shape[-1]
  if channels in (0, depth):
    return images
  colour = images[..., :3] if depth >= 3 else images[..., :1]
  if colour.shape[-1] == channels:
    return colour
  if channels == 3:
    return np.repeat(colour, 3, axis=-1)
  luminance = np.round(colour.astype(np.float32) @ _LUMA)
  return np.clip(luminance, 0, 255).astype(np.uint8)[..., None]


def _resize_and_crop(images: np.ndarray, size: int) -> np.ndarray:
  """[N, h, w, c] -> [N, size, size, c]: shorter side resized to size (antialiased bilinear),
  the longer one to round(long * size / short), then the centre size x size."""
  height, width = images.shape[1:3]
  scale = size / min(height, width)
  new_height, new_width = (max(size, int(side * scale + 0.5)) for side in (height, width))
  if (new_height, new_width) != (height, width):
    resized = tf.image.resize(images, (new_height, new_width), method='bilinear', antialias=True)
    images = np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)
  top, left = (new_height - size) // 2, (new_width - size) // 2
  return images[:, top:top + size, left:left + size]


class Fitter:
  """Fits the chunks of one source with the knobs, checking that every image comes out the
  shape of the first one (`shape`)."""

  def __init__(self, spec: str, image_size: int, channels: int):
    self.spec, self.knobs = spec, (image_size, channels)
    self.first = None  # (name, native shape, fitted shape) of the first image

  @property
  def shape(self) -> tuple:
    """(H, W, C) of every fitted image (after the first chunk)."""
    return self.first[2]

  def fit(self, images, names: list) -> np.ndarray:
    """Native images (array [n, h, w, c] or iterable of [h, w, c]) -> fitted [n, H, W, C];
    runs of one native shape (up to CHUNK_BYTES) are fitted together."""
    if isinstance(images, np.ndarray):
      self._check_shape(names[0], images.shape[1:])
      return fit_images(images, *self.knobs)
    fitted, run = [], []
    for name, image in zip(names, images):
      self._check_shape(name, image.shape)
      if run and (image.shape != run[0].shape or (len(run) + 1) * image.nbytes > CHUNK_BYTES):
        fitted.append(fit_images(np.stack(run), *self.knobs))
        run = []
      run.append(image)
    fitted.append(fit_images(np.stack(run), *self.knobs))
    return np.concatenate(fitted)

  def _check_shape(self, name: str, native: tuple) -> None:
    """DataError unless an image of native shape (h, w, c) fits to the first image's shape."""
    fitted = fitted_shape(native, *self.knobs)
    if self.first is None:
      self.first = (name, native, fitted)
    first_name, first_native, first_fitted = self.first
    if fitted == first_fitted:
      return
    if fitted[:2] != first_fitted[:2]:
      fix = 'resize and centre-crop them all with --hparams=image_size=N'
    else:
      fix = 'convert them with --hparams=channels=1 (greyscale) or channels=3 (RGB)'
    shapes = 'x'.join(map(str, first_native)), 'x'.join(map(str, native))
    raise DataError(f'{self.spec}: {first_name} is {shapes[0]} but {name} is {shapes[1]} '
                    f'(HxWxC); images must share one shape: {fix}')
