"""Likelihoods: p(x | per-pixel parameters) for the factorised decoders.

A Likelihood turns k parameters per sub-pixel, params [..., H, W, C, k], into a distribution
over each sub-pixel, independent over the pixels given z:

- bernoulli: Bernoulli(x; sigmoid(l)), for binary or [0, 1] images.
- gaussian:  Normal(x; sigmoid(m), softplus(s) + min_scale), for real-valued images such as
  Frey Face (the paper constrains the mean to (0, 1) with a sigmoid).
- logistic_mixture: a mixture of logistics discretised to the 256 values k / 255 of 8-bit
  images, a probability mass, so bits/dim are comparable with published CIFAR-10 figures;
  each sub-pixel on its own, or (channel_coupling) PixelCNN++'s joint law of a pixel's
  channels: one mixture per pixel, each channel's mean linear in the channels before it.

`discrete` says which: True when log_prob is the log of a probability mass over the 256
values of 8-bit data; False when it is a density (gaussian) or a Bernoulli on intensities
(a proper mass only when the data are themselves binary, which the dataset knows).
"""

import abc
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.errors import UserError

tfd = tfp.distributions

NUM_BINS = 256                           # 8-bit data: k in 0..255, fed as x = k / 255
HALF_BIN = 0.5 / (NUM_BINS - 1)          # h: half a bin's width on the [0, 1] scale
LOG_SCALE_MIN = -8.0                     # s >= 3.4e-4 = h / 5.9: a bin can hold 99.4%
LOG_SCALE_MAX = 2.0                      # s <= 7.4: far wider than [0, 1] already


class Likelihood(abc.ABC):
  """Maps k parameters per sub-pixel [..., C, k] to a distribution over each sub-pixel (or,
  with event_ndims = 1, over each pixel's C channels jointly)."""
  num_params: int
  discrete: bool  # log_prob is a log-mass over the 256 8-bit values (not a density)
  event_ndims = 0  # 0: a distribution per sub-pixel; 1: per pixel, event [C]

  @abc.abstractmethod
  def distribution(self, params):
    """params [B, H, W, C, k] float32 -> a distribution with batch shape [B, H, W, C] (event
    []), or batch [B, H, W] and event [C] when event_ndims is 1."""

  def check_channels(self, channels):
    """Raises a one-line UserError unless images of `channels` channels can be modelled."""

  def log_prob(self, params, x):
    """sum over pixels of log p(x | params): params [K, B, H, W, C, k], images x
    [B, H, W, C] (broadcast over K) -> [K, B]."""
    return tf.reduce_sum(self.distribution(params).log_prob(x), [-3, -2, -1])


def _log1p_of_unit(e):
  """log(1 + e) for e in [0, 1], as accurate as log1p in float32 (Goldberg: with u = 1 + e,
  log(u) e / (u - 1), exact as u - 1 is) but in a log and a division, which XLA:CPU computes
  in about half the time of its log1p; each is used once, so XLA fuses it all into its
  consumer."""
  u = 1.0 + e
  return tf.where(u == 1.0, e, tf.math.log(u) * (e / (u - 1.0)))


def bernoulli_log_prob(logits, x, axis):
  """sum over the trailing axes `axis` (an int, or a list of negative ints ending in -1) of
  log Bernoulli(x; sigmoid(logits)) = x * l - softplus(l), for any x in [0, 1] broadcasting
  against logits: the value of tfd.Bernoulli.log_prob at a fraction of its cost.

  softplus(l) = max(l, 0) + log(1 + exp(-|l|)), and the sum is a matrix-vector product with
  ones over the flattened axes, which XLA fuses with the terms into one pass (a reduction
  would be a separate pass over the materialised terms, and XLA merges later reductions of
  the result, such as a mean over samples, into a second one). The gradient is
  (x - sigmoid(l)) times the incoming one, with respect to the logits only (x is data).
  """
  axes = [axis] if isinstance(axis, int) else list(axis)
  if axes != list(range(-len(axes), 0)):
    raise ValueError(f'bernoulli_log_prob sums over trailing axes (-k, ..., -1); got {axis}')
  x = tf.convert_to_tensor(x, logits.dtype)
  size = math.prod(logits.shape[-len(axes):])

  @tf.custom_gradient
  def log_prob(logits):
    terms = x * logits - tf.maximum(logits, 0.0) - _log1p_of_unit(tf.exp(-tf.abs(logits)))
    outer = tf.shape(terms)[:-len(axes)]
    sums = tf.linalg.matvec(tf.reshape(terms, [-1, size]), tf.ones([size], logits.dtype))
    sums = tf.reshape(sums, outer)

    def grad(upstream):
      upstream = tf.reshape(upstream, tf.concat([outer, [1] * len(axes)], 0))
      return upstream * (x - tf.sigmoid(logits))
    return sums, grad
  return log_prob(logits)


