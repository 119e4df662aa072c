"""Decoders: z -> the likelihood p(x|z) over images [H, W, C].

Every decoder has three faces:

- `decoder(z)`: p(x|z) as a tfd distribution, batch shape [B], event shape [H, W, C];
- `decoder.log_prob(x, z)`: log p(x|z_k) [K, B] for images x [B, H, W, C] and latents
  z [K, B, z_size], the form the objective and the importance-weighted evaluation need
  (x broadcast over the K samples, never tiled);
- `decoder.images(z)`: the images [B, H, W, C] pictures show for z.

The factorised decoders (MLP, conv) turn z into per-pixel parameters [B, H, W, C, k] and a
likelihood makes them independent over pixels (the paper's appendix C):

- bernoulli: p(x|z) = prod Bernoulli(x; sigmoid(logits)), for binary or [0,1] images.
- gaussian:  p(x|z) = prod Normal(x; sigmoid(m), softplus(s) + min_scale), for real-valued
  images such as Frey Face (the paper constrains the mean to (0, 1) with a sigmoid).
- logistic_mixture: each sub-pixel a mixture of num_mixtures logistics discretised to the 256
  values of 8-bit data, a proper discrete likelihood (bits/dim comparable with published
  figures for CIFAR-10 and the like).

The likelihoods live in `tfvae.likelihoods`.
Their `images` are the likelihood's mean. The decoders in `tfvae.autoregressive` are
autoregressive over the pixels instead: p(x|z) = prod_d Bernoulli(x_d; sigmoid(l_d(x_<d, z))).

With autoregressive_layers > 0 a factorised decoder of 8-bit images gains a local
autoregressive head (`tfvae.pixel_head`, PixelVAE's): its per-pixel parameters are corrected
by masked convolutions over the pixels before each one, p(x|z) = prod_d p(x_d | x_<d, z).
log_prob stays one pass; `images` is the pass that feeds each pixel's conditional mean to the
pixels after it, and `sample` draws pixel by pixel with counter-based noise.
"""

import abc
import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import layers
from tfvae import pixel_head
from tfvae.likelihoods import make_likelihood

tfd = tfp.distributions


class BaseDecoder(keras.layers.Layer, metaclass=abc.ABCMeta):
  """Maps z [B, z_size] to p(x|z), a distribution over images [H, W, C]."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(**kwargs)
    self.image_shape = tuple(image_shape)
    self.likelihood = make_likelihood(hparams)
    self.likelihood.check_channels(self.image_shape[-1])
    self._hidden_sizes = list(hparams.hidden_sizes)

  @abc.abstractmethod
  def call(self, z):
    """p(x|z): a distribution with batch shape [B] and event shape [H, W, C]."""

  @abc.abstractmethod
  def log_prob(self, x, z):
    """log p(x|z_k) [K, B] for images x [B, H, W, C] and latents z [K, B, z_size]."""

  @abc.abstractmethod
  def images(self, z):
    """The images [B, H, W, C] in [0, 1] that pictures show for latents z [B, z_size]."""

  def sample(self, z, seed=None):
    """x ~ p(x|z), [B, H, W, C]."""
    return self(z).sample(seed=seed)

  def floats_per_sample(self):
    """A rough upper estimate of the float32 values log_prob keeps live per latent sample
    (its hidden activations and pixel parameters); it sizes evaluation's chunks."""
    return (4 * math.prod(self.image_shape) * self.likelihood.num_params
            + 2 * sum(self._hidden_sizes))


