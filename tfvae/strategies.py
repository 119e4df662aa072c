"""tf.distribute strategies by name: one trainer for CPU, GPU, multi-GPU, TPU, many machines."""

import json
import os
import socket

import tensorflow as tf

from tfvae.errors import UserError

STRATEGIES = ('default', 'one_device', 'mirrored', 'multi_worker_mirrored', 'tpu')


class StrategyError(UserError):
  """A strategy that cannot be made as asked."""


def split_cpu(num_devices):
  """Splits the CPU into `num_devices` logical devices (before TF initialises devices)."""
  if num_devices <= 1:
    return
  cpu = tf.config.list_physical_devices('CPU')[0]
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
  except RuntimeError as e:
    if len(tf.config.list_logical_devices('CPU')) != num_devices:
      raise StrategyError(f'cannot split the CPU into {num_devices} devices: {e}') from None


def make_strategy(name='default', tpu=None):
  """The tf.distribute.Strategy called `name` (one of STRATEGIES).

  Listing logical devices initialises TensorFlow's runtime, which multi-worker collectives
  must be configured before, so only the single-machine strategies look at devices.
  """
  if name == 'default':
    return tf.distribute.get_strategy()
  if name == 'one_device':
    gpus = tf.config.list_logical_devices('GPU')
    return tf.distribute.OneDeviceStrategy('/gpu:0' if gpus else '/cpu:0')
  if name == 'mirrored':
    devices = tf.config.list_logical_devices('GPU') or tf.config.list_logical_devices('CPU')
    return tf.distribute.MirroredStrategy([d.name for d in devices])
  if name == 'multi_worker_mirrored':
    if 'TF_CONFIG' not in os.environ:
      raise StrategyError('--strategy=multi_worker_mirrored needs the TF_CONFIG environment '
                          'variable describing the cluster and this task')
    try:
      json.loads(os.environ['TF_CONFIG'])
    except ValueError:
      raise StrategyError('TF_CONFIG is not valid JSON') from None
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == 'tpu':
    return _tpu_strategy(tpu)
  raise StrategyError(f'unknown strategy {name!r}; valid: {", ".join(STRATEGIES)}')


def _check_reachable(master, timeout=10.0):
  """Raises OSError unless a grpc://host:port address accepts a TCP connection: connecting
  the TPU runtime to an unreachable address would otherwise wait forever."""
  if not master.startswith('grpc://'):
    return
  host, _, port = master[len('grpc://'):].rpartition(':')
  socket.create_connection((host, int(port)), timeout=timeout).close()


def _tpu_strategy(tpu):
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or '')
    _check_reachable(resolver.master())
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (OSError, ValueError, RuntimeError, tf.errors.OpError) as e:
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise StrategyError(f'no reachable TPU (--tpu={tpu or ""!r}): {first_line}') from None
  return tf.distribute.TPUStrategy(resolver)


def describe(strategy):
  """Words like 'MirroredStrategy with 2 replicas'."""
  n = strategy.num_replicas_in_sync
  kind = 'default strategy'
  # The public names: tf.distribute.MultiWorkerMirroredStrategy's class is called
  # CollectiveAllReduceStrategy.
  for public, name in ((tf.distribute.MultiWorkerMirroredStrategy, 'MultiWorkerMirroredStrategy'),
                       (tf.distribute.MirroredStrategy, 'MirroredStrategy'),
                       (tf.distribute.TPUStrategy, 'TPUStrategy'),
                       (tf.distribute.OneDeviceStrategy, 'OneDeviceStrategy')):
    if isinstance(strategy, public):
      kind = name
      break
  return f'{kind} with {n} replica{"s" if n != 1 else ""}'


def is_chief(strategy):
  """True on the task that writes checkpoints and summaries."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == 'chief':
    return True
  has_chief = 'chief' in resolver.cluster_spec().as_dict()
  return not has_chief and resolver.task_type == 'worker' and resolver.task_id == 0
