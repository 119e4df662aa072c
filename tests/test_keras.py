"""tfvae.keras_model: a keras.Model on model.py's objective, trained by fit, equal to the
trainer step for step, with Keras's callbacks, and saved as a run every tool opens."""

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import checkpoints
from tfvae import configs
from tfvae import data
from tfvae import evaluation
from tfvae import hooks as hooks_lib
from tfvae import optimization
from tfvae import sources
from tfvae import training
from tfvae.errors import UserError

HPARAMS = 'hidden_sizes=[16],z_size=4,batch_size=20'
BATCH = 20
SHAPE = (12, 12, 1)


@pytest.fixture(scope='module')
def images():
  """120 greyscale 12x12 uint8 images, a quarter of the pixels lit."""
  rng = np.random.RandomState(0)
  return (rng.rand(120, 12, 12) * 255 * (rng.rand(120, 12, 12) < 0.25)).astype(np.uint8)


class _Losses(hooks_lib.Hook):
  """Records each step's loss (the trainer stops after every step)."""

  def __init__(self):
    self.losses = []

  def next_boundary(self, step):
    return step + 1

  def after_steps(self, trainer, steps, metrics):
    self.losses.append(metrics['loss'])


class _BatchLosses(keras.callbacks.Callback):
  """Each step's loss in one fit call, from the running means Keras logs after each batch."""

  def on_train_begin(self, logs=None):
    self.means = []

  def on_train_batch_end(self, batch, logs=None):
    self.means.append(logs['loss'])

  def losses(self):
    sums = np.arange(1, len(self.means) + 1) * np.array(self.means, np.float64)
    return np.diff(sums, prepend=0.0)


@pytest.mark.parametrize('name, extra', [
    ('mnist_fc', ''),  # dynamic binarisation: its noise must agree too
    # Two latent groups, the IWAE bound with DReG over K = 2 samples, weight averaging (and
    # without XLA, on both sides: quicker to build).
    ('binarized_mnist_hvae', ',num_samples=2,jit_compile=false'),
])
def test_fit_minimises_the_trainers_loss_step_for_step(images, tmp_path, name, extra):
  """Same seed: the same initial weights; same weights, batches and noise: the same loss at
  every step of one fit, and the same weights after its three updates (clipping, Adam, the
  decaying rate, and their Polyak averages, which fit leaves in the model when it ends)."""
  if name.startswith('binarized'):
    images = images > 127  # bool: binary data, as the trainer reads it
  np.save(tmp_path / 'x.npy', images)
  config = configs.get_config(name)
  hparams = config.hparams.parse(HPARAMS + extra)
  model = tfvae.keras_model(name, HPARAMS + extra, image_shape=SHAPE, seed=3)
  keras.utils.set_random_seed(3)  # as tfvae-train --seed=3 does before building its trainer
  source = sources.make_source(f'npy:{tmp_path / "x.npy"}', cache_dir=str(tmp_path / 'cache'))
  trainer = training.Trainer(config, hparams, str(tmp_path / 'run'), source, seed=3)
  for ours, theirs in zip(model.vae.get_weights(), trainer.model.get_weights()):
    np.testing.assert_array_equal(ours, theirs)

  recorder = _Losses()
  trainer.train(3, [recorder])
  train = source.split('train').images
  order = data.index_batches(len(train), BATCH, seed=3, start_step=0, num_steps=3)
  model.compile()
  batches = _BatchLosses()
  model.fit(train[order.ravel()], batch_size=BATCH, shuffle=False, verbose=0,
            callbacks=[batches])
  assert int(model.step.numpy()) == 3
  np.testing.assert_allclose(batches.losses(), recorder.losses, rtol=5e-6)
  state = trainer.state
  with optimization.use_averaged_weights(state.optimizer, state.model.trainable_variables):
    for ours, theirs in zip(model.vae.get_weights(), trainer.model.get_weights()):
      np.testing.assert_allclose(ours, theirs, atol=2e-6)

  # The noise is part of the objective: another seed's draws give another loss.
  other = tfvae.keras_model(name, HPARAMS + extra, image_shape=SHAPE, seed=4)
  other.vae.set_weights(model.vae.get_weights())
  x = tf.constant(train[:BATCH])
  elbo, other_elbo = (m._objective(x, 'train_posterior', 'train_binarize', 0).elbo.numpy()  # pylint: disable=protected-access
                      for m in (model, other))
  assert np.max(np.abs(elbo - other_elbo) / np.abs(elbo)) > 1e-3


