"""Encoders: x -> the approximate posterior q(z|x), a diagonal Gaussian.

Every encoder returns `tfd.MultivariateNormalDiag(loc=mu, scale_diag=sigma)` with
sigma = softplus(raw) + min_scale, event shape [z_size], batch shape [B].
"""

import abc

import keras
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


def activation(name):
  """The Keras activation called `name` (tanh, relu, elu, ...), or a one-line error."""
  try:
    return keras.activations.get(name)
  except ValueError:
    raise ValueError(
        f'unknown activation {name!r}; use a Keras activation such as tanh, relu, elu, '
        'softplus, sigmoid, gelu, swish, or glu (gated layers)') from None


def hidden_width(size, activation_name):
  """Units (or filters) a hidden layer computes to give `size` outputs after its activation:
  2 * size for glu, the gated activation h = a * sigmoid(b) that halves its input
  [..., 2 * size] -> [..., size] (a gated dense layer: h = (W1 x + b1) * sigmoid(W2 x + b2))."""
  return 2 * size if activation_name == 'glu' else size


def track_layers(owner, prefix, layers):
  """Also sets each of `layers` as an attribute `prefix_i` of `owner`, and returns them.

  tf.train.Checkpoint does not follow Keras 3's tracked lists, so layers held only in a
  list would reach checkpoints solely through the optimiser's variable list.
  """
  for i, layer in enumerate(layers):
    setattr(owner, f'{prefix}_{i}', layer)
  return layers


class BaseEncoder(keras.layers.Layer, metaclass=abc.ABCMeta):
  """Maps images x [B, H, W, C] to q(z|x), a MultivariateNormalDiag over [z_size]."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(**kwargs)
    self.z_size = hparams.z_size
    self.image_shape = tuple(image_shape)
    self._min_scale = hparams.min_posterior_scale
    self._loc = keras.layers.Dense(self.z_size, name='loc')
    self._raw_scale = keras.layers.Dense(self.z_size, name='raw_scale')

  @abc.abstractmethod
  def features(self, x):
    """The hidden representation h [B, D] of images x [B, H, W, C]."""

  def call(self, x):
    h = self.features(x)
    # Posterior computations stay float32 even under a mixed-precision policy.
    loc = tf.cast(self._loc(h), tf.float32)
    scale = tf.nn.softplus(tf.cast(self._raw_scale(h), tf.float32)) + self._min_scale
    return tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)


class MLPEncoder(BaseEncoder):
  """The paper's encoder (appendix C.2): h = act(W x + b) for each hidden layer."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(hparams, image_shape, **kwargs)
    act = activation(hparams.activation)
    self._flatten = keras.layers.Flatten()
    self._hidden = track_layers(self, 'hidden', [
        keras.layers.Dense(hidden_width(size, hparams.activation), activation=act,
                           name=f'hidden_{i}')
        for i, size in enumerate(hparams.hidden_sizes)])

  def features(self, x):
    h = self._flatten(x)
    for layer in self._hidden:
      h = layer(h)
    return h


class ConvEncoder(BaseEncoder):
  """Stride-2 3x3 convolutions (one per `conv_filters` entry), then a dense layer."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(hparams, image_shape, **kwargs)
    act = activation(hparams.activation)
    self._convs = track_layers(self, 'conv', [
        keras.layers.Conv2D(hidden_width(f, hparams.activation), 3, strides=2, padding='same',
                            activation=act, name=f'conv_{i}')
        for i, f in enumerate(hparams.conv_filters)])
    self._flatten = keras.layers.Flatten()
    self._dense = keras.layers.Dense(hidden_width(hparams.hidden_sizes[0], hparams.activation),
                                     activation=act, name='dense')

  def features(self, x):
    h = x
    for conv in self._convs:
      h = conv(h)
    return self._dense(self._flatten(h))
