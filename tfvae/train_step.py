"""The training step, as it runs on every replica, and the compiled loop of steps.

One step updates the model from one global batch of B examples. With R replicas (any
tf.distribute strategy) replica r takes rows [r B/R, (r + 1) B/R) of the batch; its loss is
scaled by 1/R and the gradients are summed across replicas before clipping, so the update
equals the one-device update on the whole batch. The noise of the step (eps of
z = mu + sigma * eps, and dynamic binarisation) is counter-based on (seed, step, row of the
global batch) (`tfvae.noise`), so it too is the same on any number of replicas.

    grads   = sum_r grad (loss_r / R)              loss_r: VAE.compute_losses on replica r's rows
    grads  <- grads * min(1, grad_clip / ||grads||)                    (global-norm clipping)
    weights <- optimizer(weights, grads)                                (Adam or Adagrad)

unless ||grads|| is not finite or above grad_skip_threshold (> 0): then the update is skipped
(weights, optimiser state and averages unchanged; the step still counts) and counted in the
`skipped_updates` metric, whose other metrics leave that step out.

Under float16 the loss is scaled by the optimiser's dynamic loss scale and the gradients
unscaled before clipping. On one replica the whole loop of steps (data, noise, forward,
backward, clipping, optimiser, metric sums) is a single XLA computation, so the host is not
involved between steps; across replicas each step's forward and backward pass is compiled.
"""

import math

import keras
import tensorflow as tf

from tfvae import data
from tfvae import noise
from tfvae import optimization
from tfvae.errors import UserError

METRICS = ('loss', 'losses/r_loss', 'losses/kl_loss', 'losses/kl_bits', 'losses/kl_beta',
           'elbo', 'learning_rate', 'global_norm', 'skipped_updates')
# Metrics a call returns as its total over its steps rather than their mean.
COUNTS = ('skipped_updates',)


