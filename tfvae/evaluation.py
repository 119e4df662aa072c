"""Evaluation: ELBO, importance-weighted log-likelihood, bits per dim and active units.

The one evaluator of tfvae: validation during training, bin/train.py --mode=eval and
bin/evaluate.py all call `evaluate_split`, so the same run, seed, K and subset give the same
numbers from any of them. For an image x and K samples z_k ~ q(z|x) (Burda et al. 2015;
Kingma & Welling, appendix D):

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

The noise is counter-based (`tfvae.noise`): eps for example i, sample k, and the one-off
binarisation of greyscale images trained with dynamic binarisation, depend only on (seed, i,
k), i being the example's index in its split. So each example's estimate depends only on
(seed, its index, K), not on the batch size, the chunk size, the memory budget or on which
other examples are evaluated with it.
"""

import json
import math
import time
import weakref

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import data
from tfvae import export
from tfvae import noise
from tfvae import sources
from tfvae.errors import UserError
from tfvae.run_dir import RunDir
from tfvae.run_dir import load_run

tfd = tfp.distributions

DEFAULT_BATCH_SIZE = 100
DEFAULT_CHUNK_ROWS = 8192     # samples decoded per chunk (batch * chunk_size): fast on CPU
ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al.: a unit is active if Cov_x(E_q[z_j]) > 0.01

def chunk_plan(num_samples, batch_size, chunk_size=None, max_memory_mb=None, model=None):
  """(batch_size, chunk_size): images per call and samples per image per chunk.

  chunk_size wins if given; else max_memory_mb (with model, for its size) caps the samples
  decoded at once; else about DEFAULT_CHUNK_ROWS are. Chunks are then evened out so that the
  last one wastes fewer than num_chunks samples.
  """
  if num_samples < 1:
    raise UserError(f'num_importance_samples must be at least 1, got {num_samples}')
  if chunk_size is not None and chunk_size < 1:
    raise UserError(f'chunk_size must be at least 1, got {chunk_size}')
  if chunk_size is None:
    rows = DEFAULT_CHUNK_ROWS
    if max_memory_mb is not None:
      if max_memory_mb <= 0:
        raise UserError(f'max_memory_mb must be positive, got {max_memory_mb}')
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


# Compiled batch functions, per model and (num_samples, chunk_size, input kind).
_COMPILED = weakref.WeakKeyDictionary()


