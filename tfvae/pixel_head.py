"""A local autoregressive head over colour pixels (PixelVAE, Gulrajani et al. 2016): the
factorised decoder's per-pixel parameters p(z) are corrected by a few masked convolutions over
the image itself, so that p(x|z) = prod_d p(x_d | x_<d, z) over the pixels d in raster order,
each pixel's C channels under the decoder's likelihood (jointly with channel_coupling):

    h_0    = A(x) + U p(z)                    A: a k x k convolution masked to the pixels
                                              strictly before each one (rows above, and left
                                              in its row): mask A                 [N, H, W, F]
    h_l    = h_l-1 + B_l(act(h_l-1))          B_l: 3x3 convolutions masked to the pixel and
                                              those before it (mask B), l = 1 .. L - 1
    params = p(z) + V act(h_L-1) + D(x)       [N, H, W, C k]; D: a k x k convolution with
                                              mask A, a direct linear path from the earlier
                                              pixels (as MADE's direct connections); V and D
                                              start at zero, so the head starts as the
                                              factorised decoder

L = autoregressive_layers, F = autoregressive_units, k = autoregressive_window. Pixel d's
parameters depend on z and on the pixels before d within R = k // 2 + L - 1 rows above and R
columns either side: log p(x|z) takes one pass over x (teacher forcing), A(x) and D(x)
computed once per image and shared by its K latent samples. Drawing x takes one step per pixel,
each over the (R + 1) x (2R + 1) window that holds the pixel's receptive field (`draw`): H W
steps of a fixed small size.
"""

import keras
import numpy as np
import tensorflow as tf

from tfvae import layers
from tfvae import noise
from tfvae.errors import UserError


def causal_mask(window, in_channels, out_channels, include_centre):
  """The 0/1 mask [k, k, in, out] of a k x k kernel that sees the rows above its centre and,
  in the centre row, the columns left of it (and the centre itself when include_centre)."""
  mask = np.zeros((window, window), np.float32)
  half = window // 2
  mask[:half, :] = 1.0
  mask[half, :half + (1 if include_centre else 0)] = 1.0
  return np.broadcast_to(mask[:, :, None, None],
                         (window, window, in_channels, out_channels)).copy()


class MaskedConv2D(keras.layers.Layer):
  """y = conv(x, M * W) + b, 'same' zero padding: a causal convolution (causal_mask)."""

  def __init__(self, filters, window, include_centre, use_bias=True, zero=False, **kwargs):
    super().__init__(**kwargs)
    self._filters = filters
    self._window = window
    self._include_centre = include_centre
    self._use_bias = use_bias
    self._zero = zero

  def build(self, input_shape):
    shape = (self._window, self._window, input_shape[-1], self._filters)
    self.kernel = self.add_weight(name='kernel', shape=shape,
                                  initializer='zeros' if self._zero else 'glorot_uniform')
    self.bias = (self.add_weight(name='bias', shape=(self._filters,), initializer='zeros')
                 if self._use_bias else None)
    self._mask = causal_mask(self._window, input_shape[-1], self._filters,
                             self._include_centre)

  def call(self, x):
    kernel = tf.cast(tf.convert_to_tensor(self.kernel) * self._mask, self.compute_dtype)
    y = tf.nn.conv2d(x, kernel, strides=1, padding='SAME')
    return y if self.bias is None else y + tf.cast(self.bias, self.compute_dtype)