class BernoulliLikelihood(Likelihood):
  """Bernoulli(logits); mean() gives pixel probabilities."""
  num_params = 1
  discrete = False

  def distribution(self, params):
    return tfd.Bernoulli(logits=params[..., 0], dtype=tf.float32)

  def log_prob(self, params, x):
    return bernoulli_log_prob(params[..., 0], x, [-3, -2, -1])


class GaussianLikelihood(Likelihood):
  """Normal(sigmoid(m), softplus(s) + min_scale) per pixel."""
  num_params = 2
  discrete = False

  def __init__(self, min_scale):
    self._min_scale = min_scale

  def distribution(self, params):
    loc = tf.sigmoid(params[..., 0])
    scale = tf.nn.softplus(params[..., 1]) + self._min_scale
    return tfd.Normal(loc=loc, scale=scale)


def discretized_logistic_log_prob(x, loc, log_scale):
  """log P(k) of one discretised logistic, elementwise (broadcasting), float32:

      P(k) = F(x + h) - F(x - h),  F(t) = sigmoid((t - loc) / s),  s = exp(log_scale),

  for x = k / 255, h = HALF_BIN; P(0) = F(h) and P(255) = 1 - F(1 - h) take the tails.

  With a = (x + h - loc) / s and b = (x - h - loc) / s, the identity
  sigmoid(a) - sigmoid(b) = sigmoid(a) (1 - sigmoid(b)) (1 - exp(b - a)) gives

      log P(k) = -softplus(-a) - softplus(b) + log(1 - exp(-2h / s)),

  a sum of terms that are each finite and accurate however far k lies in either tail, so no
  fallback (such as the density times the bin width) is needed where the direct difference
  would underflow. log_scale must lie in [LOG_SCALE_MIN, LOG_SCALE_MAX] (2h / s then stays
  in [5e-4, 12]); x must lie on the grid k / 255.
  """
  inv_scale = tf.exp(-log_scale)
  centred = x - loc
  upper = (centred + HALF_BIN) * inv_scale     # a
  lower = (centred - HALF_BIN) * inv_scale     # b
  log_cdf_upper = -tf.nn.softplus(-upper)      # log F(x + h)
  log_survival_lower = -tf.nn.softplus(lower)  # log (1 - F(x - h))
  log_bin = (log_cdf_upper + log_survival_lower
             + tf.math.log(-tf.math.expm1(-2.0 * HALF_BIN * inv_scale)))
  return tf.where(x < HALF_BIN, log_cdf_upper,
                  tf.where(x > 1.0 - HALF_BIN, log_survival_lower, log_bin))


def discretized_logistic_mixture_log_prob(x, mixture_logits, locs, log_scales):
  """log sum_m pi_m P_m(k): x [...] on the grid k / 255, and per-component mixture logits
  (pi = softmax), locs and log-scales [..., M] (broadcasting with x[..., None]) -> [...]."""
  log_weights = tf.nn.log_softmax(mixture_logits, axis=-1)
  component_log_probs = discretized_logistic_log_prob(x[..., tf.newaxis], locs, log_scales)
  return tf.reduce_logsumexp(log_weights + component_log_probs, axis=-1)


