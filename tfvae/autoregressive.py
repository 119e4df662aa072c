"""Autoregressive decoders: p(x|z) = prod_d Bernoulli(x_d; sigmoid(l_d(x_<d, z))).

The D = H * W * C pixels are taken in raster order; the logit l_d of pixel d depends on the
pixels before it and on z alone, so p(x|z) is a proper distribution whose log-probability
takes one pass:

    c = MLP(z)                    the hidden layers of MLPDecoder (the context)   [..., B, Hc]
    f = features(x)               what the pixels contribute, z-free              [B, ...]
    l = logits(f, c)              [..., B, D]

Since f does not depend on z, `log_prob(x, z)` computes it once per image and shares it with
the image's K latent samples, so importance-weighted evaluation costs little more than for a
factorised decoder. The encoder, the standard-normal prior and the analytic KL are unchanged.

- `MADEDecoder`: f = the masked linear maps of MADE (Germain et al. 2015) plus direct
  connections from every earlier pixel (as in DARN, Gregor et al. 2014); c shifts MADE's
  hidden units and the logits.
- `PixelCNNDecoder`: f = a PixelCNN (van den Oord et al. 2016): one layer over the pixels
  above and to the left of each pixel in a k x k window, its weights shared by every position
  (a masked convolution), optionally deepened by residual 3x3 masked convolutions. c gives
  each pixel a global logit and weighs the local features: l_d = a_d(c) + sum_j f_dj g_j(c).

Pictures (`images`) are the mean-field pass x_d = sigmoid(l_d(x_<d, z)), each probability fed
to the later pixels in place of a sample; `decoder(z).sample()` draws true samples (D passes).
"""

import abc
import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.decoders import BaseDecoder
from tfvae.errors import UserError
from tfvae.likelihoods import bernoulli_log_prob
from tfvae import layers
from tfvae.pixel_head import MaskedConv2D

tfd = tfp.distributions


class AutoregressiveDecoder(BaseDecoder):
  """A Bernoulli decoder autoregressive over the pixels; subclasses give features and logits."""

  stacks_layers = False  # whether autoregressive_layers deepens its features

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(hparams, image_shape, **kwargs)
    name = type(self).__name__
    if hparams.likelihood != 'bernoulli':
      raise UserError(f'{name} is autoregressive over binary pixels: it needs '
                      f'likelihood=bernoulli, got likelihood={hparams.likelihood}')
    if hparams.autoregressive_layers and not self.stacks_layers:
      raise UserError(f'{name} is autoregressive over the pixels already; '
                      'autoregressive_layers (a head for factorised decoders) must be 0, got '
                      f'{hparams.autoregressive_layers}')
    self._act = layers.activation(hparams.activation)
    self._num_pixels = math.prod(self.image_shape)
    self._hidden = layers.mlp(self, list(reversed(hparams.hidden_sizes)), hparams.activation)

  def context(self, z):
    """c = MLP(z) [..., Hc] for z [..., z_size]."""
    return layers.apply(self._hidden, tf.cast(z, self.compute_dtype))

  @abc.abstractmethod
  def features(self, x):
    """What images x [..., H, W, C] contribute to the logits; independent of z."""

  @abc.abstractmethod
  def logits_from(self, features, c):
    """l [..., B, D] float32 from features(x) and contexts c [..., B, Hc] (the leading
    dimensions of c broadcast over the features)."""

  def logits(self, x, c):
    """l [..., B, D] for images x [..., B, H, W, C] and contexts c [..., B, Hc] (the leading
    dimensions broadcast)."""
    return self.logits_from(self.features(x), c)

  def call(self, z):
    """p(x|z) as tfd.Autoregressive: log_prob takes one pass, sample() D passes."""
    c = self.context(z)

    def pixels_given(x):  # x [..., B, H, W, C]
      logits = tf.reshape(self.logits(x, c), tf.shape(x))
      return tfd.Independent(tfd.Bernoulli(logits=logits, dtype=tf.float32),
                             reinterpreted_batch_ndims=3)

    zeros = tf.zeros(tf.concat([tf.shape(z)[:1], self.image_shape], 0))
    return tfd.Autoregressive(pixels_given, sample0=zeros, num_steps=self._num_pixels)

  def log_prob(self, x, z):
    """log p(x|z_k) [K, B]: one pass, the features of x shared by the K latent samples."""
    x = tf.cast(x, tf.float32)
    logits = self.logits(x, self.context(z))
    return bernoulli_log_prob(logits, tf.reshape(x, [-1, self._num_pixels]), -1)

  def images(self, z):
    """The mean-field pass x_d = sigmoid(l_d(x_<d, z)), pixel by pixel: deterministic,
    [B, H, W, C]."""
    return self._mean_field(tf.convert_to_tensor(z))

  @tf.function(reduce_retracing=True)
  def _mean_field(self, z):
    """images() as one graph, its D-step loop free of Python."""
    c = self.context(z)
    canvas = tf.zeros(tf.concat([tf.shape(z)[:1], [self._num_pixels]], 0))

    def step(d, canvas):
      x = tf.reshape(canvas, tf.concat([[-1], self.image_shape], 0))
      p = tf.sigmoid(tf.gather(self.logits(x, c), d, axis=1))       # [B]
      return d + 1, canvas + p[:, tf.newaxis] * tf.one_hot(d, self._num_pixels)

    _, canvas = tf.while_loop(lambda d, _: d < self._num_pixels, step, (0, canvas))
    return tf.reshape(canvas, tf.concat([[-1], self.image_shape], 0))


