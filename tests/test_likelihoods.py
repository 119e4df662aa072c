"""Likelihoods: the discretised logistic mixture's probabilities, stability, log_prob contract,
fit and samples; Bernoulli and Gaussian against tfd; make_likelihood."""

import math

import numpy as np
import pytest
from scipy import special
from scipy import stats
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import likelihoods
from tfvae.hparams import HParams

tfd = tfp.distributions

GRID = np.arange(256) / 255.0


def _hparams(likelihood, num_mixtures=2, min_decoder_scale=0.1):
  return HParams(likelihood=likelihood, num_mixtures=num_mixtures,
                 min_decoder_scale=min_decoder_scale, channel_coupling=False)


def _mixture(num_mixtures):
  return likelihoods.make_likelihood(_hparams('logistic_mixture', num_mixtures))


def _raw_params(mixture_logits, locs, log_scales):
  """Raw per-sub-pixel parameters [..., 3M] for the given (mixture logits, locs, log-scales)
  [..., M], undoing the likelihood's loc = 0.5 + p."""
  return np.concatenate([np.asarray(mixture_logits, np.float32),
                         np.asarray(locs, np.float32) - 0.5,
                         np.asarray(log_scales, np.float32)], -1)


def _grid_log_probs(likelihood, params):
  """log P(k) [256, S] for k in 0..255 of S sub-pixels with raw params [S, 3M], float64."""
  x = tf.constant(GRID[:, np.newaxis], tf.float32)
  return likelihood.distribution(tf.constant(params)).log_prob(x).numpy().astype(np.float64)


def _reference_log_prob(k, loc, scale):
  """log P(k) of one discretised logistic in float64 from the CDF differences, each taken
  in the tail where it is accurate: sigmoid(a) - sigmoid(b) = sigmoid(-b) - sigmoid(-a)."""
  x, h = k / 255.0, 0.5 / 255.0
  a, b = (x + h - loc) / scale, (x - h - loc) / scale
  if k == 0:
    return special.log_expit(a)
  if k == 255:
    return special.log_expit(-b)
  if a + b > 0:
    a, b = -b, -a
  return special.log_expit(a) + np.log(-np.expm1(special.log_expit(b) - special.log_expit(a)))


@pytest.mark.parametrize('locs, log_scales', [
    ([0.5], [-2.0]),
    ([0.3], [likelihoods.LOG_SCALE_MIN]),          # narrowest: nearly one bin
    ([130.0 / 255], [-50.0]),                       # clipped to the narrowest, on a bin centre
    ([0.5], [likelihoods.LOG_SCALE_MAX]),          # widest: most mass in the edge bins
    ([-0.7], [-3.0]),                               # below 0: the lowest bin takes it
    ([1.9], [-6.0]),                                # above 1: the highest bin takes it
    ([40.0], [50.0]),                               # far out, clipped to the widest
    ([-0.2, 0.4, 1.3], [-7.5, -1.0, 1.5]),         # a mixture across the range
])
def test_probabilities_of_a_sub_pixel_sum_to_one(locs, log_scales):
  num_mixtures = len(locs)
  params = _raw_params([np.linspace(-1.0, 2.0, num_mixtures)], [locs], [log_scales])
  log_probs = _grid_log_probs(_mixture(num_mixtures), params)
  assert np.all(np.isfinite(log_probs))
  assert np.exp(log_probs).sum() == pytest.approx(1.0, abs=2e-6)


@pytest.mark.parametrize('loc, log_scale', [
    (0.3, -2.5), (0.5, likelihoods.LOG_SCALE_MIN), (0.71, -5.0), (-0.4, -4.0), (1.6, -1.0),
    (0.5, likelihoods.LOG_SCALE_MAX), (0.02, -7.0)])
def test_single_logistic_matches_float64_formula(loc, log_scale):
  log_probs = _grid_log_probs(_mixture(1), _raw_params([[0.0]], [[loc]], [[log_scale]]))[:, 0]
  reference = np.array([_reference_log_prob(k, loc, math.exp(log_scale)) for k in range(256)])
  # Far-tail bins have log-probabilities in the thousands: float32 carries ~7 digits of them.
  # x = k / 255 is rounded to float32 (by up to 3e-8), an error of 3e-8 / s in the logistic's
  # arguments: 1e-4 at the narrowest scale.
  np.testing.assert_allclose(log_probs, reference, rtol=1e-5, atol=2e-4)


def test_mixture_is_the_pi_weighted_sum_of_its_components():
  mixture_logits, locs, log_scales = [0.3, -1.0, 2.0], [0.1, 0.55, 1.2], [-3.0, -6.5, -1.5]
  mixture = _grid_log_probs(_mixture(3), _raw_params([mixture_logits], [locs], [log_scales]))
  components = _grid_log_probs(_mixture(1), _raw_params(
      np.zeros((3, 1)), np.array(locs)[:, np.newaxis], np.array(log_scales)[:, np.newaxis]))
  weights = special.softmax(mixture_logits)
  np.testing.assert_allclose(np.exp(mixture[:, 0]), np.exp(components) @ weights, rtol=1e-5,
                             atol=1e-12)


