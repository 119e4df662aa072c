"""The objective: KL, free bits, beta, ELBO, SGVB with L samples, IWAE, reparameterisation,
shapes, architectures."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import autoregressive
from tfvae import decoders
from tfvae import encoders
from tfvae import layers
from tfvae import likelihoods
from tfvae import optimization
from tfvae.model import VAE
from tfvae.model import beta_schedule
from tfvae.model import default_hparams

tfd = tfp.distributions

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


def test_polyak_averaging_of_the_weights():
  optimizer = optimization.make_optimizer(
      default_hparams().override(optimizer='adagrad', ema_decay=0.5, decay_rate=1.0))
  w = tf.Variable([1.0, 2.0])
  optimizer.build([w])
  values = []
  for grad in ([1.0, 0.0], [0.0, 1.0], [1.0, 1.0]):
    optimizer.apply_gradients([(tf.constant(grad), w)])
    values.append(w.numpy())
  average = values[0]  # w_avg starts at the first step's weights, then d * w_avg + (1 - d) * w
  for value in values[1:]:
    average = 0.5 * average + 0.5 * value
  with optimization.use_averaged_weights(optimizer, [w]):
    np.testing.assert_allclose(w.numpy(), average, rtol=1e-6)
  np.testing.assert_array_equal(w.numpy(), values[-1])  # training goes on from the raw weights
  optimization.load_averaged_weights(optimizer, [w])
  np.testing.assert_allclose(w.numpy(), average, rtol=1e-6)
  plain = optimization.make_optimizer(default_hparams())
  plain.build([w])
  with optimization.use_averaged_weights(plain, [w]):  # no averages: nothing changes
    np.testing.assert_allclose(w.numpy(), average, rtol=1e-6)
  with pytest.raises(ValueError, match=r"'ema_decay' must be a float in \[0, 1\)"):
    optimization.make_optimizer(default_hparams().override(ema_decay=1.0))


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
  dist = likelihoods.make_likelihood(hp).distribution(params)
  scale = math.log(2.0) + 0.1
  expected = -0.5 * ((0.7 - 0.5) / scale)**2 - math.log(scale) - 0.5 * math.log(2 * math.pi)
  assert dist.log_prob(0.7).numpy()[0, 0] == pytest.approx(expected, rel=1e-5)


def test_unknown_choices_are_one_line_errors():
  with pytest.raises(ValueError, match="unknown likelihood 'poisson'; valid: bernoulli"):
    likelihoods.make_likelihood(default_hparams().override(likelihood='poisson'))
  with pytest.raises(ValueError, match="unknown activation 'tanhh'"):
    layers.activation('tanhh')
  with pytest.raises(ValueError, match="unknown optimizer 'sgd'; valid: adam, adagrad"):
    optimization.make_optimizer(default_hparams().override(optimizer='sgd'))


@pytest.mark.parametrize('shape', [(30, 28, 1), (13, 17, 3), (5, 3, 1)])
def test_conv_models_take_any_image_size(shape):
  """Stride-2 'same' convolutions round the sides up; the decoder crops back to H x W."""
  model = _model(encoders.ConvEncoder, decoders.ConvDecoder, shape)
  x = tf.cast(tf.random.stateless_uniform((2,) + shape, [1, 2]) < 0.3, tf.float32)
  assert np.isfinite(model.compute_losses(x, 1).loss.numpy())
  assert model.decode_images(tf.zeros([2, model.z_size])).shape == (2,) + shape


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
  terms = model.sample_terms(x, model.infer(x), eps)
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
  with pytest.raises(ValueError, match=r"'num_samples' must be an integer in \[1, 100000\]"):
    _model(num_samples=0)


def _xla_loss_and_gradients(model, x):
  """The loss and its gradients for images x, computed by one XLA-compiled function."""

  @tf.function(jit_compile=True)
  def grads(x, eps):
    with tf.GradientTape() as tape:
      loss = model.compute_losses(x, 1, eps).loss
    return loss, tape.gradient(loss, model.trainable_variables)

  loss, g = grads(x, tf.random.stateless_normal(model.noise_shape(x.shape[0]), [8, 0]))
  return loss.numpy(), [v.numpy() for v in g]


def test_iwae_objective_differentiates_under_xla():
  loss, g = _xla_loss_and_gradients(_model(objective='iwae', num_samples=4), _binary_images())
  assert np.isfinite(loss)
  assert all(np.all(np.isfinite(v)) and np.any(v != 0) for v in g)


def test_glu_hidden_layers_are_gated_dense_layers():
  model = _model(hidden_sizes=[32, 16], activation='glu')
  first, second = model.encoder._hidden
  assert first.kernel.shape == (784, 64) and second.kernel.shape == (32, 32)
  assert [layer.kernel.shape for layer in model.decoder._hidden] == [(4, 32), (16, 64)]
  x = tf.reshape(_binary_images(3), [3, 784])
  pre = x @ first.kernel + first.bias
  np.testing.assert_allclose(first(x).numpy(), (pre[:, :32] * tf.sigmoid(pre[:, 32:])).numpy(),
                             rtol=1e-5, atol=1e-6)  # h = (W1 x + b1) * sigmoid(W2 x + b2)
  conv = _model(encoders.ConvEncoder, decoders.ConvDecoder, activation='glu', conv_filters=[4, 8])
  assert np.isfinite(conv.compute_losses(_binary_images(2), 1).loss.numpy())
  assert conv.encoder._convs[0].kernel.shape == (3, 3, 1, 8)


def test_dreg_has_the_iwae_value_and_the_doubly_reparameterised_gradient():
  model = _model(objective='iwae_dreg', num_samples=4)
  iwae = _model(objective='iwae', num_samples=4)
  iwae.set_weights(model.get_weights())
  x, eps = _binary_images(), tf.random.stateless_normal([4, 8, 4], [2, 3])
  with tf.GradientTape() as tape:
    loss = model.compute_losses(x, 1, eps).loss
  grads = tape.gradient(loss, model.trainable_variables)
  assert loss.numpy() == pytest.approx(iwae.compute_losses(x, 1, eps).loss.numpy(), rel=1e-6)
  # The estimator written out: encoder sum_k v_k^2 d log w_k / d z_k d z_k / d phi (q's
  # parameters fixed in log q), decoder sum_k v_k grad log w_k.
  with tf.GradientTape(persistent=True) as tape:
    q = model.encode(x)
    z = q.mean() + q.stddev() * eps
    fixed = tfd.MultivariateNormalDiag(tf.stop_gradient(q.mean()),
                                       tf.stop_gradient(q.stddev()))
    log_w = (model.decoder.log_prob(x, z) + model.prior.log_prob(z) - fixed.log_prob(z))
    v = tf.stop_gradient(tf.nn.softmax(log_w, axis=0))
    encoder_loss = -tf.reduce_mean(tf.reduce_sum(v**2 * log_w, 0))
    decoder_loss = -tf.reduce_mean(tf.reduce_sum(v * log_w, 0))
  encoder_vars = model.encoder.trainable_variables
  expected = dict(zip([v.path for v in encoder_vars], tape.gradient(encoder_loss, encoder_vars)))
  decoder_vars = model.decoder.trainable_variables
  expected.update(zip([v.path for v in decoder_vars],
                      tape.gradient(decoder_loss, decoder_vars)))
  assert len(expected) == len(grads)
  for variable, grad in zip(model.trainable_variables, grads):
    # float32 sums in different orders: entries near 0 differ by a few 1e-6.
    np.testing.assert_allclose(grad, expected[variable.path], rtol=1e-4, atol=1e-5,
                               err_msg=variable.path)
  assert np.isfinite(_xla_loss_and_gradients(model, x)[0])


def _autoregressive(decoder=autoregressive.MADEDecoder, shape=(4, 4, 1), **hp):
  return _model(decoder=decoder, shape=shape,
                **dict(dict(hidden_sizes=[16], z_size=3, autoregressive_units=10,
                            autoregressive_window=3, activation='glu'), **hp))


AUTOREGRESSIVE = [autoregressive.MADEDecoder, autoregressive.PixelCNNDecoder]


def test_made_degrees_spread_over_one_to_d_minus_one():
  degrees = autoregressive.made_degrees(10, 16)
  assert degrees.min() == 1 and degrees.max() <= 15 and np.all(np.diff(degrees) >= 0)
  assert len(np.unique(autoregressive.made_degrees(500, 784))) == 500


def _logit_jacobian(decoder, shape):
  """|d l_j / d x_i| summed over a batch, [output j, input i], for D = prod(shape) pixels."""
  pixels = math.prod(shape)
  x = tf.cast(tf.random.stateless_uniform((5,) + shape, [1, 2]) < 0.5, tf.float32)
  c = decoder.context(tf.random.stateless_normal((5, 3), [3, 4]))
  jacobian = []
  for j in range(pixels):
    with tf.GradientTape() as tape:
      tape.watch(x)
      logit = tf.reduce_sum(decoder.logits(x, c)[:, j])
    jacobian.append(np.abs(tape.gradient(logit, x).numpy()).reshape(5, pixels).sum(0))
  return np.array(jacobian)


@pytest.mark.parametrize('act', ['glu', 'tanh'])
def test_made_logits_depend_on_every_earlier_pixel_and_no_other(act):
  jacobian = _logit_jacobian(_autoregressive(activation=act).decoder, (4, 4, 1))
  assert np.all(jacobian[np.triu_indices(16)] == 0)     # l_j never sees x_i for i >= j
  assert np.all(jacobian[np.tril_indices(16, -1)] > 0)  # and sees every earlier pixel


def test_pixelcnn_logits_depend_on_the_causal_window_alone():
  # Pixel 4 of a 3-wide image (row 1, col 1): the three above it and the one to its left.
  assert autoregressive.causal_taps(3, 3, 3)[4].tolist() == [0, 1, 2, 3]
  assert autoregressive.causal_taps(3, 3, 3)[0].tolist() == [9, 9, 9, 9]  # all outside
  jacobian = _logit_jacobian(
      _autoregressive(autoregressive.PixelCNNDecoder, (5, 5, 1)).decoder, (5, 5, 1))
  for j in range(25):
    row, col = divmod(j, 5)
    window = {5 * r + c for r in (row - 1, row) for c in (col - 1, col, col + 1)
              if 0 <= r < 5 and 0 <= c < 5 and 5 * r + c < j}
    assert {i for i in range(25) if jacobian[j, i] > 0} == window, j


@pytest.mark.parametrize('act', ['glu', 'tanh'])
def test_a_deeper_pixelcnn_stays_causal_sees_further_and_sums_to_one(act):
  deep = lambda shape: _autoregressive(autoregressive.PixelCNNDecoder, shape,
                                       autoregressive_layers=3, activation=act)
  jacobian = _logit_jacobian(deep((5, 5, 1)).decoder, (5, 5, 1))
  assert np.all(jacobian[np.triu_indices(25)] == 0)  # l_j never sees x_i for i >= j
  assert jacobian[17, 7] > 0   # pixel (3, 2) sees (1, 2): outside its 3x3 window
  assert jacobian[17, 16] > 0  # and its left neighbour
  small = deep((2, 2, 1))
  images = np.array([[(i >> b) & 1 for b in range(4)] for i in range(16)], np.float32)
  total = tf.reduce_logsumexp(small.decoder.log_prob(
      tf.reshape(images, (16, 2, 2, 1)), tf.ones((1, 16, 3)))).numpy()
  assert total == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize('decoder', AUTOREGRESSIVE)
def test_autoregressive_log_prob_shares_x_over_samples_and_is_a_distribution(decoder):
  model = _autoregressive(decoder)
  x = tf.cast(tf.random.stateless_uniform((5, 4, 4, 1), [5, 6]) < 0.5, tf.float32)
  z = tf.random.stateless_normal((3, 5, 3), [7, 8])
  log_prob = model.decoder.log_prob(x, z).numpy()
  assert log_prob.shape == (3, 5) and np.all(log_prob < 0)
  for k in range(3):
    p = model.decode(z[k])
    assert list(p.event_shape_tensor().numpy()) == [4, 4, 1]
    assert list(p.batch_shape_tensor().numpy()) == [5]
    np.testing.assert_allclose(log_prob[k], p.log_prob(x), rtol=1e-5)
  # A proper distribution: the probabilities of all 2^4 images of a 4-pixel model sum to 1.
  small = _autoregressive(decoder, shape=(2, 2, 1))
  images = np.array([[(i >> b) & 1 for b in range(4)] for i in range(16)], np.float32)
  total = tf.reduce_logsumexp(small.decoder.log_prob(
      tf.reshape(images, (16, 2, 2, 1)), tf.ones((1, 16, 3)))).numpy()
  assert total == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize('decoder', AUTOREGRESSIVE)
def test_autoregressive_images_are_the_mean_field_fixed_point_and_samples_binary(decoder):
  model = _autoregressive(decoder)
  z = tf.random.stateless_normal((5, 3), [9, 1])
  images = model.decode_images(z)
  assert images.shape == (5, 4, 4, 1)
  # x_d = sigmoid(l_d(x_<d, z)) for every pixel at once: the pass fed each probability on.
  logits = model.decoder.logits(images, model.decoder.context(z))
  np.testing.assert_allclose(tf.sigmoid(logits), tf.reshape(images, (5, 16)), atol=1e-6)
  assert model.sample(4).shape == (4, 4, 4, 1)
  samples = model.decoder(z).sample(2, seed=[1, 2]).numpy()
  assert samples.shape == (2, 5, 4, 4, 1) and set(np.unique(samples)) <= {0.0, 1.0}


@pytest.mark.parametrize('decoder', AUTOREGRESSIVE)
def test_autoregressive_decoders_train_under_xla_and_need_a_bernoulli_likelihood(decoder):
  loss, g = _xla_loss_and_gradients(_autoregressive(decoder), _binary_images(6, (4, 4, 1)))
  assert np.isfinite(loss) and all(np.all(np.isfinite(v)) for v in g)
  with pytest.raises(ValueError, match=f'{decoder.__name__} is autoregressive over binary '
                     'pixels: it needs likelihood=bernoulli'):
    _autoregressive(decoder, likelihood='gaussian')
  with pytest.raises(ValueError, match="'autoregressive_units' must be an integer >= 1"):
    _autoregressive(decoder, autoregressive_units=0)


def test_pixelcnn_needs_an_odd_window_and_one_channel():
  with pytest.raises(ValueError, match="'autoregressive_window' must be an odd integer >= 3"):
    _autoregressive(autoregressive.PixelCNNDecoder, autoregressive_window=4)
  with pytest.raises(ValueError, match='PixelCNNDecoder models one-channel images'):
    _autoregressive(autoregressive.PixelCNNDecoder, shape=(4, 4, 3))
