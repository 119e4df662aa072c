"""The optimiser and its learning-rate schedule.

lr(step) = (learning_rate - min_learning_rate) * decay_rate**step + min_learning_rate
(MusicVAE's exponential decay towards a floor), driven by the optimiser's own step
counter so that it resumes with the checkpoint.

With ema_decay = d > 0 the optimiser also keeps a Polyak average of the weights,
w_avg <- d * w_avg + (1 - d) * w after every step; `use_averaged_weights` puts it in the
model (validation, evaluation, export), and training carries on from the raw weights.
"""

import contextlib

import keras
import tensorflow as tf

OPTIMIZERS = ('adam', 'adagrad')


class ExponentialDecayToFloor(keras.optimizers.schedules.LearningRateSchedule):
  """lr(step) = (initial - floor) * decay_rate**step + floor."""

  def __init__(self, initial, decay_rate, floor):
    self.initial, self.decay_rate, self.floor = initial, decay_rate, floor

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    return (self.initial - self.floor) * tf.pow(self.decay_rate, step) + self.floor

  def get_config(self):
    return {'initial': self.initial, 'decay_rate': self.decay_rate, 'floor': self.floor}


def learning_rate_schedule(hparams):
  return ExponentialDecayToFloor(hparams.learning_rate, hparams.decay_rate,
                                 hparams.min_learning_rate)


def make_optimizer(hparams):
  """Adam or Adagrad (hparams.optimizer) on the decaying learning rate, wrapped in dynamic
  loss scaling when hparams.mixed_precision is float16."""
  schedule = learning_rate_schedule(hparams)
  if not 0.0 <= hparams.ema_decay < 1.0:
    raise ValueError(f'ema_decay must be in [0, 1) (0: no weight averaging), got '
                     f'{hparams.ema_decay}')
  averaging = dict(use_ema=True, ema_momentum=hparams.ema_decay) if hparams.ema_decay else {}
  if hparams.optimizer == 'adam':
    optimizer = keras.optimizers.Adam(learning_rate=schedule, **averaging)
  elif hparams.optimizer == 'adagrad':
    optimizer = keras.optimizers.Adagrad(learning_rate=schedule, **averaging)
  else:
    raise ValueError(
        f'unknown optimizer {hparams.optimizer!r}; valid: {", ".join(OPTIMIZERS)}')
  if hparams.mixed_precision == 'float16':
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def _inner(optimizer):
  return getattr(optimizer, 'inner_optimizer', optimizer)


def load_averaged_weights(optimizer, variables):
  """Overwrites variables with the optimiser's Polyak averages (if it keeps them)."""
  if _inner(optimizer).use_ema:
    _inner(optimizer).finalize_variable_values(variables)


@contextlib.contextmanager
def use_averaged_weights(optimizer, variables):
  """Within the block, variables hold the optimiser's Polyak averages (if it keeps them);
  their own values come back after it."""
  if not _inner(optimizer).use_ema:
    yield
    return
  saved = [v.numpy() for v in variables]
  load_averaged_weights(optimizer, variables)
  try:
    yield
  finally:
    for variable, value in zip(variables, saved):
      variable.assign(value)


def clip_gradients(grads, clip_norm):
  """Rescales grads so their global norm is at most clip_norm (0: no clipping).

  Returns (grads, global_norm of the unclipped grads).
  """
  if clip_norm > 0:
    return tf.clip_by_global_norm(grads, clip_norm)
  return grads, tf.linalg.global_norm(grads)
