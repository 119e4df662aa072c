"""The latent groups below the top one: top-down priors p(z_l | z_>l) and posteriors
q(z_l | x, z_>l) (Ladder VAE, IAF-VAE, NVAE, VDVAE all share this structure).

The model (tfvae.model.VAE) draws the groups from the top down, l = 0 (the top) .. L - 1:

    z_0 ~ q(z_0 | x)  (the encoder's posterior; prior p(z_0) from tfvae.priors)
    s   = start(z_0)                                            the top-down state
    for l = 1 .. L - 1:
      p_l = prior(l, s)          q_l = posterior(l, s, h_l)     MultivariateNormalDiag each
      z_l ~ q_l                  s = merge(l, s, z_l)
    decoder input = output(s, [z_0 .. z_L-1])                   p(x | z) = decoder(that)

h_l are the encoder's bottom-up features for group l (`encoders.BaseEncoder.bottom_up`). Every
tensor carries leading sample and batch axes [K, B, ...]; latents are flat vectors of their
group's size. With one group (`SingleGroup`) the state is z_0 itself and the decoder sees z_0:
the paper's VAE, on the same code path as every hierarchy.

- `DenseLadder`: num_groups groups of z_size each over flat features (MLP or conv encoders):
      s = act(W z_0),  p_l, q_l = Gaussian heads on act(A s) and act(B s + C h_l),
      s <- act(D [s, z_l]) ; the decoder sees [z_0, ..., z_L-1] (every group, as p(x|z1,z2) of
      Tomczak & Welling's HVAE).
- `ConvTopDown` (tfvae.conv_hierarchy): groups of latent maps at several resolutions.
"""

import dataclasses
import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import layers

tfd = tfp.distributions


@dataclasses.dataclass(frozen=True)
class LatentGroup:
  """One group of latents: its name (TensorBoard's losses/kl_bits/<name>) and shape; the model
  handles it flat, as [size] = prod(shape)."""
  name: str
  shape: tuple

  @property
  def size(self):
    return math.prod(self.shape)


def gaussian(loc, raw_scale, min_scale):
  """MultivariateNormalDiag(loc, softplus(raw_scale) + min_scale), float32."""
  loc = tf.cast(loc, tf.float32)
  scale = tf.nn.softplus(tf.cast(raw_scale, tf.float32)) + min_scale
  return tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)


class TopDown(keras.layers.Layer):
  """The groups below the top one (`groups`, top-down order) and the decoder's input."""

  groups = ()
  top_name = 'z'  # the name of the top group

  def start(self, z_top):
    """The state after the top group: z_top [K, B, D_0] -> state."""
    return z_top

  def prior(self, index, state):
    """p(z_l | z_>l) for group `index` (1 .. L - 1): MultivariateNormalDiag, batch [K, B]."""
    raise NotImplementedError

  def posterior(self, index, state, features):
    """q(z_l | x, z_>l): MultivariateNormalDiag, batch [K, B]; features: the encoder's h_l."""
    raise NotImplementedError

  def merge(self, index, state, z):
    """The state after group `index` took z [K, B, D_l]."""
    raise NotImplementedError

  def output(self, state, zs):
    """The decoder's input [K, B, D] from the final state and every group's z (top first)."""
    del zs
    return state

  def output_size(self, top_size):
    """D, the size of the decoder's input."""
    return top_size


class SingleGroup(TopDown):
  """No group below the top: the decoder sees z_0 (the paper's VAE)."""


class DenseLadder(TopDown):
  """num_groups - 1 dense groups of z_size below the top, over the encoder's flat features
  (module docstring); width = hidden_sizes[-1], activation = hparams.activation."""

  def __init__(self, hparams, image_shape=None, **kwargs):
    super().__init__(**kwargs)
    del image_shape  # dense groups have z_size latents whatever the images
    # Named by their distance from the data: z_L is the top group, z1 the lowest.
    self.groups = tuple(LatentGroup(f'z{i}', (hparams.z_size,))
                        for i in range(hparams.num_groups - 1, 0, -1))
    if self.groups:
      self.top_name = f'z{hparams.num_groups}'
    width = hparams.hidden_sizes[-1]
    self._act = layers.activation(hparams.activation)
    self._min_scale = hparams.min_posterior_scale
    units = 2 * width if hparams.activation == layers.GATED else width
    dense = lambda name, bias=True, n=units: keras.layers.Dense(n, use_bias=bias, name=name)
    size = hparams.z_size
    self._start = dense('start')
    # The last group's z goes to the decoder only: it updates no state.
    self._blocks = layers.track_layers(self, 'group', [
        _DenseGroup(dense, size, merges=i < hparams.num_groups - 1, name=f'group_{i}')
        for i in range(1, hparams.num_groups)])

  def start(self, z_top):
    if not self.groups:
      return z_top
    return self._act(self._start(z_top))

  def prior(self, index, state):
    return self._blocks[index - 1].prior(state, self._act, self._min_scale)

  def posterior(self, index, state, features):
    return self._blocks[index - 1].posterior(state, features, self._act, self._min_scale)

  def merge(self, index, state, z):
    return self._blocks[index - 1].merge(state, z, self._act)

  def output(self, state, zs):
    return zs[0] if len(zs) == 1 else tf.concat(zs, -1)

  def output_size(self, top_size):
    return top_size + sum(group.size for group in self.groups)


class _DenseGroup(keras.layers.Layer):
  """One dense group's prior, posterior and state update (DenseLadder)."""

  def __init__(self, dense, size, merges, **kwargs):
    super().__init__(**kwargs)
    self._merges = merges
    self.prior_hidden = dense('prior_hidden')
    self.prior_params = dense('prior_params', n=2 * size)
    # q's hidden layer is act(B s + C h): C h is computed once per image, not per sample.
    self.posterior_state = dense('posterior_state')
    self.posterior_features = dense('posterior_features', bias=False)
    self.posterior_params = dense('posterior_params', n=2 * size)
    if merges:
      self.merge_state = dense('merge_state')
      self.merge_z = dense('merge_z', bias=False)

  def prior(self, state, act, min_scale):
    loc, raw_scale = tf.split(self.prior_params(act(self.prior_hidden(state))), 2, -1)
    return gaussian(loc, raw_scale, min_scale)

  def posterior(self, state, features, act, min_scale):
    hidden = act(self.posterior_state(state) + self.posterior_features(features))
    loc, raw_scale = tf.split(self.posterior_params(hidden), 2, -1)
    return gaussian(loc, raw_scale, min_scale)

  def merge(self, state, z, act):
    if not self._merges:
      return state
    return act(self.merge_state(state) + self.merge_z(tf.cast(z, self.compute_dtype)))
