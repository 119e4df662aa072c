"""What a run checkpoints, and the one way every tool restores it.

A checkpoint holds the `State` of a run: the model, the optimiser (its moments and, with
ema_decay > 0, the Polyak averages of the weights), the step counter and the early-stopping
record. The trainer, bin/evaluate.py, bin/export.py, bin/sample.py and TrainedModel all
restore through `restore`, which takes the newest checkpoint of a folder that reads back
whole: a truncated or corrupt file costs a warning naming it, and the next older one is used.
A folder's checkpoints are those its `checkpoint` state file lists and every `.index` file in
it, so a damaged state file hides none.

Concurrent readers are safe: TensorFlow writes a checkpoint's data under temporary names and
renames it, and `tf.train.CheckpointManager` lists a checkpoint in the state file only once its
files are complete; a reader that meets a checkpoint still being written, or loses a race with
the deletion of an old one (best/ keeps only one), skips it and, if it finds none readable,
reads the folder again and takes the new one.
"""

import os
import re

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from tfvae import optimization
from tfvae.errors import UserError

# What reading a damaged or vanished checkpoint raises.
_READ_ERRORS = (tf.errors.OpError, IndexError, ValueError, OSError, EOFError)
_RETRIES = 3  # re-reads of a folder whose checkpoints change while being read


class CheckpointError(UserError):
  """No checkpoint can be read as asked; the message is one line naming the files."""


class State:
  """The variables of a run: model, optimiser, step and early-stopping record, and the
  tf.train.Checkpoint over them (names as in every tfvae checkpoint)."""

  def __init__(self, model, optimizer):
    self.model, self.optimizer = model, optimizer
    # Steps taken; the optimiser's own counter skips float16 steps with overflowing gradients.
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step',
                            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.best_valid_elbo = tf.Variable(-np.inf, trainable=False, name='best_valid_elbo')
    self.epochs_without_improvement = tf.Variable(0, trainable=False,
                                                  name='epochs_without_improvement')
    self.checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, step=self.step, best_valid_elbo=self.best_valid_elbo,
        epochs_without_improvement=self.epochs_without_improvement)


def build_state(config, hparams, image_shape):
  """A State for `config` with `hparams` on images [H, W, C], every variable created (in the
  current strategy scope and Keras dtype policy)."""
  model = config.build_model(hparams, image_shape)
  model.build_variables()
  optimizer = optimization.make_optimizer(hparams)
  optimizer.build(model.trainable_variables)
  return State(model, optimizer)


def _describe(exc):
  text = ' '.join(str(exc).split())
  return f'{type(exc).__name__}: {text[:200]}' if text else type(exc).__name__


def _number(prefix):
  match = re.search(r'-(\d+)$', prefix)
  return int(match.group(1)) if match else -1


def listed(directory):
  """Checkpoint prefixes of `directory`, newest first: those its state file lists (when it
  reads back) and every `<prefix>-<n>.index` found there, so that a missing, truncated or
  stale state file hides no checkpoint."""
  try:
    state = tf.train.get_checkpoint_state(directory)
  except _READ_ERRORS:
    state = None
  paths = []
  if state is not None:  # its relative paths are already joined to `directory`
    paths = [state.model_checkpoint_path, *state.all_model_checkpoint_paths]
  if tf.io.gfile.isdir(directory):
    paths += [os.path.join(directory, name[:-len('.index')])
              for name in tf.io.gfile.listdir(directory) if name.endswith('.index')]
  return sorted(set(paths), key=_number, reverse=True)


def write_atomically(path, text):
  """Writes `text` to `path` through a temporary file and a rename: a concurrent reader
  sees the old file or the new one, never a part."""
  tmp = f'{path}.tmp-{os.getpid()}'
  with tf.io.gfile.GFile(tmp, 'w') as f:
    f.write(text)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def repair_state(directory):
  """Rewrites the `checkpoint` state file of `directory` from the checkpoints found there
  when it exists but cannot be read (tf.train.CheckpointManager refuses to start on it),
  with a warning naming it."""
  try:
    tf.train.get_checkpoint_state(directory)
    return
  except _READ_ERRORS as e:
    problem = _describe(e)
  paths = listed(directory)
  state_file = os.path.join(directory, 'checkpoint')
  logging.warning('%s is unreadable (%s); rebuilding it from the %d checkpoints there.',
                  state_file, problem, len(paths))
  if not paths:
    tf.io.gfile.remove(state_file)
    return
  # The CheckpointState text format, newest as model_checkpoint_path, all oldest first.
  names = [os.path.basename(p) for p in paths]
  lines = [f'model_checkpoint_path: "{names[0]}"']
  lines += [f'all_model_checkpoint_paths: "{name}"' for name in reversed(names)]
  write_atomically(state_file, '\n'.join(lines) + '\n')


def restore_file(checkpoint, path):
  """Restores `checkpoint` (a tf.train.Checkpoint) from the checkpoint prefix `path`; raises
  CheckpointError naming the file if it cannot be read or is a checkpoint of something else
  (variables of `checkpoint` missing from it)."""
  try:
    # read(), not restore(): the save counter is no part of a model (SavedModels lack it).
    status = checkpoint.read(path)
  except _READ_ERRORS as e:
    raise CheckpointError(f'cannot read checkpoint {path} ({_describe(e)})') from None
  try:
    status.expect_partial().assert_existing_objects_matched()
  except AssertionError as e:
    raise CheckpointError(f'{path} is not a checkpoint of this model ({_describe(e)})') from None
  return path


def restore(checkpoint, directory):
  """Restores the newest readable checkpoint of `directory` into `checkpoint` and returns its
  prefix; None when the folder holds no checkpoint. Unreadable ones are skipped with a
  warning; CheckpointError (one line) if none can be read."""
  for _ in range(_RETRIES):
    paths, failures = listed(directory), []
    for path in paths:
      try:
        restore_file(checkpoint, path)
      except CheckpointError as e:
        failures.append(str(e))
        logging.warning('%s; %s', e, 'trying the next older one.' if path != paths[-1]
                        else 'it was the oldest.')
        continue
      return path
    if not paths:
      return None
    if listed(directory) == paths:
      break
  raise CheckpointError(f'no readable checkpoint in {directory}: ' + '; '.join(failures))


def load_model(config, hparams, image_shape, directory=None, path=None):
  """(model, step) restored from the newest readable checkpoint of `directory`, or from the
  checkpoint prefix `path`: the model holds the Polyak-averaged weights when the run keeps
  them (hparams.ema_decay). Built in float32 whatever the run's mixed_precision."""
  policy = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy('float32')
  try:
    state = build_state(config, hparams, image_shape)
  finally:
    keras.mixed_precision.set_global_policy(policy)
  if path is not None:
    restore_file(state.checkpoint, path)
  elif restore(state.checkpoint, directory) is None:
    raise CheckpointError(f'no checkpoint in {directory}')
  optimization.load_averaged_weights(state.optimizer, state.model.trainable_variables)
  return state.model, int(state.step.numpy())
