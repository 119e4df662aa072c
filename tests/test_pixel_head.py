"""The local autoregressive colour head (tfvae.pixel_head) on factorised decoders: causality,
the one-pass log-likelihood, pixel-by-pixel means and samples that are exactly the
teacher-forced ones, counter-based noise, the export, and its errors."""

import numpy as np
import pytest
import tensorflow as tf

from tfvae import autoregressive
from tfvae import configs
from tfvae import conv_hierarchy
from tfvae import decoders
from tfvae import export
from tfvae import noise
from tfvae.errors import UserError
from tfvae.model import default_hparams
from tfvae.run_dir import Run

SHAPE = (6, 5, 3)
SMALL = dict(conv_filters=[4, 4], groups_per_level=[1, 1], latent_channels=2,
             num_mixtures=2, autoregressive_layers=3, autoregressive_units=6,
             autoregressive_window=3)


def _model(name='conv_hvae_pixelcnn', shape=SHAPE, **hparams):
  """A small model of config `name` whose head's output starts away from zero (as after
  training), so that the head matters."""
  config = configs.get_config(name)
  overrides = dict(SMALL, **hparams)
  if name == 'conv_vae_pixelcnn':
    overrides.update(hidden_sizes=[8], z_size=3, groups_per_level=[1])
  model = config.build_model(config.hparams.override(**overrides), shape)
  model.build_variables()
  if model.decoder.head is not None:
    for weight in model.decoder.head.params_out.weights:
      weight.assign(tf.random.stateless_normal(weight.shape, [4, 2], stddev=0.5))
  return model


def _images(n, shape=SHAPE, seed=1):
  return tf.round(tf.random.stateless_uniform((n,) + shape, [seed, 3]) * 255) / 255


def _decoder_input(model, n, seed=3):
  return model.descend(z=model.prior_sample(n, seed)[tf.newaxis]).decoder_input[0]


def _per_pixel(model, x, inputs):
  """Teacher-forced parameters [B, H, W, C, k] of images x at decoder inputs."""
  decoder = model.decoder
  return tf.reshape(decoder.head.params(x, decoder._maps(inputs)),
                    (-1,) + SHAPE + (decoder.likelihood.num_params,))


def test_each_pixels_parameters_depend_only_on_the_pixels_before_it():
  model = _model()
  inputs = _decoder_input(model, 1)
  x = tf.Variable(_images(1))
  height, width, _ = SHAPE
  radius = model.decoder.head.radius
  assert radius == 3  # 3 // 2 + 3 - 1
  for d in (0, 7, 14, height * width - 1):
    r, c = divmod(d, width)
    with tf.GradientTape() as tape:
      out = tf.reduce_sum(_per_pixel(model, x, inputs)[0, r, c])
    grad = np.abs(tape.gradient(out, x).numpy()[0]).sum(-1)            # [H, W]
    later = np.arange(height * width).reshape(height, width) >= d
    assert np.all(grad[later] == 0), d
    window = np.zeros((height, width), bool)
    window[max(0, r - radius):r + 1, max(0, c - radius):c + radius + 1] = True
    assert np.all(grad[~window] == 0), d
    if d:
      assert grad[~later].max() > 0, d


@pytest.mark.parametrize('coupling', [True, False])
def test_means_and_samples_drawn_pixel_by_pixel_are_the_teacher_forced_ones(coupling):
  model = _model(channel_coupling=coupling)
  decoder, likelihood = model.decoder, model.decoder.likelihood
  inputs = _decoder_input(model, 3)
  means = decoder.images(inputs)
  forced = likelihood.distribution(_per_pixel(model, means, inputs)).mean()
  np.testing.assert_allclose(means, forced, atol=1e-5)
  samples = decoder.sample(inputs, seed=11).numpy()
  np.testing.assert_allclose(samples, np.round(samples * 255) / 255, atol=1e-7)
  params = _per_pixel(model, samples, inputs)
  key = noise.key(11, 'decoder_sample')
  height, width, channels = SHAPE
  again = np.zeros_like(samples)
  for d in range(height * width):
    u = tf.reshape(noise.uniform(key, 3, 1, 2 * channels, step=d)[0], [3, channels, 2])
    r, c = divmod(d, width)
    again[:, r, c] = likelihood.sample_with(params[:, r, c], u).numpy()
  # The same bins (the division by 255 may round differently inside the compiled loop).
  np.testing.assert_array_equal(np.round(again * 255), np.round(samples * 255))
  np.testing.assert_allclose(again, samples, atol=1e-7)


def test_samples_are_counter_based_row_by_row():
  model = _model()
  inputs = _decoder_input(model, 3)
  samples = model.decoder.sample(inputs, seed=5).numpy()
  np.testing.assert_array_equal(model.decoder.sample(inputs, seed=5), samples)
  np.testing.assert_array_equal(model.decoder.sample(inputs[:2], seed=5), samples[:2])
  assert not np.array_equal(model.decoder.sample(inputs, seed=6), samples)


