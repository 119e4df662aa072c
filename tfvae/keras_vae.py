"""The VAE as a keras.Model: compile and fit it as any Keras model, on model.py's objective.

    model = tfvae.keras_model('mnist_fc', hparams='z_size=10')
    model.compile()                        # the config's optimiser; or compile(optimizer=...)
    history = model.fit(x_train, batch_size=100, epochs=5, validation_data=(x_valid,),
                        callbacks=[keras.callbacks.EarlyStopping('val_elbo', mode='max')])
    model.save_run('/tmp/vae', dataset='mnist')  # config.json + checkpoint: TrainedModel, tools

A step of `fit` is the trainer's step (tfvae.train_step) on one replica: for the batch x [B, ...]
at step s (the model's own counter, `step`),

    x   <- uint8 / 255 (binary data, bool or binary=True: as is), Bernoulli-binarised when
           hparams.binarize
           (noise.bernoulli, stream 'train_binarize', rows 0..B-1, step s)
    eps  = noise.normal('train_posterior', rows 0..B-1, num_samples, z_size, step s)
    loss = VAE.compute_losses(x, s, eps).loss
    grads clipped to global norm hparams.grad_clip; the update skipped (the step still
    counted) when their norm is not finite or above hparams.grad_skip_threshold (> 0)

so for the same weights, batch and seed its loss is the trainer's. Evaluation (validation_data,
evaluate) uses the evaluation streams at step 0, the same noise every epoch. Metrics: loss,
elbo and kl (nats, averaged over the epoch's updates) and beta.
"""

import dataclasses
import math
import os

import keras
import numpy as np
import tensorflow as tf

from tfvae import api
from tfvae import checkpoints
from tfvae import configs
from tfvae import data
from tfvae import noise
from tfvae import optimization
from tfvae import run_data
from tfvae import sources
from tfvae.run_dir import Run
from tfvae.run_dir import RunDir
from tfvae.run_dir import RunDirError

METRICS = ('loss', 'elbo', 'kl', 'beta')


def _image_shape(config, hparams, image_shape):
  """(H, W, C) the model takes: image_shape, else the config's built-in dataset's, fitted by
  hparams image_size and channels."""
  if image_shape is not None:
    shape = tuple(image_shape)
    if len(shape) != 3 or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
      raise api.ArgumentError(f'image_shape={image_shape!r}: give (H, W, C) of positive '
                              'integers')
    return tuple(int(d) for d in shape)
  if config.dataset in data.DATASET_NAMES:
    return sources.fitted_shape(data.dataset_info(config.dataset).image_shape,
                                hparams.image_size, hparams.channels)
  raise api.ArgumentError(f'config {config.name} reads {config.dataset or "your own images"}, '
                          'whose image shape is known only from the data: pass '
                          'image_shape=(H, W, C)')


def keras_model(config, hparams=None, *, image_shape=None, binary=None, seed=0):
  """A KerasVAE of `config` (a name or tfvae.configs.Config) with `hparams` (a string
  'a=1,b=2', a dict or HParams) for images of image_shape (H, W, C; default: the config's
  built-in dataset's). binary: uint8 inputs are 0/1 (taken as they are, not scaled by 1/255;
  bool inputs always are); default: whether the config's dataset is declared binary
  (binarized_mnist). seed: the noise, and Keras's
  seed for the initial weights (keras.utils.set_random_seed), which are then those tfvae.train
  starts from with the same seed."""
  config = configs.get_config(api.config_name(config))
  hparams = api.apply_hparams(config.hparams, hparams)
  shape = _image_shape(config, hparams, image_shape)
  if binary is None:
    binary = bool(config.dataset) and sources.specs.declared_binary(config.dataset)
  keras.utils.set_random_seed(api.check_count('seed', seed, 0))
  return KerasVAE(config.name, hparams.values(), shape, binary=bool(binary), seed=seed)