def test_log_prob_contract_broadcasts_x_over_samples_and_sums_pixels():
  K, B, H, W, C, M = 3, 2, 4, 5, 3, 2
  likelihood = _mixture(M)
  assert likelihood.num_params == 3 * M and likelihood.discrete
  params = tf.random.stateless_normal([K, B, H, W, C, 3 * M], [3, 4], stddev=2.0)
  x = tf.cast(tf.random.stateless_uniform([B, H, W, C], [5, 6], 0, 256, tf.int32),
              tf.float32) / 255
  log_prob = likelihood.log_prob(params, x).numpy()
  assert log_prob.shape == (K, B)
  per_pixel = likelihood.distribution(params).log_prob(x).numpy()  # x broadcast over K
  assert per_pixel.shape == (K, B, H, W, C)
  np.testing.assert_allclose(log_prob, per_pixel.sum((2, 3, 4)), rtol=1e-5)
  for k in range(K):
    one_sample = likelihood.log_prob(params[k:k + 1], x).numpy()[0]
    np.testing.assert_allclose(log_prob[k], one_sample, rtol=1e-6)
  image = tfd.Independent(likelihood.distribution(params[0]), reinterpreted_batch_ndims=3)
  assert image.batch_shape == (B,) and image.event_shape == (H, W, C)
  np.testing.assert_allclose(image.log_prob(x).numpy(), log_prob[0], rtol=1e-5)


def test_values_and_gradients_are_finite_at_extreme_parameters():
  extremes = [-1e4, -100.0, -9.0, -1.0, 0.0, 0.5, 3.0, 100.0, 1e4]
  combos = np.array(np.meshgrid(extremes, extremes, extremes, indexing='ij')).reshape(3, -1).T
  # Two components per sub-pixel: the extreme one and a reversed copy.
  params = np.concatenate([combos[:, 0:1], combos[::-1, 0:1], combos[:, 1:2],
                           combos[::-1, 1:2], combos[:, 2:3], combos[::-1, 2:3]], -1)
  x = np.array([0, 1, 2, 100, 128, 253, 254, 255]) / 255.0
  params = tf.constant(np.broadcast_to(params[np.newaxis, np.newaxis, :, np.newaxis, np.newaxis],
                                       (1, len(x)) + (len(params), 1, 1, 6)), tf.float32)
  x = tf.constant(np.broadcast_to(x[:, np.newaxis, np.newaxis, np.newaxis],
                                  (len(x), params.shape[2], 1, 1)), tf.float32)
  with tf.GradientTape() as tape:
    tape.watch(params)
    log_prob = _mixture(2).log_prob(params, x)
  gradient = tape.gradient(log_prob, params).numpy()
  assert np.all(np.isfinite(log_prob.numpy())) and np.all(np.isfinite(gradient))
  assert np.all(log_prob.numpy() <= 0)
  # Far in the upper tail at the narrowest scale, log P(k) ~ -(x - h - loc) / s, not -inf.
  far = _grid_log_probs(_mixture(1), _raw_params([[0.0]], [[-0.5]], [[-20.0]]))[200, 0]
  assert far == pytest.approx(-(199.5 / 255 + 0.5) * math.exp(8), rel=1e-5)


def test_fitting_uint8_data_beats_the_uniform_eight_bits_per_dim():
  rng = np.random.RandomState(0)
  shape, num_mixtures = (64, 3, 3, 3), 2
  # Each sub-pixel about its own grey level, spread 4 levels (~4 bits/dim), plus saturated
  # sub-pixels that exercise the edge bins.
  centres = rng.uniform(30, 220, shape[1:])
  data = np.clip(np.round(centres + 4.0 * rng.randn(*shape)), 0, 255).astype(np.uint8)
  data[:, 0, 0, 0], data[:, 1, 1, 1] = 255, np.where(rng.rand(64) < 0.8, 0, 3)
  x = tf.constant(data / 255.0, tf.float32)
  likelihood = _mixture(num_mixtures)
  free = tf.Variable(tf.random.stateless_normal(shape[1:] + (3 * num_mixtures,), [1, 2],
                                                stddev=0.3))
  optimizer = tf.keras.optimizers.Adam(0.1)

  def bits_per_dim():
    params = tf.broadcast_to(free, (1,) + shape + (3 * num_mixtures,))
    return -tf.reduce_mean(likelihood.log_prob(params, x)) / (np.prod(shape[1:]) * math.log(2))

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = bits_per_dim()
    optimizer.apply_gradients([(tape.gradient(loss, free), free)])

  initial = float(bits_per_dim())
  for _ in range(200):
    step()
  final = float(bits_per_dim())
  assert final < initial and final < 8.0 - 2.5


