"""bench/gemm.py counts the GEMMs of the MLP archs the benchmarks time: its layers are the
model's dense layers, shape for shape."""

import collections
import os
import sys

import pytest

from tfvae import configs

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'bench'))
import gemm  # pylint: disable=wrong-import-position
import runner  # pylint: disable=wrong-import-position


@pytest.mark.parametrize('name', ['paper', 'gated', 'hvae'])
def test_the_counted_layers_are_the_models_dense_kernels(name):
  arch = runner.ARCHS[name]
  config = configs.get_config(arch['config'])
  model = config.build_model(config.hparams.parse(arch['hparams']), (28, 28, 1))
  model.build_variables()
  kernels = collections.Counter(tuple(v.shape) for v in model.trainable_variables
                                if v.path.endswith('kernel') and len(v.shape) == 2)
  counted = collections.Counter((k, n) for k, n, _, _ in gemm.mlp_layers(arch))
  assert counted == kernels
  # Every layer's weight gradient and all but the data layer's input gradient.
  assert len(gemm.step_gemms(arch)) == 3 * sum(kernels.values()) - 1
