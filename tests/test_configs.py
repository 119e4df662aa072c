"""Every named config builds its model, computes a finite loss and draws images."""

import numpy as np
import pytest
import tensorflow as tf

from tfvae import configs
from tfvae import data


def _image_shape(config):
  """The image shape a config's model takes: its built-in dataset's, or for the TFDS and
  generic configs the image_size x image_size x channels their hparams fit images to."""
  hp = config.hparams
  if config.dataset in data.DATASET_NAMES and not hp.image_size:
    return data.dataset_info(config.dataset).image_shape
  return (hp.image_size or 32, hp.image_size or 32, hp.channels or 3)


@pytest.mark.parametrize('name', sorted(configs.CONFIG_MAP))
def test_every_config_builds_and_computes_a_finite_loss(name):
  config = configs.get_config(name)
  shape = _image_shape(config)
  model = config.build_model(config.hparams, shape)
  model.build_variables()
  sizes = [int(np.prod(g.shape)) for g in model.groups]
  assert model.image_shape == shape and model.z_size == sum(sizes)
  if config.top_down == 'top_down.DenseLadder':
    assert sizes == [config.hparams.z_size] * config.hparams.num_groups  # z_size each
  x = tf.round(tf.random.stateless_uniform((2,) + shape, [1, 2]) * 255) / 255
  losses = model.compute_losses(x, 1)
  assert np.isfinite(losses.loss.numpy()) and losses.elbo.shape == (2,)
  images = model.decode_images(tf.random.stateless_normal([2, model.z_size], [3, 4])).numpy()
  assert images.shape == (2,) + shape and 0 <= images.min() and images.max() <= 1


def test_unknown_config_lists_the_valid_ones():
  with pytest.raises(configs.ConfigError, match=r"unknown config 'mnist' \(did you mean "
                     r"'mnist_fc'\?\); valid configs: binarized_mnist_fc, binarized_mnist_gated"):
    configs.get_config('mnist')
  with pytest.raises(configs.ConfigError, match="unknown config 'qqq'; valid configs: "):
    configs.get_config('qqq')


def test_configs_are_read_without_tensorflow_and_build_their_hparams_when_asked():
  config = configs.get_config('mnist_fc')
  assert isinstance(config.encoder, str) and config.overrides['z_size'] == 20
  assert config.hparams.z_size == 20 and config.hparams.binarize
