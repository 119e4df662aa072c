"""The coupled discretised logistic mixture (PixelCNN++): one mixture per pixel, each channel's
mean linear in the channels before it: probabilities, its reference formula, samples, mean,
fit against independent sub-pixels, and its errors."""

import math

import numpy as np
import pytest
from scipy import special
import tensorflow as tf

from tfvae import likelihoods
from tfvae.errors import UserError
from tfvae.model import default_hparams

GRID = np.arange(256) / 255.0


def _coupled(num_mixtures):
  return likelihoods.make_likelihood(default_hparams().override(
      likelihood='logistic_mixture', num_mixtures=num_mixtures, channel_coupling=True))


def _raw(logits, locs, log_scales, coeffs):
  """Raw parameters [..., C, 4M] from per-channel logits, locs, log-scales and coefficient
  slots [..., C, M] (undoing loc = 0.5 + p and a = tanh(p))."""
  return np.concatenate([np.asarray(logits, np.float32), np.asarray(locs, np.float32) - 0.5,
                         np.asarray(log_scales, np.float32),
                         np.arctanh(np.asarray(coeffs, np.float32))], -1).astype(np.float32)


def _pixel_params(rng, channels, num_mixtures, scale_range=(-4.0, -1.5)):
  shape = (channels, num_mixtures)
  return _raw(rng.normal(size=shape), rng.uniform(0.1, 0.9, shape),
              rng.uniform(*scale_range, shape), rng.uniform(-0.9, 0.9, shape))


def test_make_likelihood_gives_the_coupled_mixture_only_when_asked():
  plain = likelihoods.make_likelihood(default_hparams().override(likelihood='logistic_mixture'))
  assert isinstance(plain, likelihoods.DiscretizedLogisticMixtureLikelihood)
  assert plain.event_ndims == 0
  coupled = _coupled(5)
  assert isinstance(coupled, likelihoods.CoupledLogisticMixtureLikelihood)
  assert coupled.num_params == 20 and coupled.discrete and coupled.event_ndims == 1


def test_a_pixels_probabilities_sum_to_one_over_every_colour():
  params = tf.constant(_pixel_params(np.random.RandomState(0), 3, 2))
  distribution = _coupled(2).distribution(params)
  assert distribution.batch_shape == () and distribution.event_shape == (3,)
  g, b = np.meshgrid(GRID, GRID, indexing='ij')
  total = 0.0
  for r in GRID:  # all 256^3 colours, one red level at a time
    x = np.stack([np.full(g.size, r), g.ravel(), b.ravel()], -1).astype(np.float32)
    total += np.exp(distribution.log_prob(x).numpy().astype(np.float64)).sum()
  assert total == pytest.approx(1.0, abs=1e-4)


def test_log_prob_is_the_mixture_over_components_of_coupled_channels():
  rng = np.random.RandomState(1)
  num_mixtures = 3
  params = _pixel_params(rng, 3, num_mixtures)
  x = np.array([[0, 128, 255], [17, 40, 90], [200, 199, 3]], np.float32) / 255
  got = _coupled(num_mixtures).distribution(tf.constant(params)).log_prob(x).numpy()
  logits, locs, log_scales, coeffs = np.split(params, 4, -1)
  locs, coeffs = locs + 0.5, np.tanh(coeffs)
  single = likelihoods.DiscretizedLogisticMixtureLikelihood(1)  # checked against float64
  for row, pixel in enumerate(x):
    per_component = special.log_softmax(logits.sum(0))
    for m in range(num_mixtures):
      means = [locs[0, m],
               locs[1, m] + coeffs[0, m] * (pixel[0] - 0.5),
               locs[2, m] + coeffs[1, m] * (pixel[0] - 0.5) + coeffs[2, m] * (pixel[1] - 0.5)]
      for c in range(3):
        one = np.array([[0.0, means[c] - 0.5, log_scales[c, m]]], np.float32)
        per_component[m] += single.distribution(tf.constant(one)).log_prob(pixel[c])[0]
    assert got[row] == pytest.approx(special.logsumexp(per_component), rel=1e-5, abs=1e-5)


def test_without_coefficients_one_component_is_independent_channels():
  rng = np.random.RandomState(2)
  locs, log_scales = rng.uniform(0, 1, (4, 3, 1)), rng.uniform(-5, -1, (4, 3, 1))
  coupled = _raw(rng.normal(size=(4, 3, 1)), locs, log_scales, np.zeros((4, 3, 1)))
  plain = np.concatenate([np.zeros((4, 3, 1)), locs - 0.5, log_scales], -1).astype(np.float32)
  x = np.round(rng.uniform(0, 255, (4, 3))) / 255
  independent = likelihoods.DiscretizedLogisticMixtureLikelihood(1).distribution(plain)
  np.testing.assert_allclose(_coupled(1).distribution(coupled).log_prob(x),
                             independent.log_prob(x).numpy().sum(-1), rtol=1e-5)


