"""Decoders: z -> the likelihood p(x|z), independent over every pixel.

A decoder network turns z [B, z_size] into per-pixel parameters [B, H, W, C, k]; a
likelihood turns those into `tfd.Independent(..., reinterpreted_batch_ndims=3)` with
batch shape [B] and event shape [H, W, C]. Likelihoods (the paper's appendix C):

- bernoulli: p(x|z) = prod Bernoulli(x; sigmoid(logits)), for binary or [0,1] images.
- gaussian:  p(x|z) = prod Normal(x; sigmoid(m), softplus(s) + min_scale), for real-valued
  images such as Frey Face (the paper constrains the mean to (0, 1) with a sigmoid).
"""

import abc
import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.encoders import activation
from tfvae.encoders import track_layers

tfd = tfp.distributions


class Likelihood(abc.ABC):
  """Maps k parameters per pixel [..., k] to a per-pixel distribution."""
  num_params: int

  @abc.abstractmethod
  def distribution(self, params):
    """params [B, H, W, C, k] float32 -> a distribution with batch shape [B, H, W, C]."""


class BernoulliLikelihood(Likelihood):
  """Bernoulli(logits); mean() gives pixel probabilities."""
  num_params = 1

  def distribution(self, params):
    return tfd.Bernoulli(logits=params[..., 0], dtype=tf.float32)


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
  """Maps z [B, z_size] to p(x|z), an Independent distribution over images [H, W, C]."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(**kwargs)
    self.image_shape = tuple(image_shape)
    self.likelihood = make_likelihood(hparams)

  @abc.abstractmethod
  def pixel_params(self, z):
    """Per-pixel parameters [B, H, W, C * k] for z [B, z_size]."""

  def call(self, z):
    params = tf.cast(self.pixel_params(z), tf.float32)
    params = tf.reshape(params, (-1,) + self.image_shape + (self.likelihood.num_params,))
    return tfd.Independent(self.likelihood.distribution(params), reinterpreted_batch_ndims=3)

  def sample(self, z, seed=None):
    """x ~ p(x|z), [B, H, W, C]."""
    return self(z).sample(seed=seed)


class MLPDecoder(BaseDecoder):
  """The paper's decoder (appendix C): hidden act(W z + b) layers, then a dense output."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(hparams, image_shape, **kwargs)
    act = activation(hparams.activation)
    self._hidden = track_layers(self, 'hidden', [
        keras.layers.Dense(size, activation=act, name=f'hidden_{i}')
        for i, size in enumerate(reversed(hparams.hidden_sizes))])
    self._out = keras.layers.Dense(
        math.prod(self.image_shape) * self.likelihood.num_params, name='pixel_params')

  def pixel_params(self, z):
    h = z
    for layer in self._hidden:
      h = layer(h)
    return self._out(h)


class ConvDecoder(BaseDecoder):
  """A dense layer to an (H/2^n, W/2^n) map, then n stride-2 transposed convolutions."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(hparams, image_shape, **kwargs)
    act = activation(hparams.activation)
    filters = list(hparams.conv_filters)
    factor = 2 ** len(filters)
    height, width, channels = self.image_shape
    if height % factor or width % factor:
      raise ValueError(
          f'conv_filters has {len(filters)} layers, so the image sides must divide by '
          f'{factor}; image shape is {self.image_shape}')
    self._start_shape = (height // factor, width // factor, filters[-1])
    self._dense = keras.layers.Dense(hparams.hidden_sizes[0], activation=act, name='dense')
    self._project = keras.layers.Dense(math.prod(self._start_shape), activation=act,
                                       name='project')
    out_filters = list(reversed(filters[:-1])) + [channels * self.likelihood.num_params]
    self._deconvs = track_layers(self, 'deconv', [
        keras.layers.Conv2DTranspose(
            f, 3, strides=2, padding='same', name=f'deconv_{i}',
            activation=act if i < len(out_filters) - 1 else None)
        for i, f in enumerate(out_filters)])

  def pixel_params(self, z):
    h = tf.reshape(self._project(self._dense(z)), (-1,) + self._start_shape)
    for deconv in self._deconvs:
      h = deconv(h)
    return h
