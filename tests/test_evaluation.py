"""Evaluation: the importance-weighted estimator against a closed form, chunking, noise,
active units, the IWAE and SGVB objectives, and bin/evaluate.py end to end."""

import gc
import math
import os
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from tensorboard.backend.event_processing import event_accumulator

from tfvae import configs
from tfvae import data
from tfvae import decoders
from tfvae import encoders
from tfvae import evaluation
from tfvae import noise
from tfvae import sources
from tfvae import training
from tfvae.model import VAE
from tfvae.model import default_hparams
from conftest import copy_run
from conftest import last_json
from conftest import run_tool

tfd = tfp.distributions

D, Z = 6, 2  # the linear-Gaussian model's data and latent sizes


class LinearEncoder(keras.layers.Layer):
  """q(z|x) = N(A x + c, diag(scale^2)): a deliberately imperfect diagonal posterior."""

  def __init__(self, a, c, scale, **kwargs):
    super().__init__(**kwargs)
    self.image_shape = (D, 1, 1)
    self._a, self._c, self._scale = (tf.constant(v, tf.float32) for v in (a, c, scale))

  def call(self, x):
    loc = tf.reshape(x, [-1, D]) @ self._a + self._c
    return tfd.MultivariateNormalDiag(loc=loc, scale_diag=tf.ones_like(loc) * self._scale)


class LinearDecoder(keras.layers.Layer):
  """p(x|z) = N(W z + b, s^2 I) over images [D, 1, 1]."""

  def __init__(self, w, b, s, **kwargs):
    super().__init__(**kwargs)
    self._w, self._b, self._s = (tf.constant(v, tf.float32) for v in (w, b, s))

  def call(self, z):
    loc = tf.reshape(z @ tf.transpose(self._w) + self._b, [-1, D, 1, 1])
    return tfd.Independent(tfd.Normal(loc, self._s), reinterpreted_batch_ndims=3)

  def log_prob(self, x, z):
    """log p(x|z_k) [K, B] for x [B, D, 1, 1] and z [K, B, Z] (the decoder interface)."""
    loc = z @ tf.transpose(self._w) + self._b
    return tf.reduce_sum(tfd.Normal(loc, self._s).log_prob(tf.reshape(x, [-1, D])), -1)

  def images(self, z):
    return self(z).mean()


def _linear_gaussian(num_examples=200, **hp):
  """(model, x [N, D, 1, 1], exact log p(x) [N]) for p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I),
  so p(x) = N(b, W W^T + s^2 I), with q(z|x) a diagonal Gaussian near the true posterior."""
  rng = np.random.RandomState(0)
  w, b, s = rng.randn(D, Z), rng.randn(D), 0.7
  cov = w @ w.T + s**2 * np.eye(D)
  x = rng.multivariate_normal(b, cov, size=num_examples)
  log_px = tfd.MultivariateNormalTriL(b, np.linalg.cholesky(cov)).log_prob(x).numpy()
  # The true posterior: N(S W^T (x - b) / s^2, S), S = (I + W^T W / s^2)^-1. q keeps a
  # perturbed mean map and an inflated diagonal, so the bound is loose and K matters.
  post_cov = np.linalg.inv(np.eye(Z) + w.T @ w / s**2)
  a = (post_cov @ w.T / s**2).T
  a = a * (1 + 0.5 * rng.randn(*a.shape))
  scale = 3.0 * np.sqrt(np.diag(post_cov))
  hparams = default_hparams().override(**dict(dict(z_size=Z, likelihood='gaussian'), **hp))
  model = VAE(LinearEncoder(a, -b @ a, scale), LinearDecoder(w, b, s), hparams)
  return model, x.reshape(-1, D, 1, 1).astype(np.float32), log_px


def _exact_elbo(model, x):
  """The linear-Gaussian model's ELBO [N] in closed form:
  E_q log N(x; Wz + b, s^2 I) - KL(q || p)."""
  q = model.encode(x)
  mu, var = q.mean().numpy(), q.variance().numpy()
  w, b, s = (v.numpy() for v in (model.decoder._w, model.decoder._b, model.decoder._s))
  residual = np.sum((x.reshape(-1, D) - mu @ w.T - b)**2, -1)
  expected_log_lik = (-0.5 * D * np.log(2 * np.pi * s**2)
                      - (residual + var @ np.sum(w**2, 0)) / (2 * s**2))
  return expected_log_lik - tfd.kl_divergence(q, model.prior.distribution()).numpy()