def made_degrees(num_units, num_pixels):
  """MADE degrees of num_units hidden units over num_pixels = D inputs, spread evenly over
  [1, D - 1]: m_k = 1 + floor(k (D - 1) / num_units), int [num_units]."""
  return 1 + np.arange(num_units) * (num_pixels - 1) // num_units


class MaskedDense(keras.layers.Layer):
  """y = x @ (M * W) [..., out] for x [..., in], no bias, where M[i, j] = 1 exactly when
  in_degrees[i] <= out_degrees[j] (strict: <). With pixel d at degree d this is MADE's way
  of letting output j see only the inputs it may depend on."""

  def __init__(self, in_degrees, out_degrees, strict, **kwargs):
    super().__init__(**kwargs)
    self._in_degrees = np.asarray(in_degrees, np.int32)
    self._out_degrees = np.asarray(out_degrees, np.int32)
    self._strict = strict

  def build(self, input_shape):
    self.kernel = self.add_weight(name='kernel', initializer='glorot_uniform',
                                  shape=(len(self._in_degrees), len(self._out_degrees)))

  def mask(self):
    """M [in, out], 0/1 float32."""
    before = tf.constant(self._in_degrees)[:, tf.newaxis]
    after = tf.constant(self._out_degrees)[tf.newaxis, :]
    return tf.cast(before < after if self._strict else before <= after, tf.float32)

  def call(self, x):
    kernel = tf.cast(tf.convert_to_tensor(self.kernel) * self.mask(), self.compute_dtype)
    flat = tf.reshape(x, [-1, kernel.shape[0]]) @ kernel
    return tf.reshape(flat, tf.concat([tf.shape(x)[:-1], [kernel.shape[1]]], 0))


class MADEDecoder(AutoregressiveDecoder):
  """MADE over the pixels, shifted by the context c = MLP(z):

      u = act((M_in * W_in) x + U c + b)        one MADE hidden layer of A units   [..., B, A]
      l = (M_out * W_out) u + (M_dir * W_dir) x + V c + b'                          [..., B, D]

  Unit k has a degree m_k in [1, D - 1] (`made_degrees`) and sees the pixels d <= m_k; logit
  d sees the units with m_k < d and, directly, every pixel before d.
  A = hparams.autoregressive_units.
  """

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(hparams, image_shape, **kwargs)
    pixels = np.arange(1, self._num_pixels + 1)
    degrees = made_degrees(hparams.autoregressive_units, self._num_pixels)
    # Under glu each unit is gated by a second pre-activation of the same degree.
    pre_degrees = np.tile(degrees, 2 if hparams.activation == layers.GATED else 1)
    self._context_to_units = keras.layers.Dense(len(pre_degrees), name='context_to_units')
    self._pixels_to_units = MaskedDense(pixels, pre_degrees, strict=False,
                                        name='pixels_to_units')
    self._units_to_logits = MaskedDense(degrees, pixels, strict=True, name='units_to_logits')
    self._pixels_to_logits = MaskedDense(pixels, pixels, strict=True, name='pixels_to_logits')
    self._context_to_logits = keras.layers.Dense(self._num_pixels, name='context_to_logits')
    self._units = hparams.autoregressive_units

  def floats_per_sample(self):
    """BaseDecoder's estimate plus MADE's hidden units."""
    return super().floats_per_sample() + 4 * self._units

  def features(self, x):
    """((M_in * W_in) x [..., A'], (M_dir * W_dir) x [..., D]) for images x [..., H, W, C]."""
    x = tf.reshape(tf.cast(x, self.compute_dtype),
                   tf.concat([tf.shape(x)[:-3], [self._num_pixels]], 0))
    return self._pixels_to_units(x), self._pixels_to_logits(x)

  def logits_from(self, features, c):
    to_units, direct = features
    units = self._act(to_units + self._context_to_units(c))
    return tf.cast(self._units_to_logits(units) + direct + self._context_to_logits(c),
                   tf.float32)


