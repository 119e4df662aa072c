"""The small models and fixed inputs that tests/pins/record.py pins (see there)."""

import keras
import numpy as np
import tensorflow as tf

from tfvae import configs
from tfvae import evaluation

CONFIG_NAMES = sorted(configs.CONFIG_MAP)
STEP = 10
_SMALL = dict(hidden_sizes=[12], z_size=3, conv_filters=[4, 8], autoregressive_units=7)


def image_shape(name):
  """Small images of the config's kind: colour for the logistic-mixture configs."""
  hparams = configs.get_config(name).hparams
  return (6, 5, 3) if hparams.likelihood == 'logistic_mixture' else (6, 5, 1)


def hparams(name):
  """The config's hparams with small layers (kept as they are where a config needs them)."""
  base = configs.get_config(name).hparams
  small = dict(_SMALL)
  if len(base.conv_filters) > 2:
    small['conv_filters'] = [4, 8, 8]
  return base.override(**small)


def build(name, seed=0):
  """The config's VAE on small images, every variable made, seeded by `seed`."""
  keras.utils.set_random_seed(seed)
  model = configs.get_config(name).build_model(hparams(name), image_shape(name))
  model.build_variables()
  return model


def inputs(name):
  """(x [4, H, W, C] float32 in [0, 1] on the 8-bit grid (0/1 for Bernoulli configs),
  eps [num_samples, 4, z], z [3, z])."""
  hp = hparams(name)
  rng = np.random.RandomState(1)
  shape = (4,) + image_shape(name)
  if hp.likelihood == 'bernoulli':
    x = (rng.rand(*shape) < 0.4).astype(np.float32)
  else:
    x = rng.randint(0, 256, shape).astype(np.float32) / 255.0
  eps = rng.randn(hp.num_samples, 4, hp.z_size).astype(np.float32)
  z = rng.randn(3, hp.z_size).astype(np.float32)
  return tf.constant(x), tf.constant(eps), tf.constant(z)


def compute(name, model):
  """{quantity: array} of the model on the fixed inputs."""
  x, eps, z = inputs(name)
  losses = model.compute_losses(x, STEP, eps)
  out = {f'losses.{field}': getattr(losses, field) for field in losses._fields}
  out['log_weights'] = model.log_weights(x, 3, seed=5)
  out['decode_images'] = model.decode_images(z)
  out['sample'] = model.sample(2, seed=7)
  out['log_likelihood'] = evaluation.log_likelihood(model, x, 6, seed=2, chunk_size=4)
  return {k: np.asarray(v, np.float64) for k, v in out.items()}