@keras.saving.register_keras_serializable(package='tfvae')
class KerasVAE(keras.Model):
  """A tfvae VAE (`vae`, a tfvae.model.VAE) trained by Keras's fit; see the module doc.

  Inputs: images [B, H, W, C] (or [B, H, W] for C = 1), uint8 0..255 (or 0/1 with binary),
  bool (0/1) or float in [0, 1]; labels, if the data has them, are ignored. model(x) and predict give
  reconstructions: the decoder's mean images at the posterior means.
  """

  def __init__(self, config_name, hparams, image_shape, binary=False, seed=0, **kwargs):
    self.config = configs.get_config(config_name)
    self.hparams = self.config.hparams.override(**hparams)
    kwargs.setdefault('dtype', optimization.MIXED_PRECISION[self.hparams.mixed_precision])
    super().__init__(**kwargs)
    self.image_shape, self.binary, self.seed = tuple(image_shape), bool(binary), int(seed)
    self._info = data.DatasetInfo('keras', self.image_shape, self.binary, None, {})
    optimization.set_precision_policy(self.hparams)
    try:
      self.vae = self.config.build_model(self.hparams, self.image_shape)
      self.vae.build_variables()
    finally:
      keras.mixed_precision.set_global_policy('float32')
    # Steps taken (skipped updates included): the step of the schedules and the noise.
    self.step = self.add_weight(shape=(), dtype='int64', initializer='zeros', trainable=False,
                                name='step')
    self._trackers = {name: keras.metrics.Mean(name=name) for name in METRICS}
    self.built = True

  def get_config(self):
    return {'config_name': self.config.name, 'hparams': self.hparams.values(),
            'image_shape': list(self.image_shape), 'binary': self.binary, 'seed': self.seed,
            'name': self.name}

  @property
  def metrics(self):
    return list(self._trackers.values())

  def compile(self, optimizer=None, loss=None, **kwargs):  # pylint: disable=arguments-differ
    """keras.Model.compile; optimizer None: the config's (tfvae.optimization.make_optimizer:
    hparams optimizer, learning rate and its decay, ema_decay). The loss is the VAE's own;
    jit_compile defaults to hparams.jit_compile."""
    if loss is not None:
      raise api.ArgumentError('compile(loss=...): a VAE minimises its own objective (model.py, '
                              'from its hparams); leave loss out')
    if optimizer is None:
      optimizer = optimization.make_optimizer(self.hparams)
    kwargs.setdefault('jit_compile', self.hparams.jit_compile)
    super().compile(optimizer=optimizer, **kwargs)
    # Built now, not inside the traced step, in the trainer's order of the variables (so that
    # its checkpoints read back in the trainer).
    if not self.optimizer.built:
      self.optimizer.build(self.vae.trainable_variables)

  def compile_from_config(self, config):
    """Compiles as saved in a .keras file (keras.models.load_model)."""
    self.compile(**keras.saving.deserialize_keras_object(config))

  def _images(self, data_batch):
    """The images of a batch (x, or the x of (x, y[, w])) as [B, H, W, C], shape-checked."""
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data_batch)
    x = tf.convert_to_tensor(x)
    if x.shape.rank == 3 and self.image_shape[-1] == 1:
      x = x[..., tf.newaxis]
    if tuple(x.shape[1:]) != self.image_shape:
      raise api.ArgumentError(f'images have shape {tuple(x.shape)}; {self.config.name} takes '
                              f'[batch, {", ".join(map(str, self.image_shape))}]')
    return x

  def _intensities(self, x):
    """Images x as float32 in [0, 1]: float and bool as they are, uint8 / 255 (binary: as is,
    data.to_float)."""
    if x.dtype.is_floating or x.dtype == tf.bool:
      return tf.cast(x, tf.float32)
    return data.to_float(x, self._info)

  def _model_input(self, x, stream, rows, step):
    """What the VAE sees of images x: intensities in [0, 1] (uint8 / 255, binary or float
    as they are), Bernoulli-binarised with `stream` when hparams.binarize (data.model_input)."""
    x_is_binary = x.dtype == tf.bool
    x = self._intensities(x)
    if not self.hparams.binarize or self.binary or x_is_binary:
      return x
    # noise.bernoulli's draws, with the image size known however the batch size is.
    size = math.prod(self.image_shape)
    u = noise.uniform(noise.key(self.seed, stream), rows, 1, size, step)[0]
    return tf.reshape(tf.cast(u < tf.reshape(x, [-1, size]), tf.float32), tf.shape(x))

  def _objective(self, x, posterior_stream, binarize_stream, noise_step):
    rows = tf.range(tf.shape(x)[0])
    x = self._model_input(x, binarize_stream, rows, noise_step)
    eps = noise.normal(noise.key(self.seed, posterior_stream), rows, self.hparams.num_samples,
                       self.vae.z_size, noise_step)
    return self.vae.compute_losses(x, tf.convert_to_tensor(self.step), eps)

  def _update_metrics(self, losses, weight=1.0):
    values = {'loss': losses.loss, 'elbo': tf.reduce_mean(losses.elbo),
              'kl': tf.reduce_mean(losses.kl_div), 'beta': losses.beta}
    for name, value in values.items():
      self._trackers[name].update_state(value, sample_weight=weight)
    return {name: tracker.result() for name, tracker in self._trackers.items()}

  def train_step(self, data_batch):
    if tf.distribute.get_strategy().num_replicas_in_sync > 1:
      raise api.ArgumentError('a KerasVAE trains on one replica (one device); for several use '
                              'tfvae.train(strategy=...) or tfvae-train --strategy')
    x = self._images(data_batch)
    hp, optimizer = self.hparams, self.optimizer
    step = tf.convert_to_tensor(self.step)
    loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    with tf.GradientTape() as tape:
      losses = self._objective(x, 'train_posterior', 'train_binarize', step)
      loss = optimizer.scale_loss(losses.loss) if loss_scaled else losses.loss
    variables = self.vae.trainable_variables
    grads = tape.gradient(loss, variables)
    # As the trainer: clip the true gradients; the loss-scale optimiser unscales them again
    # (and skips non-finite ones itself, lowering its scale).
    scale = tf.cast(optimizer.dynamic_scale, tf.float32) if loss_scaled else 1.0
    grads, global_norm = optimization.clip_gradients([g / scale for g in grads], hp.grad_clip)
    grads = [g * scale for g in grads]
    skip = optimization.skip_update(global_norm, hp.grad_skip_threshold, loss_scaled)
    self.step.assign_add(1)
    tf.cond(skip, lambda: tf.constant(0.0), lambda: self._apply(grads, variables))
    return self._update_metrics(losses, 1.0 - tf.cast(skip, tf.float32))

  def _apply(self, grads, variables):
    self.optimizer.apply_gradients(zip(grads, variables))
    return tf.constant(0.0)

  def test_step(self, data_batch):
    losses = self._objective(self._images(data_batch), 'eval_posterior', 'eval_binarize', 0)
    return self._update_metrics(losses)

  def call(self, x, training=False):
    """Reconstructions [B, H, W, C] of images x (intensities, not binarised, as TrainedModel
    takes them): the decoder's mean images at the posterior means of every latent group."""
    del training
    x = self._intensities(self._images(x))
    z = self.vae.posterior_sample(x, tf.zeros([tf.shape(x)[0], self.vae.z_size]))
    return self.vae.decode_images(z)

  def save_run(self, run_dir, dataset=None, data_dir=None, cache_dir=None):
    """Makes run_dir a tfvae run directory of this model (config.json and a checkpoint at its
    step in run_dir/train), which TrainedModel, tfvae-evaluate, -sample, -export and
    tfvae.train (resuming) open. dataset: what the tools evaluate and sample from, in any form
    tfvae.train takes (arrays and tf.data are saved into run_dir); None: the config's. Its
    images must have the model's shape and be binary (bool arrays, binarized_mnist) exactly
    when the model is. data_dir, cache_dir: where the tools read it from (recorded, as
    tfvae-train records them).
    The checkpoint holds the optimiser's state when it is of the config's kind (as compile()
    chooses by default); else a fresh one of the config's (resuming with tfvae.train then
    starts its moments at zero).
    Returns run_dir."""
    run_dir = RunDir(os.fspath(run_dir))
    spec = run_data.spec_for(dataset, run_dir, self._check_array) or self.config.dataset
    if not spec:
      raise api.ArgumentError(f'config {self.config.name} has no dataset of its own: pass '
                              'dataset= (the images the tools evaluate and sample from)')
    config = dataclasses.replace(self.config, dataset=sources.absolute_spec(spec))
    run = Run(config, self.hparams, self.image_shape, self.binary, data_dir=data_dir,
              cache_dir=cache_dir)
    if run_dir.has_config():
      saved = run_dir.load()
      if (saved.config, saved.hparams, saved.image_shape, saved.binary) != (
          run.config, run.hparams, run.image_shape, run.binary):
        raise RunDirError(f'{run_dir.path} holds another run ({saved.config.name} on '
                          f'{saved.config.dataset}); save into a new run_dir')
    if dataset is None or isinstance(dataset, str):
      self._check_spec(spec, data_dir, cache_dir)
    optimizer = optimization.make_optimizer(self.hparams)
    if _same_kind(getattr(self, 'optimizer', None), optimizer):
      optimizer = self.optimizer
    else:
      optimizer.build(self.vae.trainable_variables)
    state = checkpoints.State(self.vae, optimizer)
    state.step.assign(self.step)
    run_dir.save(run)
    manager = tf.train.CheckpointManager(state.checkpoint, run_dir.train_dir, max_to_keep=5)
    manager.save(checkpoint_number=int(self.step.numpy()))
    return run_dir.path

  def _check_array(self, images):
    """_check_images of an image array [N, H, W(, C)] given as dataset= (bool: binary)."""
    shape = images.shape[1:] if images.ndim == 4 else images.shape[1:] + (1,)
    self._check_images('the images', self._fitted(shape), images.dtype == np.bool_)

  def _check_spec(self, spec, data_dir, cache_dir):
    """_check_images of a dataset spec: a built-in by its info, a local file or folder by its
    prepared source (TFDS datasets are left to the tools)."""
    parsed = sources.parse_spec(spec)
    if parsed.kind == 'builtin':
      info = data.dataset_info(parsed.target)
      self._check_images(spec, self._fitted(info.image_shape), info.binary)
    elif parsed.kind != 'tfds':
      info = sources.make_source(spec, data_dir=data_dir, cache_dir=cache_dir,
                                 image_size=self.hparams.image_size,
                                 channels=self.hparams.channels).info
      self._check_images(spec, tuple(info.image_shape), info.binary)

  def _fitted(self, native_shape):
    return sources.fitted_shape(tuple(native_shape), self.hparams.image_size,
                                self.hparams.channels)

  def _check_images(self, what, shape, binary):
    """ArgumentError unless images of (fitted) shape (H, W, C) are what the model takes, and
    are binary exactly when the model was made for binary data."""
    if shape != self.image_shape:
      raise api.ArgumentError(f'{what} have shape {shape}; the model takes {self.image_shape}')
    if binary != self.binary:
      fix = ('give them as a bool array' if self.binary else
             'make the model with keras_model(..., binary=True)')
      raise api.ArgumentError(f'{what} are {"" if binary else "not "}binary (0/1) data, but '
                              f'the model was made with binary={self.binary}: {fix}')


def _same_kind(optimizer, wanted):
  """Whether a checkpoint of `optimizer` restores into `wanted` (every variable of wanted's
  has its value there): the same class, weight averaging and loss scaling."""
  if optimizer is None or type(optimizer) is not type(wanted):
    return False
  inner, wanted_inner = (getattr(o, 'inner_optimizer', o) for o in (optimizer, wanted))
  return type(inner) is type(wanted_inner) and inner.use_ema == wanted_inner.use_ema
