#!/usr/bin/env python
"""The paper arch's training step (784-500-20 tanh, batch 100, Adam), part by part: each part
as its own XLA-compiled loop of the same shapes (gemm.xla_loop_ms), every iteration's inputs
changed so nothing is hoisted out of the loop, against the whole step in tfvae's fused loop
(`Trainer`, 100 steps a call, best of 5).

    python bench/parts.py          # about 2 minutes

The parts: the 14 GEMMs of the step one by one, the data gather, the noise (binarisation and
eps), bias + tanh forward and backward, the posterior's softplus, reparameterisation and KL, the
Bernoulli log-likelihood with its gradient, the bias gradients, the gradients' global norm
(TensorFlow's and tfvae's), and Keras's Adam update of the 815,824 parameters; then the groups'
shares. The parts do not add up to the step exactly: XLA fuses across them in the real step,
and a step of about 120 small ops pays a few us of scheduling for each. Figures only: a table,
then one JSON line.
"""

import os
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import shutil  # pylint: disable=wrong-import-position
import tempfile  # pylint: disable=wrong-import-position
import time  # pylint: disable=wrong-import-position

from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position
import keras  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position
import tensorflow_probability as tfp  # pylint: disable=wrong-import-position

import gemm  # pylint: disable=wrong-import-position
import runner  # pylint: disable=wrong-import-position
from children import loadavg  # pylint: disable=wrong-import-position
from children import print_json  # pylint: disable=wrong-import-position
from tfvae import configs  # pylint: disable=wrong-import-position
from tfvae import likelihoods  # pylint: disable=wrong-import-position
from tfvae import noise  # pylint: disable=wrong-import-position
from tfvae import optimization  # pylint: disable=wrong-import-position
from tfvae import sources  # pylint: disable=wrong-import-position
from tfvae import training  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(runner)


