"""What the training loop does between calls of its compiled steps: small hooks.

A hook sees the loop at its boundaries (`next_boundary`: the next step it must see, e.g. the
next log step or epoch end), acts after each call (`after_steps`, which may return a reason
to stop: 'signal', 'time_budget', 'early_stopping') and when training ends (`end`, with the
reason). Workers agree on stopping before any hook acts on it (see Trainer.agree), so every
worker saves and stops together.
"""

import math
import signal
import time

from absl import logging
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

from tfvae import data
from tfvae import images
from tfvae import noise
from tfvae import optimization
from tfvae import train_step

NON_FINITE = 'non_finite'  # the reason given to `end` when the loss stopped being finite


class Hook:
  """Does nothing; subclasses override what they need."""

  def begin(self, trainer):
    """Called once before the first step of this invocation."""

  def next_boundary(self, step):
    """The next step (> step) this hook must see the loop at; math.inf: none."""
    del step
    return math.inf

  def after_steps(self, trainer, steps, metrics):
    """After `steps` steps ending at trainer.step with their mean `metrics`; returns a
    reason to stop, or None."""
    del trainer, steps, metrics

  def end(self, trainer, reason):
    """When training stops for `reason` ('done', a stop reason, or NON_FINITE)."""
    del trainer, reason


