"""Training and evaluation loops: strategy scope, compiled steps, checkpoints, summaries.

One replica step serves every strategy. With R replicas each replica sees B/R examples
of the global batch B; its loss is scaled by 1/R and the gradients are summed across
replicas, so the update equals the single-device update on the whole batch. The noise
eps of z = mu + sigma * eps is drawn for the global batch from a stateless seed
(seed, step) and sliced per replica, so runs are reproducible on any number of replicas.

The training split lives on the device once (uint8). The host computes the index batches
of the next `steps_per_loop` steps (a pure function of (seed, step), see
`data.index_batches`) and passes them in one [steps_per_loop, B] tensor; each replica gathers
and scales its own rows. On one replica the whole loop of steps (gather, forward, backward,
clipping, optimiser) is a single XLA computation, so the host is not involved between steps.
"""

import math
import shutil
import signal
import tempfile
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from tfvae import data
from tfvae import optimization
from tfvae import strategies
from tfvae.run_dir import RunDir

SCALARS = ('loss', 'losses/r_loss', 'losses/kl_loss', 'losses/kl_bits', 'losses/kl_beta',
           'elbo', 'learning_rate', 'global_norm')
MIXED_PRECISION = {'none': 'float32', 'bfloat16': 'mixed_bfloat16', 'float16': 'mixed_float16'}
EVAL_BATCH_SIZE = 1000


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN or infinite loss."""


def set_precision_policy(hparams):
  """Sets Keras's global dtype policy from hparams.mixed_precision (none|bfloat16|float16).

  Variables stay float32; layers compute in the low precision; the encoder and decoder
  cast their outputs to float32, so distributions, KL and losses stay float32.
  """
  if hparams.mixed_precision not in MIXED_PRECISION:
    raise ValueError(f'unknown mixed_precision {hparams.mixed_precision!r}; valid: '
                     f'{", ".join(MIXED_PRECISION)}')
  keras.mixed_precision.set_global_policy(MIXED_PRECISION[hparams.mixed_precision])


def _seed_pair(*parts):
  """A stateless seed [2] mixing the integer (tensor) parts."""
  seed = tf.stack([tf.constant(0, tf.int64), tf.cast(parts[0], tf.int64)])
  for part in parts[1:]:
    seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(part, tf.int64))
  return seed


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
    self._multi_worker = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
    set_precision_policy(hparams)
    try:
      with self.strategy.scope():
        self.model = config.build_model(hparams)
        self.model.build_variables()
        self.optimizer = optimization.make_optimizer(hparams)
        self.optimizer.build(self.model.trainable_variables)
    finally:
      keras.mixed_precision.set_global_policy('float32')
    train = data.load_split(config.dataset, 'train', data_dir)
    self._info = train.info
    self._num_examples = len(train.images)
    self.steps_per_epoch = data.steps_per_epoch(self._num_examples, hparams.batch_size)
    with self.strategy.scope():
      # Multi-worker variables are initialised by a collective broadcast, which has no uint8.
      images = train.images.astype(np.int32) if self._multi_worker else train.images
      self._images = tf.Variable(images, trainable=False, name='train_images')
      # Steps taken; the optimiser's own counter skips float16 steps with overflowing gradients.
      self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step',
                               aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self._best_elbo = tf.Variable(-np.inf, trainable=False, name='best_valid_elbo')
      self._bad_epochs = tf.Variable(0, trainable=False, name='epochs_without_improvement')
    self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                          step=self._step,
                                          best_valid_elbo=self._best_elbo,
                                          epochs_without_improvement=self._bad_epochs)
    self._scratch = None if self.is_chief else tempfile.mkdtemp(prefix='tfvae_worker_')
    self._train_dir = self._scratch or self.run_dir.train_dir
    self.manager = tf.train.CheckpointManager(self.checkpoint, self._train_dir,
                                              max_to_keep=checkpoints_to_keep)
    self.best_manager = tf.train.CheckpointManager(
        self.checkpoint, self._scratch or self.run_dir.best_dir, max_to_keep=1)
    self._fused = hparams.jit_compile and replicas == 1
    # On one replica XLA compiles the whole loop of steps; across replicas only each step's
    # forward and backward pass (the optimiser's cross-replica update cannot be inside XLA).
    self._gradients = (tf.function(self._compute_gradients, jit_compile=True)
                       if hparams.jit_compile and not self._fused else self._compute_gradients)
    self._fused_loop = (tf.function(self._fused_loop_fn, jit_compile=True) if self._fused
                        else None)
    self._train_loop = tf.function(self._train_loop_fn)

  @property
  def step(self):
    """Training steps taken (restored with the checkpoint)."""
    return int(self._step.numpy())

  def restore(self):
    """Restores the latest checkpoint in run_dir/train, if any; returns its path."""
    path = tf.train.latest_checkpoint(self.run_dir.train_dir)
    if path:
      self.checkpoint.restore(path).assert_existing_objects_matched()
    return path

  # The step, as it runs on each replica.

  def _compute_gradients(self, indices, step, replica_id):
    """Gradients of this replica's share of the loss on the global index batch [B], and its
    metrics [len(SCALARS) - 2]."""
    hp = self.hparams
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    local_batch = hp.batch_size // replicas
    indices = tf.slice(indices, [replica_id * local_batch], [local_batch])
    x = data.to_float(tf.gather(self._images, indices), self._info, hp.binarize,
                      _seed_pair(self.seed, step, replica_id, 1))
    eps = tf.random.stateless_normal(self.model.noise_shape(local_batch * replicas),
                                     _seed_pair(self.seed, step))
    eps = tf.slice(eps, [0, replica_id * local_batch, 0], [-1, local_batch, -1])
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      losses = self.model.compute_losses(x, step, eps)
      scaled_loss = losses.loss / replicas
      if hp.mixed_precision == 'float16':
        scaled_loss = self.optimizer.scale_loss(scaled_loss)
    grads = tape.gradient(scaled_loss, variables)
    metrics = tf.stack([losses.loss, tf.reduce_mean(losses.r_loss),
                        tf.reduce_mean(losses.kl_cost),
                        tf.reduce_mean(losses.kl_div) / math.log(2.0), losses.beta,
                        tf.reduce_mean(losses.elbo)])
    return grads, metrics / tf.cast(replicas, tf.float32)

  def _replica_step(self, indices):
    """One update from the global index batch [B]; returns the global metrics [SCALARS]."""
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync
    step = tf.convert_to_tensor(self._step)
    learning_rate = tf.cast(self.optimizer.learning_rate, tf.float32)
    grads, metrics = self._gradients(indices, step, ctx.replica_id_in_sync_group)
    if replicas > 1:
      grads, metrics = ctx.all_reduce(tf.distribute.ReduceOp.SUM, (grads, metrics))
    loss_scale = 1.0
    if self.hparams.mixed_precision == 'float16':
      # Clip the true gradients; the loss-scale optimiser unscales, and skips the update
      # (lowering its scale) when they are not finite.
      loss_scale = tf.cast(self.optimizer.dynamic_scale, tf.float32)
      grads = [g / loss_scale for g in grads]
    grads, global_norm = optimization.clip_gradients(grads, self.hparams.grad_clip)
    # Keras sums gradients across replicas itself; ours are already summed.
    grads = [g * (loss_scale / replicas) for g in grads]
    self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
    self._step.assign_add(1)
    return tf.concat([metrics, [learning_rate, global_norm]], axis=0)

  def _fused_loop_fn(self, indices, num_steps):
    """One replica, one XLA computation: steps with indices[0 .. num_steps - 1] ([n, B]);
    returns the sum of their metrics [SCALARS]."""
    sums = tf.zeros([len(SCALARS)])
    for i in tf.range(num_steps):
      sums += self._replica_step(indices[i])
    return sums

  def _train_loop_fn(self, indices, num_steps):
    """Runs num_steps steps on the index batches indices [n >= num_steps, B]; returns the
    metrics [SCALARS] averaged over them (non-finite if any step's were)."""
    if self._fused:
      per_replica = self.strategy.run(self._fused_loop, (indices, num_steps))
      sums = self.strategy.experimental_local_results(per_replica)[0]
    else:
      sums = tf.zeros([len(SCALARS)])
      for i in tf.range(num_steps):
        per_replica = self.strategy.run(self._replica_step, (indices[i],))
        sums += self.strategy.experimental_local_results(per_replica)[0]
    return sums / tf.cast(num_steps, tf.float32)

  # The host loop.

  def _any_worker(self, *flags):
    """Each flag OR-ed over the workers, so that every worker saves or stops together."""
    if not self._multi_worker:
      return flags
    values = self.strategy.run(lambda: tf.constant([float(f) for f in flags]))
    total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None).numpy()
    return tuple(bool(v > 0) for v in total)

  def train(self, num_steps, log_every_n_steps=100, steps_per_loop=100,
            checkpoint_every_secs=60.0, image_every_n_steps=0, max_train_seconds=0.0):
    """Trains until step `num_steps`, resuming from the latest checkpoint if there is one.

    Logs progress every log_every_n_steps; checkpoints every checkpoint_every_secs, at
    the end and when stopped by SIGINT/SIGTERM; validates every epoch when
    hparams.early_stopping_patience > 0 (keeping the best checkpoint in run_dir/best and
    stopping after that many epochs without a better validation ELBO); stops with a
    checkpoint once max_train_seconds (> 0) of training have passed in this call; raises
    NonFiniteLossError (keeping the last good checkpoint) if the loss stops being finite.
    Returns the reason it stopped: 'done', 'signal', 'early_stopping' or 'time_budget'.
    """
    restored = self.restore()
    if restored:
      logging.info('Resuming from %s at step %d.', restored, self.step)
    if self.step >= num_steps:
      logging.info('Already at step %d >= --num_steps=%d; nothing to train.',
                   self.step, num_steps)
      return 'done'
    writer = (tf.summary.create_file_writer(self.run_dir.train_dir) if self.is_chief
              else tf.summary.create_noop_writer())
    if not restored:
      with writer.as_default(step=0):
        tf.summary.text('hparams', _hparams_markdown(self.config, self.hparams))
    patience = self.hparams.early_stopping_patience
    validator = self._make_validator() if patience else None
    window, last_save, reason = _Window(), time.time(), 'done'
    deadline = time.time() + max_train_seconds if max_train_seconds > 0 else math.inf
    logging.info('Training %s to step %d: batch %d, %s.', self.config.name, num_steps,
                 self.hparams.batch_size, strategies.describe(self.strategy))
    with _StopSignal() as stop:
      while self.step < num_steps:
        step = self.step
        boundaries = [num_steps, (step // log_every_n_steps + 1) * log_every_n_steps]
        if validator:
          boundaries.append((step // self.steps_per_epoch + 1) * self.steps_per_epoch)
        n = min(steps_per_loop, min(boundaries) - step)
        # Always steps_per_loop rows, so the loop compiles once; only n of them are used.
        indices = data.index_batches(self._num_examples, self.hparams.batch_size, self.seed,
                                     step, steps_per_loop)
        metrics = self._train_loop(tf.constant(indices), tf.constant(n)).numpy()
        # Only the loss: float16 loss scaling has non-finite gradients (skipped steps).
        if not np.isfinite(metrics[SCALARS.index('loss')]):
          last = self.manager.latest_checkpoint
          raise NonFiniteLossError(
              f'the loss became non-finite between steps {step} and {step + n}; kept the '
              f'last good checkpoint ({last or "none yet"}). Try a lower learning_rate or '
              'grad_clip in --hparams.')
        window.add(n, dict(zip(SCALARS, metrics.tolist())))
        step += n
        if step % log_every_n_steps == 0 or step == num_steps:
          self._report(writer, window, step, num_steps, deadline)
          window = _Window()
        if image_every_n_steps and step % image_every_n_steps < n:
          self._write_images(writer, step)
        if validator and step % self.steps_per_epoch == 0:
          if self._validate(validator, writer, step) >= patience:
            logging.info('Early stopping: no better validation ELBO for %d epochs.', patience)
            reason = 'early_stopping'
        due = step == num_steps or time.time() - last_save >= checkpoint_every_secs
        stopped, due, out_of_time = self._any_worker(stop.requested, due,
                                                     time.time() >= deadline)
        if out_of_time and reason == 'done' and step < num_steps:
          logging.info('Time budget of %.1f minutes used up at step %d.',
                       max_train_seconds / 60, step)
          reason = 'time_budget'
        if stopped:
          reason = 'signal'
        if due or reason != 'done':
          self.manager.save(checkpoint_number=step)
          last_save = time.time()
        if reason != 'done':
          break
    if reason == 'signal':
      logging.info('Stopped by signal at step %d; checkpoint saved. Run the same command '
                   'again to resume.', self.step)
    else:
      logging.info('Done: step %d, checkpoint %s.', self.step, self.manager.latest_checkpoint)
    writer.flush()
    if self._scratch:
      shutil.rmtree(self._scratch, ignore_errors=True)
    return reason

  def _report(self, writer, window, step, num_steps, deadline=math.inf):
    """Logs a progress line (time left: to num_steps or the deadline, whichever is first)
    and writes the window's scalars to TensorBoard."""
    means = window.means()
    examples_per_sec = window.steps * self.hparams.batch_size / max(window.seconds(), 1e-9)
    remaining = min((num_steps - step) * self.hparams.batch_size / max(examples_per_sec, 1e-9),
                    max(deadline - time.time(), 0.0))
    logging.info('step %d/%d  loss %.3f  elbo %.3f  kl %.2f bits  beta %.3f  '
                 '%.0f examples/sec  %s left', step, num_steps, means['loss'],
                 means['elbo'], means['losses/kl_bits'], means['losses/kl_beta'],
                 examples_per_sec, _duration(remaining))
    with writer.as_default(step=step):
      for name, value in means.items():
        tf.summary.scalar(name, value)
      tf.summary.scalar('examples_per_sec', examples_per_sec)

  def _write_images(self, writer, step):
    """Reconstructions of fixed validation images and prior samples, as image summaries."""
    from tfvae import images  # pylint: disable=import-outside-toplevel
    if not hasattr(self, '_image_batch'):
      valid = data.load_split(self.config.dataset, 'valid', self.data_dir)
      rows = np.random.RandomState(self.seed).permutation(len(valid.images))[:16]
      self._image_batch = data.to_float(valid.images[rows], self._info, self.hparams.binarize,
                                        _seed_pair(self.seed, 0))
    with writer.as_default(step=step):
      for name, grid in images.summary_images(self.model, self._image_batch,
                                              seed=self.seed).items():
        tf.summary.image(name, grid)

  def _make_validator(self):
    valid = data.load_split(self.config.dataset, 'valid', self.data_dir)
    return ElboEvaluator(self.model, self.hparams, valid.images, valid.info, seed=self.seed)

  def _validate(self, validator, writer, step):
    """Validation ELBO at an epoch's end; saves the best checkpoint; returns the number of
    epochs since the last improvement."""
    with optimization.use_averaged_weights(self.optimizer, self.model.trainable_variables):
      result = validator()
    improved = result['elbo'] > float(self._best_elbo.numpy())
    if improved:
      self._best_elbo.assign(result['elbo'])
      self._bad_epochs.assign(0)
      self.best_manager.save(checkpoint_number=step)
    else:
      self._bad_epochs.assign_add(1)
    logging.info('epoch %d: valid elbo %.3f (best %.3f%s)', step // self.steps_per_epoch,
                 result['elbo'], float(self._best_elbo.numpy()),
                 ', saved to run_dir/best' if improved else
                 f', {int(self._bad_epochs.numpy())} epochs without improvement')
    with writer.as_default(step=step):
      tf.summary.scalar('valid/elbo', result['elbo'])
      tf.summary.scalar('valid/best_elbo', float(self._best_elbo.numpy()))
    return int(self._bad_epochs.numpy())


class ElboEvaluator:
  """Mean ELBO, reconstruction term and KL (nats) of a model over a fixed uint8 image array.

  Deterministic: the noise of z = mu + sigma * eps (and any dynamic binarisation) comes
  from stateless seeds (seed, batch index).
  """

  def __init__(self, model, hparams, images, info, seed=0, batch_size=EVAL_BATCH_SIZE):
    self._model, self._hparams, self._info, self._seed = model, hparams, info, seed
    self._images, self._batch_size = images, batch_size
    self._sums = tf.function(self._batch_sums, jit_compile=hparams.jit_compile)

  def _batch_sums(self, images, index):
    x = data.to_float(images, self._info, self._hparams.binarize,
                      _seed_pair(self._seed, index, 1))
    eps = tf.random.stateless_normal(self._model.noise_shape(tf.shape(x)[0]),
                                     _seed_pair(self._seed, index))
    losses = self._model.compute_losses(x, 0, eps)
    return tf.stack([tf.reduce_sum(losses.elbo), tf.reduce_sum(losses.r_loss),
                     tf.reduce_sum(losses.kl_div)])

  def __call__(self):
    totals = np.zeros(3)
    for index, start in enumerate(range(0, len(self._images), self._batch_size)):
      batch = self._images[start:start + self._batch_size]
      totals += self._sums(tf.constant(batch), tf.constant(index, tf.int64)).numpy()
    elbo, r_loss, kl = totals / len(self._images)
    return {'elbo': elbo, 'reconstruction': -r_loss, 'kl': kl,
            'num_examples': len(self._images)}


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
  """The mean ELBO and its terms over `split` for the latest (or given) checkpoint: all of
  it, or with num_batches > 0 a seeded random subset of num_batches * batch_size examples.
  Writes them to run_dir/eval and returns a dict."""
  run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
  config, hparams, model, step = run_dir.restore_model(checkpoint)
  images = data.load_split(config.dataset, split, data_dir)
  subset = images.images
  if num_batches:
    rows = np.random.RandomState(seed).permutation(len(subset))
    subset = subset[np.sort(rows[:num_batches * hparams.batch_size])]
  start = time.time()
  results = ElboEvaluator(model, hparams, subset, images.info, seed=seed)()
  results.update(step=step, split=split, seconds=time.time() - start)
  logging.info('eval %s at step %d over %d examples: elbo %.3f  reconstruction %.3f  '
               'kl %.3f nats', split, step, results['num_examples'], results['elbo'],
               results['reconstruction'], results['kl'])
  writer = tf.summary.create_file_writer(run_dir.eval_dir)
  with writer.as_default(step=step):
    tf.summary.scalar('elbo', results['elbo'])
    tf.summary.scalar('losses/r_loss', -results['reconstruction'])
    tf.summary.scalar('losses/kl_bits', results['kl'] / math.log(2.0))
  writer.flush()
  return results
