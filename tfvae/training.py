"""Training and evaluation loops: strategy scope, compiled steps, checkpoints, summaries.

One replica step serves every strategy. With R replicas each replica sees B/R examples
of the global batch B; its loss is scaled by 1/R and the gradients are summed across
replicas, so the update equals the single-device update on the whole batch. The noise
eps of z = mu + sigma * eps is drawn for the global batch from a stateless seed
(seed, step) and sliced per replica, so runs are reproducible on any number of replicas.
"""

import math
import os
import shutil
import signal
import tempfile
import time

from absl import logging
import numpy as np
import tensorflow as tf

from tfvae import data
from tfvae import optimization
from tfvae import strategies
from tfvae.run_dir import RunDir

SCALARS = ('loss', 'losses/r_loss', 'losses/kl_loss', 'losses/kl_bits', 'losses/kl_beta',
           'elbo', 'learning_rate', 'global_norm')


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN or infinite loss."""


def _noise_seed(seed, step):
  """A stateless seed [2] for the noise of training step `step`."""
  return tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])


class Trainer:
  """Owns the model, optimiser, checkpoints and summaries of one run."""

  def __init__(self, config, hparams, run_dir, strategy=None, seed=0, data_dir=None,
               checkpoints_to_keep=5):
    self.config, self.hparams, self.seed, self.data_dir = config, hparams, seed, data_dir
    self.run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    self.strategy = strategy or tf.distribute.get_strategy()
    replicas = self.strategy.num_replicas_in_sync
    if hparams.batch_size % replicas:
      raise ValueError(f'batch_size {hparams.batch_size} does not divide over {replicas} '
                       f'replicas; use a multiple of {replicas}')
    self.is_chief = strategies.is_chief(self.strategy)
    with self.strategy.scope():
      self.model = config.build_model(hparams)
      self.model.build_variables()
      self.optimizer = optimization.make_optimizer(hparams)
      self.optimizer.build(self.model.trainable_variables)
      self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
    self._train_dir = self.run_dir.train_dir if self.is_chief else tempfile.mkdtemp()
    self.manager = tf.train.CheckpointManager(self.checkpoint, self._train_dir,
                                              max_to_keep=checkpoints_to_keep)
    fuse = hparams.jit_compile and replicas == 1
    # XLA compiles the whole step on one replica; across replicas only the forward and
    # backward pass (the optimiser's cross-replica update cannot be inside XLA there).
    self._gradients = (tf.function(self._compute_gradients, jit_compile=True)
                       if hparams.jit_compile and not fuse else self._compute_gradients)
    self._replica_step = (tf.function(self._replica_step_fn, jit_compile=True) if fuse
                          else self._replica_step_fn)
    self._train_loop = tf.function(self._train_loop_fn)

  @property
  def step(self):
    """Training steps taken (the optimiser's counter, restored with the checkpoint)."""
    return int(self.optimizer.iterations.numpy())

  def restore(self):
    """Restores the latest checkpoint in run_dir/train, if any; returns its path."""
    path = tf.train.latest_checkpoint(self.run_dir.train_dir)
    if path:
      self.checkpoint.restore(path).assert_existing_objects_matched()
    return path

  # The step, as it runs on each replica.

  def _compute_gradients(self, x, step, replica_id):
    """Gradients of this replica's share of the loss, and its batch-mean metrics."""
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync
    local_batch = x.shape[0]
    eps = tf.random.stateless_normal(
        [local_batch * replicas, self.hparams.z_size], _noise_seed(self.seed, step))
    eps = tf.slice(eps, [replica_id * local_batch, 0], [local_batch, -1])
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      losses = self.model.compute_losses(x, step, eps)
      scaled_loss = losses.loss / replicas
    grads = tape.gradient(scaled_loss, variables)
    metrics = {
        'loss': losses.loss,
        'losses/r_loss': tf.reduce_mean(losses.r_loss),
        'losses/kl_loss': tf.reduce_mean(losses.kl_cost),
        'losses/kl_bits': tf.reduce_mean(losses.kl_div) / math.log(2.0),
        'losses/kl_beta': losses.beta,
        'elbo': tf.reduce_mean(losses.elbo),
    }
    return grads, {k: v / replicas for k, v in metrics.items()}

  def _replica_step_fn(self, x):
    ctx = tf.distribute.get_replica_context()
    step = self.optimizer.iterations
    grads, metrics = self._gradients(x, step, ctx.replica_id_in_sync_group)
    if ctx.num_replicas_in_sync > 1:
      grads, metrics = ctx.all_reduce(tf.distribute.ReduceOp.SUM, (grads, metrics))
    grads, global_norm = optimization.clip_gradients(grads, self.hparams.grad_clip)
    metrics['learning_rate'] = self.optimizer.learning_rate
    metrics['global_norm'] = global_norm
    # Keras sums gradients across replicas itself; ours are already summed.
    grads = [g / ctx.num_replicas_in_sync for g in grads]
    self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
    return metrics

  def _train_loop_fn(self, iterator, num_steps):
    """Runs num_steps steps; returns the metrics averaged over them and whether all were
    finite."""
    sums = {name: tf.constant(0.0) for name in SCALARS}
    finite = tf.constant(True)
    for _ in tf.range(num_steps):
      per_replica = self.strategy.run(self._replica_step, (next(iterator),))
      metrics = self.strategy.experimental_local_results(per_replica)[0]
      finite = tf.logical_and(finite, tf.math.is_finite(metrics['loss']))
      sums = {name: sums[name] + tf.cast(metrics[name], tf.float32) for name in SCALARS}
    steps = tf.cast(num_steps, tf.float32)
    return {name: total / steps for name, total in sums.items()}, finite

  # The host loop.

  def _dataset(self):
    hp = self.hparams

    def dataset_fn(input_context):
      return data.make_dataset(
          self.config.dataset, 'train', hp.batch_size, data_dir=self.data_dir,
          shuffle=True, repeat=True, binarize=hp.binarize, seed=self.seed + self.step,
          drop_remainder=True, input_context=input_context)

    return self.strategy.distribute_datasets_from_function(dataset_fn)

  def train(self, num_steps, log_every_n_steps=100, steps_per_loop=100,
            checkpoint_every_secs=60.0):
    """Trains until step `num_steps`, resuming from the latest checkpoint if there is one.

    Logs progress every log_every_n_steps, checkpoints every checkpoint_every_secs, at
    the end and when stopped by SIGINT/SIGTERM, and raises NonFiniteLossError (keeping
    the last good checkpoint) if the loss stops being finite.
    """
    restored = self.restore()
    if restored:
      logging.info('Resuming from %s at step %d.', restored, self.step)
    if self.step >= num_steps:
      logging.info('Already at step %d >= --num_steps=%d; nothing to train.',
                   self.step, num_steps)
      return
    writer = tf.summary.create_file_writer(self._train_dir)
    if self.is_chief and not restored:
      with writer.as_default(step=0):
        tf.summary.text('hparams', _hparams_markdown(self.config, self.hparams))
    iterator = iter(self._dataset())
    stop = _StopSignal()
    window = _Window()
    last_save = time.time()
    logging.info('Training %s to step %d: batch %d, %s.', self.config.name, num_steps,
                 self.hparams.batch_size, strategies.describe(self.strategy))
    with stop:
      while self.step < num_steps and not stop.requested:
        step = self.step
        next_log = (step // log_every_n_steps + 1) * log_every_n_steps
        n = min(steps_per_loop, next_log - step, num_steps - step)
        metrics, finite = self._train_loop(iterator, tf.constant(n))
        if not bool(finite):
          last = self.manager.latest_checkpoint
          raise NonFiniteLossError(
              f'the loss became non-finite between steps {step} and {step + n}; kept the '
              f'last good checkpoint ({last or "none yet"}). Try a lower learning_rate or '
              'grad_clip in --hparams.')
        window.add(n, {k: float(v) for k, v in metrics.items()})
        step += n
        if step % log_every_n_steps == 0 or step == num_steps:
          self._report(writer, window, step, num_steps)
          window = _Window()
        if step == num_steps or stop.requested or (
            time.time() - last_save >= checkpoint_every_secs):
          self.manager.save(checkpoint_number=step)
          last_save = time.time()
    if stop.requested:
      logging.info('Stopped by signal at step %d; checkpoint saved. Run the same command '
                   'again to resume.', self.step)
    else:
      logging.info('Done: step %d, checkpoint %s.', self.step, self.manager.latest_checkpoint)
    writer.flush()
    if not self.is_chief:
      shutil.rmtree(self._train_dir, ignore_errors=True)

  def _report(self, writer, window, step, num_steps):
    """Logs a progress line and writes the window's scalars to TensorBoard."""
    means = window.means()
    examples_per_sec = window.steps * self.hparams.batch_size / max(window.seconds(), 1e-9)
    remaining = (num_steps - step) * self.hparams.batch_size / max(examples_per_sec, 1e-9)
    logging.info('step %d/%d  loss %.3f  elbo %.3f  kl %.2f bits  beta %.3f  '
                 '%.0f examples/sec  %s left', step, num_steps, means['loss'],
                 means['elbo'], means['losses/kl_bits'], means['losses/kl_beta'],
                 examples_per_sec, _duration(remaining))
    if self.is_chief:
      with writer.as_default(step=step):
        for name, value in means.items():
          tf.summary.scalar(name, value)
        tf.summary.scalar('examples_per_sec', examples_per_sec)


class _Window:
  """Metrics averaged over the steps since the last report, and its wall time."""

  def __init__(self):
    self.steps, self.sums, self.start = 0, {}, time.time()

  def add(self, steps, metrics):
    self.steps += steps
    for name, value in metrics.items():
      self.sums[name] = self.sums.get(name, 0.0) + value * steps

  def means(self):
    return {name: total / self.steps for name, total in self.sums.items()}

  def seconds(self):
    return time.time() - self.start


class _StopSignal:
  """While active, the first SIGINT/SIGTERM asks the loop to stop after its current call;
  a second SIGINT interrupts at once."""

  def __init__(self):
    self.requested = False
    self._previous = {}

  def _handle(self, signum, frame):
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    logging.warning('Got signal %d: saving a checkpoint and stopping.', signum)
    self.requested = True

  def __enter__(self):
    for sig in (signal.SIGINT, signal.SIGTERM):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread: leave signals alone
        pass
    return self

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def _duration(seconds):
  seconds = int(round(seconds))
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def _hparams_markdown(config, hparams):
  rows = [f'| {k} | {v} |' for k, v in sorted(hparams.values().items())]
  return '\n'.join([f'config: **{config.name}**', '', '| hparam | value |', '|---|---|'] + rows)


def evaluate(run_dir, split='test', data_dir=None, num_batches=0, seed=0, checkpoint=None):
  """The mean ELBO and its terms over `split` (all of it when num_batches is 0) for the
  latest (or given) checkpoint; writes them to run_dir/eval and returns a dict."""
  run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
  config, hparams, model, step = run_dir.restore_model(checkpoint)
  dataset = data.make_dataset(config.dataset, split, hparams.batch_size, data_dir=data_dir,
                              shuffle=False, repeat=False, binarize=hparams.binarize,
                              seed=seed, drop_remainder=False)
  if num_batches:
    dataset = dataset.take(num_batches)

  @tf.function(jit_compile=hparams.jit_compile)
  def batch_sums(x, index):
    eps = tf.random.stateless_normal([tf.shape(x)[0], hparams.z_size],
                                     tf.stack([tf.constant(seed, tf.int64), index]))
    losses = model.compute_losses(x, step, eps)
    return (tf.reduce_sum(losses.elbo), tf.reduce_sum(losses.r_loss),
            tf.reduce_sum(losses.kl_div))

  totals, count, start = np.zeros(3), 0, time.time()
  for index, x in enumerate(dataset):
    totals += np.array([float(t) for t in batch_sums(x, tf.constant(index, tf.int64))])
    count += int(x.shape[0])
  elbo, r_loss, kl = totals / count
  results = {'elbo': elbo, 'reconstruction': -r_loss, 'kl': kl, 'num_examples': count,
             'step': step, 'split': split, 'seconds': time.time() - start}
  logging.info('eval %s at step %d over %d examples: elbo %.3f  reconstruction %.3f  '
               'kl %.3f nats', split, step, count, elbo, -r_loss, kl)
  writer = tf.summary.create_file_writer(run_dir.eval_dir)
  with writer.as_default(step=step):
    tf.summary.scalar('elbo', elbo)
    tf.summary.scalar('losses/r_loss', r_loss)
    tf.summary.scalar('losses/kl_bits', kl / math.log(2.0))
  writer.flush()
  return results
