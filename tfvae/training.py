"""The trainer: one run's state, data and checkpoints, and the host loop that drives the
compiled training step (`tfvae.train_step`) with small hooks (`tfvae.hooks`).

    while step < num_steps:
      block, offset = batches.block(step)        # the data of the next steps (tfvae.inputs)
      metrics = train_step(block, offset, n)     # n steps in one compiled call
      hooks: log, summaries, images, validation, time budget, stop signal -> stop?
    hooks.end(reason): checkpoint, flush

A call runs n <= steps_per_loop steps, fewer at the hooks' boundaries (log steps, epoch ends)
and so that a call lasts about `call_seconds` (a stop request is answered within about that
long even for large models on slow devices). How the steps are split into calls does not
change the result: the data and noise of a step are functions of (seed, step) alone.
"""

import math
import shutil
import tempfile
import time

from absl import logging
import keras
import tensorflow as tf

from tfvae import checkpoints
from tfvae import evaluation
from tfvae import hooks as hooks_lib
from tfvae import inputs
from tfvae import optimization
from tfvae import strategies
from tfvae.errors import UserError
from tfvae.run_dir import RunDir
from tfvae.train_step import TrainStep

DEFAULT_DATA_MEMORY_MB = 2048  # a training split larger than this is streamed from disk
CALL_SECONDS = 1.0             # aimed-for duration of one compiled loop call
MAX_BLOCK_STEPS = 1000         # steps whose data is prepared at once
MAX_SKIPPED_IN_A_ROW = 100     # with grad_skip_threshold > 0: this many skips in a row diverged


class NonFiniteLossError(UserError):
  """Training produced a NaN or infinite loss."""