def causal_taps(window, height, width):
  """Indices [H * W, T] of the T = (k * k - 1) / 2 pixels in each pixel's causal k x k window
  (the rows above it and the pixels left of it in its row, k = window, odd), in raster
  order; positions outside the image hold H * W (an appended zero pixel)."""
  half = window // 2
  offsets = [(dr, dc) for dr in range(-half, 1) for dc in range(-half, half + 1)
             if dr < 0 or dc < 0]
  rows, cols = np.divmod(np.arange(height * width), width)
  taps = np.full((height * width, len(offsets)), height * width, np.int32)
  for t, (dr, dc) in enumerate(offsets):
    r, c = rows + dr, cols + dc
    inside = (r >= 0) & (c >= 0) & (c < width)
    taps[inside, t] = (r * width + c)[inside]
  return taps


class CausalWindow(keras.layers.Layer):
  """f = act(P W + b) [..., D, units]: the pixels P [..., D, T] of each pixel's causal k x k
  window (`causal_taps`) through one dense layer shared by every position, as the first,
  masked layer of a PixelCNN, for one-channel images x [..., H, W, 1]."""

  def __init__(self, units, window, image_shape, activation_name, **kwargs):
    super().__init__(**kwargs)
    self._taps = causal_taps(window, *image_shape[:2])
    self._num_pixels = len(self._taps)
    self._dense = layers.hidden(keras.layers.Dense, units, activation_name, name='dense')

  def call(self, x):
    flat = tf.reshape(x, tf.concat([tf.shape(x)[:-3], [self._num_pixels]], 0))
    padded = tf.concat([flat, tf.zeros_like(flat[..., :1])], -1)
    return self._dense(tf.gather(padded, self._taps, axis=-1))


class PixelCNNDecoder(AutoregressiveDecoder):
  """A PixelCNN over one-channel images, weighed by the context c = MLP(z):

      f_1 = act(P W + b)                  features of each pixel's causal window   [B, D, F]
      f_l = f_l-1 + act(B_l f_l-1)        B_l: 3x3 convolutions masked to the pixel and those
                                          before it (PixelCNN's mask B), l = 2 .. L
      l_d = a_d(c) + sum_j f_dj g_j(c)    a = A c + a_0 [..., B, D], g = G c + g_0 [..., B, F]

  P [B, D, T] holds the pixels above and to the left of each pixel within a k x k window
  (`CausalWindow`; not the pixel itself), W [T, F] is shared by every position; F =
  hparams.autoregressive_units, k = hparams.autoregressive_window, L =
  max(1, hparams.autoregressive_layers). f = f_L depends on x alone, so the deeper stack costs
  once per image, not once per latent sample.
  """

  stacks_layers = True

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(hparams, image_shape, **kwargs)
    window = hparams.autoregressive_window  # odd, >= 3 (the hparam's range)
    if self.image_shape[-1] != 1:
      raise UserError(f'PixelCNNDecoder models one-channel images; the images have '
                      f'shape {self.image_shape}')
    units = hparams.autoregressive_units
    self._units = units
    self._window = CausalWindow(units, window, self.image_shape,
                                hparams.activation, name='window')
    width = 2 * units if hparams.activation == layers.GATED else units
    self._blocks = layers.track_layers(self, 'block', [
        MaskedConv2D(width, 3, include_centre=True, name=f'block_{l}')
        for l in range(2, hparams.autoregressive_layers + 1)])
    self._context_to_logits = keras.layers.Dense(self._num_pixels, name='context_to_logits')
    self._context_to_weights = keras.layers.Dense(units, name='context_to_weights')

  def features(self, x):
    """f [..., D, F] for images x [..., H, W, 1]."""
    features = self._window(tf.cast(x, self.compute_dtype))
    if not self._blocks:
      return features
    height, width = self.image_shape[:2]
    maps = tf.reshape(features, [-1, height, width, self._units])
    for block in self._blocks:
      maps = maps + self._act(block(maps))
    return tf.reshape(maps, tf.shape(features))

  def logits_from(self, features, c):
    weights = self._context_to_weights(c)                                # [..., B, F]
    if features.shape.rank == 3 and weights.shape.rank == 3:
      # K latent samples per image (log_prob): one batched product, features not copied K times.
      local = tf.einsum('bdf,kbf->kbd', features, weights)
    else:
      local = tf.squeeze(tf.linalg.matmul(features, weights[..., tf.newaxis]), -1)
    return tf.cast(self._context_to_logits(c) + local, tf.float32)
