"""Evaluation: importance-weighted log-likelihood, ELBO, bits per dim and active units.

For an image x and K samples z_k ~ q(z|x) (Burda et al. 2015; Kingma & Welling, appendix D):

    log w_k        = log p(x|z_k) + log p(z_k) - log q(z_k|x)           (VAE.sample_terms)
    log p(x)      ~= log (1/K) sum_k w_k = logsumexp_k(log w_k) - log K
                     (a stochastic lower bound on log p(x) that tightens as K grows)
    reconstruction = (1/K) sum_k log p(x|z_k),   kl = KL(q(z|x) || p(z))  (analytic)
    elbo           = reconstruction - kl
    bits_per_dim   = -log p(x) / (num_pixels * ln 2)
    active units   = #{j : Cov_x(E_q[z_j|x]) > 0.01}                     (Burda et al.)

The K samples are taken in chunks of C per image, the C * batch samples of a chunk decoded as
one block, with a running log-sum-exp across chunks, so memory is bounded whatever K; the
chunk loop runs inside one XLA-compiled call per batch of images.

The noise is counter-based: eps for example i, sample k is Philox4x32-10 (the generator behind
TF's stateless RNG) at counter (i, k, block, 0) under a key made from the seed, mapped to
normals by the inverse CDF. So each example's estimate depends only on (seed, its index in
the split, K), not on the batch size, the chunk size, the memory budget or on which other
examples are evaluated with it.
"""

import math
import time
import weakref

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import data
from tfvae import export
from tfvae.run_dir import RunDir

tfd = tfp.distributions

DEFAULT_BATCH_SIZE = 100
DEFAULT_CHUNK_ROWS = 8192     # samples decoded per chunk (batch * chunk_size): fast on CPU
ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al.: a unit is active if Cov_x(E_q[z_j]) > 0.01

# Philox4x32-10 (Salmon et al. 2011), as in Random123 and TensorFlow.
_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)
_PHILOX_ROUNDS = 10


def _mulhilo(a, m):
  """(high, low) 32-bit halves of the 64-bit product of uint32 a and the constant m."""
  product = tf.cast(a, tf.uint64) * tf.constant(m, tf.uint64)
  high = tf.bitwise.right_shift(product, tf.constant(32, tf.uint64))
  low = tf.bitwise.bitwise_and(product, tf.constant(0xFFFFFFFF, tf.uint64))
  return tf.cast(high, tf.uint32), tf.cast(low, tf.uint32)


def philox4x32(counter, key):
  """Philox4x32-10: four uint32 counter words (one shape) and two uint32 key words (scalars)
  -> four uint32 tensors of random bits of the counters' shape."""
  c0, c1, c2, c3 = counter
  k0, k1 = key
  xor = tf.bitwise.bitwise_xor
  for i in range(_PHILOX_ROUNDS):
    if i:
      k0 += tf.constant(_PHILOX_W[0], tf.uint32)
      k1 += tf.constant(_PHILOX_W[1], tf.uint32)
    hi0, lo0 = _mulhilo(c0, _PHILOX_M[0])
    hi1, lo1 = _mulhilo(c2, _PHILOX_M[1])
    c0, c1, c2, c3 = xor(xor(hi1, c1), k0), lo1, xor(xor(hi0, c3), k1), lo0
  return c0, c1, c2, c3


def seed_key(seed):
  """The Philox key (two uint32 words) for an integer seed."""
  seed = int(seed) % 2**64
  return tf.constant([seed & 0xFFFFFFFF, seed >> 32], tf.uint32)