def test_samples_lie_on_the_grid_and_follow_the_probabilities():
  likelihood = _mixture(2)
  params = _raw_params([[0.0, 1.0], [2.0, -2.0], [0.0, 0.0], [5.0, 0.0]],
                       [[0.2, 0.7], [-0.05, 0.5], [0.5, 0.5], [1.01, 0.3]],
                       [[-4.0, -3.0], [-3.5, -2.0], [-0.5, 1.0], [-6.0, -1.0]])
  distribution = likelihood.distribution(tf.constant(params))
  seed = tf.constant([7, 8])  # a stateless seed: the same samples every time
  samples = distribution.sample(20000, seed=seed).numpy()
  assert samples.shape == (20000, 4) and samples.dtype == np.float32
  assert samples.min() >= 0 and samples.max() <= 1
  np.testing.assert_array_equal(samples, (np.round(samples * 255) / 255).astype(np.float32))
  np.testing.assert_array_equal(distribution.sample(20000, seed=seed), samples)
  probs = np.exp(_grid_log_probs(likelihood, params))
  for j in range(len(params)):
    counts = np.bincount(np.round(samples[:, j] * 255).astype(int), minlength=256)
    expected = probs[:, j] * len(samples)
    big = expected >= 5  # pool the sparse bins into one
    observed = np.append(counts[big], counts[~big].sum())
    pooled = np.append(expected[big], expected[~big].sum())
    keep = pooled > 0
    chi_square = np.sum((observed[keep] - pooled[keep])**2 / pooled[keep])
    assert stats.chi2.sf(chi_square, keep.sum() - 1) > 1e-3, (j, chi_square, keep.sum())


def test_mean_is_the_clipped_mixture_mean():
  params = _raw_params([[0.0, 1.0], [0.0, 0.0], [3.0, -3.0]],
                       [[0.2, 0.6], [-1.0, -0.5], [1.4, 0.0]], [[-6.0, -6.0]] * 3)
  mean = _mixture(2).distribution(tf.constant(params)).mean().numpy()
  weights = special.softmax(params[:, :2], -1)
  np.testing.assert_allclose(mean, np.clip((weights * (params[:, 2:4] + 0.5)).sum(-1), 0, 1),
                             rtol=1e-6)
  assert mean[1] == 0 and mean[2] == 1
  # Narrow components inside [0, 1]: the discrete mean.
  probs = np.exp(_grid_log_probs(_mixture(2), params[:1]))[:, 0]
  assert mean[0] == pytest.approx(np.sum(probs * GRID), abs=1e-4)


def test_bernoulli_and_gaussian_match_tfd():
  params = tf.random.stateless_normal([2, 3, 4, 5, 1, 2], [8, 9], stddev=2.0)
  x = tf.random.stateless_uniform([3, 4, 5, 1], [10, 11])
  bernoulli = likelihoods.make_likelihood(_hparams('bernoulli'))
  assert bernoulli.num_params == 1 and not bernoulli.discrete
  expected = tfd.Bernoulli(logits=params[..., 0]).log_prob(x)   # any x in [0, 1]
  np.testing.assert_allclose(bernoulli.log_prob(params[..., :1], x),
                             tf.reduce_sum(expected, [-3, -2, -1]), rtol=1e-5)
  np.testing.assert_allclose(bernoulli.distribution(params[0, ..., :1]).mean(),
                             tf.sigmoid(params[0, ..., 0]), rtol=1e-6)
  gaussian = likelihoods.make_likelihood(_hparams('gaussian', min_decoder_scale=0.05))
  assert gaussian.num_params == 2 and not gaussian.discrete
  normal = tfd.Normal(tf.sigmoid(params[..., 0]), tf.nn.softplus(params[..., 1]) + 0.05)
  np.testing.assert_allclose(gaussian.log_prob(params, x),
                             tf.reduce_sum(normal.log_prob(x), [-3, -2, -1]), rtol=1e-5)
  np.testing.assert_allclose(gaussian.distribution(params).stddev(), normal.stddev(), rtol=1e-6)


def test_make_likelihood_errors_are_one_line():
  assert isinstance(_mixture(5), likelihoods.DiscretizedLogisticMixtureLikelihood)
  assert _mixture(5).num_params == 15
  with pytest.raises(ValueError, match="unknown likelihood 'poisson'; valid: bernoulli, "
                                       "gaussian, logistic_mixture$"):
    likelihoods.make_likelihood(_hparams('poisson'))
  with pytest.raises(ValueError, match='num_mixtures must be an integer of at least 1, got 0$'):
    _mixture(0)