class DiscretizedLogisticMixture(tfd.AutoCompositeTensorDistribution):
  """A mixture of M logistics discretised to the grid k / 255, k in 0..255, per element.

  Batch shape: the parameters' shape without their last axis [..., M]; event shape [].
  mixture_logits (pi = softmax over M), locs and log_scales (s = exp(log_scales), which must
  lie in [LOG_SCALE_MIN, LOG_SCALE_MAX]) are float32 [..., M].

  log_prob: discretized_logistic_mixture_log_prob. sample(): a component m ~ pi, then
  t ~ Logistic(loc_m, s_m), returned as clip(round(255 t), 0, 255) / 255, which falls in
  bin k with probability P(k) exactly. mean(): the continuous mixture mean sum_m pi_m loc_m
  clipped to [0, 1], what pictures show (close to the discrete mean unless much of the mass
  lies beyond 0 or 1).
  """

  def __init__(self, mixture_logits, locs, log_scales, validate_args=False,
               allow_nan_stats=True, name='DiscretizedLogisticMixture'):
    parameters = dict(locals())
    with tf.name_scope(name) as name:
      self._mixture_logits = tf.convert_to_tensor(mixture_logits, tf.float32)
      self._locs = tf.convert_to_tensor(locs, tf.float32)
      self._log_scales = tf.convert_to_tensor(log_scales, tf.float32)
      super().__init__(dtype=tf.float32, reparameterization_type=tfd.NOT_REPARAMETERIZED,
                       validate_args=validate_args, allow_nan_stats=allow_nan_stats,
                       parameters=parameters, name=name)

  @classmethod
  def _parameter_properties(cls, dtype, num_classes=None):
    return dict(mixture_logits=tfp.util.ParameterProperties(event_ndims=1),
                locs=tfp.util.ParameterProperties(event_ndims=1),
                log_scales=tfp.util.ParameterProperties(event_ndims=1))

  @property
  def mixture_logits(self):
    return self._mixture_logits

  @property
  def locs(self):
    return self._locs

  @property
  def log_scales(self):
    return self._log_scales

  def _event_shape(self):
    return tf.TensorShape([])

  def _event_shape_tensor(self):
    return tf.constant([], tf.int32)

  def _log_prob(self, x):
    return discretized_logistic_mixture_log_prob(x, self._mixture_logits, self._locs,
                                                 self._log_scales)

  def _mean(self):
    weights = tf.nn.softmax(self._mixture_logits, axis=-1)
    mean = tf.reduce_sum(weights * self._locs, axis=-1)
    return tf.clip_by_value(tf.broadcast_to(mean, self.batch_shape_tensor()), 0.0, 1.0)

  def _sample_n(self, n, seed=None):
    component_seed, noise_seed = tfp.random.split_seed(tfp.random.sanitize_seed(seed), 2)
    num_mixtures = tf.shape(self._mixture_logits)[-1]
    components = tfd.Categorical(logits=self._mixture_logits).sample(n, seed=component_seed)
    one_hot = tf.one_hot(components, num_mixtures, dtype=tf.float32)    # [n, ..., M]
    loc = tf.reduce_sum(one_hot * self._locs, axis=-1)
    scale = tf.exp(tf.reduce_sum(one_hot * self._log_scales, axis=-1))
    uniform = tf.random.stateless_uniform(tf.shape(loc), noise_seed,
                                          minval=np.finfo(np.float32).tiny, maxval=1.0)
    logistic = loc + scale * (tf.math.log(uniform) - tf.math.log1p(-uniform))
    bins = tf.clip_by_value(tf.round(logistic * (NUM_BINS - 1)), 0.0, NUM_BINS - 1.0)
    return bins / (NUM_BINS - 1)


def _logistic_bin(loc, log_scale, u):
  """The bin k / 255 of t = loc + s log(u / (1 - u)), t ~ Logistic(loc, s) for u ~ U(0, 1):
  clip(round(255 t), 0, 255) / 255, which is k with probability P(k) exactly."""
  logistic = loc + tf.exp(log_scale) * (tf.math.log(u) - tf.math.log1p(-u))
  return tf.clip_by_value(tf.round(logistic * (NUM_BINS - 1)), 0.0, NUM_BINS - 1.0) / (
      NUM_BINS - 1)