def _next_multiple(step, every):
  return (step // every + 1) * every


class Progress(Hook):
  """Every `every_n_steps`: a log line and the window's mean metrics and examples/sec as
  TensorBoard scalars (the window: the steps since the last report).

  The rate and the time left leave out the first call of an invocation, which compiles the
  step: a report with no other call in its window shows neither.
  """

  def __init__(self, writer, every_n_steps, num_steps, deadline=math.inf):
    self._writer, self._every, self._num_steps = writer, every_n_steps, num_steps
    self._deadline = deadline
    self._window, self._compiled = _Window(), False

  def next_boundary(self, step):
    return _next_multiple(step, self._every)

  def after_steps(self, trainer, steps, metrics):
    self._window.add(steps, metrics, timed=self._compiled)
    if not self._compiled:  # the rate's clock starts once the step is compiled
      self._window.start, self._compiled = time.time(), True
    step = trainer.step
    if step % self._every and step != self._num_steps:
      return None
    means = self._window.means()
    line = (f'step {step}/{self._num_steps}  loss {means["loss"]:.3f}  elbo '
            f'{means["elbo"]:.3f}  kl {means["losses/kl_bits"]:.2f} bits  beta '
            f'{means["losses/kl_beta"]:.3f}')
    skipped = int(means.get('skipped_updates', 0))
    if skipped:  # the other figures leave these steps out (NaN when every one was skipped)
      line += (f'  {skipped} of {self._window.steps} updates skipped (gradient norm not '
               f'finite or above grad_skip_threshold={trainer.hparams.grad_skip_threshold:g})')
    examples_per_sec = None
    if self._window.timed_steps:
      batch = trainer.hparams.batch_size
      examples_per_sec = (self._window.timed_steps * batch /
                          max(self._window.seconds(), 1e-9))
      remaining = min((self._num_steps - step) * batch / max(examples_per_sec, 1e-9),
                      max(self._deadline - time.time(), 0.0))
      line += f'  {examples_per_sec:.0f} examples/sec  {_duration(remaining)} left'
    logging.info('%s', line)
    with self._writer.as_default(step=step):
      for name, value in means.items():
        tf.summary.scalar(name, value)
      if examples_per_sec is not None:
        tf.summary.scalar('examples_per_sec', examples_per_sec)
    self._window = _Window()
    return None

  def end(self, trainer, reason):
    self._writer.flush()


class RunSummary(Hook):
  """When a run starts (step 0, chief only): its config and hparams as a text summary in
  train/, and as a session of TensorBoard's HParams dashboard in the run directory, which
  then lists the run's hparams beside the last value of every scalar it wrote."""

  def __init__(self, writer, config, hparams):
    self._writer, self._config, self._hparams = writer, config, hparams

  def begin(self, trainer):
    if trainer.step or not trainer.is_chief:
      return
    values = self._hparams.values()
    rows = [f'| {k} | {v} |' for k, v in sorted(values.items())]
    with self._writer.as_default(step=0):
      tf.summary.text('hparams', '\n'.join(
          [f'config: **{self._config.name}**', '', '| hparam | value |', '|---|---|'] + rows))
    session = {k: (str(v) if isinstance(v, list) else v) for k, v in values.items()}
    session['config'] = self._config.name
    with tf.summary.create_file_writer(trainer.run_dir.path).as_default():
      hparams_api.hparams(session, trial_id=trainer.run_dir.path)


class Checkpoints(Hook):
  """Saves a checkpoint every `every_secs` (all workers agreeing), and when training ends
  (not after a non-finite loss: the newest checkpoint stays one of finite weights)."""

  def __init__(self, manager, every_secs):
    self._manager, self._every = manager, every_secs
    self._last_time, self._last_step = time.time(), None

  def _save(self, step):
    if step != self._last_step:
      self._manager.save(checkpoint_number=step)
      self._last_time, self._last_step = time.time(), step

  def after_steps(self, trainer, steps, metrics):
    (due,) = trainer.agree(time.time() - self._last_time >= self._every)
    if due:
      self._save(trainer.step)

  def end(self, trainer, reason):
    if reason != NON_FINITE:
      self._save(trainer.step)


class Images(Hook):
  """Every `every_n_steps`: reconstructions of fixed validation images and prior samples as
  TensorBoard images."""

  def __init__(self, writer, every_n_steps, valid, hparams, seed):
    self._writer, self._every, self._seed = writer, every_n_steps, seed
    rows = np.sort(np.random.RandomState(seed).permutation(len(valid.images))[:16])
    self._x = data.model_input(valid.images[rows], valid.info, hparams.binarize,
                               noise.key(seed, 'eval_binarize'), rows)

  def next_boundary(self, step):
    return _next_multiple(step, self._every)

  def after_steps(self, trainer, steps, metrics):
    if trainer.step % self._every < steps:
      with self._writer.as_default(step=trainer.step):
        for name, grid in images.summary_images(trainer.model, self._x,
                                                seed=self._seed).items():
          tf.summary.image(name, grid)


class Validation(Hook):
  """At each epoch's end: the validation ELBO (tfvae.evaluation, with the averaged weights
  when the run keeps them); a better one is saved to run_dir/best; after `patience` epochs
  without improvement, stops with 'early_stopping'."""

  def __init__(self, writer, evaluator, best_manager, patience, steps_per_epoch):
    self._writer, self._evaluate, self._best = writer, evaluator, best_manager
    self._patience, self._steps_per_epoch = patience, steps_per_epoch

  def next_boundary(self, step):
    return _next_multiple(step, self._steps_per_epoch)

  def after_steps(self, trainer, steps, metrics):
    step, state = trainer.step, trainer.state
    if step % self._steps_per_epoch:
      return None
    with optimization.use_averaged_weights(state.optimizer, state.model.trainable_variables):
      elbo = self._evaluate()['elbo']
    # Compared as stored (float32): a float64 ELBO can exceed its own rounded value.
    improved = np.float32(elbo) > state.best_valid_elbo.numpy()
    if improved:
      state.best_valid_elbo.assign(elbo)
      state.epochs_without_improvement.assign(0)
      self._best.save(checkpoint_number=step)
    else:
      state.epochs_without_improvement.assign_add(1)
    bad_epochs = int(state.epochs_without_improvement.numpy())
    logging.info('epoch %d: valid elbo %.3f (best %.3f%s)', step // self._steps_per_epoch,
                 elbo, float(state.best_valid_elbo.numpy()),
                 ', saved to run_dir/best' if improved else
                 f', {bad_epochs} epochs without improvement')
    with self._writer.as_default(step=step):
      tf.summary.scalar('valid/elbo', elbo)
      tf.summary.scalar('valid/best_elbo', float(state.best_valid_elbo.numpy()))
    if bad_epochs >= self._patience:
      logging.info('Early stopping: no better validation ELBO for %d epochs.', self._patience)
      return 'early_stopping'
    return None


class TimeBudget(Hook):
  """Stops with 'time_budget' once `seconds` of training have passed in this invocation."""

  def __init__(self, seconds):
    self._seconds = seconds
    self.deadline = time.time() + seconds

  def after_steps(self, trainer, steps, metrics):
    if time.time() >= self.deadline and trainer.step < trainer.num_steps:
      logging.info('Time budget of %.1f minutes used up at step %d.', self._seconds / 60,
                   trainer.step)
      return 'time_budget'
    return None


class StopSignal(Hook):
  """While training, the first SIGINT/SIGTERM stops the loop after its current call (calls
  last about a second, see Trainer) with 'signal'; a second SIGINT interrupts at once."""

  def __init__(self):
    self.requested = False
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    logging.warning('Got signal %d: saving a checkpoint and stopping.', signum)
    self.requested = True

  def begin(self, trainer):
    for sig in (signal.SIGINT, signal.SIGTERM):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread: leave signals alone
        pass

  def after_steps(self, trainer, steps, metrics):
    return 'signal' if self.requested else None

  def end(self, trainer, reason):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    if reason == 'signal':
      logging.info('Stopped by signal at step %d; checkpoint saved. Run the same command '
                   'again to resume.', trainer.step)


def standard(trainer, num_steps, log_every_n_steps=100, checkpoint_every_secs=60.0,
             image_every_n_steps=0, max_train_seconds=0.0):
  """The hooks bin/train.py trains with: progress, the run summary, images (every
  image_every_n_steps > 0), validation with early stopping (when the hparams ask for it), the
  time budget (max_train_seconds > 0), the stop signal and checkpoints, in that order."""
  writer = (tf.summary.create_file_writer(trainer.run_dir.train_dir) if trainer.is_chief
            else tf.summary.create_noop_writer())
  hp = trainer.hparams
  budget = TimeBudget(max_train_seconds) if max_train_seconds > 0 else None
  deadline = budget.deadline if budget else math.inf
  hooks = [Progress(writer, log_every_n_steps, num_steps, deadline),
           RunSummary(writer, trainer.config, hp)]
  if image_every_n_steps:
    hooks.append(Images(writer, image_every_n_steps, trainer.source.split('valid'), hp,
                        trainer.seed))
  if hp.early_stopping_patience:
    hooks.append(Validation(writer, trainer.evaluator(), trainer.best_manager,
                            hp.early_stopping_patience, trainer.steps_per_epoch))
  if budget:
    hooks.append(budget)
  return hooks + [StopSignal(), Checkpoints(trainer.manager, checkpoint_every_secs)]


class _Window:
  """Metrics since the last report, and its wall time: train_step.COUNTS summed, the others
  averaged over the steps; `timed_steps` of them count towards the rate (those after
  `start`)."""

  def __init__(self):
    self.steps, self.timed_steps, self.sums, self.start = 0, 0, {}, time.time()

  def add(self, steps, metrics, timed=True):
    self.steps += steps
    self.timed_steps += steps if timed else 0
    for name, value in metrics.items():
      weight = 1 if name in train_step.COUNTS else steps
      self.sums[name] = self.sums.get(name, 0.0) + value * weight

  def means(self):
    return {name: total if name in train_step.COUNTS else total / self.steps
            for name, total in self.sums.items()}

  def seconds(self):
    return time.time() - self.start


def _duration(seconds):
  seconds = int(round(seconds))
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'
