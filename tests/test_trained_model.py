"""tfvae.trained_model.TrainedModel: shapes, round trips and its two sources."""

import os
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from tfvae import export
from tfvae import noise
from tfvae.trained_model import TrainedModel
from tfvae.trained_model import slerp


@pytest.fixture(scope='module')
def trained(mnist_z2_run):
  return TrainedModel(run_dir=mnist_z2_run[0])


@pytest.fixture(scope='module')
def images():
  return (np.random.RandomState(0).rand(5, 28, 28, 1) < 0.3).astype(np.float32)


def test_restored_weights_are_the_checkpoints(trained, mnist_z2_run):
  reader = tf.train.load_checkpoint(os.path.join(mnist_z2_run[0], 'train', 'ckpt-10'))
  saved = [np.asarray(reader.get_tensor(key)) for key in reader.get_variable_to_shape_map()]
  for variable in trained.model.trainable_variables:
    value = variable.numpy()
    assert any(s.shape == value.shape and np.array_equal(s, value) for s in saved), (
        f'{variable.path} was not restored from the checkpoint')


def test_metadata(trained):
  assert (trained.config_name, trained.dataset, trained.step) == ('mnist_fc_z2', 'mnist', 10)
  assert trained.image_shape == (28, 28, 1) and trained.z_size == 2
  assert trained.hparams['hidden_sizes'] == [16]