def _batch_fn(model, num_samples, chunk_size, info=None, binarize=False):
  """A compiled fn(x, example_ids, seed) -> (log_likelihood, reconstruction, kl, group_kl,
  means): the first three [B], each group's KL [L, B] and the posterior means [B, z] (a lower
  group's averaged over the samples of the groups above it). x: float images [B, H, W, C] in [0, 1], or
  with `info` uint8 images of that dataset, scaled (and binarised if `binarize`) inside."""
  cache = _COMPILED.setdefault(model, {})
  # model_input reads only info.binary.
  cache_key = (num_samples, chunk_size, None if info is None else info.binary, binarize)
  if cache_key in cache:
    return cache[cache_key]
  num_chunks = -(-num_samples // chunk_size)

  @tf.function(jit_compile=True)
  def batch_fn(x, example_ids, seed):
    if info is not None:
      x = data.model_input(x, info, binarize, noise.key(seed, 'eval_binarize'), example_ids)
    eps_key = noise.key(seed, 'eval_posterior')
    inference = model.infer(x)
    batch = tf.shape(x)[0]
    num_groups = len(model.groups)

    def body(chunk, running_max, running_sum, log_likelihood_sum, kl_sums, mean_sum):
      sample_ids = chunk * chunk_size + tf.range(chunk_size)
      eps = noise.normal(eps_key, example_ids, sample_ids, model.z_size)
      terms = model.sample_terms(x, inference, eps)
      valid = (sample_ids < num_samples)[:, tf.newaxis]           # the last chunk's spill
      log_weights = tf.where(valid, terms.log_weights, -np.inf)   # [C, B]
      new_max = tf.maximum(running_max, tf.reduce_max(log_weights, 0))
      running_sum = (running_sum * tf.exp(running_max - new_max)
                     + tf.reduce_sum(tf.exp(log_weights - new_max), 0))
      log_likelihood_sum += tf.reduce_sum(tf.where(valid, terms.log_likelihood, 0.0), 0)
      # A group's KL that depends on the samples is averaged over them; a closed-form one
      # (the top group's under N(0, I)) is the same for every sample and taken once.
      kl_sums += tf.stack([tf.reduce_sum(tf.where(valid, kl, 0.0), 0) if kl.shape.rank == 2
                           else tf.where(chunk == 0, kl, 0.0) for kl in terms.group_kl])
      mean_sum += tf.reduce_sum(tf.where(valid[..., tf.newaxis], terms.means, 0.0), 0)
      return chunk + 1, new_max, running_sum, log_likelihood_sum, kl_sums, mean_sum

    init = (tf.constant(0), tf.fill([batch], -np.inf), tf.zeros([batch]), tf.zeros([batch]),
            tf.zeros([num_groups, batch]), tf.zeros([batch, model.z_size]))
    _, running_max, running_sum, log_likelihood_sum, kl_sums, mean_sum = tf.while_loop(
        lambda chunk, *_: chunk < num_chunks, body, init, maximum_iterations=num_chunks)
    log_px = running_max + tf.math.log(running_sum) - math.log(num_samples)
    closed_form = tf.constant([model.prior.analytic] + [False] * (num_groups - 1))
    group_kl = tf.where(closed_form[:, tf.newaxis], kl_sums, kl_sums / num_samples)  # [L, B]
    return (log_px, log_likelihood_sum / num_samples, tf.reduce_sum(group_kl, 0), group_kl,
            mean_sum / num_samples)

  cache[cache_key] = batch_fn
  return batch_fn


def log_likelihood(model, x, num_samples, seed=0, chunk_size=None, example_ids=None,
                   info=None, binarize=False):
  """The importance-weighted estimate of log p(x) [B] (nats) for float images x [B, H, W, C]
  in [0, 1]: logmeanexp over num_samples samples z_k ~ q(z|x) of the log-weights, chunk_size
  samples per image at a time. example_ids [B] (default 0..B-1) index the noise. With `info`
  (the dataset's data.DatasetInfo) and `binarize`, x is binarised first as evaluate_split
  binarises a split (greyscale data trained with binarize=true)."""
  x = tf.convert_to_tensor(x, tf.float32)
  batch = int(x.shape[0])
  if example_ids is None:
    example_ids = np.arange(batch)
  _, chunk_size = chunk_plan(num_samples, batch, chunk_size=chunk_size, model=model)
  fn = _batch_fn(model, num_samples, chunk_size, info, binarize)
  return fn(x, tf.constant(example_ids, tf.int64), tf.constant(seed, tf.int64))[0]


def active_units(posterior_means, threshold=ACTIVE_UNIT_THRESHOLD):
  """Latent dimensions whose posterior mean varies across the data: the count of j with
  Cov_x(E_q[z_j|x]) > threshold (Burda et al.), from posterior means [N, z]."""
  means = np.asarray(posterior_means, np.float64)
  if means.ndim != 2 or len(means) < 2:
    raise UserError(f'active_units needs posterior means [N >= 2, z], got {means.shape}')
  return int(np.sum(np.var(means, axis=0) > threshold))


def subset(num_examples, total, seed=0):
  """Sorted indices of a seeded random subset of num_examples of range(total) (all of it
  for 0 or num_examples >= total); never the first rows: binarized MNIST's test file is
  grouped by digit."""
  if num_examples < 0:
    raise UserError(f'num_examples must be >= 0 (0 = the whole split), got {num_examples}')
  if not num_examples or num_examples >= total:
    return np.arange(total)
  return np.sort(np.random.RandomState(seed).choice(total, num_examples, replace=False))


def _batches(images, batch_size, example_ids):
  """(total or None, iterator of (x, ids)): the batches of a data.Split (uint8), of float
  images [N, H, W, C] or of a tf.data.Dataset of float batches."""
  if isinstance(images, tf.data.Dataset):
    def from_dataset():
      count = 0
      for x in images:
        n = int(x.shape[0])
        yield x, (np.arange(count, count + n) if example_ids is None
                  else example_ids[count:count + n])
        count += n
    return None, from_dataset()
  is_split = isinstance(images, data.Split)
  array = images.images if is_split else np.asarray(images, np.float32)
  ids = np.arange(len(array)) if example_ids is None else example_ids
  if is_split and example_ids is not None:
    array = array[np.asarray(example_ids)]  # a Split's example_ids pick its rows
  return len(array), ((array[i:i + batch_size], ids[i:i + batch_size])
                      for i in range(0, len(array), batch_size))


def evaluate_split(model, images, num_importance_samples, seed=0, binarize=False,
                   example_ids=None, batch_size=None, chunk_size=None, max_memory_mb=None,
                   log_every_secs=30.0):
  """Evaluates model on images and returns a dict of mean ELBO, reconstruction, KL and
  importance-weighted log-likelihood (nats per example), its standard error, bits_per_dim,
  active_units, z_size, num_importance_samples, num_examples and seconds.

  images: a data.Split (uint8 images, scaled and, with `binarize`, binarised by counter-based
  noise per example), float images [N, H, W, C] in [0, 1], or a tf.data.Dataset of such
  batches. example_ids [N] key each example's noise (default 0..N-1); for a Split they also
  pick the rows evaluated (an image's index in its split gives it the same estimate whatever
  subset it is in). Memory: chunk_size samples per image per chunk, or max_memory_mb, or a
  default chunk. Logs progress every log_every_secs (math.inf: quiet).
  """
  batch_size, chunk_size = chunk_plan(
      num_importance_samples, batch_size or DEFAULT_BATCH_SIZE, chunk_size=chunk_size,
      max_memory_mb=max_memory_mb, model=model)
  if example_ids is not None:
    example_ids = np.asarray(example_ids, np.int64)
  info = images.info if isinstance(images, data.Split) else None
  fn = _batch_fn(model, num_importance_samples, chunk_size, info, binarize)
  total, batches = _batches(images, batch_size, example_ids)
  seed_tensor = tf.constant(seed, tf.int64)
  if log_every_secs < math.inf:
    logging.info('Evaluating %s examples with K=%d importance samples: %d images x %d '
                 'samples per chunk.', total if total is not None else 'all',
                 num_importance_samples, batch_size, chunk_size)
  sums = np.zeros(4)  # log_likelihood, reconstruction, kl, log_likelihood^2
  group_kl_sums = np.zeros(len(model.groups))
  means, count = [], 0
  start = last_log = time.time()
  for x, ids in batches:
    log_px, reconstruction, kl, group_kl, mu = fn(
        tf.convert_to_tensor(x), tf.constant(ids, tf.int64), seed_tensor)
    log_px = log_px.numpy()
    sums += [log_px.sum(), reconstruction.numpy().sum(), kl.numpy().sum(),
             np.square(log_px).sum()]
    group_kl_sums += group_kl.numpy().sum(1)
    means.append(mu.numpy())
    count += len(ids)
    if time.time() - last_log >= log_every_secs:
      last_log = time.time()
      elapsed = last_log - start
      left = f', {elapsed * (total - count) / count:.0f}s left' if total else ''
      logging.info('evaluated %d%s examples in %.0fs%s; log-likelihood so far %.3f', count,
                   f'/{total}' if total else '', elapsed, left, sums[0] / count)
  if not count:
    raise UserError('no examples to evaluate')
  mean_log_px, reconstruction, kl, _ = (float(v) for v in sums / count)
  pixels = math.prod(model.image_shape)
  means = np.concatenate(means)
  starts = np.cumsum([0] + model.sizes)
  return {
      'elbo': reconstruction - kl,
      'reconstruction': reconstruction,
      'kl': kl,
      'log_likelihood': mean_log_px,
      'log_likelihood_stderr': math.sqrt(max(float(sums[3]) / count - mean_log_px**2, 0.0)
                                         / max(count - 1, 1)),
      'bits_per_dim': -mean_log_px / (pixels * math.log(2.0)),
      'active_units': active_units(means) if count > 1 else 0,
      'group_kl': {g.name: float(v) / count for g, v in zip(model.groups, group_kl_sums)},
      'group_active_units': {
          g.name: active_units(means[:, a:b]) if count > 1 else 0
          for g, a, b in zip(model.groups, starts[:-1], starts[1:])},
      'z_size': model.z_size,
      'num_importance_samples': num_importance_samples,
      'num_examples': count,
      'seconds': time.time() - start,
  }


SUMMARIES = ('elbo', 'log_likelihood', 'bits_per_dim', 'active_units')


def evaluate_run(run_dir=None, split='test', num_importance_samples=5000, data_dir=None,
                 num_examples=0, seed=0, max_memory_mb=None, chunk_size=None,
                 batch_size=None, checkpoint=None, write_summaries=True, saved_model=None,
                 dataset=None, cache_dir=None):
  """Restores a run's checkpoint (`checkpoint`: latest, best or a path), or the SavedModel
  in `saved_model`, evaluates it with evaluate_split on `split` of its dataset (or of
  `dataset`, a spec with the same image shape), all of it or a seeded subset of
  num_examples, and returns the results (with config, dataset, split, step). For a run, also
  writes SUMMARIES and losses/r_loss, losses/kl_bits to TensorBoard under run_dir/eval at
  the checkpoint's step."""
  if (run_dir is None) == (saved_model is None):
    raise UserError('give exactly one of --run_dir=DIR (a training run) and '
                    '--saved_model=DIR (an export)')
  if saved_model is not None and checkpoint not in (None, 'latest'):
    raise UserError('--checkpoint applies to --run_dir only; a SavedModel holds one model')
  if saved_model is not None:
    run, model, step = export.load_run(saved_model)
    write_summaries = False
  else:
    run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    run, model, step = load_run(run_dir, checkpoint)
  source = sources.for_run(run, dataset, data_dir, cache_dir)
  split_data = source.split(split)
  ids = subset(num_examples, len(split_data.images), seed)
  results = evaluate_split(model, split_data, num_importance_samples, seed=seed,
                           binarize=run.hparams.binarize, example_ids=ids,
                           batch_size=batch_size, chunk_size=chunk_size,
                           max_memory_mb=max_memory_mb)
  results.update(config=run.config.name, dataset=source.spec, split=split, step=step,
                 seed=seed)
  logging.info('eval %s at step %d over %d examples: elbo %.3f  log-likelihood %.3f (K=%d)',
               split, step, results['num_examples'], results['elbo'],
               results['log_likelihood'], num_importance_samples)
  if write_summaries:
    writer = tf.summary.create_file_writer(run_dir.eval_dir)
    with writer.as_default(step=step):
      for name in SUMMARIES:
        tf.summary.scalar(name, results[name])
      tf.summary.scalar('losses/r_loss', -results['reconstruction'])
      tf.summary.scalar('losses/kl_bits', results['kl'] / math.log(2.0))
      if len(results['group_kl']) > 1:
        for name, value in results['group_kl'].items():
          tf.summary.scalar(f'losses/kl_bits/{name}', value / math.log(2.0))
    writer.flush()
  return results


def results_table(r):
  """The results of evaluate_run as a few lines of text."""
  k = r['num_importance_samples']
  rows = [
      (f'log-likelihood (IW, K={k})',
       f'{r["log_likelihood"]:.3f} nats  (+/- {r["log_likelihood_stderr"]:.3f} s.e.)'),
      ('bits per dim', f'{r["bits_per_dim"]:.4f}'),
      ('ELBO', f'{r["elbo"]:.3f} nats'),
      ('  reconstruction', f'{r["reconstruction"]:.3f} nats'),
      ('  KL', f'{r["kl"]:.3f} nats'),
      ('active units', f'{r["active_units"]} / {r["z_size"]}'),
  ]
  if len(r.get('group_kl', {})) > 1:
    rows += [(f'  group {name}', f'KL {kl:.3f} nats, {r["group_active_units"][name]} active '
                                 'units') for name, kl in r['group_kl'].items()]
  rows.append(('time', f'{r["seconds"]:.1f} s'))
  head = (f'{r["config"]} at step {r["step"]}: {r["split"]} split of {r["dataset"]}, '
          f'{r["num_examples"]} examples, K={k}, seed {r["seed"]}')
  return '\n'.join([head] + [f'  {name:<30}{value}' for name, value in rows])


def results_json(r):
  """The results of evaluate_run as one JSON line."""
  return json.dumps({k: (float(v) if isinstance(v, float) else v) for k, v in r.items()},
                    sort_keys=True)