def test_log_prob_contract_sums_pixels_and_broadcasts_x_over_samples():
  K, B, H, W, C, M = 3, 2, 4, 5, 3, 2
  likelihood = _coupled(M)
  params = tf.random.stateless_normal([K, B, H, W, C, 4 * M], [3, 4], stddev=2.0)
  x = tf.cast(tf.random.stateless_uniform([B, H, W, C], [5, 6], 0, 256, tf.int32),
              tf.float32) / 255
  log_prob = likelihood.log_prob(params, x).numpy()
  per_pixel = likelihood.distribution(params).log_prob(x).numpy()
  assert log_prob.shape == (K, B) and per_pixel.shape == (K, B, H, W)
  np.testing.assert_allclose(log_prob, per_pixel.sum((2, 3)), rtol=1e-5)
  assert np.all(np.isfinite(log_prob))


def test_narrow_components_sample_each_channel_at_its_coupled_mean():
  # Scales at the floor (0.09 of a bin): each channel lands in or next to the bin of its
  # location, coupled to the channels sampled before it.
  logits = [[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]
  locs = np.array([[51, 179], [128, 77], [102, 153]]) / 255
  coeffs = [[0.5, -0.8], [0.25, 0.9], [-0.5, 0.3]]
  params = tf.constant(_raw(logits, locs, np.full((3, 2), -8.0), coeffs))
  samples = _coupled(2).distribution(params).sample(4000, seed=tf.constant([1, 2])).numpy()
  red = np.round(samples[:, 0] * 255)
  first = np.abs(red - 51) <= 1
  assert np.all(first | (np.abs(red - 179) <= 1))
  assert np.mean(first) == pytest.approx(special.softmax([0.0, 1.0])[0], abs=0.03)
  for component, rows in ((0, first), (1, ~first)):
    r, g, b = samples[rows].T
    expected_g = locs[1, component] + coeffs[0][component] * (r - 0.5)
    expected_b = (locs[2, component] + coeffs[1][component] * (r - 0.5)
                  + coeffs[2][component] * (g - 0.5))
    for got, expected in ((g, expected_g), (b, expected_b)):
      off = np.abs(got * 255 - np.clip(expected * 255, 0, 255))
      assert np.all(off <= 2) and np.mean(off) < 0.6


def test_samples_follow_the_probabilities_and_the_mean():
  params = tf.constant(_pixel_params(np.random.RandomState(3), 2, 2, scale_range=(-3.0, -2.0)))
  distribution = _coupled(2).distribution(params)
  samples = distribution.sample(40000, seed=tf.constant([3, 4])).numpy()
  assert samples.shape == (40000, 2)
  np.testing.assert_array_equal(samples, (np.round(samples * 255) / 255).astype(np.float32))
  # The joint law of two channels, on a 16 x 16 grid of cells of 16 x 16 colours.
  r, g = np.meshgrid(GRID, GRID, indexing='ij')
  probs = np.exp(distribution.log_prob(np.stack([r.ravel(), g.ravel()], -1).astype(
      np.float32)).numpy().astype(np.float64)).reshape(256, 256)
  cells = probs.reshape(16, 16, 16, 16).sum((1, 3))
  counts = np.histogram2d(samples[:, 0] * 255, samples[:, 1] * 255, bins=16,
                          range=[[-0.5, 255.5]] * 2)[0]
  big = cells * len(samples) >= 20
  np.testing.assert_allclose(counts[big] / len(samples), cells[big], atol=0.006)
  mean = distribution.mean().numpy()
  np.testing.assert_allclose(mean, samples.mean(0), atol=0.005)
  np.testing.assert_allclose(mean, [np.sum(probs.sum(1) * GRID), np.sum(probs.sum(0) * GRID)],
                             atol=2e-3)


def test_coupling_fits_correlated_colours_far_better_than_independent_sub_pixels():
  rng = np.random.RandomState(4)
  # Grey-ish pixels: R uniform, G and B within a few levels of it (~8 + 3 + 3 bits coupled,
  # ~8 + 8 + 8 independent).
  red = rng.randint(8, 248, (256, 1))
  data = np.clip(np.concatenate([red, red + rng.randint(-3, 4, red.shape),
                                 red + rng.randint(-3, 4, red.shape)], -1), 0, 255)
  x = tf.constant(data.reshape(256, 1, 1, 3) / 255.0, tf.float32)

  def fit(likelihood):
    free = tf.Variable(tf.random.stateless_normal((1, 1, 3, likelihood.num_params), [1, 2],
                                                  stddev=0.1))
    optimizer = tf.keras.optimizers.Adam(0.05)

    def bits():
      params = tf.broadcast_to(free, (1, 256, 1, 1, 3, likelihood.num_params))
      return -tf.reduce_mean(likelihood.log_prob(params, x)) / (3 * math.log(2))

    @tf.function
    def step():
      with tf.GradientTape() as tape:
        loss = bits()
      optimizer.apply_gradients([(tape.gradient(loss, free), free)])
    for _ in range(400):
      step()
    return float(bits())

  independent = fit(likelihoods.DiscretizedLogisticMixtureLikelihood(1))
  coupled = fit(_coupled(1))
  assert independent > 7.0 and coupled < independent - 2.5, (independent, coupled)


def test_more_than_three_channels_cannot_be_coupled():
  with pytest.raises(UserError, match='at most 3 channels; these have 4'):
    _coupled(2).check_channels(4)
  _coupled(2).check_channels(1)