def test_encode_decode_reconstruct(trained, images):
  mean, stddev, z = trained.encode(images, seed=3)
  assert mean.shape == stddev.shape == z.shape == (5, 2)
  assert (stddev > 0).all()
  eps = noise.normal(noise.key(3, 'eval_posterior'), 5, 1, 2)[0].numpy()
  np.testing.assert_allclose(z, mean + stddev * eps, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(trained.encode(images, seed=3)[2], z)
  assert not np.allclose(trained.encode(images, seed=4)[2], z)
  decoded = trained.decode(z)
  assert decoded.shape == (5, 28, 28, 1) and decoded.dtype == np.float32
  assert 0.0 <= decoded.min() and decoded.max() <= 1.0
  np.testing.assert_allclose(trained.reconstruct(images, seed=3), decoded, rtol=1e-5,
                             atol=1e-6)


def test_sample(trained):
  samples = trained.sample(6, seed=1)
  assert samples.shape == (6, 28, 28, 1)
  np.testing.assert_array_equal(trained.sample(6, seed=1), samples)
  assert trained.sample(6).shape == (6, 28, 28, 1)
  z = noise.normal(noise.key(1, 'prior'), 6, 1, 2)[0].numpy()
  np.testing.assert_allclose(trained.sample(6, temperature=0.5, seed=1),
                             trained.decode(0.5 * z), rtol=1e-6)
  np.testing.assert_array_equal(trained.sample(3, temperature=0.0, seed=1),
                                trained.decode(np.zeros([3, 2])))


@pytest.mark.parametrize('method', ['linear', 'slerp'])
def test_interpolate_ends_at_the_posterior_means(trained, images, method):
  path = trained.interpolate(images[0], images[1], num_steps=7, method=method)
  assert path.shape == (7, 28, 28, 1)
  mean, _, _ = trained.encode(images[:2])
  np.testing.assert_allclose(path[[0, -1]], trained.decode(mean), rtol=1e-5, atol=1e-6)


def test_slerp():
  p0, p1 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
  path = slerp(p0, p1, np.linspace(0, 1, 5))
  np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(path[2], [np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-6)
  np.testing.assert_allclose(slerp(p0, 2 * p0, np.array([0.0, 0.5, 1.0]))[:, 0], [1, 1.5, 2])


def test_errors(trained, images, mnist_z2_run):
  with pytest.raises(ValueError, match=r'images have shape \(5, 28, 28\); mnist_fc_z2 '
                                       r'expects \[batch >= 1, 28, 28, 1\]'):
    trained.encode(images[..., 0])
  with pytest.raises(ValueError, match=r'image values lie in \[-1, 1\]; give float images '
                                       r'in \[0, 1\] or uint8 in 0..255'):
    trained.encode(images * 2 - 1)
  with pytest.raises(ValueError, match='images have NaN or infinite values'):
    trained.reconstruct(np.full_like(images, np.nan))
  with pytest.raises(ValueError, match='images have dtype int64'):
    trained.encode(images.astype(np.int64))
  with pytest.raises(ValueError, match='latents have NaN or infinite values'):
    trained.decode(np.full([2, 2], np.inf))
  for n in (0, -1, 2.5):
    with pytest.raises(ValueError, match=f'sample needs a whole number n >= 1 of images, got '
                                         f'{n}'):
      trained.sample(n)
  with pytest.raises(ValueError, match='temperature must be a finite number >= 0'):
    trained.sample(2, temperature=float('nan'))
  with pytest.raises(ValueError, match=r'latents have shape \(4, 3\); mnist_fc_z2 expects '
                                       r'\[batch, 2\]'):
    trained.decode(np.zeros([4, 3]))
  with pytest.raises(ValueError, match="unknown interpolation method 'cubic'"):
    trained.interpolate(images[0], images[1], method='cubic')
  with pytest.raises(ValueError, match='at least 2'):
    trained.interpolate(images[0], images[1], num_steps=1)
  with pytest.raises(ValueError, match='exactly one of run_dir'):
    TrainedModel()
  with pytest.raises(ValueError, match='exactly one of run_dir'):
    TrainedModel(run_dir=mnist_z2_run[0], saved_model_dir='/tmp')


def test_uint8_images_are_scaled(trained, images):
  as_uint8 = np.round(images * 255).astype(np.uint8)
  np.testing.assert_array_equal(trained.encode(as_uint8, seed=1)[2],
                                trained.encode(images, seed=1)[2])
  assert not trained.binary  # MNIST: uint8 are intensities, 0/1 values too (nothing guessed)


def test_log_likelihood_calls_evaluation(trained, images, monkeypatch):
  calls = []

  def log_likelihood(model, x, num_samples, seed, info, binarize):
    calls.append((model, x.shape, num_samples, seed, info.binary, binarize))
    return tf.fill([x.shape[0]], -1.5)

  monkeypatch.setitem(sys.modules, 'tfvae.evaluation',
                      types.SimpleNamespace(log_likelihood=log_likelihood))
  monkeypatch.setattr('tfvae.evaluation', sys.modules['tfvae.evaluation'], raising=False)
  np.testing.assert_array_equal(trained.log_likelihood(images, 12), [-1.5] * 5)
  assert calls == [(trained.model, (5, 28, 28, 1), 12, 0, False, True)]  # mnist_fc_z2 binarises


def test_saved_model_source_agrees_with_checkpoint(trained, images, mnist_z2_run, tmp_path):
  export_dir = export.export_saved_model(mnist_z2_run[0], str(tmp_path / 'sm'))
  loaded = TrainedModel.from_saved_model(export_dir)
  assert (loaded.config_name, loaded.step, loaded.image_shape, loaded.z_size) == (
      'mnist_fc_z2', 10, (28, 28, 1), 2)
  assert loaded.model is None and loaded.hparams == trained.hparams
  for a, b in zip(loaded.encode(images, seed=2), trained.encode(images, seed=2)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(loaded.reconstruct(images), trained.reconstruct(images),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(loaded.sample(4, temperature=0.7, seed=5),
                             trained.sample(4, temperature=0.7, seed=5), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(loaded.interpolate(images[0], images[1], 4, 'slerp'),
                             trained.interpolate(images[0], images[1], 4, 'slerp'),
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='a SavedModel has no log_likelihood signature'):
    loaded.log_likelihood(images, 10)
  with pytest.raises(ValueError, match='checkpoint= applies to run_dir='):
    TrainedModel(saved_model_dir=export_dir, checkpoint='x')
  assert TrainedModel.from_run_dir(mnist_z2_run[0], checkpoint=os.path.join(
      mnist_z2_run[0], 'train', 'ckpt-5')).step == 5
