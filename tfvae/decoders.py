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

Their `images` are the likelihood's mean. The decoders in `tfvae.autoregressive` are
autoregressive over the pixels instead: p(x|z) = prod_d Bernoulli(x_d; sigmoid(l_d(x_<d, z))).
"""

import abc
import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.encoders import activation
from tfvae.encoders import hidden_width
from tfvae.encoders import track_layers

tfd = tfp.distributions


class Likelihood(abc.ABC):
  """Maps k parameters per pixel [..., k] to a per-pixel distribution."""
  num_params: int

  @abc.abstractmethod
  def distribution(self, params):
    """params [B, H, W, C, k] float32 -> a distribution with batch shape [B, H, W, C]."""

  def log_prob(self, params, x):
    """sum over pixels of log p(x | params): params [K, B, H, W, C, k], images x
    [B, H, W, C] (broadcast over K) -> [K, B]."""
    return tf.reduce_sum(self.distribution(params).log_prob(x), [-3, -2, -1])


def bernoulli_log_prob(logits, x, axis):
  """sum over `axis` of log Bernoulli(x; sigmoid(logits)) = x * l - softplus(l): the value
  of tfd.Bernoulli.log_prob (for any x in [0, 1]) at a third of its cost."""
  return tf.reduce_sum(x * logits - tf.nn.softplus(logits), axis)


class BernoulliLikelihood(Likelihood):
  """Bernoulli(logits); mean() gives pixel probabilities."""
  num_params = 1

  def distribution(self, params):
    return tfd.Bernoulli(logits=params[..., 0], dtype=tf.float32)

  def log_prob(self, params, x):
    return bernoulli_log_prob(params[..., 0], x, [-3, -2, -1])


class GaussianLikelihood(Likelihood):
  """Normal(sigmoid(m), softplus(s) + min_scale) per pixel."""
  num_params = 2

  def __init__(self, min_scale):
    self._min_scale = min_scale

  def distribution(self, params):
    loc = tf.sigmoid(params[..., 0])
    scale = tf.nn.softplus(params[..., 1]) + self._min_scale
    return tfd.Normal(loc=loc, scale=scale)


LIKELIHOODS = ('bernoulli', 'gaussian')


def make_likelihood(hparams):
  """The Likelihood named by `hparams.likelihood`, or a one-line error."""
  if hparams.likelihood == 'bernoulli':
    return BernoulliLikelihood()
  if hparams.likelihood == 'gaussian':
    return GaussianLikelihood(hparams.min_decoder_scale)
  raise ValueError(
      f'unknown likelihood {hparams.likelihood!r}; valid: {", ".join(LIKELIHOODS)}')


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
    act = activation(hparams.activation)
    self._hidden = track_layers(self, 'hidden', [
        keras.layers.Dense(hidden_width(size, hparams.activation), activation=act,
                           name=f'hidden_{i}')
        for i, size in enumerate(reversed(hparams.hidden_sizes))])
    self._out = keras.layers.Dense(
        math.prod(self.image_shape) * self.likelihood.num_params, name='pixel_params')

  def pixel_params(self, z):
    h = z
    for layer in self._hidden:
      h = layer(h)
    return self._out(h)


class ConvDecoder(FactorisedDecoder):
  """A dense layer to an (H/2^n, W/2^n) map, then n stride-2 transposed convolutions."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(hparams, image_shape, **kwargs)
    act = activation(hparams.activation)
    filters = list(hparams.conv_filters)
    self._max_filters = max(filters)
    factor = 2 ** len(filters)
    height, width, channels = self.image_shape
    if height % factor or width % factor:
      raise ValueError(
          f'conv_filters has {len(filters)} layers, so the image sides must divide by '
          f'{factor}; image shape is {self.image_shape}')
    self._start_shape = (height // factor, width // factor, filters[-1])
    units = lambda size: hidden_width(size, hparams.activation)
    self._dense = keras.layers.Dense(units(hparams.hidden_sizes[0]), activation=act,
                                     name='dense')
    self._project = keras.layers.Dense(units(math.prod(self._start_shape)), activation=act,
                                       name='project')
    hidden_filters = [units(f) for f in reversed(filters[:-1])]
    self._deconvs = track_layers(self, 'deconv', [
        keras.layers.Conv2DTranspose(f, 3, strides=2, padding='same', activation=act,
                                     name=f'deconv_{i}')
        for i, f in enumerate(hidden_filters)] + [
        keras.layers.Conv2DTranspose(channels * self.likelihood.num_params, 3, strides=2,
                                     padding='same', name=f'deconv_{len(hidden_filters)}')])

  def floats_per_sample(self):
    """BaseDecoder's estimate plus the transposed convolutions' feature maps."""
    return super().floats_per_sample() + 2 * math.prod(self.image_shape) * self._max_filters

  def pixel_params(self, z):
    h = tf.reshape(self._project(self._dense(z)), (-1,) + self._start_shape)
    for deconv in self._deconvs:
      h = deconv(h)
    return h