def parts():
  """The paper arch's training step, part by part: each as an XLA-compiled loop of the same
  shapes, against the whole step (tfvae's fused loop of 100 steps)."""
  arch, batch = runner.ARCHS['paper'], runner.ARCHS['paper']['batch']
  rng = np.random.default_rng(0)

  def normal(*shape, scale=0.05):
    return tf.constant(rng.normal(size=shape).astype(np.float32) * scale)

  load_before = loadavg()
  print(f'parts of the paper step (784-500-20 tanh, batch 100, Adam), ms per step, each the '
        f'best of 5 loops; load average {load_before}', flush=True)
  rows = []

  def part(name, body, state, group):
    rows.append((name, gemm.xla_loop_ms(body, state), group))
    print(f'  {name:<52} {rows[-1][1]:7.3f} ms', flush=True)

  for m, k, n, ta, tb in gemm.step_gemms(arch):
    label = f'GEMM [{m}x{k}]{"^T" if ta else ""} @ [{k}x{n}]{"^T" if tb else ""}'
    rows.append((label, gemm.gemm_ms(m, k, n, ta, tb), 'GEMM'))
    print(f'  {label:<52} {rows[-1][1]:7.3f} ms  {2 * m * k * n / rows[-1][1] / 1e6:6.1f} '
          'GFLOP/s', flush=True)

  def total(t):
    """A scalar that depends on every element of t (a dot product: XLA cannot narrow it)."""
    flat = tf.reshape(t, [-1])
    return tf.tensordot(flat, tf.ones_like(flat), 1)

  images = tf.Variable(rng.integers(0, 2, size=(runner.TRAIN_EXAMPLES, 28, 28, 1), dtype=np.uint8))

  def gather(i, s):
    indices, = s
    x = tf.cast(tf.gather(images, indices), tf.float32)
    return gemm.poke(indices, tf.cast(total(x), tf.int32) % 7 + i),
  part('gather 100 images + to float', gather, (tf.range(batch),), 'data')
  key = noise.key(0, 'train_binarize')
  probs = tf.constant(rng.random((batch, 28, 28, 1)).astype(np.float32))

  def binarise(i, s):
    p, = s
    return p + 1e-9 * noise.bernoulli(p, key, tf.range(batch), i),
  part('noise: binarisation, 78,400 uniforms (mnist_fc)', binarise, (probs,), 'noise')
  eps_key = noise.key(0, 'train_posterior')

  def eps(i, s):
    return s[0] + total(noise.normal(eps_key, tf.range(batch), 1, arch['z'], i)),
  part('noise: eps, 2,000 normals', eps, (tf.constant(0.0),), 'noise')

  def hidden(i, s):
    h, bias = s
    with tf.GradientTape() as tape:
      tape.watch(h)
      y = tf.tanh(h + bias)
    return h + 1e-9 * tape.gradient(y, h, output_gradients=h), bias
  part('bias + tanh, forward and backward, [100, 500] x 2', lambda i, s: hidden(i, hidden(i, s)),
       (normal(batch, 500), normal(500)), 'elementwise')
  tfd = tfp.distributions
  posterior_eps = normal(1, batch, arch['z'], scale=1.0)

  def posterior(i, s):
    loc, raw = s
    with tf.GradientTape() as tape:
      tape.watch([loc, raw])
      q = tfd.MultivariateNormalDiag(loc=loc, scale_diag=tf.nn.softplus(raw) + 1e-4)
      z = q.mean() + q.stddev() * posterior_eps
      kl = tfd.kl_divergence(q, tfd.MultivariateNormalDiag(loc=tf.zeros(arch['z'])))
      value = tf.reduce_sum(z) + tf.reduce_mean(kl)
    g_loc, g_raw = tape.gradient(value, [loc, raw])
    return loc + 1e-9 * g_loc, raw + 1e-9 * g_raw
  part('posterior: softplus, z = mu + sigma eps, KL, with grads', posterior,
       (normal(batch, arch['z']), normal(batch, arch['z'])), 'elementwise')
  x = tf.cast(rng.random((batch, 28, 28, 1)) < 0.3, tf.float32)

  def bernoulli(i, s):
    logits, = s
    with tf.GradientTape() as tape:
      tape.watch(logits)
      value = tf.reduce_mean(likelihoods.bernoulli_log_prob(logits, x, [-3, -2, -1]))
    return logits + 1e-9 * (tape.gradient(value, logits) + value),
  part('Bernoulli log-likelihood + gradient, 78,400 logits', bernoulli,
       (normal(1, batch, 28, 28, 1, scale=3.0),), 'likelihood')
  sizes = [(runner.PIXELS, 500), (500,), (500, 20), (20,), (500, 20), (20,), (20, 500), (500,),
           (500, runner.PIXELS), (runner.PIXELS,)]
  grads = tuple(normal(*s) for s in sizes)

  def bias_grads(i, s):
    return tuple(gemm.poke(t, total(tf.reduce_sum(t, 0)) * 1e-9) for t in s)
  part('bias gradients: sums over the batch, 5 layers', bias_grads,
       (normal(batch, runner.PIXELS), normal(batch, 500), normal(batch, 500), normal(batch, 20),
        normal(batch, 20)), 'elementwise')

  def norm_with(fn):
    def body(i, s):
      return tuple([gemm.poke(s[0], fn(list(s)) * 1e-9)] + list(s[1:]))
    return body
  # The clip's scaling fuses into Adam's update; the norm is the pass of its own.
  part('global norm: tf.linalg.global_norm (815,824 values)', norm_with(tf.linalg.global_norm),
       grads, None)
  part('global norm: optimization.global_norm (815,824 values)',
       norm_with(optimization.global_norm), grads, 'clipping')
  variables = [tf.Variable(g) for g in grads]
  adam = keras.optimizers.Adam(learning_rate=1e-3)
  adam.build(variables)

  def adam_step(i, s):
    adam.apply_gradients(zip(list(s), variables))
    return tuple([gemm.poke(s[0], gemm.first(variables[0]))] + list(s[1:]))
  part('Adam: apply_gradients (815,824 parameters)', adam_step, grads, 'Adam')

  config = configs.get_config(arch['config'])
  source = sources.make_source(config.dataset, data_dir=FLAGS.data_dir,
                               cache_dir=tempfile.mkdtemp(prefix='tfvae_bench_cache_'))
  run_dir = tempfile.mkdtemp(prefix='tfvae_bench_parts_')
  try:
    trainer = training.Trainer(config, config.hparams, run_dir, source, steps_per_loop=100)
    block, _, _ = trainer.batches.block(0)
    trainer._train_step(block, 0, 100)  # pylint: disable=protected-access
    step_ms = []
    for _ in range(5):
      start = time.perf_counter()
      trainer._train_step(block, 0, 100)  # pylint: disable=protected-access
      step_ms.append((time.perf_counter() - start) * 10)
  finally:
    shutil.rmtree(run_dir, ignore_errors=True)
  step = min(step_ms)
  groups = {}
  for _, ms, group in rows:
    if group:
      groups[group] = groups.get(group, 0.0) + ms
  total = sum(groups.values())
  print(f'\n  {"group":<24} {"ms/step":>8} {"share of parts":>15}')
  for group, ms in groups.items():
    print(f'  {group:<24} {ms:8.3f} {ms / total:15.1%}')
  print(f'  {"sum of the parts":<24} {total:8.3f}')
  print(f'  {"the whole step":<24} {step:8.3f}   (tfvae\'s fused loop, best of 5 x 100 steps: '
        f'{batch / step * 1e3:,.0f} examples/sec)')
  print(f'  GEMMs are {groups["GEMM"] / step:.1%} of the step; the step at the GEMMs\' own '
        f'speed would be {batch / groups["GEMM"] * 1e3:,.0f} examples/sec')
  print(f'  load average before/after {load_before} / {loadavg()}')
  print_json(dict(bench='parts', arch='paper', parts_ms={name: ms for name, ms, _ in rows},
                  groups_ms=groups, sum_of_parts_ms=total, step_ms=step,
                  load_average=[load_before, loadavg()]))


if __name__ == '__main__':
  app.run(runner.main(parts))
