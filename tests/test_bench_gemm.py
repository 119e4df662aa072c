"""bench/archs.py counts the GEMMs of the MLP archs the benchmarks time: its layers are the
model's dense layers, shape for shape, and its GEMMs are the matrix products XLA compiles for
the gradient of the model's loss, product for product."""

import collections
import math
import re

import pytest
import tensorflow as tf

from bench import archs
from tfvae import configs

ARCHS = {name: archs.ARCHS[name] for name in ('paper', 'gated', 'hvae')}
ARCHS['hvae, 3 groups'] = dict(archs.ARCHS['hvae'], groups=3, hparams='num_groups=3')


def _model(arch):
  config = configs.get_config(arch['config'])
  model = config.build_model(config.hparams.parse(arch['hparams']), (28, 28, 1))
  model.build_variables()
  return model


def compiled_products(hlo):
  """Counter of ((rows, columns), contracted size) over the 2-D dots of an optimised HLO
  module (a 1-D dot is a matrix-vector product, not a GEMM)."""
  shapes = {name: [int(d) for d in dims.split(',') if d]
            for name, dims in re.findall(r'%([\w.\-]+)(?: =|:) f32\[([\d,]*)\]', hlo)}
  products = collections.Counter()
  for out, lhs, dims in re.findall(r'= f32\[(\d+,\d+)\]\S* dot\(%([\w.\-]+), %[\w.\-]+\), '
                                   r'lhs_contracting_dims=\{([\d,]+)\}', hlo):
    contracted = math.prod(shapes[lhs][int(d)] for d in dims.split(','))
    products[(tuple(int(d) for d in out.split(',')), contracted)] += 1
  return products


@pytest.mark.parametrize('name', list(ARCHS))
def test_the_counted_layers_are_the_models_dense_kernels(name):
  arch = ARCHS[name]
  model = _model(arch)
  kernels = collections.Counter(tuple(v.shape) for v in model.trainable_variables
                                if v.path.endswith('kernel') and len(v.shape) == 2)
  counted = collections.Counter((k, n) for k, n, _, _ in archs.mlp_layers(arch))
  assert counted == kernels


@pytest.mark.parametrize('name', list(ARCHS))
def test_the_counted_gemms_are_the_dots_xla_compiles(name):
  arch = ARCHS[name]
  model = _model(arch)
  x = tf.cast(tf.random.stateless_uniform([arch['batch'], 28, 28, 1], [1, 2]) > 0.5,
              tf.float32)

  @tf.function(jit_compile=True)
  def gradients(x):
    with tf.GradientTape() as tape:
      loss = model.compute_losses(x, tf.constant(1000, tf.int64)).loss
    return tape.gradient(loss, model.trainable_variables)

  compiled = compiled_products(
      gradients.experimental_get_compiler_ir(x)(stage='optimized_hlo'))
  counted = collections.Counter(((m, n), k) for m, k, n, _, _ in archs.step_gemms(arch))
  assert counted == compiled