class PixelHead(keras.layers.Layer):
  """The head (module docstring) for images of image_shape [H, W, C] and a likelihood with
  k = likelihood.num_params parameters per sub-pixel and a `sample_with` method."""

  def __init__(self, hparams, image_shape, likelihood, **kwargs):
    super().__init__(**kwargs)
    if hparams.likelihood != 'logistic_mixture':
      raise UserError(f'autoregressive_layers={hparams.autoregressive_layers} adds a local '
                      'autoregressive head over 8-bit pixels: it needs '
                      f'likelihood=logistic_mixture, got likelihood={hparams.likelihood}')
    if hparams.activation == layers.GATED:
      raise UserError('the autoregressive head takes an elementwise activation (relu, elu, '
                      'swish, gelu, ...), not glu')
    self.image_shape = tuple(image_shape)
    self._likelihood = likelihood
    self._act = layers.activation(hparams.activation)
    units, window, num_layers = (hparams.autoregressive_units, hparams.autoregressive_window,
                                 hparams.autoregressive_layers)
    self.radius = window // 2 + num_layers - 1
    self.units = units
    self.num_layers = num_layers
    self.pixels = MaskedConv2D(units, window, include_centre=False, name='pixels')
    self.params_in = keras.layers.Conv2D(units, 1, use_bias=False, name='params_in')
    self._blocks = layers.track_layers(self, 'block', [
        MaskedConv2D(units, 3, include_centre=True, name=f'block_{l}')
        for l in range(1, num_layers)])
    channels = self.image_shape[-1]
    self.params_out = keras.layers.Conv2D(channels * likelihood.num_params, 1,
                                          kernel_initializer='zeros', name='params_out')
    self.direct = MaskedConv2D(channels * likelihood.num_params, window, include_centre=False,
                               use_bias=False, zero=True, name='direct')

  def build(self, input_shape=None):
    """Creates every weight (the head's input shapes follow from the image's)."""
    height, width, channels = self.image_shape
    maps = lambda depth: (None, height, width, depth)
    self.pixels.build(maps(channels))
    self.direct.build(maps(channels))
    self.params_in.build(maps(channels * self._likelihood.num_params))
    for block in self._blocks:
      block.build(maps(self.units))
    self.params_out.build(maps(self.units))
    super().build(input_shape)

  def features(self, x):
    """(A(x) [B, H, W, F], D(x) [B, H, W, C k] float32): what the pixels give the head,
    z-free."""
    x = tf.cast(x, self.compute_dtype)
    return self.pixels(x), tf.cast(self.direct(x), tf.float32)

  def _head(self, features, p, valid=None):
    """The parameters [N, h, w, C k] float32 from features(x) and p [N, h, w, C k] (leading
    dimensions alike); valid [1, h, w, 1] (default: all) zeroes the convolutions' inputs
    outside the image."""
    a, direct = features
    gate = (lambda t: t) if valid is None else (lambda t: t * valid)
    h = a + self.params_in(tf.cast(p, self.compute_dtype))
    for block in self._blocks:
      h = h + block(gate(self._act(h)))
    return (tf.cast(p, tf.float32) + direct
            + tf.cast(self.params_out(self._act(h)), tf.float32))

  def params(self, x, p):
    """Teacher forcing: the parameters [K * B, H, W, C k] float32 of every pixel given the
    pixels before it, for images x [B, H, W, C] and factorised parameters p [K * B, H, W,
    C k] (K latent samples per image, image-major within each sample: row k B + b)."""
    features = self.features(x)                                             # [B, H, W, .]
    lead = tf.stack([-1, tf.shape(x)[0]])
    p_k = tf.reshape(p, tf.concat([lead, tf.shape(p)[1:]], 0))             # [K, B, ...]
    each = lambda f: tf.broadcast_to(f, tf.concat([tf.shape(p_k)[:2], tf.shape(f)[1:]], 0))
    flat = lambda t: tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0))
    return self._head([flat(each(f)) for f in features], flat(p_k))

  def draw(self, p, pick):
    """Images [N, H, W, C] drawn pixel by pixel from factorised parameters p [N, H, W, C k]:
    pixel d = pick(params [N, C, k], d) [N, C], params its parameters given the pixels
    drawn before it, computed over its (R + 1) x (2R + 1) window (exactly what `params`
    gives on the finished image)."""
    height, width, channels = self.image_shape
    radius, num_params = self.radius, self._likelihood.num_params
    padding = [[0, 0], [radius, 0], [radius, radius], [0, 0]]
    p = tf.pad(tf.cast(p, tf.float32), padding)
    valid = tf.pad(tf.ones([1, height, width, 1], self.compute_dtype), padding)
    padded_width = width + 2 * radius
    canvas = tf.zeros(tf.concat([tf.shape(p)[:1], [height + radius, padded_width, channels]],
                                0))
    size = [radius + 1, 2 * radius + 1]

    def step(d, canvas):
      row, col = d // width, d % width
      window = lambda t: tf.slice(t, [0, row, col, 0], [-1] + size + [-1])
      features = self.features(window(canvas))
      params = self._head(features, window(p), window(valid))[:, radius, radius]  # [N, C k]
      pixel = pick(tf.reshape(params, [-1, channels, num_params]), d)        # [N, C]
      at = tf.one_hot((row + radius) * padded_width + col + radius,
                      (height + radius) * padded_width)
      at = tf.reshape(at, [1, height + radius, padded_width, 1])
      return d + 1, canvas + pixel[:, tf.newaxis, tf.newaxis, :] * at

    _, canvas = tf.while_loop(lambda d, _: d < height * width, step, (0, canvas))
    return canvas[:, radius:, radius:radius + width]

  def mean_pick(self, params, d):
    """Each pixel's conditional mean (the likelihood's mean at its parameters), [N, C]."""
    del d
    return self._likelihood.distribution(params).mean()

  def sample_pick(self, seed):
    """A pick drawing pixel d of row n ~ p(x_d | x_<d, z) from counter-based uniforms of
    (seed, n, d) (tfvae.noise, stream 'decoder_sample')."""
    key = noise.key(seed, 'decoder_sample')
    channels = self.image_shape[-1]

    def pick(params, d):
      u = noise.uniform(key, tf.shape(params)[0], 1, 2 * channels, step=d)[0]
      return self._likelihood.sample_with(params, tf.reshape(u, [-1, channels, 2]))
    return pick

  def floats_per_sample(self):
    """The float32 values the head keeps live per latent sample, roughly."""
    height, width, _ = self.image_shape
    return 2 * height * width * self.units * (self.num_layers + 1)