class FactorisedDecoder(BaseDecoder):
  """p(x|z) independent over pixels: a network gives each pixel's likelihood parameters; with
  autoregressive_layers > 0, a local autoregressive head (tfvae.pixel_head) corrects them
  from the pixels before each one."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(hparams, image_shape, **kwargs)
    self.head = (pixel_head.PixelHead(hparams, image_shape, self.likelihood, name='head')
                 if hparams.autoregressive_layers else None)

  def build(self, input_shape):
    """The head's weights (p(x|z) with the head is built lazily, on first use)."""
    if self.head is not None:
      self.head.build()
    super().build(input_shape)

  @abc.abstractmethod
  def pixel_params(self, z):
    """Per-pixel parameters [B, H, W, C * k] for z [B, z_size]."""

  def _params(self, z):
    """Per-pixel parameters [B, H, W, C, k] float32 for z [B, z_size] (without the head)."""
    params = tf.cast(self.pixel_params(z), tf.float32)
    return tf.reshape(params, (-1,) + self.image_shape + (self.likelihood.num_params,))

  def _maps(self, z):
    """The factorised parameters as maps [B, H, W, C k] for the head."""
    return tf.reshape(self._params(z), (-1,) + self.image_shape[:2] + (
        self.image_shape[-1] * self.likelihood.num_params,))

  def _pixels(self, params):
    """p(x | params [B, H, W, C, k]) with event [H, W, C]."""
    return tfd.Independent(self.likelihood.distribution(params),
                           reinterpreted_batch_ndims=3 - self.likelihood.event_ndims)

  def call(self, z):
    """p(x|z); with the head a tfd.Autoregressive (log_prob one pass, sample() one pass per
    pixel over the whole image: `sample` is the fast way)."""
    if self.head is None:
      return self._pixels(self._params(z))
    maps = self._maps(z)
    shape = (-1,) + self.image_shape + (self.likelihood.num_params,)
    return tfd.Autoregressive(
        lambda x: self._pixels(tf.reshape(self.head.params(x, maps), shape)),
        sample0=tf.zeros(tf.concat([tf.shape(z)[:1], self.image_shape], 0)),
        num_steps=self.image_shape[0] * self.image_shape[1])

  def log_prob(self, x, z):
    """log p(x|z_k) [K, B]; the K * B latents are decoded as one batch (with the head: one
    teacher-forced pass, the pixels' features shared by the K samples)."""
    num_samples = tf.shape(z)[0]
    x = tf.cast(x, tf.float32)
    z = tf.reshape(z, tf.concat([[-1], tf.shape(z)[-1:]], 0))  # the size may be dynamic
    if self.head is None:
      params = self._params(z)
    else:
      params = tf.reshape(self.head.params(x, self._maps(z)),
                          (-1,) + self.image_shape + (self.likelihood.num_params,))
    params = tf.reshape(params, tf.concat([[num_samples, -1], tf.shape(params)[1:]], 0))
    return self.likelihood.log_prob(params, x)

  def images(self, z):
    """The likelihood's mean (Bernoulli: pixel probabilities); with the head, pixel by pixel,
    each pixel's conditional mean given the means before it."""
    if self.head is None:
      return self(z).mean()
    return self._draw_means(tf.convert_to_tensor(z))

  def sample(self, z, seed=None):
    """x ~ p(x|z) [B, H, W, C]; with the head pixel by pixel, from counter-based noise of an
    integer seed (row b from (seed, b); None: a random seed)."""
    if self.head is None:
      return super().sample(z, seed)
    if seed is None:
      seed = np.random.default_rng().integers(2**62)
    return self._draw_sample(tf.convert_to_tensor(z), tf.constant(seed, tf.int64))

  @tf.function(reduce_retracing=True)
  def _draw_means(self, z):
    return self.head.draw(self._maps(z), self.head.mean_pick)

  @tf.function(reduce_retracing=True)
  def _draw_sample(self, z, seed):
    return self.head.draw(self._maps(z), self.head.sample_pick(seed))

  def floats_per_sample(self):
    """BaseDecoder's estimate plus the head's feature maps."""
    head = 0 if self.head is None else self.head.floats_per_sample()
    return super().floats_per_sample() + head


class MLPDecoder(FactorisedDecoder):
  """The paper's decoder (appendix C): hidden act(W z + b) layers, then a dense output."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(hparams, image_shape, **kwargs)
    self._hidden = layers.mlp(self, list(reversed(hparams.hidden_sizes)), hparams.activation)
    self._out = keras.layers.Dense(
        math.prod(self.image_shape) * self.likelihood.num_params, name='pixel_params')

  def pixel_params(self, z):
    return self._out(layers.apply(self._hidden, z))


class ConvDecoder(FactorisedDecoder):
  """A dense layer to an (ceil(H / 2^n), ceil(W / 2^n)) map, then n stride-2 transposed
  convolutions (n = len(conv_filters), filters reversed), cropped to H x W: any image size."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(hparams, image_shape, **kwargs)
    act = hparams.activation
    filters = list(hparams.conv_filters)
    self._max_filters = max(filters)
    factor = 2 ** len(filters)
    height, width, channels = self.image_shape
    self._start_shape = (-(-height // factor), -(-width // factor), filters[-1])
    self._dense = layers.hidden(keras.layers.Dense, hparams.hidden_sizes[0], act, name='dense')
    self._project = layers.hidden(keras.layers.Dense, math.prod(self._start_shape), act,
                                  name='project')
    self._deconvs = layers.track_layers(self, 'deconv', [
        layers.hidden(keras.layers.Conv2DTranspose, f, act, kernel_size=3, strides=2,
                      padding='same', name=f'deconv_{i}')
        for i, f in enumerate(reversed(filters[:-1]))] + [
        keras.layers.Conv2DTranspose(channels * self.likelihood.num_params, 3, strides=2,
                                     padding='same', name=f'deconv_{len(filters) - 1}')])

  def floats_per_sample(self):
    """BaseDecoder's estimate plus the transposed convolutions' feature maps."""
    return super().floats_per_sample() + 2 * math.prod(self.image_shape) * self._max_filters

  def pixel_params(self, z):
    h = tf.reshape(self._project(self._dense(z)), (-1,) + self._start_shape)
    h = layers.apply(self._deconvs, h)
    return h[:, :self.image_shape[0], :self.image_shape[1]]