def _component(mixture_logits, u):
  """The one-hot component [..., M] drawn from pi = softmax(mixture_logits [..., M]) by a
  uniform u [...]: the first m whose cumulative weight exceeds u."""
  cumulative = tf.math.cumsum(tf.nn.softmax(mixture_logits, axis=-1), axis=-1)
  num_mixtures = mixture_logits.shape[-1]
  index = tf.minimum(tf.reduce_sum(tf.cast(cumulative <= u[..., tf.newaxis], tf.int32), -1),
                     num_mixtures - 1)
  return tf.one_hot(index, num_mixtures, dtype=tf.float32)


class DiscretizedLogisticMixtureLikelihood(Likelihood):
  """Each sub-pixel x = k / 255 of an 8-bit image gets a mixture of num_mixtures logistics
  discretised to the 256 bins (DiscretizedLogisticMixture): a probability mass, so bits/dim
  are a proper discrete figure.

  Sub-pixels are independent given z: the channels of a pixel do not depend on one another
  (CoupledLogisticMixtureLikelihood, with channel_coupling, makes each channel's mean depend
  on the previous channels, as PixelCNN++ does).

  Parameters per sub-pixel [..., 3M], M = num_mixtures, in three blocks of M:
  params[..., :M] are the mixture logits (pi = softmax), params[..., M:2M] give the means
  loc = 0.5 + p (unconstrained, centred so that zero parameters give mid-grey), and
  params[..., 2M:] the log-scales, clipped to [LOG_SCALE_MIN, LOG_SCALE_MAX] (s = exp).
  num_mixtures = 1 is the plain discretised logistic.
  """
  discrete = True

  def __init__(self, num_mixtures):
    if not isinstance(num_mixtures, int) or num_mixtures < 1:
      raise ValueError(f'num_mixtures must be an integer of at least 1, got {num_mixtures!r}')
    self.num_mixtures = num_mixtures
    self.num_params = 3 * num_mixtures

  def components(self, params):
    """params [..., 3M] -> (mixture_logits, locs, log_scales), each [..., M]."""
    mixture_logits, raw_locs, raw_log_scales = tf.split(params, 3, axis=-1)
    log_scales = tf.clip_by_value(raw_log_scales, LOG_SCALE_MIN, LOG_SCALE_MAX)
    return mixture_logits, 0.5 + raw_locs, log_scales

  def distribution(self, params):
    return DiscretizedLogisticMixture(*self.components(params))

  def log_prob(self, params, x):
    return tf.reduce_sum(
        discretized_logistic_mixture_log_prob(x, *self.components(params)), [-3, -2, -1])

  def sample_with(self, params, uniforms):
    """x [..., C] ~ p(x | params [..., C, 3M]) from uniforms [..., C, 2] in (0, 1): per
    sub-pixel, the component from the first, the logistic from the second."""
    mixture_logits, locs, log_scales = self.components(params)
    one_hot = _component(mixture_logits, uniforms[..., 0])
    pick = lambda t: tf.reduce_sum(one_hot * t, -1)
    return _logistic_bin(pick(locs), pick(log_scales), uniforms[..., 1])


def coupling_pairs(channels):
  """[(c, j)] for 0 <= j < c < channels in the order (1, 0), (2, 0), (2, 1), ...: channel c's
  mean depends on channel j through the coefficient of the pair's position in this list."""
  return [(c, j) for c in range(channels) for j in range(c)]


def coupled_locs(locs, coeffs, x):
  """Each channel's location given the channels before it, PixelCNN++'s linear coupling:

      loc'_c = loc_c + sum_{j < c} a_(c,j) (x_j - 1/2),    a_(c,j) = coeffs[..., p, :]

  with p the pair's position in coupling_pairs. locs, coeffs [..., C, M] and the observed
  pixels x [..., C] (broadcasting) -> [..., C, M]."""
  channels = locs.shape[-2]
  centred = x[..., tf.newaxis] - 0.5                                       # [..., C, 1]
  shifts = [tf.zeros_like(coeffs[..., 0, :] * centred[..., 0, :])] * channels
  for p, (c, j) in enumerate(coupling_pairs(channels)):
    shifts[c] = shifts[c] + coeffs[..., p, :] * centred[..., j, :]
  return locs + tf.stack(shifts, -2)


