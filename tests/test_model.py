"""The objective: KL, free bits, beta, ELBO, SGVB with L samples, IWAE, reparameterisation,
shapes, architectures."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfvae import decoders
from tfvae import encoders
from tfvae import optimization
from tfvae.model import VAE
from tfvae.model import beta_schedule
from tfvae.model import default_hparams

SHAPE = (28, 28, 1)


def _model(encoder=encoders.MLPEncoder, decoder=decoders.MLPDecoder, shape=SHAPE, **hp):
  hparams = default_hparams().override(**dict(dict(hidden_sizes=[32], z_size=4), **hp))
  model = VAE(encoder(hparams, shape, name='encoder'), decoder(hparams, shape, name='decoder'),
              hparams)
  model.build_variables()
  return model


def _binary_images(n=8, shape=SHAPE, seed=0):
  return tf.cast(tf.random.stateless_uniform((n,) + shape, [seed, 1]) < 0.3, tf.float32)


def test_kl_matches_closed_form():
  model = _model()
  x = _binary_images()
  q = model.encode(x)
  mu, sigma = q.mean().numpy(), q.stddev().numpy()
  closed = 0.5 * np.sum(mu**2 + sigma**2 - 1.0 - 2.0 * np.log(sigma), axis=-1)
  losses = model.compute_losses(x, step=10, eps=tf.zeros([8, 4]))
  np.testing.assert_allclose(losses.kl_div.numpy(), closed, rtol=1e-4, atol=1e-5)


def test_shapes_and_elbo_is_unclipped_unweighted():
  model = _model(free_bits=1000.0, max_beta=0.5)
  x = _binary_images()
  losses = model.compute_losses(x, step=3)
  for t in (losses.r_loss, losses.kl_div, losses.kl_cost, losses.elbo):
    assert t.shape == (8,)
  np.testing.assert_allclose(losses.elbo, -(losses.r_loss + losses.kl_div), rtol=1e-6)
  # Free bits this large clip every KL to zero, so the loss is the reconstruction alone.
  np.testing.assert_allclose(losses.kl_cost, 0.0)
  np.testing.assert_allclose(losses.loss, tf.reduce_mean(losses.r_loss), rtol=1e-6)


def test_free_bits_clip_kl_below_free_nats():
  model = _model()
  x = _binary_images()
  eps = tf.zeros([8, 4])
  kl = model.compute_losses(x, 1, eps).kl_div.numpy()
  free_bits = float(np.median(kl)) / math.log(2.0)
  clipped = _model(free_bits=free_bits)
  clipped.set_weights(model.get_weights())
  losses = clipped.compute_losses(x, 1, eps)
  expected = np.maximum(kl - free_bits * math.log(2.0), 0.0)
  np.testing.assert_allclose(losses.kl_cost, expected, rtol=1e-4, atol=1e-4)
  assert (losses.kl_cost.numpy() == 0).sum() >= 4
  np.testing.assert_allclose(losses.kl_div, kl, rtol=1e-6)


def test_loss_weights_kl_cost_by_beta():
  model = _model(beta_rate=0.99, max_beta=2.0)
  losses = model.compute_losses(_binary_images(), step=50, eps=tf.zeros([8, 4]))
  beta = (1 - 0.99**50) * 2.0
  assert losses.beta.numpy() == pytest.approx(beta, rel=1e-5)
  expected = np.mean(losses.r_loss) + beta * np.mean(losses.kl_cost)
  assert losses.loss.numpy() == pytest.approx(expected, rel=1e-5)


def test_beta_schedule():
  assert beta_schedule(0, 0.9, 1.0).numpy() == pytest.approx(0.0)
  assert beta_schedule(1, 0.9, 1.0).numpy() == pytest.approx(0.1)
  assert beta_schedule(10, 0.9, 0.5).numpy() == pytest.approx((1 - 0.9**10) * 0.5, rel=1e-5)
  assert beta_schedule(5, 0.0, 1.0).numpy() == pytest.approx(1.0)


def test_learning_rate_schedule():
  schedule = optimization.learning_rate_schedule(
      default_hparams().override(learning_rate=1e-2, decay_rate=0.9, min_learning_rate=1e-4))
  assert schedule(0).numpy() == pytest.approx(1e-2)
  assert schedule(3).numpy() == pytest.approx((1e-2 - 1e-4) * 0.9**3 + 1e-4, rel=1e-5)
  assert schedule(100000).numpy() == pytest.approx(1e-4, rel=1e-4)


def test_reparameterisation_uses_mu_plus_sigma_eps_and_is_differentiable():
  model = _model()
  x = _binary_images()
  q = model.encode(x)
  eps = tf.random.normal([8, 4])
  z = VAE.reparameterize(q, eps)
  np.testing.assert_allclose(z, q.mean() + q.stddev() * eps, rtol=1e-6)
  with tf.GradientTape() as tape:
    loss = model.compute_losses(x, 1, eps).loss
  grads = tape.gradient(loss, model.encoder.trainable_variables)
  assert all(g is not None and np.any(g.numpy() != 0) for g in grads)


def test_posterior_is_mvn_diag_with_scale_floor():
  model = _model(min_posterior_scale=0.5)
  q = model.encode(_binary_images())
  assert type(q).__name__ == 'MultivariateNormalDiag'
  assert q.event_shape == (4,) and q.batch_shape == (8,)
  assert np.all(q.stddev().numpy() > 0.5)


@pytest.mark.parametrize('encoder, decoder, shape, likelihood', [
    (encoders.MLPEncoder, decoders.MLPDecoder, (28, 28, 1), 'bernoulli'),
    (encoders.MLPEncoder, decoders.MLPDecoder, (28, 20, 1), 'gaussian'),
    (encoders.ConvEncoder, decoders.ConvDecoder, (28, 28, 1), 'bernoulli'),
    (encoders.ConvEncoder, decoders.ConvDecoder, (28, 20, 1), 'gaussian'),
])
def test_architectures_give_image_shaped_likelihoods(encoder, decoder, shape, likelihood):
  model = _model(encoder, decoder, shape, likelihood=likelihood, conv_filters=[4, 8])
  x = tf.random.stateless_uniform((3,) + shape, [1, 2])
  p = model.decode(model.encode(x).sample())
  assert p.event_shape == shape and p.batch_shape == (3,)
  mean = p.mean().numpy()
  assert mean.shape == (3,) + shape and mean.min() >= 0 and mean.max() <= 1
  assert model.sample(5).shape == (5,) + shape
  assert np.isfinite(model.compute_losses(x, 1).loss.numpy())


def test_gaussian_likelihood_log_prob_is_normal_with_sigmoid_mean():
  hp = default_hparams().override(likelihood='gaussian', min_decoder_scale=0.1)
  params = tf.constant([[[0.0, 0.0]]])  # one pixel: mean sigmoid(0)=0.5, scale softplus(0)+0.1
  dist = decoders.make_likelihood(hp).distribution(params)
  scale = math.log(2.0) + 0.1
  expected = -0.5 * ((0.7 - 0.5) / scale)**2 - math.log(scale) - 0.5 * math.log(2 * math.pi)
  assert dist.log_prob(0.7).numpy()[0, 0] == pytest.approx(expected, rel=1e-5)


def test_unknown_choices_are_one_line_errors():
  with pytest.raises(ValueError, match="unknown likelihood 'poisson'; valid: bernoulli"):
    decoders.make_likelihood(default_hparams().override(likelihood='poisson'))
  with pytest.raises(ValueError, match="unknown activation 'tanhh'"):
    encoders.activation('tanhh')
  with pytest.raises(ValueError, match="unknown optimizer 'sgd'; valid: adam, adagrad"):
    optimization.make_optimizer(default_hparams().override(optimizer='sgd'))
  with pytest.raises(ValueError, match='must divide by 4'):
    _model(encoders.ConvEncoder, decoders.ConvDecoder, (30, 28, 1))


def test_sgvb_with_l_samples_averages_the_reconstruction():
  model = _model(num_samples=3, free_bits=0.5, max_beta=0.7)
  single = _model(free_bits=0.5, max_beta=0.7)
  single.set_weights(model.get_weights())
  x = _binary_images()
  eps = tf.random.stateless_normal([3, 8, 4], [5, 0])
  losses = model.compute_losses(x, 20, eps)
  parts = [single.compute_losses(x, 20, eps[l]) for l in range(3)]
  np.testing.assert_allclose(losses.r_loss, np.mean([p.r_loss for p in parts], 0), rtol=1e-5)
  np.testing.assert_allclose(losses.kl_div, parts[0].kl_div, rtol=1e-6)
  np.testing.assert_allclose(losses.kl_cost, parts[0].kl_cost, rtol=1e-6)
  assert losses.loss.numpy() == pytest.approx(np.mean([p.loss for p in parts]), rel=1e-5)
  assert model.noise_shape(8) == [3, 8, 4]
  assert model.compute_losses(x, 20).r_loss.shape == (8,)
  with pytest.raises(ValueError, match=r'must be \[num_samples, batch, z_size\]'):
    model.compute_losses(x, 20, eps[0])


def test_bernoulli_log_likelihood_matches_tfp():
  model = _model()
  x = tf.random.stateless_uniform((8, 28, 28, 1), [7, 1])  # greyscale targets too
  q = model.encode(x)
  eps = tf.random.stateless_normal([3, 8, 4], [6, 0])
  terms = model.sample_terms(x, q, eps)
  z = q.mean() + q.stddev() * eps
  expected = tf.reshape(model.decode(tf.reshape(z, [-1, 4])).log_prob(tf.tile(x, [3, 1, 1, 1])),
                        [3, 8])
  np.testing.assert_allclose(terms.log_likelihood, expected, rtol=1e-5)
  np.testing.assert_allclose(terms.log_posterior, q.log_prob(z), rtol=1e-5)


@pytest.mark.parametrize('hp', [dict(free_bits=1.0), dict(max_beta=0.5),
                                dict(beta_rate=0.99)])
def test_iwae_with_free_bits_or_beta_is_a_one_line_error(hp):
  with pytest.raises(ValueError, match='free bits and beta apply to objective=elbo only') as e:
    _model(objective='iwae', num_samples=5, **hp)
  assert '\n' not in str(e.value)


def test_bad_objective_hparams():
  with pytest.raises(ValueError, match="unknown objective 'vi'; valid: elbo, iwae"):
    _model(objective='vi')
  with pytest.raises(ValueError, match='num_samples must be at least 1'):
    _model(num_samples=0)


def test_iwae_objective_differentiates_under_xla():
  model = _model(objective='iwae', num_samples=4)
  x = _binary_images()

  @tf.function(jit_compile=True)
  def grads(x, eps):
    with tf.GradientTape() as tape:
      loss = model.compute_losses(x, 1, eps).loss
    return loss, tape.gradient(loss, model.trainable_variables)

  loss, g = grads(x, tf.random.stateless_normal(model.noise_shape(8), [8, 0]))
  assert np.isfinite(loss.numpy())
  assert all(np.all(np.isfinite(v.numpy())) and np.any(v.numpy() != 0) for v in g)