def _mlp(**hp):
  hparams = default_hparams().override(**dict(dict(hidden_sizes=[32], z_size=4), **hp))
  model = VAE(encoders.MLPEncoder(hparams, (28, 28, 1)), decoders.MLPDecoder(hparams, (28, 28, 1)),
              hparams)
  model.build_variables()
  return model


def _binary_images(n=8, seed=0):
  return tf.cast(tf.random.stateless_uniform((n, 28, 28, 1), [seed, 1]) < 0.3, tf.float32)


def test_iw_estimate_approaches_closed_form_log_likelihood():
  model, x, log_px = _linear_gaussian()
  gaps = {k: np.mean(log_px - evaluation.log_likelihood(model, x, k, seed=3).numpy())
          for k in (1, 10, 100, 2000)}
  # A lower bound in expectation, tightening with K, and close to exact at K = 2000.
  assert gaps[1] > gaps[10] > gaps[100] > gaps[2000] > -0.005, gaps
  assert gaps[1] > 5 and gaps[10] > 0.1 and abs(gaps[2000]) < 0.005, gaps
  results = evaluation.evaluate_split(model, x, 2000, seed=3)
  assert results['log_likelihood'] == pytest.approx(np.mean(log_px) - gaps[2000], abs=1e-3)
  assert results['elbo'] == pytest.approx(np.mean(_exact_elbo(model, x)), abs=0.02)
  assert results['elbo'] < np.mean(log_px) - 5


def test_chunking_batching_and_subsets_do_not_change_the_estimate():
  model = _mlp()
  x = _binary_images(12).numpy()
  whole = evaluation.log_likelihood(model, x, 60, seed=5, chunk_size=60).numpy()
  # log p(x) is about -545 here: float32 sums of 784 pixel terms in a different order differ
  # by ~1e-6 relative, while a mistake in merging chunks moves it by ~log(K / chunk) > 0.1.
  for chunk_size in (1, 7, 25):
    chunked = evaluation.log_likelihood(model, x, 60, seed=5, chunk_size=chunk_size).numpy()
    np.testing.assert_allclose(chunked, whole, rtol=3e-6, atol=0)
  # Each example's estimate depends only on (seed, its index, K).
  ids = [3, 7, 10]
  subset = evaluation.log_likelihood(model, x[ids], 60, seed=5, example_ids=ids).numpy()
  np.testing.assert_allclose(subset, whole[ids], rtol=3e-6, atol=0)
  a = evaluation.evaluate_split(model, x, 60, seed=5, batch_size=5, chunk_size=13)
  b = evaluation.evaluate_split(model, x, 60, seed=5, batch_size=12, max_memory_mb=1)
  for key in ('log_likelihood', 'elbo', 'reconstruction', 'kl'):
    assert a[key] == pytest.approx(b[key], rel=3e-6)
  assert a['log_likelihood'] == pytest.approx(whole.mean(), rel=3e-6)
  other_seed = evaluation.log_likelihood(model, x, 60, seed=6).numpy()
  assert np.all(other_seed != whole)


def test_evaluate_split_results():
  model = _mlp()
  x = _binary_images(30).numpy()
  r = evaluation.evaluate_split(model, x, 10, seed=0, batch_size=8)
  assert r['num_examples'] == 30 and r['num_importance_samples'] == 10
  assert r['elbo'] == pytest.approx(r['reconstruction'] - r['kl'])
  assert r['bits_per_dim'] == pytest.approx(-r['log_likelihood'] / (784 * math.log(2)))
  assert 0 <= r['active_units'] <= 4 and r['seconds'] > 0
  dataset = tf.data.Dataset.from_tensor_slices(x).batch(8)
  from_dataset = evaluation.evaluate_split(model, dataset, 10, seed=0)
  assert from_dataset['log_likelihood'] == pytest.approx(r['log_likelihood'], abs=2e-4)


def test_active_units():
  rng = np.random.RandomState(0)
  variances = np.array([0.0, 0.005, 0.009, 0.02, 1.0, 4.0])
  means = rng.randn(20000, 6) * np.sqrt(variances) + 3.0
  assert evaluation.active_units(means) == 3
  assert evaluation.active_units(means, threshold=0.001) == 5
  assert evaluation.active_units(np.zeros((10, 4))) == 0
  with pytest.raises(ValueError, match='posterior means'):
    evaluation.active_units(np.zeros(5))


def test_log_weights_match_the_distributions():
  model, x, _ = _linear_gaussian(8)
  log_weights = model.log_weights(x, 5, seed=1)
  assert log_weights.shape == (5, 8)
  q = model.encode(x)
  eps = noise.normal(noise.key(1, 'eval_posterior'), 8, 5, Z)
  z = q.mean() + q.stddev() * eps
  expected = (tf.reshape(model.decode(tf.reshape(z, [-1, Z])).log_prob(np.tile(x, [5, 1, 1, 1])),
                         [5, 8]) + model.prior.log_prob(z) - q.log_prob(z))
  np.testing.assert_allclose(log_weights, expected, rtol=1e-5, atol=1e-4)


