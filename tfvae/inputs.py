"""Where training batches come from: the training split held on the device, or streamed from
a prepared uint8 array file on disk when it is larger than a memory budget.

Either way the data order is a pure function of (seed, step) (`data.index_batches`: a fresh
seeded permutation each epoch, the last partial batch left out), so a resumed run sees exactly
the batches an unbroken one would, and the global batch of a step does not depend on the number
of replicas or workers. The trainer's compiled loop takes a *block*, the data of `block_steps`
consecutive steps, and `rows(block, i, start, size)` gives rows [start, start + size) of the
global batch of its i-th step as uint8 [size, H, W, C].

- `InMemoryBatches`: the split is a device variable; a block is the example indices
  [block_steps, B] of the steps from the current one, and each replica gathers its rows.
- `StreamingBatches`: a block is the images themselves, uint8 [block_steps, B_w, H, W, C],
  read from disk by a prefetching tf.data pipeline, B_w the rows of this worker's replicas
  (each worker reads only its own rows). Blocks are aligned at multiples of block_steps, so a
  block's contents never depend on how the host splits its loop calls. Its memory is bounded:
  at most prefetch + 3 blocks are alive (the trainer's, `prefetch` read ahead, the one being
  read and its copy into a tensor), and block_steps is lowered until they fit in memory_mb.
"""

import math
import os

from absl import logging
import numpy as np
import tensorflow as tf

from tfvae import data

DEFAULT_STREAM_MEMORY_MB = 64  # what a StreamingBatches' blocks may hold, unless told otherwise


class InMemoryBatches:
  """The training images on the device once; blocks of example indices."""

  streaming = False

  def __init__(self, images, batch_size, seed, block_steps, multi_worker=False):
    self.num_examples = len(images)
    self.batch_size, self.seed, self.block_steps = batch_size, seed, block_steps
    self.steps_per_epoch = data.steps_per_epoch(self.num_examples, batch_size)
    self.first_row = 0
    # Multi-worker variables are initialised by a collective broadcast, which has no uint8.
    images = np.asarray(images)
    self._images = tf.Variable(images.astype(np.int32) if multi_worker else images,
                               trainable=False, name='train_images')

  def block(self, step):
    """(block, offset, steps available): indices int32 [block_steps, B] of the steps from
    `step` on, offset 0."""
    indices = data.index_batches(self.num_examples, self.batch_size, self.seed, step,
                                 self.block_steps)
    return tf.constant(indices), 0, self.block_steps

  def rows(self, block, i, start, size):
    """uint8 images [size, H, W, C]: rows [start, start + size) of step i's global batch."""
    # gather and slice, not block[i]: XLA takes a strided slice's index as a compile-time
    # constant, so a per-replica compiled step would be compiled again for every i.
    return tf.gather(self._images, tf.slice(tf.gather(block, i), [start], [size]))

  def close(self):
    pass


