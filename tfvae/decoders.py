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
"""

import abc
import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import layers
from tfvae.likelihoods import make_likelihood

tfd = tfp.distributions


class BaseDecoder(keras.layers.Layer, metaclass=abc.ABCMeta):
  """Maps z [B, z_size] to p(x|z), a distribution over images [H, W, C]."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(**kwargs)
    self.image_shape = tuple(image_shape)
    self.likelihood = make_likelihood(hparams)
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
  """p(x|z) independent over pixels: a network gives each pixel's likelihood parameters."""

  @abc.abstractmethod
  def pixel_params(self, z):
    """Per-pixel parameters [B, H, W, C * k] for z [B, z_size]."""

  def _params(self, z):
    """Per-pixel parameters [B, H, W, C, k] float32 for z [B, z_size]."""
    params = tf.cast(self.pixel_params(z), tf.float32)
    return tf.reshape(params, (-1,) + self.image_shape + (self.likelihood.num_params,))

  def call(self, z):
    return tfd.Independent(self.likelihood.distribution(self._params(z)),
                           reinterpreted_batch_ndims=3)

  def log_prob(self, x, z):
    """log p(x|z_k) [K, B]; the K * B latents are decoded as one batch."""
    num_samples = tf.shape(z)[0]
    params = self._params(tf.reshape(z, [-1, z.shape[-1]]))
    params = tf.reshape(params, tf.concat([[num_samples, -1], tf.shape(params)[1:]], 0))
    return self.likelihood.log_prob(params, tf.cast(x, tf.float32))

  def images(self, z):
    """The likelihood's mean (Bernoulli: pixel probabilities)."""
    return self(z).mean()


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