def coupled_logistic_mixture_log_prob(x, mixture_logits, locs, log_scales, coeffs):
  """log sum_m pi_m prod_c P_m,c(x_c | x_<c) of pixels x [..., C] on the grid k / 255: one
  component m for the whole pixel, channel c a discretised logistic at coupled_locs.
  mixture_logits [..., M], locs, log_scales, coeffs [..., C, M] -> [...]."""
  channel_log_probs = discretized_logistic_log_prob(
      x[..., tf.newaxis], coupled_locs(locs, coeffs, x), log_scales)      # [..., C, M]
  return tf.reduce_logsumexp(tf.nn.log_softmax(mixture_logits, axis=-1)
                             + tf.reduce_sum(channel_log_probs, -2), axis=-1)


class CoupledLogisticMixture(tfd.AutoCompositeTensorDistribution):
  """PixelCNN++'s discretised logistic mixture over a pixel's C channels (C <= 3), jointly:

      p(x) = sum_m pi_m prod_c P(x_c; loc_m,c + sum_{j<c} a_m,(c,j) (x_j - 1/2), s_m,c)

  with P the discretised logistic (discretized_logistic_log_prob). Batch shape: the
  parameters' without their last two axes; event shape [C]. mixture_logits [..., M] (pi =
  softmax), locs, log_scales (in [LOG_SCALE_MIN, LOG_SCALE_MAX]) and coeffs (slot p the
  coefficient of pair p of coupling_pairs) [..., C, M], float32.

  sample(): a component m ~ pi, then the channels in order, each on the grid (sample_with).
  mean(): sum_m pi_m mu_m,c, with mu_m,c = loc'_m,c at the earlier channels' component means
  mu_m,j (the continuous mixture's mean), clipped to [0, 1].
  """

  def __init__(self, mixture_logits, locs, log_scales, coeffs, validate_args=False,
               allow_nan_stats=True, name='CoupledLogisticMixture'):
    parameters = dict(locals())
    with tf.name_scope(name) as name:
      self._mixture_logits = tf.convert_to_tensor(mixture_logits, tf.float32)
      self._locs = tf.convert_to_tensor(locs, tf.float32)
      self._log_scales = tf.convert_to_tensor(log_scales, tf.float32)
      self._coeffs = tf.convert_to_tensor(coeffs, tf.float32)
      super().__init__(dtype=tf.float32, reparameterization_type=tfd.NOT_REPARAMETERIZED,
                       validate_args=validate_args, allow_nan_stats=allow_nan_stats,
                       parameters=parameters, name=name)

  @classmethod
  def _parameter_properties(cls, dtype, num_classes=None):
    return dict(mixture_logits=tfp.util.ParameterProperties(event_ndims=1),
                locs=tfp.util.ParameterProperties(event_ndims=2),
                log_scales=tfp.util.ParameterProperties(event_ndims=2),
                coeffs=tfp.util.ParameterProperties(event_ndims=2))

  def _event_shape(self):
    return self._locs.shape[-2:-1]

  def _event_shape_tensor(self):
    return tf.shape(self._locs)[-2:-1]

  def _log_prob(self, x):
    return coupled_logistic_mixture_log_prob(x, self._mixture_logits, self._locs,
                                             self._log_scales, self._coeffs)

  def _mean(self):
    channels = self._locs.shape[-2]
    means = []  # mu_m,c [..., M] channel by channel
    for c in range(channels):
      mean = self._locs[..., c, :]
      for p, (later, j) in enumerate(coupling_pairs(channels)):
        if later == c:
          mean += self._coeffs[..., p, :] * (means[j] - 0.5)
      means.append(mean)
    weights = tf.nn.softmax(self._mixture_logits, axis=-1)[..., tf.newaxis, :]
    mean = tf.reduce_sum(weights * tf.stack(means, -2), -1)
    shape = tf.concat([self.batch_shape_tensor(), self.event_shape_tensor()], 0)
    return tf.clip_by_value(tf.broadcast_to(mean, shape), 0.0, 1.0)

  def sample_with(self, uniforms):
    """x [..., C] from uniforms [..., C, 2] in (0, 1): the component from uniforms[..., 0,
    0], channel c's logistic from uniforms[..., c, 1], in channel order."""
    one_hot = _component(self._mixture_logits, uniforms[..., 0, 0])
    pick = lambda t: tf.reduce_sum(one_hot * t, -1)
    channels = self._locs.shape[-2]
    x = []
    for c in range(channels):
      loc = pick(self._locs[..., c, :])
      for p, (later, j) in enumerate(coupling_pairs(channels)):
        if later == c:
          loc += pick(self._coeffs[..., p, :]) * (x[j] - 0.5)
      x.append(_logistic_bin(loc, pick(self._log_scales[..., c, :]), uniforms[..., c, 1]))
    return tf.stack(x, -1)

  def _sample_n(self, n, seed=None):
    shape = tf.concat([[n], self.batch_shape_tensor(), self.event_shape_tensor(), [2]], 0)
    uniforms = tf.random.stateless_uniform(shape, tfp.random.sanitize_seed(seed),
                                           minval=np.finfo(np.float32).tiny, maxval=1.0)
    return self.sample_with(uniforms)