class Trainer:
  """Owns the state (model, optimiser, step), training data and checkpoints of one run.

  source: a tfvae.sources.Source (its info and splits); the training split is held on the
  device when it fits in data_memory_mb, else streamed from its prepared file on disk.
  """

  def __init__(self, config, hparams, run_dir, source, strategy=None, seed=0,
               checkpoints_to_keep=5, steps_per_loop=100,
               data_memory_mb=DEFAULT_DATA_MEMORY_MB):
    self.config, self.hparams, self.seed, self.source = config, hparams, seed, source
    self.run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    self.strategy = strategy or tf.distribute.get_strategy()
    self.steps_per_loop = steps_per_loop
    # The data of at most this many steps is prepared at once (a call runs at most as many).
    self.block_steps = min(steps_per_loop, MAX_BLOCK_STEPS)
    self.num_steps = None
    self.is_chief = strategies.is_chief(self.strategy)
    self._multi_worker = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
    info = source.info
    if hparams.binarize and not info.binary and info.image_shape[-1] != 1:
      raise UserError(f'hparam binarize applies to greyscale images; {source.spec} has '
                      f'{info.image_shape[-1]} channels: set binarize=false (or channels=1)')
    optimization.set_precision_policy(hparams)
    try:
      with self.strategy.scope():
        self.state = checkpoints.build_state(config, hparams, info.image_shape)
    finally:
      keras.mixed_precision.set_global_policy('float32')
    self.model = self.state.model
    self.batches = inputs.make_batches(source, self.strategy, hparams.batch_size, seed,
                                       self.block_steps, data_memory_mb)
    self.steps_per_epoch = self.batches.steps_per_epoch
    self._train_step = TrainStep(self.state, hparams, info, self.batches, self.strategy, seed)
    self.metric_names = self._train_step.metric_names
    self._skipped_in_a_row = 0
    self._scratch = None if self.is_chief else tempfile.mkdtemp(prefix='tfvae_worker_')
    if self.is_chief:
      for folder in (self.run_dir.train_dir, self.run_dir.best_dir):
        checkpoints.repair_state(folder)
    self.manager = tf.train.CheckpointManager(
        self.state.checkpoint, self._scratch or self.run_dir.train_dir,
        max_to_keep=checkpoints_to_keep)
    self.best_manager = tf.train.CheckpointManager(
        self.state.checkpoint, self._scratch or self.run_dir.best_dir, max_to_keep=1)

  @property
  def step(self):
    """Training steps taken (restored with the checkpoint)."""
    return int(self.state.step.numpy())

  def weights_finite(self):
    """Whether every variable of the model and the optimiser is finite (checked after each
    compiled call, so that no checkpoint holds a non-finite value)."""
    return bool(_all_finite(self.state.model.variables + self.state.optimizer.variables))

  def restore(self):
    """Restores the newest readable checkpoint in run_dir/train, if any; returns its path."""
    return checkpoints.restore(self.state.checkpoint, self.run_dir.train_dir)

  def agree(self, *flags):
    """Each flag OR-ed over the workers, so that every worker saves or stops together."""
    if not self._multi_worker:
      return flags
    values = self.strategy.run(lambda: tf.constant([float(f) for f in flags]))
    total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, values, axis=None).numpy()
    return tuple(bool(v > 0) for v in total)

  def evaluator(self, split='valid'):
    """A function () -> the mean ELBO dict of the current weights on `split` (K = 1)."""
    images = self.source.split(split)
    return lambda: evaluation.evaluate_split(self.model, images, num_importance_samples=1,
                                             seed=self.seed, binarize=self.hparams.binarize,
                                             log_every_secs=math.inf)

  def train(self, num_steps, hooks=None, record=None):
    """Trains until step `num_steps` (resuming from the newest readable checkpoint), with
    `hooks` (default: `hooks.standard(self, num_steps)`); returns why it stopped: 'done' or a
    hook's reason. `record` (a tfvae.run_dir.Run) is written to config.json by the chief once
    the checkpoint is restored, never before: a run whose checkpoint does not restore keeps
    its record. Raises NonFiniteLossError, keeping the newest finite checkpoint, if the loss stops
    being finite."""
    self.num_steps = num_steps
    restored = self.restore()
    if restored:
      logging.info('Resuming from %s at step %d.', restored, self.step)
    if record is not None and self.is_chief:
      self.run_dir.save(record)
    if self.step >= num_steps:
      logging.info('Already at step %d >= --num_steps=%d; nothing to train.', self.step,
                   num_steps)
      return 'done'
    hooks = hooks_lib.standard(self, num_steps) if hooks is None else hooks
    logging.info('Training %s to step %d: batch %d, %s.', self.config.name, num_steps,
                 self.hparams.batch_size, strategies.describe(self.strategy))
    for hook in hooks:
      hook.begin(self)
    reason, calls = None, _CallLength(self.steps_per_loop, CALL_SECONDS)
    try:
      while reason is None and self.step < num_steps:
        reason = self._call(num_steps, hooks, calls)
    finally:
      reason = reason or 'done'
      for hook in hooks:
        hook.end(self, reason)
      self.batches.close()
      if self._scratch:
        shutil.rmtree(self._scratch, ignore_errors=True)
    if reason == hooks_lib.NON_FINITE:
      last = self.manager.latest_checkpoint
      best = self.best_manager.latest_checkpoint
      kept = f'the newest finite checkpoint ({last or "none yet"})' + (
          f' and the best validated one ({best}; --checkpoint=best)' if best else '')
      raise NonFiniteLossError(
          f'the loss became non-finite (or its gradient, or the weights) before step '
          f'{self.step}; kept {kept}. Try a lower learning_rate or grad_clip, or '
          'grad_skip_threshold, in --hparams.')
    if reason != 'signal':
      logging.info('Done: step %d, checkpoint %s.', self.step, self.manager.latest_checkpoint)
    return reason

  def _call(self, num_steps, hooks, calls):
    """One compiled call of n steps and the hooks after it; returns a stop reason or None."""
    step = self.step
    block, offset, available = self.batches.block(step)
    boundary = min([num_steps] + [h.next_boundary(step) for h in hooks])
    n = int(min(available, boundary - step, calls.length))
    start = time.time()
    metrics = self._train_step(block, offset, n)
    calls.record(n, time.time() - start)
    if self._diverged(n, metrics) or not self.weights_finite():
      return hooks_lib.NON_FINITE
    wanted = None
    for hook in hooks:
      wanted = hook.after_steps(self, n, metrics) or wanted
    (stop,) = self.agree(wanted is not None)
    return (wanted or 'stopped by another worker') if stop else None


  def _diverged(self, steps, metrics):
    """Whether training diverged in a call of `steps` steps: with grad_skip_threshold 0, any
    skipped (non-finite) update; else MAX_SKIPPED_IN_A_ROW skipped updates in a row."""
    skipped = metrics['skipped_updates']
    if self.hparams.grad_skip_threshold == 0:
      return skipped > 0 or not math.isfinite(metrics['loss'])
    self._skipped_in_a_row = self._skipped_in_a_row + steps if skipped == steps else 0
    return self._skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW


@tf.function
def _all_finite(variables):
  return tf.reduce_all([tf.reduce_all(tf.math.is_finite(tf.cast(v, tf.float32)))
                        for v in variables if v.dtype.is_floating])


class _CallLength:
  """Steps per compiled call: starts at 1 (the first call compiles), doubles while calls are
  short, and shrinks so that a call takes about `seconds`; at most `limit`."""

  def __init__(self, limit, seconds):
    self._limit, self._seconds = limit, seconds
    self.length, self._calls = 1, 0

  def record(self, steps, seconds):
    self._calls += 1
    if self._calls == 1:
      return  # compilation
    if steps == self.length:
      per_step = seconds / steps
      self.length = max(1, min(self._limit, 2 * self.length,
                               int(self._seconds / max(per_step, 1e-9))))
