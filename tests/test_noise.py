"""tfvae.noise: Philox's known answers, the distributions it draws, and counter-based
independence of batching and streams."""

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from tfvae import noise


def _jit(fn):
  return tf.function(fn, jit_compile=True)


def test_philox_known_answers():
  # Random123's known-answer vectors for Philox4x32-10.
  cases = [((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
           ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
            (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1))]
  for counter, key, expected in cases:
    out = noise.philox4x32([tf.constant(c, tf.uint32) for c in counter],
                           [tf.constant(k, tf.uint32) for k in key])
    assert [int(v) for v in out] == list(expected)


def test_normals_are_standard_and_uncorrelated():
  key = noise.key(0, 'eval_posterior')
  eps = _jit(lambda: noise.normal(key, tf.range(200), tf.range(100), 7))().numpy()
  assert eps.shape == (100, 200, 7)
  assert abs(eps.mean()) < 0.01 and abs(eps.std() - 1) < 0.01
  assert scipy.stats.kstest(eps.ravel()[:20000], 'norm').pvalue > 1e-3
  assert abs(np.corrcoef(eps[:, :, 0].ravel(), eps[:, :, 1].ravel())[0, 1]) < 0.02
  assert abs(np.corrcoef(eps[:-1].ravel(), eps[1:].ravel())[0, 1]) < 0.02


def test_uniforms_and_bernoulli_draws():
  key = noise.key(3, 'train_binarize')
  u = _jit(lambda: noise.uniform(key, 1000, 1, 500))().numpy()
  assert 0 < u.min() and u.max() < 1
  assert scipy.stats.kstest(u.ravel()[:50000], 'uniform').pvalue > 1e-3
  probs = np.linspace(0, 1, 11, dtype=np.float32)
  x = _jit(lambda p: noise.bernoulli(tf.broadcast_to(p, [20000, 11]), key, 20000, step=4))(
      probs).numpy()
  assert set(np.unique(x)) <= {0.0, 1.0}
  assert x[:, 0].max() == 0 and x[:, -1].min() == 1  # p = 0 and p = 1 exactly
  np.testing.assert_allclose(x.mean(0), probs, atol=4 * np.sqrt(0.25 / 20000))


def test_a_number_depends_only_on_its_counter():
  """Row b of a draw is the same whatever other rows are drawn with it (subsets, replicas
  taking slices of a batch), and differs between steps, samples, seeds and streams."""
  key = noise.key(5, 'train_posterior')
  whole = noise.normal(key, tf.range(10), tf.range(3), 6, step=7).numpy()
  part = noise.normal(key, tf.constant([2, 8]), tf.constant([1]), 6, step=7).numpy()
  np.testing.assert_array_equal(part[0], whole[1][[2, 8]])
  # XLA's erfinv rounds differently from TensorFlow's kernel in the last bit or two.
  np.testing.assert_allclose(_jit(lambda: noise.normal(key, 10, 3, 6, step=7))(), whole,
                             rtol=1e-6, atol=1e-6)
  others = [noise.normal(key, 10, 3, 6, step=8), noise.normal(noise.key(6, 'train_posterior'),
                                                                10, 3, 6, step=7),
            noise.normal(noise.key(5, 'eval_posterior'), 10, 3, 6, step=7)]
  for other in others:
    assert not np.any(np.isclose(other.numpy(), whole))
  probs = tf.fill([6, 4, 4, 1], 0.5)
  rows = tf.constant([10, 11, 12, 13, 14, 15])
  both = noise.bernoulli(probs, noise.key(1, 'train_binarize'), rows, step=2).numpy()
  half = noise.bernoulli(probs[3:], noise.key(1, 'train_binarize'), rows[3:], step=2).numpy()
  np.testing.assert_array_equal(half, both[3:])


def test_keys_take_int64_seeds_and_reject_unknown_streams():
  a = noise.key(2**40 + 1, 'prior')
  b = noise.key(tf.constant(2**40 + 1, tf.int64), 'prior')
  assert [int(v) for v in a] == [int(v) for v in b]
  assert [int(v) for v in noise.key(1, 'prior')] != [int(v) for v in a]
  with pytest.raises(ValueError, match="unknown noise stream 'x'; valid: train_posterior"):
    noise.key(0, 'x')
