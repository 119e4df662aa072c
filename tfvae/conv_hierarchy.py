"""A convolutional hierarchy: groups of latent maps at several resolutions (VDVAE-like, for
images of any size and channel count).

Resolution level i = 1 .. n (n = len(conv_filters)) has sides ceil(H / 2^i) x ceil(W / 2^i)
and width w_i = conv_filters[i - 1]; level 0 is the image's own size, width w_1.

    bottom-up (ResNetEncoder):  a = act(conv3(x))                                   [H, W, w_1]
                                for i = 1 .. n: a = blocks_i(act(conv3/2(a)))   h_i = a [.., w_i]
                                q(z_top | x) = N(conv1(h_n))                    (the top group)
    top-down (ConvTopDown), coarsest level first, groups_per_level[j] groups at level n - j:
                                s = conv1(z_top)                               the state [.., w_n]
      each further group l:     p_l = N(conv1(act(conv3(s))))
                                q_l = N(conv1(act(conv3(s) + conv3(h_i))))
                                s = block(s + conv1(z_l))
      between levels:           s = blocks(conv1(upsample2(s)))  (nearest, cropped to the level)
    output:                     s at level 0 [H, W, w_1] is the decoder's input (StateDecoder)

block(s) = s + conv3(act(conv3(act(s)))) is a residual block whose last convolution starts at
zero, so the stack starts as the identity (VDVAE's remedy for depth); res_blocks of them per
level. Latent maps have latent_channels channels; the model handles them flat, [h * w * c].
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import decoders
from tfvae import layers
from tfvae import top_down
from tfvae.errors import UserError

tfd = tfp.distributions


def level_shapes(image_shape, num_levels):
  """[(h_i, w_i)] for levels i = 0 .. num_levels: each stride-2 step rounds the sides up."""
  height, width = image_shape[:2]
  shapes = [(height, width)]
  for _ in range(num_levels):
    height, width = -(-height // 2), -(-width // 2)
    shapes.append((height, width))
  return shapes


def group_layout(hparams, image_shape):
  """[(level, LatentGroup)] top first: groups_per_level[j] groups at level n - j."""
  filters, counts = list(hparams.conv_filters), list(hparams.groups_per_level)
  if len(counts) > len(filters) or counts[0] < 1:
    raise UserError(f'hparam groups_per_level={counts} must have at most len(conv_filters) = '
                    f'{len(filters)} entries (coarsest level first), the first at least 1')
  if hparams.activation == layers.GATED:
    raise UserError('the convolutional hierarchy takes an elementwise activation (relu, elu, '
                    'swish, gelu, ...), not glu')
  shapes = level_shapes(image_shape, len(filters))
  layout = []
  for j, count in enumerate(counts):
    level = len(filters) - j
    h, w = shapes[level]
    layout += [(level, top_down.LatentGroup(f'{h}x{w}_{k}', (h, w, hparams.latent_channels)))
               for k in range(count)]
  return layout


def _flat(t):
  """[K, B, ...] -> ([K * B, ...], [K, B])."""
  lead = tf.shape(t)[:2]
  return tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0)), lead


def _unflat(t, lead):
  """[K * B, ...] -> [K, B, ...]."""
  return tf.reshape(t, tf.concat([lead, tf.shape(t)[1:]], 0))


def _conv(filters, kernel, name, zero=False, bias=True, strides=1):
  return keras.layers.Conv2D(filters, kernel, strides=strides, padding='same', use_bias=bias,
                             kernel_initializer='zeros' if zero else 'glorot_uniform',
                             name=name)


class ResidualBlock(keras.layers.Layer):
  """s + conv3(act(conv3(act(s)))), the last convolution starting at zero."""

  def __init__(self, width, activation, **kwargs):
    super().__init__(**kwargs)
    self._act = layers.activation(activation)
    self.inner = _conv(width, 3, 'inner')
    self.outer = _conv(width, 3, 'outer', zero=True)

  def call(self, s):
    return s + self.outer(self._act(self.inner(self._act(s))))


class ResNetEncoder(keras.layers.Layer):
  """The bottom-up pass (module docstring): features at every level and q(z_top | x)."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(**kwargs)
    self.image_shape = tuple(image_shape)
    layout = group_layout(hparams, image_shape)
    self._levels = [level for level, _ in layout]
    self.top_shape = layout[0][1].shape
    self._min_scale = hparams.min_posterior_scale
    self._act = layers.activation(hparams.activation)
    filters = list(hparams.conv_filters)
    self.stem = _conv(filters[0], 3, 'stem')
    self._down = layers.track_layers(self, 'down', [
        _conv(f, 3, f'down_{i}', strides=2) for i, f in enumerate(filters)])
    self._blocks = [layers.track_layers(self, f'level{i + 1}_block', [
        ResidualBlock(f, hparams.activation, name=f'level{i + 1}_block_{b}')
        for b in range(hparams.res_blocks)]) for i, f in enumerate(filters)]
    self.top_params = _conv(2 * hparams.latent_channels, 1, 'top_params')

  def bottom_up(self, x):
    """The features h_i [B, h_i, w_i, w_i'] of each group's level, top group first."""
    a = self._act(self.stem(tf.cast(x, self.compute_dtype)))
    found = {}
    for i, (down, blocks) in enumerate(zip(self._down, self._blocks)):
      a = layers.apply(blocks, self._act(down(a)))
      found[i + 1] = a
    return [found[level] for level in self._levels]

  def posterior(self, h):
    """q(z_top | x): a MultivariateNormalDiag over the flat top map, batch [B]."""
    loc, raw_scale = tf.split(self.top_params(h), 2, -1)
    flat = lambda t: tf.reshape(t, [-1, math.prod(self.top_shape)])
    return top_down.gaussian(flat(loc), flat(raw_scale), self._min_scale)

  def call(self, x):
    return self.posterior(self.bottom_up(x)[0])


