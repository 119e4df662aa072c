"""The optimiser and its learning-rate schedule.

lr(step) = (learning_rate - min_learning_rate) * decay_rate**step + min_learning_rate
(MusicVAE's exponential decay towards a floor), driven by the optimiser's own step
counter so that it resumes with the checkpoint.
"""

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
  if hparams.optimizer == 'adam':
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
  elif hparams.optimizer == 'adagrad':
    optimizer = keras.optimizers.Adagrad(learning_rate=schedule)
  else:
    raise ValueError(
        f'unknown optimizer {hparams.optimizer!r}; valid: {", ".join(OPTIMIZERS)}')
  if hparams.mixed_precision == 'float16':
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def clip_gradients(grads, clip_norm):
  """Rescales grads so their global norm is at most clip_norm (0: no clipping).

  Returns (grads, global_norm of the unclipped grads).
  """
  if clip_norm > 0:
    return tf.clip_by_global_norm(grads, clip_norm)
  return grads, tf.linalg.global_norm(grads)
