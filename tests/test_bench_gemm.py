"""bench/archs.py counts the GEMMs of the MLP archs the benchmarks time: its layers are the
model's dense layers, shape for shape."""

import collections

import pytest

from bench import archs
from tfvae import configs


@pytest.mark.parametrize('name', ['paper', 'gated', 'hvae'])
def test_the_counted_layers_are_the_models_dense_kernels(name):
  arch = archs.ARCHS[name]
  config = configs.get_config(arch['config'])
  model = config.build_model(config.hparams.parse(arch['hparams']), (28, 28, 1))
  model.build_variables()
  kernels = collections.Counter(tuple(v.shape) for v in model.trainable_variables
                                if v.path.endswith('kernel') and len(v.shape) == 2)
  counted = collections.Counter((k, n) for k, n, _, _ in archs.mlp_layers(arch))
  assert counted == kernels
  # Every layer's weight gradient and all but the data layer's input gradient.
  assert len(archs.step_gemms(arch)) == 3 * sum(kernels.values()) - 1