class ConvTopDown(top_down.TopDown):
  """The top-down pass over latent maps (module docstring)."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(**kwargs)
    layout = group_layout(hparams, image_shape)
    self.groups = tuple(group for _, group in layout[1:])
    self.top_name = layout[0][1].name
    self._top_shape = layout[0][1].shape
    self._levels = [level for level, _ in layout]
    self._shapes = level_shapes(image_shape, len(hparams.conv_filters))
    self._filters = list(hparams.conv_filters)
    self._min_scale = hparams.min_posterior_scale
    self._act = layers.activation(hparams.activation)
    top_level = self._levels[0]
    self.start_conv = _conv(self._filters[top_level - 1], 1, 'start')
    self._group_blocks = layers.track_layers(self, 'group', [
        _ConvGroup(self._filters[level - 1], hparams, name=f'group_{i + 1}')
        for i, level in enumerate(self._levels[1:])])
    # Rising to level i from i + 1: a 1x1 convolution to the level's width, then res_blocks
    # residual blocks (one at level 0, the image's size, where convolutions cost the most).
    widths = [self._filters[max(level, 1) - 1] for level in range(top_level)]
    self._up_convs = layers.track_layers(self, 'up', [
        _conv(width, 1, f'up_{level}') for level, width in enumerate(widths)])
    self._up_blocks = [layers.track_layers(self, f'up{level}_block', [
        ResidualBlock(width, hparams.activation, name=f'up{level}_block_{b}')
        for b in range(hparams.res_blocks if level else 1)])
                       for level, width in enumerate(widths)]

  def _map(self, z, shape):
    """A flat z [K, B, h * w * c] as maps [K * B, h, w, c] (and [K, B])."""
    lead = tf.shape(z)[:2]
    return tf.reshape(tf.cast(z, self.compute_dtype), (-1,) + tuple(shape)), lead

  def _rise(self, s, current, level):
    """The state s [K * B, ...] at level `current` moved up to `level`."""
    while current > level:
      current -= 1
      h, w = self._shapes[current]
      s = tf.repeat(tf.repeat(s, 2, axis=1), 2, axis=2)[:, :h, :w]
      s = layers.apply(self._up_blocks[current], self._up_convs[current](s))
    return s

  def _next_level(self, index):
    """The level of group index + 1 (0, the image's size, after the last group)."""
    return self._levels[index + 1] if index + 1 < len(self._levels) else 0

  def start(self, z_top):
    """The state (s [K * B, h, w, width] at the next group's level, [K, B])."""
    z, lead = self._map(z_top, self._top_shape)
    return (self._rise(self.start_conv(z), self._levels[0], self._next_level(0)), lead)

  def prior(self, index, state):
    return self._group_blocks[index - 1].prior(*state, self._act, self._min_scale)

  def posterior(self, index, state, features):
    return self._group_blocks[index - 1].posterior(*state, features, self._act,
                                                   self._min_scale)

  def merge(self, index, state, z):
    s, lead = state
    z_map, _ = self._map(z, self.groups[index - 1].shape)
    s = self._group_blocks[index - 1].merge(s, z_map)
    return (self._rise(s, self._levels[index], self._next_level(index)), lead)

  def output(self, state, zs):
    s, lead = state
    return tf.reshape(tf.cast(s, tf.float32), tf.concat([lead, [-1]], 0))

  def output_size(self, top_size):
    h, w = self._shapes[0]
    return h * w * self._filters[0]


class _ConvGroup(keras.layers.Layer):
  """One latent map's prior, posterior and state update (ConvTopDown)."""

  def __init__(self, width, hparams, **kwargs):
    super().__init__(**kwargs)
    c = hparams.latent_channels
    self.prior_hidden = _conv(width, 3, 'prior_hidden')
    self.prior_params = _conv(2 * c, 1, 'prior_params')
    self.posterior_state = _conv(width, 3, 'posterior_state')
    self.posterior_features = _conv(width, 3, 'posterior_features', bias=False)
    self.posterior_params = _conv(2 * c, 1, 'posterior_params')
    self.merge_z = _conv(width, 1, 'merge_z', bias=False)
    self.block = ResidualBlock(width, hparams.activation, name='block')

  @staticmethod
  def _gaussian(params, lead, min_scale):
    loc, raw_scale = tf.split(params, 2, -1)
    flat = lambda t: tf.reshape(t, tf.concat([lead, [-1]], 0))
    return top_down.gaussian(flat(loc), flat(raw_scale), min_scale)

  def prior(self, s, lead, act, min_scale):
    return self._gaussian(self.prior_params(act(self.prior_hidden(s))), lead, min_scale)

  def posterior(self, s, lead, features, act, min_scale):
    # conv3(h) is computed once per image and shared by its K samples.
    from_state = _unflat(self.posterior_state(s), lead)              # [K, B, h, w, width]
    hidden = act(from_state + self.posterior_features(features))     # + [B, h, w, width]
    return self._gaussian(self.posterior_params(_flat(hidden)[0]), lead, min_scale)

  def merge(self, s, z_map):
    return self.block(s + self.merge_z(z_map))


class StateDecoder(decoders.FactorisedDecoder):
  """p(x | s): the top-down state at the image's size, s [.., H * W * w_1] flat, through a
  1x1 convolution to each pixel's likelihood parameters."""

  def __init__(self, hparams, image_shape, **kwargs):
    super().__init__(hparams, image_shape, **kwargs)
    height, width, channels = self.image_shape
    self._state_shape = (height, width, hparams.conv_filters[0])
    self._act = layers.activation(hparams.activation)
    self.out = _conv(channels * self.likelihood.num_params, 1, 'pixel_params')

  def floats_per_sample(self):
    return super().floats_per_sample() + 2 * math.prod(self._state_shape)

  def pixel_params(self, s):
    s = tf.reshape(tf.cast(s, self.compute_dtype), (-1,) + self._state_shape)
    return self.out(self._act(s))
