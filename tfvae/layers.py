"""Building blocks the encoders and decoders share: activations, gated layers, MLP stacks.

A hidden layer of width n computes h = act(W x + b) [..., n]. With activation `glu` it is
gated, h = (W1 x + b1) * sigmoid(W2 x + b2) (Dauphin et al. 2017): one layer of 2n outputs
whose halves are multiplied, so the gate costs one wider matmul, not a second call.
"""

import keras

from tfvae.errors import UserError

GATED = 'glu'
_EXAMPLES = 'tanh, relu, elu, softplus, sigmoid, gelu, swish'


def activation(name):
  """The Keras activation called `name` (tanh, relu, elu, ...), or a one-line error."""
  try:
    return keras.activations.get(name)
  except ValueError:
    raise UserError(f"unknown activation {name!r}; use a Keras activation such as "
                    f"{_EXAMPLES}, or {GATED} (gated layers)") from None


def hidden(layer_class, width, activation_name, **kwargs):
  """A `layer_class` (Dense, Conv2D, ...) hidden layer with `width` outputs (units or filters)
  after its activation; gated under `glu`: 2 * width outputs h = a * sigmoid(b)."""
  gated = activation_name == GATED
  return layer_class(2 * width if gated else width, activation=activation(activation_name),
                     **kwargs)


def track_layers(owner, prefix, layers):
  """Sets each of `layers` as an attribute `prefix_i` of `owner`, and returns them.

  tf.train.Checkpoint does not follow Keras 3's tracked lists, so layers held only in a
  list would reach checkpoints solely through the optimiser's variable list.
  """
  for i, layer in enumerate(layers):
    setattr(owner, f'{prefix}_{i}', layer)
  return layers


def mlp(owner, sizes, activation_name, prefix='hidden'):
  """The hidden Dense layers [sizes[0], sizes[1], ...] of an MLP, tracked on `owner` as
  `prefix_i`; apply them in order with `apply`."""
  return track_layers(owner, prefix, [
      hidden(keras.layers.Dense, size, activation_name, name=f'{prefix}_{i}')
      for i, size in enumerate(sizes)])


def apply(layers, h):
  """h through each of `layers` in turn."""
  for layer in layers:
    h = layer(h)
  return h