def test_iwae_with_one_sample_is_the_elbo_estimator():
  model, x, _ = _linear_gaussian(16, objective='iwae', num_samples=1)
  elbo_model, _, _ = _linear_gaussian(16)
  eps = tf.random.stateless_normal([1, 16, Z], [2, 0])
  losses = model.compute_losses(x, 10, eps)
  # The same eps: -loss is the one-sample estimate log p(x|z) + log p(z) - log q(z|x).
  q = model.encode(x)
  z = q.mean() + q.stddev() * eps[0]
  one_sample = model.decode(z).log_prob(x) + model.prior.log_prob(z) - q.log_prob(z)
  assert -losses.loss.numpy() == pytest.approx(np.mean(one_sample), rel=1e-5)
  # elbo, r_loss and kl are those of objective=elbo with the same eps.
  elbo_losses = elbo_model.compute_losses(x, 10, eps)
  for field in ('elbo', 'r_loss', 'kl_div'):
    np.testing.assert_allclose(getattr(losses, field), getattr(elbo_losses, field), rtol=1e-6)
  assert losses.beta.numpy() == 1.0
  # Its expectation over eps is the analytic ELBO.
  xs = np.repeat(x[:1], 20000, axis=0)
  eps = tf.random.stateless_normal([1, 20000, Z], [3, 0])
  mc = -float(model.compute_losses(xs, 10, eps).loss)
  stderr = np.std(model.sample_terms(xs, model.infer(xs), eps).log_weights) / np.sqrt(20000)
  assert stderr < 0.1
  assert mc == pytest.approx(_exact_elbo(model, x[:1])[0], abs=4 * stderr)


def test_iwae_bound_is_logmeanexp_of_log_weights_and_above_elbo():
  model, x, log_px = _linear_gaussian(32, objective='iwae', num_samples=50)
  eps = tf.random.stateless_normal([50, 32, Z], [4, 0])
  losses = model.compute_losses(x, 1, eps)
  terms = model.sample_terms(x, model.infer(x), eps)
  iwae = tf.reduce_logsumexp(terms.log_weights, 0) - math.log(50)
  assert losses.loss.numpy() == pytest.approx(-np.mean(iwae), rel=1e-5)
  assert np.mean(losses.elbo) < np.mean(iwae) < np.mean(log_px) + 0.05


def test_the_evaluator_lets_every_model_go(data_dir, tmp_path):
  """Five models made and evaluated in one process, as bench/paper_lower_bound.py does, hold
  no more memory than one: once dropped, each model and its weights are freed (the
  evaluator's cache of compiled functions refers to a model only weakly)."""
  config = configs.get_config('binarized_mnist_fc')
  hparams = config.hparams.parse('hidden_sizes=[16],z_size=2,batch_size=20')
  source = sources.make_source(config.dataset, data_dir=data_dir)
  refs, cached = [], len(evaluation._COMPILED)  # pylint: disable=protected-access
  for i in range(5):
    trainer = training.Trainer(config, hparams, str(tmp_path / f'run{i}'), source, seed=i)
    assert trainer.weights_finite()
    assert math.isfinite(trainer.evaluator()()['elbo'])
    assert len(evaluation._COMPILED[trainer.model]) == 1  # pylint: disable=protected-access
    refs += [weakref.ref(trainer.model)] + [weakref.ref(v) for v in trainer.model.variables]
    del trainer
  gc.collect()
  assert sum(ref() is not None for ref in refs) == 0
  assert len(evaluation._COMPILED) <= cached  # pylint: disable=protected-access


# bin/evaluate.py (its entry point, in this process).


def test_subsets_are_seeded_random_and_sorted():
  assert list(evaluation.subset(0, 60)) == list(range(60))
  assert list(evaluation.subset(100, 60)) == list(range(60))
  ids = evaluation.subset(20, 60, seed=1)
  assert len(ids) == 20 and list(ids) != list(range(20)) and np.all(np.diff(ids) > 0)
  np.testing.assert_array_equal(evaluation.subset(20, 60, seed=1), ids)
  assert not np.array_equal(evaluation.subset(20, 60, seed=2), ids)
  with pytest.raises(ValueError, match='num_examples must be >= 0'):
    evaluation.subset(-1, 60)