class StreamingBatches:
  """The training images read from a .npy file (uint8 [N, H, W, C]) block by block."""

  streaming = True

  def __init__(self, path, batch_size, seed, block_steps, first_row, num_rows, prefetch=1,
               memory_mb=DEFAULT_STREAM_MEMORY_MB):
    """block_steps: the most steps a block holds; fewer when prefetch + 3 blocks of this
    worker's num_rows rows a step would not fit in memory_mb (but at least one)."""
    self._path = path
    array = np.load(path, mmap_mode='r')
    self.num_examples, self._image_shape = len(array), array.shape[1:]
    self._row_bytes = math.prod(self._image_shape)
    self._offset = array.offset
    del array
    fitting = int(memory_mb * 2**20) // ((prefetch + 3) * num_rows * self._row_bytes)
    self.batch_size, self.seed = batch_size, seed
    self.block_steps = max(1, min(block_steps, fitting))
    self.steps_per_epoch = data.steps_per_epoch(self.num_examples, batch_size)
    self.first_row, self._num_rows, self._prefetch = first_row, num_rows, prefetch
    self._iterator, self._next_block, self._current = None, None, None

  def block_bytes(self):
    """Bytes of one block of images."""
    return self.block_steps * self._num_rows * self._row_bytes

  def _read_block(self, number):
    """uint8 [block_steps, num_rows, H, W, C]: this worker's rows of block `number`."""
    indices = data.index_batches(self.num_examples, self.batch_size, self.seed,
                                 int(number) * self.block_steps, self.block_steps)
    wanted = indices[:, self.first_row:self.first_row + self._num_rows].ravel()
    out = np.empty((len(wanted), self._row_bytes), np.uint8)
    with open(self._path, 'rb', buffering=0) as f:
      fd = f.fileno()
      order = np.argsort(wanted, kind='stable')  # read in file order
      for k in order:
        start = self._offset + int(wanted[k]) * self._row_bytes
        out[k] = np.frombuffer(_pread_exact(fd, self._row_bytes, start), np.uint8)
    return out.reshape((self.block_steps, self._num_rows) + self._image_shape)

  def _start(self, number):
    shape = (self.block_steps, self._num_rows) + self._image_shape
    # One block read at a time (a parallel map would hold more), `prefetch` more read ahead.
    blocks = tf.data.Dataset.range(number, np.iinfo(np.int64).max).map(
        lambda k: tf.ensure_shape(tf.numpy_function(self._read_block, [k], tf.uint8), shape))
    self._iterator = iter(blocks.prefetch(self._prefetch))
    self._next_block = number

  def block(self, step):
    """(block, offset, steps available): the aligned block holding `step` and the step's
    position in it."""
    number, offset = divmod(step, self.block_steps)
    if self._current is None or self._current[0] != number:
      self._current = None  # the finished block goes before the next one comes
      if self._iterator is None or self._next_block != number:
        self._start(number)
      self._current = (number, next(self._iterator))
      self._next_block = number + 1
    return self._current[1], offset, self.block_steps - offset

  def rows(self, block, i, start, size):
    """uint8 images [size, H, W, C]: rows [start, start + size) of step i's global batch."""
    local = start - self.first_row
    # As in InMemoryBatches.rows: a dynamic gather and slice, compiled once for every i.
    return tf.slice(tf.gather(block, i), [local, 0, 0, 0], [size, *self._image_shape])

  def close(self):
    self._iterator = None


def _pread_exact(fd, size, offset):
  """`size` bytes of file descriptor fd at `offset`."""
  chunk = os.pread(fd, size, offset)
  if len(chunk) != size:
    raise OSError(f'short read: {len(chunk)} of {size} bytes at offset {offset}')
  return chunk


def make_batches(source, strategy, batch_size, seed, block_steps, memory_mb):
  """The training batches of `source` (a tfvae.sources.Source) under `strategy`:
  InMemoryBatches when its training split fits in memory_mb, else StreamingBatches of this
  worker's rows of each global batch (replica r takes rows [r b, (r + 1) b)), its buffers
  held within memory_mb."""
  train = source.split('train')
  size_mb = train.images.nbytes / 2**20
  if size_mb <= memory_mb:
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    with strategy.scope():
      return InMemoryBatches(train.images, batch_size, seed, block_steps, multi_worker)
  local_batch = batch_size // strategy.num_replicas_in_sync
  replica_ids = [int(r) for r in strategy.experimental_local_results(strategy.run(
      lambda: tf.distribute.get_replica_context().replica_id_in_sync_group))]
  path = source.split_file('train')
  logging.info('The training split (%.3g MB) exceeds --data_memory_mb=%g: streaming it from '
               '%s.', size_mb, memory_mb, path)
  return StreamingBatches(path, batch_size, seed, block_steps, min(replica_ids) * local_batch,
                          len(replica_ids) * local_batch, memory_mb=memory_mb)