def test_log_prob_is_one_teacher_forced_pass_shared_by_the_samples():
  model = _model()
  x = _images(2)
  inputs = tf.stack([_decoder_input(model, 2, seed=3), _decoder_input(model, 2, seed=4)])
  log_prob = model.decoder.log_prob(x, inputs).numpy()                  # [K = 2, B = 2]
  assert log_prob.shape == (2, 2) and np.all(np.isfinite(log_prob))
  for k in range(2):
    params = _per_pixel(model, x, inputs[k])
    expected = model.decoder.likelihood.log_prob(params[tf.newaxis], x)[0]
    np.testing.assert_allclose(log_prob[k], expected, rtol=1e-5)
    np.testing.assert_allclose(model.decoder(inputs[k]).log_prob(x), log_prob[k], rtol=1e-5)


def test_the_head_starts_as_the_factorised_decoder():
  hparams = configs.get_config('conv_hvae_pixelcnn').hparams.override(**SMALL)
  plain_hparams = hparams.override(autoregressive_layers=0)
  with_head = conv_hierarchy.StateDecoder(hparams, SHAPE, name='decoder')
  plain = conv_hierarchy.StateDecoder(plain_hparams, SHAPE, name='decoder')
  state = tf.random.stateless_normal([2, 3, SHAPE[0] * SHAPE[1] * 4], [1, 1])
  x = _images(3)
  plain.log_prob(x, state)
  with_head.log_prob(x, state)
  plain.out.set_weights(with_head.out.get_weights())
  np.testing.assert_allclose(with_head.log_prob(x, state), plain.log_prob(x, state),
                             rtol=1e-6)


def test_the_flat_conv_vae_takes_the_head_and_trains():
  model = _model('conv_vae_pixelcnn', shape=(8, 8, 3))
  assert isinstance(model.decoder, decoders.ConvDecoder) and model.decoder.head is not None
  x = _images(2, (8, 8, 3))
  losses = model.compute_losses(x, 1, tf.random.stateless_normal(model.noise_shape(2), [2, 2]))
  assert np.isfinite(losses.loss.numpy())
  with tf.GradientTape() as tape:
    loss = model.compute_losses(x, 1, tf.zeros(model.noise_shape(2))).loss
  grads = tape.gradient(loss, model.decoder.head.trainable_variables)
  assert all(g is not None and np.all(np.isfinite(g)) for g in grads)
  assert model.sample(2, seed=1).shape == (2, 8, 8, 3)


# A SavedModel round trip of the head (e2e: its traced while-loops take seconds to save).
@pytest.mark.e2e
def test_export_serves_the_head_and_matches_the_model(tmp_path):
  model = _model()
  config = configs.get_config('conv_hvae_pixelcnn')
  module = export.VAEModule(model, Run(config, model.hparams, SHAPE), step=0)
  path = str(tmp_path / 'export')
  tf.saved_model.save(module, path, signatures=module.signatures())
  loaded = tf.saved_model.load(path)
  seed = tf.constant(2, tf.int64)
  sampled = loaded.signatures['sample'](n=tf.constant(2), seed=seed,
                                        temperature=tf.constant(1.0))
  np.testing.assert_allclose(sampled['x'], model.decode_images(sampled['z']), atol=1e-5)
  np.testing.assert_allclose(sampled['x'], model.sample(2, seed=2), atol=1e-5)
  x = _images(2)
  np.testing.assert_allclose(loaded.signatures['elbo'](x=x, seed=seed)['elbo'],
                             module.elbo(x, seed)['elbo'], rtol=1e-5)


def test_the_head_needs_a_logistic_mixture_and_an_elementwise_activation():
  hparams = default_hparams().override(conv_filters=[4], hidden_sizes=[8], z_size=2,
                                       autoregressive_layers=2)
  with pytest.raises(UserError, match='needs likelihood=logistic_mixture, got '
                                      'likelihood=bernoulli'):
    decoders.ConvDecoder(hparams, (8, 8, 1))
  with pytest.raises(UserError, match='not glu'):
    decoders.MLPDecoder(hparams.override(likelihood='logistic_mixture', activation='glu'),
                        (8, 8, 1))
  with pytest.raises(UserError, match='autoregressive_layers .* must be 0, got 2'):
    autoregressive.MADEDecoder(hparams, (8, 8, 1))
  with pytest.raises(UserError, match='at most 3 channels; these have 4'):
    decoders.ConvDecoder(hparams.override(likelihood='logistic_mixture', channel_coupling=True),
                         (8, 8, 4))
