"""Likelihoods: p(x | per-pixel parameters) for the factorised decoders.

A Likelihood turns k parameters per sub-pixel, params [..., H, W, C, k], into a distribution
over each sub-pixel, independent over the pixels given z:

- bernoulli: Bernoulli(x; sigmoid(l)), for binary or [0, 1] images.
- gaussian:  Normal(x; sigmoid(m), softplus(s) + min_scale), for real-valued images such as
  Frey Face (the paper constrains the mean to (0, 1) with a sigmoid).
- logistic_mixture: a mixture of logistics discretised to the 256 values k / 255 of 8-bit
  images (PixelCNN++'s likelihood without its cross-channel dependence), a probability mass,
  so bits/dim are comparable with published CIFAR-10 figures.

`discrete` says which: True when log_prob is the log of a probability mass over the 256
values of 8-bit data; False when it is a density (gaussian) or a Bernoulli on intensities
(a proper mass only when the data are themselves binary, which the dataset knows).
"""

import abc
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

NUM_BINS = 256                           # 8-bit data: k in 0..255, fed as x = k / 255
HALF_BIN = 0.5 / (NUM_BINS - 1)          # h: half a bin's width on the [0, 1] scale
LOG_SCALE_MIN = -8.0                     # s >= 3.4e-4 = h / 5.9: a bin can hold 99.4%
LOG_SCALE_MAX = 2.0                      # s <= 7.4: far wider than [0, 1] already


class Likelihood(abc.ABC):
  """Maps k parameters per pixel [..., k] to a per-pixel distribution."""
  num_params: int
  discrete: bool  # log_prob is a log-mass over the 256 8-bit values (not a density)

  @abc.abstractmethod
  def distribution(self, params):
    """params [B, H, W, C, k] float32 -> a distribution with batch shape [B, H, W, C]."""

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


class DiscretizedLogisticMixtureLikelihood(Likelihood):
  """Each sub-pixel x = k / 255 of an 8-bit image gets a mixture of num_mixtures logistics
  discretised to the 256 bins (DiscretizedLogisticMixture): a probability mass, so bits/dim
  are a proper discrete figure.

  Sub-pixels are independent given z: the channels of a pixel do not depend on one another
  (PixelCNN++ makes each channel's mean depend on the previous channels; this does not).

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


LIKELIHOODS = ('bernoulli', 'gaussian', 'logistic_mixture')


def make_likelihood(hparams):
  """The Likelihood named by `hparams.likelihood`, or a one-line error."""
  if hparams.likelihood == 'bernoulli':
    return BernoulliLikelihood()
  if hparams.likelihood == 'gaussian':
    return GaussianLikelihood(hparams.min_decoder_scale)
  if hparams.likelihood == 'logistic_mixture':
    return DiscretizedLogisticMixtureLikelihood(hparams.num_mixtures)
  raise ValueError(
      f'unknown likelihood {hparams.likelihood!r}; valid: {", ".join(LIKELIHOODS)}')