class CoupledLogisticMixtureLikelihood(Likelihood):
  """logistic_mixture with channel_coupling: each pixel's C <= 3 channels jointly under
  CoupledLogisticMixture (PixelCNN++), a probability mass over the 256^C colours.

  Parameters per sub-pixel [..., C, 4M], M = num_mixtures, in four blocks of M: channel c's
  mixture logits (the pixel's are their sum over the channels, so one component serves the
  whole pixel), means loc = 0.5 + p, log-scales clipped to [LOG_SCALE_MIN, LOG_SCALE_MAX],
  and coupling coefficients a = tanh(p) in (-1, 1) (slot c holds pair c of coupling_pairs:
  for RGB G on R, B on R, B on G; greyscale images use none).
  """
  discrete = True
  event_ndims = 1

  def __init__(self, num_mixtures):
    if not isinstance(num_mixtures, int) or num_mixtures < 1:
      raise ValueError(f'num_mixtures must be an integer of at least 1, got {num_mixtures!r}')
    self.num_mixtures = num_mixtures
    self.num_params = 4 * num_mixtures

  def check_channels(self, channels):
    if channels > 3:
      raise UserError(f'channel_coupling couples the channels of images with at most 3 '
                      f'channels; these have {channels}: set channel_coupling=false or '
                      'channels=3')

  def components(self, params):
    """params [..., C, 4M] -> (mixture_logits [..., M], locs, log_scales, coeffs [..., C, M])."""
    mixture_logits, raw_locs, raw_log_scales, raw_coeffs = tf.split(params, 4, axis=-1)
    log_scales = tf.clip_by_value(raw_log_scales, LOG_SCALE_MIN, LOG_SCALE_MAX)
    return (tf.reduce_sum(mixture_logits, -2), 0.5 + raw_locs, log_scales,
            tf.tanh(raw_coeffs))

  def distribution(self, params):
    return CoupledLogisticMixture(*self.components(params))

  def log_prob(self, params, x):
    return tf.reduce_sum(coupled_logistic_mixture_log_prob(x, *self.components(params)),
                         [-2, -1])

  def sample_with(self, params, uniforms):
    """x [..., C] ~ p(x | params [..., C, 4M]) from uniforms [..., C, 2] in (0, 1)
    (CoupledLogisticMixture.sample_with)."""
    return self.distribution(params).sample_with(uniforms)


LIKELIHOODS = ('bernoulli', 'gaussian', 'logistic_mixture')


def make_likelihood(hparams):
  """The Likelihood named by `hparams.likelihood` (logistic_mixture: coupled over a pixel's
  channels when `hparams.channel_coupling`), or a one-line error."""
  if hparams.likelihood == 'bernoulli':
    return BernoulliLikelihood()
  if hparams.likelihood == 'gaussian':
    return GaussianLikelihood(hparams.min_decoder_scale)
  if hparams.likelihood == 'logistic_mixture':
    if hparams.channel_coupling:
      return CoupledLogisticMixtureLikelihood(hparams.num_mixtures)
    return DiscretizedLogisticMixtureLikelihood(hparams.num_mixtures)
  raise ValueError(
      f'unknown likelihood {hparams.likelihood!r}; valid: {", ".join(LIKELIHOODS)}')