def test_fit_with_callbacks_and_validation(images, tmp_path):
  model = tfvae.keras_model('mnist_fc', HPARAMS, image_shape=SHAPE)
  model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
  stop = keras.callbacks.EarlyStopping('val_elbo', mode='max', patience=1, min_delta=1e9)
  best = str(tmp_path / 'best.keras')
  history = model.fit(
      tf.data.Dataset.from_tensor_slices(images[:100]).batch(BATCH), epochs=5, verbose=0,
      shuffle=False,
      validation_data=(images[100:],),
      callbacks=[stop, keras.callbacks.TensorBoard(str(tmp_path / 'tb')),
                 keras.callbacks.ModelCheckpoint(best, 'val_elbo', mode='max',
                                                 save_best_only=True),
                 keras.callbacks.ModelCheckpoint(str(tmp_path / 'last.weights.h5'),
                                                 save_weights_only=True)])
  # min_delta=1e9: no epoch improves, so the patience of 1 ends training after epoch 2.
  assert stop.stopped_epoch == 1 and len(history.history['loss']) == 2
  assert set(history.history) == {'loss', 'elbo', 'kl', 'beta', 'val_loss', 'val_elbo',
                                   'val_kl', 'val_beta'}
  for key in ('loss', 'elbo', 'kl', 'val_elbo'):
    assert all(map(math.isfinite, history.history[key]))
  # beta_rate=0: beta = max_beta = 1 from step 1 on; the loss is then -elbo (free_bits=0).
  np.testing.assert_allclose(history.history['val_loss'], -np.array(history.history['val_elbo']),
                             rtol=1e-6)
  assert int(model.step.numpy()) == 2 * 5
  assert os.listdir(tmp_path / 'tb' / 'train') and os.listdir(tmp_path / 'tb' / 'validation')

  loaded = keras.models.load_model(best)  # the model after the epoch of the best val_elbo
  best_epoch = int(np.argmax(history.history['val_elbo']))
  assert isinstance(loaded, type(model)) and int(loaded.step.numpy()) == 5 * (best_epoch + 1)
  assert loaded.hparams == model.hparams and loaded.image_shape == SHAPE
  fresh = tfvae.keras_model('mnist_fc', HPARAMS, image_shape=SHAPE, seed=9)
  fresh.load_weights(str(tmp_path / 'last.weights.h5'))
  for ours, theirs in zip(fresh.vae.get_weights(), model.vae.get_weights()):
    np.testing.assert_array_equal(ours, theirs)
  assert model.predict(images[:3], verbose=0).shape == (3,) + SHAPE


def test_save_run_opens_everywhere(images, tmp_path, capsys):
  """After fit, save_run makes a run dir that TrainedModel, evaluation and tfvae.train
  (resuming, with the optimiser's state) open (the tools: tests/test_api.py's e2e test)."""
  model = tfvae.keras_model('mnist_fc', HPARAMS, image_shape=SHAPE)
  model.compile(jit_compile=False)
  model.fit(images, batch_size=BATCH, epochs=1, verbose=0)
  run_dir = model.save_run(str(tmp_path / 'run'), dataset=images, cache_dir=str(tmp_path / 'c'))
  record = json.load(open(os.path.join(run_dir, 'config.json')))
  assert record['cache_dir'] == str(tmp_path / 'c') and record['binary'] is False

  trained = tfvae.TrainedModel(run_dir=run_dir)
  assert trained.step == 6 and trained.config_name == 'mnist_fc'
  assert trained.dataset == f'npy:{tmp_path / "run" / "dataset.npy"}'
  z = np.random.RandomState(0).randn(4, 4).astype(np.float32)
  np.testing.assert_allclose(trained.decode(z), model.vae.decode_images(z), atol=1e-6)
  mean, _, _ = trained.encode(images[:4, ..., None])  # model(x): reconstructions at the posterior means
  np.testing.assert_allclose(model.predict(images[:4], verbose=0), trained.decode(mean),
                             atol=1e-5)
  results = evaluation.evaluate_run(run_dir, num_importance_samples=3,
                                    cache_dir=str(tmp_path / 'cache'))
  assert results['step'] == 6 and math.isfinite(results['log_likelihood'])

  state = checkpoints.build_state(model.config, model.hparams, SHAPE)
  checkpoints.restore(state.checkpoint, os.path.join(run_dir, 'train'))
  for ours, theirs in zip(state.optimizer.variables, model.optimizer.variables):
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())

  resumed = tfvae.train(run_dir=run_dir, num_steps=8, image_every_n_steps=0,
                        log_every_n_steps=2)  # the recorded cache_dir
  assert resumed.step == 8 and os.listdir(tmp_path / 'c')  # read through the recorded cache
  assert 'Resuming from' in capsys.readouterr().out


