"""The optimiser and its learning-rate schedule.

lr(step) = (learning_rate - min_learning_rate) * decay_rate**step + min_learning_rate
(MusicVAE's exponential decay towards a floor), driven by the optimiser's own step
counter so that it resumes with the checkpoint.

With weight_decay = λ > 0 every update also shrinks each weight, w <- w - lr(step) * λ * w
(decoupled weight decay, AdamW's: not added to the gradient, so Adam does not rescale it).

With ema_decay = d > 0 the optimiser also keeps a Polyak average of the weights,
w_avg <- d * w_avg + (1 - d) * w after every step; `use_averaged_weights` puts it in the
model (validation, evaluation, export), and training carries on from the raw weights.

With mixed_precision bfloat16 or float16 layers compute in 16 bits (`set_precision_policy`)
and float16 adds dynamic loss scaling (a LossScaleOptimizer).
"""

import contextlib

import keras
import tensorflow as tf

OPTIMIZERS = {'adam': keras.optimizers.Adam, 'adagrad': keras.optimizers.Adagrad}
# hparams.mixed_precision -> Keras dtype policy.
MIXED_PRECISION = {'none': 'float32', 'bfloat16': 'mixed_bfloat16', 'float16': 'mixed_float16'}


@keras.saving.register_keras_serializable(package='tfvae')  # a .keras file's optimiser
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
  """Adam or Adagrad (hparams.optimizer) on the decaying learning rate, with decoupled weight
  decay (hparams.weight_decay), wrapped in dynamic loss scaling when hparams.mixed_precision
  is float16."""
  averaging = dict(use_ema=True, ema_momentum=hparams.ema_decay) if hparams.ema_decay else {}
  optimizer = OPTIMIZERS[hparams.optimizer](learning_rate=learning_rate_schedule(hparams),
                                            weight_decay=hparams.weight_decay or None,
                                            **averaging)
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


_BLOCK = 32  # XLA:CPU reduces dimensions of at most 32 in vectorised code


def _sum_of_squares(tensor):
  """sum(t^2) over every element of a float32 tensor, as blocks [n / 32^2, 32, 32].

  XLA:CPU rewrites a reduction along a dimension longer than 32 into a reduce-window of 32
  (a tree, for accuracy) that runs as scalar code: tf.linalg.global_norm of the paper
  model's 815,824 gradients takes about 0.25 ms on 2 cores. Summing blocks with no dimension
  over 32, then the block sums with a dot product (which XLA does not merge into the
  reduction), is about 4x faster and as accurate.
  """
  flat = tf.reshape(tensor, [-1])
  if flat.shape[0] is None:
    return tf.reduce_sum(tf.square(flat))
  blocks = flat.shape[0] // _BLOCK**2
  total = tf.reduce_sum(tf.square(flat[blocks * _BLOCK**2:]))
  if blocks:
    block_sums = tf.reduce_sum(
        tf.reshape(tf.square(flat[:blocks * _BLOCK**2]), [blocks, _BLOCK, _BLOCK]), [1, 2])
    total += tf.tensordot(block_sums, tf.ones([blocks]), 1)
  return total


def global_norm(tensors):
  """sqrt(sum of t^2 over every element of every tensor): their joint L2 norm, a scalar."""
  return tf.sqrt(tf.add_n([_sum_of_squares(tf.cast(t, tf.float32)) for t in tensors]))


def clip_gradients(grads, clip_norm):
  """Rescales grads so their global norm is at most clip_norm (0: no clipping), as
  tf.clip_by_global_norm does (the same scale, NaN when the norm is not finite).

  Returns (grads, global_norm of the unclipped grads).
  """
  norm = global_norm(grads)
  if clip_norm <= 0:
    return grads, norm
  scale = clip_norm * tf.minimum(1.0 / norm, 1.0 / clip_norm) + (norm - norm)
  return [g * tf.cast(scale, g.dtype) for g in grads], norm


def skip_update(global_norm, threshold, loss_scaled=False):
  """Whether to skip an update: its gradient norm is not finite, or above threshold (> 0).
  Under loss scaling non-finite gradients go to the loss-scale optimiser, which skips them
  itself and lowers its scale."""
  too_large = global_norm > threshold if threshold > 0 else tf.constant(False)
  if loss_scaled:
    return too_large
  return tf.logical_or(tf.logical_not(tf.math.is_finite(global_norm)), too_large)


def set_precision_policy(hparams):
  """Sets Keras's global dtype policy from hparams.mixed_precision (none|bfloat16|float16).

  Variables stay float32; layers compute in the low precision; the encoder and decoder
  cast their outputs to float32, so distributions, KL and losses stay float32.
  """
  keras.mixed_precision.set_global_policy(MIXED_PRECISION[hparams.mixed_precision])