def counter_normal(key, example_ids, sample_ids, z_size):
  """Standard normals [K, B, z_size]: entry (k, b, j) is a function of (key, example_ids[b],
  sample_ids[k], j) alone. key: uint32 [2]; example_ids [B], sample_ids [K]: integers."""
  blocks = -(-z_size // 4)  # each Philox call gives four words
  shape = [tf.size(sample_ids), tf.size(example_ids), blocks]
  counter = (tf.broadcast_to(tf.cast(example_ids, tf.uint32)[tf.newaxis, :, tf.newaxis], shape),
             tf.broadcast_to(tf.cast(sample_ids, tf.uint32)[:, tf.newaxis, tf.newaxis], shape),
             tf.broadcast_to(tf.cast(tf.range(blocks), tf.uint32), shape),
             tf.zeros(shape, tf.uint32))
  bits = tf.stack(philox4x32(counter, (key[0], key[1])), -1)  # [K, B, blocks, 4]
  bits = tf.reshape(bits, [shape[0], shape[1], 4 * blocks])[..., :z_size]
  # The top 23 bits as the odd multiples of 2^-23 in (-1, 1): exact in float32, symmetric
  # about 0, and within erfinv's finite range (|eps| <= 5.29).
  top = tf.cast(tf.bitwise.right_shift(bits, tf.constant(9, tf.uint32)), tf.int32)
  v = tf.cast(2 * top + 1 - 2**23, tf.float32) * 2.0**-23
  return math.sqrt(2.0) * tf.math.erfinv(v)


def chunk_plan(num_samples, batch_size, chunk_size=None, max_memory_mb=None, model=None):
  """(batch_size, chunk_size): images per call and samples per image per chunk.

  chunk_size wins if given; else max_memory_mb (with model, for its size) caps the samples
  decoded at once; else about DEFAULT_CHUNK_ROWS are. Chunks are then evened out so that the
  last one wastes fewer than num_chunks samples.
  """
  if num_samples < 1:
    raise ValueError(f'num_importance_samples must be at least 1, got {num_samples}')
  if chunk_size is not None and chunk_size < 1:
    raise ValueError(f'chunk_size must be at least 1, got {chunk_size}')
  if chunk_size is None:
    rows = DEFAULT_CHUNK_ROWS
    if max_memory_mb is not None:
      if max_memory_mb <= 0:
        raise ValueError(f'max_memory_mb must be positive, got {max_memory_mb}')
      rows = max(1, int(max_memory_mb * 2**20 // _bytes_per_sample(model)))
    batch_size = max(1, min(batch_size, rows))
    chunk_size = max(1, rows // batch_size)
  chunk_size = min(chunk_size, num_samples)
  num_chunks = -(-num_samples // chunk_size)
  return batch_size, -(-num_samples // num_chunks)


def _bytes_per_sample(model):
  """A rough upper estimate of the float32 activations one decoded sample keeps live."""
  if model is None:
    return 16 * 1024
  return 4 * (model.decoder.floats_per_sample() + 8 * model.z_size)


# Compiled batch functions, per model and (num_samples, chunk_size).
_COMPILED = weakref.WeakKeyDictionary()


def _batch_fn(model, num_samples, chunk_size):
  """A compiled fn(x, example_ids, key) -> (log_likelihood, reconstruction, kl, means),
  the first three [B] and the posterior means [B, z]."""
  cache = _COMPILED.setdefault(model, {})
  if (num_samples, chunk_size) in cache:
    return cache[(num_samples, chunk_size)]
  num_chunks = -(-num_samples // chunk_size)

  @tf.function(jit_compile=True)
  def batch_fn(x, example_ids, key):
    q = model.encode(x)
    kl = tfd.kl_divergence(q, model.prior)
    batch = tf.shape(x)[0]

    def body(chunk, running_max, running_sum, log_likelihood_sum):
      sample_ids = chunk * chunk_size + tf.range(chunk_size)
      eps = counter_normal(key, example_ids, sample_ids, model.z_size)
      terms = model.sample_terms(x, q, eps)
      valid = (sample_ids < num_samples)[:, tf.newaxis]           # the last chunk's spill
      log_weights = tf.where(valid, terms.log_weights, -np.inf)   # [C, B]
      new_max = tf.maximum(running_max, tf.reduce_max(log_weights, 0))
      running_sum = (running_sum * tf.exp(running_max - new_max)
                     + tf.reduce_sum(tf.exp(log_weights - new_max), 0))
      log_likelihood_sum += tf.reduce_sum(tf.where(valid, terms.log_likelihood, 0.0), 0)
      return chunk + 1, new_max, running_sum, log_likelihood_sum

    init = (tf.constant(0), tf.fill([batch], -np.inf), tf.zeros([batch]), tf.zeros([batch]))
    _, running_max, running_sum, log_likelihood_sum = tf.while_loop(
        lambda chunk, *_: chunk < num_chunks, body, init, maximum_iterations=num_chunks)
    log_px = running_max + tf.math.log(running_sum) - math.log(num_samples)
    return log_px, log_likelihood_sum / num_samples, kl, q.mean()

  cache[(num_samples, chunk_size)] = batch_fn
  return batch_fn


def log_likelihood(model, x, num_samples, seed=0, chunk_size=None, example_ids=None):
  """The importance-weighted estimate of log p(x) [B] (nats) for images x [B, H, W, C]:
  logmeanexp over num_samples samples z_k ~ q(z|x) of the log-weights, chunk_size samples
  per image at a time. example_ids [B] (default 0..B-1) index the counter-based noise."""
  x = tf.convert_to_tensor(x, tf.float32)
  batch = int(x.shape[0])
  if example_ids is None:
    example_ids = np.arange(batch)
  _, chunk_size = chunk_plan(num_samples, batch, chunk_size=chunk_size, model=model)
  fn = _batch_fn(model, num_samples, chunk_size)
  return fn(x, tf.constant(example_ids, tf.int64), seed_key(seed))[0]


def active_units(posterior_means, threshold=ACTIVE_UNIT_THRESHOLD):
  """Latent dimensions whose posterior mean varies across the data: the count of j with
  Cov_x(E_q[z_j|x]) > threshold (Burda et al.), from posterior means [N, z]."""
  means = np.asarray(posterior_means, np.float64)
  if means.ndim != 2 or len(means) < 2:
    raise ValueError(f'active_units needs posterior means [N >= 2, z], got {means.shape}')
  return int(np.sum(np.var(means, axis=0) > threshold))


def evaluate_split(model, images, num_importance_samples, seed=0, batch_size=None,
                   chunk_size=None, max_memory_mb=None, example_ids=None, log_every_secs=30.0):
  """Evaluates model on images and returns a dict of mean ELBO, reconstruction, KL and
  importance-weighted log-likelihood (nats per example), bits_per_dim, active_units,
  num_importance_samples, num_examples and seconds.

  images: float images [N, H, W, C] in [0, 1] (NumPy or tensor), or a tf.data.Dataset of
  such batches. example_ids [N] (default 0..N-1, in order) key each example's noise: pass
  an image's index in its split to get the same estimate whatever subset it is in.
  Memory: chunk_size samples per image per chunk, or max_memory_mb, or a default chunk.
  Logs progress every log_every_secs (math.inf: quiet).
  """
  batch_size, chunk_size = chunk_plan(
      num_importance_samples, batch_size or DEFAULT_BATCH_SIZE, chunk_size=chunk_size,
      max_memory_mb=max_memory_mb, model=model)
  fn = _batch_fn(model, num_importance_samples, chunk_size)
  key = seed_key(seed)
  if isinstance(images, tf.data.Dataset):
    batches, total = images, None
  else:
    images = np.asarray(images, np.float32)
    total = len(images)
    batches = (images[i:i + batch_size] for i in range(0, total, batch_size))
  if example_ids is not None:
    example_ids = np.asarray(example_ids, np.int64)
  if log_every_secs < math.inf:
    logging.info('Evaluating %s examples with K=%d importance samples: %d images x %d '
                 'samples per chunk.', total if total is not None else 'all',
                 num_importance_samples, batch_size, chunk_size)
  sums = np.zeros(4)  # log_likelihood, reconstruction, kl, log_likelihood^2
  means, count = [], 0
  start = last_log = time.time()
  for x in batches:
    n = int(x.shape[0])
    ids = (np.arange(count, count + n) if example_ids is None
           else example_ids[count:count + n])
    log_px, reconstruction, kl, mu = fn(tf.convert_to_tensor(x, tf.float32),
                                        tf.constant(ids, tf.int64), key)
    log_px = log_px.numpy()
    sums += [log_px.sum(), reconstruction.numpy().sum(), kl.numpy().sum(),
             np.square(log_px).sum()]
    means.append(mu.numpy())
    count += n
    if time.time() - last_log >= log_every_secs:
      last_log = time.time()
      elapsed = last_log - start
      left = f', {elapsed * (total - count) / count:.0f}s left' if total else ''
      logging.info('evaluated %d%s examples in %.0fs%s; log-likelihood so far %.3f', count,
                   f'/{total}' if total else '', elapsed, left, sums[0] / count)
  if not count:
    raise ValueError('no examples to evaluate')
  mean_log_px, reconstruction, kl, _ = (float(v) for v in sums / count)
  pixels = math.prod(model.image_shape)
  return {
      'elbo': reconstruction - kl,
      'reconstruction': reconstruction,
      'kl': kl,
      'log_likelihood': mean_log_px,
      'log_likelihood_stderr': math.sqrt(max(float(sums[3]) / count - mean_log_px**2, 0.0)
                                         / max(count - 1, 1)),
      'bits_per_dim': -mean_log_px / (pixels * math.log(2.0)),
      'active_units': active_units(np.concatenate(means)) if count > 1 else 0,
      'z_size': model.z_size,
      'num_importance_samples': num_importance_samples,
      'num_examples': count,
      'seconds': time.time() - start,
  }


def load_images(config, hparams, split, data_dir=None, num_examples=0, seed=0):
  """(images float32 [N, H, W, C] in [0, 1], their indices in the split) for evaluation.

  num_examples > 0 takes a seeded random subset (sorted by index; never the first rows:
  binarized MNIST's test file is grouped by digit). Datasets trained with dynamic
  binarisation are binarised once, with a fixed seed, so every evaluation sees the same bits.
  """
  split_data = data.load_split(config.dataset, split, data_dir)
  total = len(split_data.images)
  if num_examples < 0:
    raise ValueError(f'num_examples must be >= 0 (0 = the whole split), got {num_examples}')
  if num_examples and num_examples < total:
    ids = np.sort(np.random.RandomState(seed).choice(total, num_examples, replace=False))
  else:
    ids = np.arange(total)
  images = data.to_float(split_data.images[ids], split_data.info).numpy()
  if hparams.binarize and not split_data.info.binary:
    # One noise stream over the whole split (drawn in blocks), so an image's bits do not
    # depend on the subset.
    rng, block = np.random.default_rng(seed), 10_000
    for start in range(0, total, block):
      noise = rng.random((min(block, total - start),) + images.shape[1:], dtype=np.float32)
      rows = np.flatnonzero((ids >= start) & (ids < start + block))
      images[rows] = noise[ids[rows] - start] < images[rows]
  return images, ids


def evaluate_run(run_dir=None, split='test', num_importance_samples=5000, data_dir=None,
                 num_examples=0, seed=0, max_memory_mb=None, chunk_size=None,
                 batch_size=None, checkpoint=None, write_summaries=True, saved_model=None):
  """Restores a run's latest (or given) checkpoint, or the SavedModel in `saved_model`,
  evaluates it on split with evaluate_split, writes log_likelihood, bits_per_dim,
  active_units and elbo to TensorBoard under run_dir/eval at the checkpoint's step (runs
  only), and returns the results (with config, split, step)."""
  if (run_dir is None) == (saved_model is None):
    raise ValueError('give exactly one of --run_dir=DIR (a training run) and '
                     '--saved_model=DIR (an export)')
  if saved_model is not None and checkpoint not in (None, 'latest'):
    raise ValueError('--checkpoint applies to --run_dir only; a SavedModel holds one model')
  if saved_model is not None:
    config, hparams, model, step = export.restore_model(saved_model)
    write_summaries = False
  else:
    run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    config, hparams, model, step = run_dir.restore_model(checkpoint)
  images, ids = load_images(config, hparams, split, data_dir, num_examples, seed)
  results = evaluate_split(model, images, num_importance_samples, seed=seed,
                           batch_size=batch_size, chunk_size=chunk_size,
                           max_memory_mb=max_memory_mb, example_ids=ids)
  results.update(config=config.name, split=split, step=step)
  if write_summaries:
    writer = tf.summary.create_file_writer(run_dir.eval_dir)
    with writer.as_default(step=step):
      for name in ('log_likelihood', 'bits_per_dim', 'active_units', 'elbo'):
        tf.summary.scalar(name, results[name])
    writer.flush()
  return results