def test_save_run_refuses_what_does_not_fit(images, tmp_path):
  model = tfvae.keras_model('mnist_fc', HPARAMS, image_shape=SHAPE)
  with pytest.raises(UserError, match=r'mnist have shape \(28, 28, 1\); the model takes'):
    model.save_run(str(tmp_path / 'a'))  # the config's mnist: 28x28
  with pytest.raises(UserError, match='are binary .0/1. data, but the model was made with '
                     'binary=False'):
    model.save_run(str(tmp_path / 'b'), dataset=images > 0)  # bool: declared binary
  binary = tfvae.keras_model('binarized_mnist_fc', HPARAMS, image_shape=SHAPE)
  with pytest.raises(UserError, match='are not binary .* give them as a bool array'):
    binary.save_run(str(tmp_path / 'b'), dataset=(images > 0).astype(np.uint8))
  with pytest.raises(UserError, match=r'images have shape \(8, 8, 1\); the model takes'):
    model.save_run(str(tmp_path / 'b'), dataset=tf.data.Dataset.from_tensor_slices(
        np.zeros((5, 8, 8), np.uint8)))
  assert not os.path.exists(tmp_path / 'a') and os.listdir(tmp_path / 'b') == []
  model.save_run(str(tmp_path / 'c'), dataset=images)
  other = tfvae.keras_model('mnist_fc', 'hidden_sizes=[8],z_size=4', image_shape=SHAPE)
  with pytest.raises(UserError, match='holds another run'):
    other.save_run(str(tmp_path / 'c'), dataset=images)


def test_custom_optimizer_saves_a_fresh_one_of_the_configs(images, tmp_path):
  model = tfvae.keras_model('mnist_fc', HPARAMS, image_shape=SHAPE)
  model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
  model.fit(images, batch_size=BATCH, verbose=0)
  run_dir = model.save_run(str(tmp_path / 'run'), dataset=images)
  trained = tfvae.TrainedModel(run_dir=run_dir)
  assert trained.step == 6
  np.testing.assert_array_equal(trained.model.get_weights()[0], model.vae.get_weights()[0])


def test_binary_data_is_taken_as_it_is():
  """Binary data (a binarized_mnist config's uint8, or bool) pass as they are; other uint8 is
  scaled by 1/255 (and, with binarize, binarised)."""
  assert tfvae.keras_model('binarized_mnist_fc', HPARAMS).binary
  grey = tfvae.keras_model('mnist_fc', HPARAMS)  # binarize=true
  assert not grey.binary
  ones, rows = np.ones((2, 28, 28, 1), np.uint8), tf.range(2)
  binary = tfvae.keras_model('binarized_mnist_fc', HPARAMS)
  for model, x in ((binary, ones), (grey, ones.astype(bool))):
    np.testing.assert_array_equal(
        model._model_input(tf.constant(x), 'eval_binarize', rows, 0), ones)  # pylint: disable=protected-access
  scaled = grey._intensities(tf.constant(ones * 255))  # pylint: disable=protected-access
  np.testing.assert_array_equal(scaled, ones)
  assert 0 < np.mean(grey._model_input(tf.constant(ones * 128), 'eval_binarize', rows, 0)) < 1  # pylint: disable=protected-access


@pytest.mark.parametrize('call, message', [
    (lambda: tfvae.keras_model('conv_vae'), r'pass image_shape=\(H, W, C\)'),
    (lambda: tfvae.keras_model('mnist_fc', image_shape=(28, 28)), 'give \\(H, W, C\\)'),
    (lambda: tfvae.keras_model('mnist_fcc'), "unknown config 'mnist_fcc'"),
    (lambda: tfvae.keras_model('mnist_fc', {'z_sise': 2}), "unknown hparam 'z_sise'"),
    (lambda: tfvae.keras_model('mnist_fc', 3), 'hparams= got a int'),
    (lambda: tfvae.keras_model('mnist_fc', HPARAMS).compile(loss='mse'), 'leave loss out'),
])
def test_errors_are_one_line(call, message):
  with pytest.raises(UserError, match=message) as error:
    call()
  assert '\n' not in str(error.value)


def test_images_of_the_wrong_shape_are_one_line(images):
  model = tfvae.keras_model('mnist_fc', HPARAMS)  # 28x28
  model.compile()
  with pytest.raises(UserError, match=r'images have shape \(20, 12, 12, 1\); mnist_fc takes '
                     r'\[batch, 28, 28, 1\]') as error:
    model.fit(images, batch_size=BATCH, verbose=0)
  assert '\n' not in str(error.value)


def test_partial_batches_and_float_images(images):
  """A last batch smaller than the others (Keras then traces with an unknown batch size),
  and float images in [0, 1]."""
  model = tfvae.keras_model('mnist_fc', HPARAMS, image_shape=SHAPE)
  model.compile(jit_compile=False)
  history = model.fit(images[:50].astype(np.float32) / 255, batch_size=BATCH, epochs=2,
                      verbose=0)
  assert int(model.step.numpy()) == 6 and all(map(math.isfinite, history.history['loss']))
  assert math.isfinite(model.evaluate(images[:30], batch_size=BATCH, verbose=0)[0])
