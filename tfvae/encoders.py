"""Encoders: x -> the approximate posterior q(z|x), a diagonal Gaussian.

Every encoder returns `tfd.MultivariateNormalDiag(loc=mu, scale_diag=sigma)` with
sigma = softplus(raw) + min_scale, event shape [z_size], batch shape [B]: the posterior of the
top latent group. Its bottom-up pass also gives the features the lower groups' posteriors read
(tfvae.top_down): with num_groups = L, h_1 = features(x) and h_l = act(W_l h_l-1 + b_l) for
l = 2 .. L (width hidden_sizes[-1]); the top group reads h_L.
"""

import abc

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import layers

tfd = tfp.distributions


class BaseEncoder(keras.layers.Layer, metaclass=abc.ABCMeta):
  """Maps images x [B, H, W, C] to q(z|x), a MultivariateNormalDiag over [z_size]."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(**kwargs)
    self.z_size = hparams.z_size
    self.image_shape = tuple(image_shape)
    self._min_scale = hparams.min_posterior_scale
    self.top_shape = (self.z_size,)
    self._loc = keras.layers.Dense(self.z_size, name='loc')
    self._raw_scale = keras.layers.Dense(self.z_size, name='raw_scale')
    self._ladder = layers.mlp(self, [hparams.hidden_sizes[-1]] * (hparams.num_groups - 1),
                              hparams.activation, prefix='ladder')

  @abc.abstractmethod
  def features(self, x):
    """The hidden representation h [B, D] of images x [B, H, W, C]."""

  def bottom_up(self, x):
    """The features of each latent group, top first: [h_L, ..., h_1], each [B, D]."""
    h = self.features(x)
    found = [h]
    for layer in self._ladder:
      h = layer(h)
      found.append(h)
    return found[::-1]

  def call(self, x):
    return self.posterior(self.bottom_up(x)[0])

  def posterior(self, h):
    """q(z_0|x) from the top group's features h [B, D]."""
    # Posterior computations stay float32 even under a mixed-precision policy.
    loc = tf.cast(self._loc(h), tf.float32)
    scale = tf.nn.softplus(tf.cast(self._raw_scale(h), tf.float32)) + self._min_scale
    return tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)


class MLPEncoder(BaseEncoder):
  """The paper's encoder (appendix C.2): h = act(W x + b) for each hidden layer."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(hparams, image_shape, **kwargs)
    self._flatten = keras.layers.Flatten()
    self._hidden = layers.mlp(self, hparams.hidden_sizes, hparams.activation)

  def features(self, x):
    return layers.apply(self._hidden, self._flatten(x))


class ConvEncoder(BaseEncoder):
  """Stride-2 3x3 convolutions (one per `conv_filters` entry; 'same' padding, so any H x W:
  each halves the sides, rounding up), then a dense layer of hidden_sizes[0] units."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(hparams, image_shape, **kwargs)
    self._convs = layers.track_layers(self, 'conv', [
        layers.hidden(keras.layers.Conv2D, f, hparams.activation, kernel_size=3, strides=2,
                      padding='same', name=f'conv_{i}')
        for i, f in enumerate(hparams.conv_filters)])
    self._flatten = keras.layers.Flatten()
    self._dense = layers.hidden(keras.layers.Dense, hparams.hidden_sizes[0],
                                hparams.activation, name='dense')

  def features(self, x):
    return self._dense(self._flatten(layers.apply(self._convs, x)))
