"""Priors p(z) over the top latent group: the standard normal of the paper, or a learned one.

Every prior has an event shape [D] (D = the top group's size) and answers:

- `distribution()`: p(z) as a tfd distribution (batch shape []), for log_prob and pictures;
- `log_prob(z)`: log p(z) [...] for z [..., D];
- `analytic`: whether KL(q || p) has a closed form (`tfd.kl_divergence`); for the learned
  priors it does not, and the model estimates it from its posterior samples:
  KL ~= log q(z_k|x) - log p(z_k), z_k ~ q(z|x);
- `sample(eps, u, temperature)`: z = the prior's reparameterised sample from standard normals
  eps [..., D] (and, for mixtures, uniforms u [...] in (0, 1) choosing the component), with
  every component's scale multiplied by `temperature`.

The priors (`hparams.prior`):

- standard_normal:  p(z) = N(0, I)                                    (Kingma & Welling 2013)
- vampprior:        p(z) = (1/C) sum_c q(z | u_c)   learned pseudo-inputs u_c in [0, 1]^(H x W x C_img),
                    q the encoder's posterior of the top group          (Tomczak & Welling 2018)
- mixture:          p(z) = sum_c pi_c N(z; m_c, diag s_c^2)   learned pi, m, s     (a Gaussian mixture)

C = hparams.prior_components.
"""

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.errors import UserError

tfd = tfp.distributions

PRIORS = ('standard_normal', 'vampprior', 'mixture')


def std_normal_log_prob(z):
  """log N(z; 0, I) summed over the last axis: [...] for z [..., D]."""
  return -0.5 * tf.reduce_sum(tf.square(z), -1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


class Prior(keras.layers.Layer):
  """p(z) over [size]."""

  analytic = False

  def __init__(self, size, **kwargs):
    super().__init__(**kwargs)
    self.size = size


class StandardNormal(Prior):
  """p(z) = N(0, I): the paper's prior; KL(q || p) in closed form."""

  analytic = True

  def distribution(self):
    zeros = tf.zeros([self.size])
    return tfd.MultivariateNormalDiag(loc=zeros, scale_diag=tf.ones_like(zeros))

  def log_prob(self, z):
    return std_normal_log_prob(z)

  def sample(self, eps, u=None, temperature=1.0):
    del u
    return temperature * eps


class _Mixture(Prior):
  """A uniform or learned mixture of C diagonal Gaussians; subclasses give the components."""

  def components(self):
    """(logits [C], locs [C, D], scales [C, D]) float32."""
    raise NotImplementedError

  def distribution(self):
    logits, locs, scales = self.components()
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(logits=logits),
        components_distribution=tfd.MultivariateNormalDiag(loc=locs, scale_diag=scales))

  def log_prob(self, z):
    """log sum_c pi_c N(z; m_c, diag s_c^2): [...] for z [..., D].

    The squared distances come from two matrix products over the flattened leading axes,
    sum_d ((z_d - m_cd) / s_cd)^2 = z^2 . (1 / s_c^2) - 2 z . (m_c / s_c^2) + |m_c / s_c|^2,
    so that the [..., C, D] differences are never formed (K B C D floats for K samples of a
    batch of B against C components)."""
    logits, locs, scales = self.components()
    precisions = tf.math.reciprocal(tf.square(scales))                   # [C, D]
    flat = tf.reshape(z, [-1, self.size])
    squared = (tf.matmul(tf.square(flat), precisions, transpose_b=True)
               - 2.0 * tf.matmul(flat, locs * precisions, transpose_b=True)
               + tf.reduce_sum(tf.square(locs) * precisions, -1))        # [N, C]
    log_normalisers = (-tf.reduce_sum(tf.math.log(scales), -1)
                       - 0.5 * self.size * math.log(2 * math.pi))         # [C]
    component = log_normalisers - 0.5 * tf.maximum(squared, 0.0)
    log_p = tf.reduce_logsumexp(tf.nn.log_softmax(logits) + component, -1)
    return tf.reshape(log_p, tf.shape(z)[:-1])

  def sample(self, eps, u, temperature=1.0):
    """z = m_c + temperature * s_c * eps with c drawn from pi by inverse CDF at u [...]."""
    logits, locs, scales = self.components()
    cdf = tf.cumsum(tf.nn.softmax(logits))
    c = tf.minimum(tf.searchsorted(cdf, tf.reshape(u, [-1])), tf.size(logits) - 1)
    c = tf.reshape(c, tf.shape(u))
    return tf.gather(locs, c) + temperature * tf.gather(scales, c) * eps


class VampPrior(_Mixture):
  """p(z) = (1/C) sum_c q(z | u_c): the encoder's top posterior at C learned pseudo-inputs.

  The pseudo-inputs are u = clip(w, 0, 1) [C, H, W, C_img] (a hard tanh onto the image range;
  w starts near the grey level 0.5 with a small spread), so the prior is the aggregate
  posterior of C learned images and follows the encoder as it trains."""

  def __init__(self, size, encoder, num_components, image_shape, **kwargs):
    super().__init__(size, **kwargs)
    # Not tracked as a sublayer: the encoder belongs to the VAE.
    object.__setattr__(self, '_encoder', encoder)
    self._num_components = num_components
    self._image_shape = tuple(image_shape)

  def build(self, input_shape=None):
    self.pseudo_inputs = self.add_weight(
        name='pseudo_inputs', shape=(self._num_components,) + self._image_shape,
        initializer=keras.initializers.RandomNormal(mean=0.5, stddev=0.05))

  def components(self):
    if not self.built:
      self.build()
    u = tf.clip_by_value(tf.convert_to_tensor(self.pseudo_inputs), 0.0, 1.0)
    q = self._encoder(u)
    return tf.zeros([self._num_components]), q.mean(), q.stddev()


class MixturePrior(_Mixture):
  """p(z) = sum_c pi_c N(z; m_c, diag s_c^2) with learned logits, means and scales
  (s = softplus(raw) + 1e-3; the means start spread as N(0, I) draws, the scales at 1)."""

  def __init__(self, size, num_components, **kwargs):
    super().__init__(size, **kwargs)
    self._num_components = num_components

  def build(self, input_shape=None):
    c, d = self._num_components, self.size
    self.logits = self.add_weight(name='logits', shape=(c,), initializer='zeros')
    self.locs = self.add_weight(name='locs', shape=(c, d),
                                initializer=keras.initializers.RandomNormal(stddev=1.0))
    inverse_softplus_one = float(np.log(np.expm1(1.0 - 1e-3)))
    self.raw_scales = self.add_weight(
        name='raw_scales', shape=(c, d),
        initializer=keras.initializers.Constant(inverse_softplus_one))

  def components(self):
    if not self.built:
      self.build()
    scales = tf.nn.softplus(tf.convert_to_tensor(self.raw_scales)) + 1e-3
    return (tf.convert_to_tensor(self.logits), tf.convert_to_tensor(self.locs), scales)


def make_prior(hparams, size, encoder, image_shape):
  """The prior `hparams.prior` over the top group's [size] latents."""
  if hparams.prior == 'standard_normal':
    return StandardNormal(size, name='prior')
  if hparams.prior == 'vampprior':
    return VampPrior(size, encoder, hparams.prior_components, image_shape, name='prior')
  if hparams.prior == 'mixture':
    return MixturePrior(size, hparams.prior_components, name='prior')
  raise UserError(f'unknown prior {hparams.prior!r}; valid: {", ".join(PRIORS)}')