def test_a_split_is_scaled_and_binarised_per_example(data_dir):
  """Evaluating uint8 images (a data.Split) scales them inside; with binarize, each image's
  bits depend only on (seed, its index), so a subset sees the bits the whole split does."""
  model = _mlp()
  rng = np.random.RandomState(0)
  info = data.DatasetInfo('grey', (28, 28, 1), False, None, {})
  split = data.Split(rng.randint(0, 256, (30, 28, 28, 1)).astype(np.uint8), None, info)
  as_float = evaluation.evaluate_split(model, split.images / np.float32(255), 7, seed=2)
  scaled = evaluation.evaluate_split(model, split, 7, seed=2)
  assert scaled['log_likelihood'] == pytest.approx(as_float['log_likelihood'], rel=1e-6)
  whole = evaluation.evaluate_split(model, split, 7, seed=2, binarize=True, batch_size=7)
  bits = data.model_input(split.images, info, True, noise.key(2, 'eval_binarize'), 30).numpy()
  assert set(np.unique(bits)) == {0.0, 1.0}
  by_hand = evaluation.evaluate_split(model, bits, 7, seed=2)
  assert whole['log_likelihood'] == pytest.approx(by_hand['log_likelihood'], rel=1e-6)
  assert whole['log_likelihood'] != scaled['log_likelihood']
  per_image = [evaluation.evaluate_split(model, split, 7, seed=2, binarize=True,
                                         example_ids=[i])['log_likelihood'] for i in range(30)]
  assert np.mean(per_image) == pytest.approx(whole['log_likelihood'], rel=1e-5)


def test_evaluate_cli(tmp_path, tiny_run):
  trained, data_dir = tiny_run
  run_dir = copy_run(trained, tmp_path)
  args = [f'--run_dir={run_dir}', f'--data_dir={data_dir}', '--num_importance_samples=30',
          '--num_examples=25', '--seed=2']
  missing = (('best', f'no checkpoint in {run_dir}/best: it is kept only by runs trained '
                      'with early_stopping_patience > 0'),
             ('ckpt-7', "checkpoint 'ckpt-7' does not exist; use latest, best or"))
  rc, out = run_tool('evaluate', *args)
  assert rc == 0, out
  results = last_json(out)
  for key in ('elbo', 'reconstruction', 'kl', 'log_likelihood', 'bits_per_dim',
              'active_units', 'num_importance_samples', 'num_examples', 'seconds'):
    assert key in results, key
  assert results['num_examples'] == 25 and results['num_importance_samples'] == 30
  assert results['step'] == 20 and results['split'] == 'test'
  assert results['elbo'] <= results['log_likelihood'] < 0
  assert 'log-likelihood (IW, K=30)' in out and 'active units' in out
  acc = event_accumulator.EventAccumulator(os.path.join(run_dir, 'eval'),
                                           size_guidance={'tensors': 0})
  acc.Reload()
  for tag in ('log_likelihood', 'bits_per_dim', 'active_units', 'elbo'):
    assert [e.step for e in acc.Tensors(tag)] == [20], tag
  # bin/train.py --mode=eval is the same evaluation: the same numbers for the same K, subset
  # and seed. And checkpoints that are not there.
  rc, out = run_tool('train', '--mode=eval', f'--run_dir={run_dir}', f'--data_dir={data_dir}',
                     '--eval_num_samples=30', '--eval_num_examples=25', '--seed=2')
  assert rc == 0, out
  by_train = last_json(out)
  for key in ('elbo', 'log_likelihood', 'kl', 'active_units', 'num_examples', 'step'):
    assert by_train[key] == results[key], key
  for which, message in missing:
    rc, out = run_tool('evaluate', *args, f'--checkpoint={which}')
    assert rc == 1 and out.strip().splitlines()[-1].startswith('error: ' + message), out


@pytest.mark.parametrize('args, message', [
    (['--run_dir=/nonexistent/run'], 'is not a tfvae run directory'),
])
def test_evaluate_cli_user_errors_are_one_line(args, message):
  rc, out = run_tool('evaluate', *args)
  assert rc == 1, out
  assert message in out and 'Traceback' not in out
  assert out.strip().splitlines()[-1].startswith('error: ')


def test_train_cli_rejects_iwae_with_free_bits(tmp_path, data_dir):
  rc, out = run_tool('train', '--config=binarized_mnist_fc', f'--run_dir={tmp_path}',
                     f'--data_dir={data_dir}', '--hparams=objective=iwae,free_bits=1',
                     '--num_steps=1')
  assert rc == 1
  assert out.strip().splitlines()[-1].startswith(
      'error: objective=iwae trains the importance-weighted bound itself')
  assert 'Traceback' not in out