class TrainStep:
  """`step(block, offset, n)`: n training steps on the steps offset .. offset + n - 1 of a
  block of batches (`tfvae.inputs`); returns the metrics averaged over them, as floats."""

  def __init__(self, state, hparams, info, batches, strategy, seed):
    self._state, self._hparams, self._info = state, hparams, info
    self._batches, self._strategy = batches, strategy
    self._eps_key = noise.key(seed, 'train_posterior')
    self._binarize_key = noise.key(seed, 'train_binarize')
    replicas = strategy.num_replicas_in_sync
    if hparams.batch_size % replicas:
      raise UserError(f'batch_size {hparams.batch_size} does not divide over {replicas} '
                      f'replicas; use a multiple of {replicas}')
    self._local_batch = hparams.batch_size // replicas
    groups = state.model.groups
    # One group's KL is losses/kl_bits itself; with several, each also has its own.
    self.metric_names = METRICS + (tuple(f'losses/kl_bits/{g.name}' for g in groups)
                                   if len(groups) > 1 else ())
    # On one replica XLA compiles the whole loop; across replicas only each step's forward
    # and backward pass (the optimiser's cross-replica update cannot be inside XLA). On a
    # CPU, XLA runs convolutions whose weights change inside its loop about 12x slower than
    # one step at a time (measured: conv_vae at batch 64, 1.9 s against 0.16 s a step), so
    # conv models there compile each step instead.
    self._fused = (hparams.jit_compile and replicas == 1
                   and not (_has_convolutions(state.model) and _on_cpu(strategy)))
    self._gradients = (tf.function(self._replica_gradients, jit_compile=True)
                       if hparams.jit_compile and not self._fused else self._replica_gradients)
    self._fused_loop = (tf.function(self._replica_loop, jit_compile=True) if self._fused
                        else None)
    self._loop = tf.function(self._strategy_loop)

  def _replica_gradients(self, block, i, step, replica_id):
    """(gradients of this replica's share of the loss, its metrics summed to the global
    ones across replicas) for step i of the block."""
    hp, model = self._hparams, self._state.model
    replicas = self._strategy.num_replicas_in_sync
    start = replica_id * self._local_batch
    rows = start + tf.range(self._local_batch)
    x = data.model_input(self._batches.rows(block, i, start, self._local_batch), self._info,
                         hp.binarize, self._binarize_key, rows, step)
    eps = noise.normal(self._eps_key, rows, hp.num_samples, model.z_size, step)
    with tf.GradientTape() as tape:
      losses = model.compute_losses(x, step, eps)
      scaled_loss = losses.loss / replicas
      if hp.mixed_precision == 'float16':
        scaled_loss = self._state.optimizer.scale_loss(scaled_loss)
    grads = tape.gradient(scaled_loss, model.trainable_variables)
    # The batch means in one matrix-vector product: one small op, not one reduction each.
    names = ('losses/r_loss', 'losses/kl_loss', 'losses/kl_bits', 'elbo')
    per_example = [losses.r_loss, losses.kl_cost, losses.kl_div / math.log(2.0), losses.elbo]
    if len(self.metric_names) > len(METRICS):
      names += self.metric_names[len(METRICS):]
      per_example += tf.unstack(tf.transpose(losses.group_kl) / math.log(2.0))
    means = tf.linalg.matvec(tf.stack(per_example),
                             tf.fill([self._local_batch], 1.0 / self._local_batch))
    metrics = dict(zip(names, tf.unstack(means)))
    metrics.update({'loss': losses.loss, 'losses/kl_beta': losses.beta})
    return grads, {k: v / replicas for k, v in metrics.items()}

  def _replica_update(self, block, i):
    """Step i of the block up to its update: (gradients summed across replicas, clipped and
    scaled for the optimiser; whether to skip the update; the global metrics {name: scalar},
    a skipped step's left at zero). Counts the step."""
    state, hp = self._state, self._hparams
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync
    step = tf.convert_to_tensor(state.step)
    learning_rate = tf.cast(state.optimizer.learning_rate, tf.float32)
    grads, metrics = self._gradients(block, i, step, ctx.replica_id_in_sync_group)
    if replicas > 1:
      grads, metrics = ctx.all_reduce(tf.distribute.ReduceOp.SUM, (grads, metrics))
    loss_scale = 1.0
    if hp.mixed_precision == 'float16':
      # Clip the true gradients; the loss-scale optimiser unscales, and skips the update
      # (lowering its scale) when they are not finite.
      loss_scale = tf.cast(state.optimizer.dynamic_scale, tf.float32)
      grads = [g / loss_scale for g in grads]
    grads, global_norm = optimization.clip_gradients(grads, hp.grad_clip)
    # Keras sums gradients across replicas itself; ours are already summed.
    grads = [g * (loss_scale / replicas) for g in grads]
    skip = optimization.skip_update(global_norm, hp.grad_skip_threshold,
                                    loss_scaled=hp.mixed_precision == 'float16')
    state.step.assign_add(1)
    # A skipped step's metrics (often not finite) stay out of the sums, which are divided by
    # the number of applied updates.
    metrics = dict(metrics, learning_rate=learning_rate, global_norm=global_norm)
    metrics = {k: tf.where(skip, 0.0, v) for k, v in metrics.items()}
    metrics['skipped_updates'] = tf.cast(skip, tf.float32)
    return grads, skip, metrics

  def _apply(self, grads):
    """The optimiser's update of the model's weights with `grads`."""
    self._state.optimizer.apply_gradients(zip(grads, self._state.model.trainable_variables))
    return tf.constant(0.0)

  def _replica_step(self, block, i):
    """One update from step i of the block on one replica; returns the metrics."""
    grads, skip, metrics = self._replica_update(block, i)
    tf.cond(skip, lambda: tf.constant(0.0), lambda: self._apply(grads))
    return metrics

  def _strategy_step(self, block, i):
    """One update from step i of the block on every replica; returns the metrics. The
    decision to skip, the same on every replica, is taken outside the replicas: a
    synchronisation point (the optimiser's) may not sit inside control flow within them."""
    grads, skip, metrics = self._strategy.run(self._replica_update, (block, i))
    local = self._strategy.experimental_local_results
    tf.cond(local(skip)[0], lambda: tf.constant(0.0),
            lambda: local(self._strategy.run(self._apply, (grads,)))[0])
    return local(metrics)[0]

  def _replica_loop(self, block, offset, num_steps):
    """One replica, one XLA computation: steps offset .. offset + num_steps - 1 of the block;
    returns the sums of their metrics."""
    # A while loop, not `for i in tf.range(...)`: XLA would take the range's bounds as
    # compile-time constants and compile again for every new number of steps. The sums are
    # one vector, added in one op a step.
    names = self.metric_names
    sums = tf.zeros([len(names)])
    i, end = offset, offset + num_steps
    while i < end:
      metrics = self._replica_step(block, i)
      sums += tf.stack([metrics[name] for name in names])
      i += 1
    return dict(zip(names, tf.unstack(sums)))

  def _strategy_loop(self, block, offset, num_steps):
    """The metrics of steps offset .. offset + num_steps - 1 of the block: COUNTS summed,
    the others averaged over the updates that were not skipped (NaN if none was)."""
    names = self.metric_names
    if self._fused:
      per_replica = self._strategy.run(self._fused_loop, (block, offset, num_steps))
      sums = self._strategy.experimental_local_results(per_replica)[0]
    else:
      sums = {name: tf.constant(0.0) for name in names}
      i, end = offset, offset + num_steps
      while i < end:
        metrics = self._strategy_step(block, i)
        sums = {name: sums[name] + metrics[name] for name in names}
        i += 1
    applied = tf.cast(num_steps, tf.float32) - sums['skipped_updates']
    return {name: total if name in COUNTS else total / applied
            for name, total in sums.items()}

  def __call__(self, block, offset, num_steps):
    means = self._loop(block, tf.constant(offset), tf.constant(num_steps))
    return {name: float(value) for name, value in means.items()}


def _has_convolutions(model):
  """Whether any layer of the model is a convolution."""
  return any(isinstance(layer, keras.layers.Conv2D) for layer in model._flatten_layers())


def _on_cpu(strategy):
  """Whether the strategy computes on CPUs (the default strategy: when there is no GPU)."""
  try:
    devices = strategy.extended.worker_devices
  except RuntimeError:  # the default strategy places ops itself
    return not tf.config.list_logical_devices('GPU')
  return all('CPU' in device.upper() for device in devices)
