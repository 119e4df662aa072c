"""What every reader of a source gives: its splits as streams of chunks, and what it knows of
the source before reading a pixel.

A `Stream` is one split as its source holds it: `size` examples, and read() yields them in
order in chunks (images: uint8 array [n, h, w, c] or an iterable of [h, w, c]; labels int64 [n]
or None; names: one string per example, for errors). Chunks hold at most MAX_CHUNK images and,
where the reader knows their size, CHUNK_BYTES of native pixels, so a source larger than memory
is never held whole.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Callable, Iterator

import numpy as np

from tfvae.errors import DataError

MAX_CHUNK = 1000  # images decoded, fitted and written at once
CHUNK_BYTES = 1 << 26  # ... or fewer, so that a chunk of native images stays under 64 MiB


@dataclasses.dataclass(frozen=True)
class Stream:
  """One split as its source holds it: `size` examples; read() yields (images, labels, names)
  chunks in order (module docstring)."""

  size: int
  read: Callable[[], Iterator[tuple]]


@dataclasses.dataclass(frozen=True)
class Resolved:
  """A source as its reader finds it, before reading its images.

  target: the resolved source (an absolute path, a TFDS data dir, a built-in and its data dir);
  signature: JSON-able, different whenever the source's contents may be (file sizes and
  modification times, a TFDS version and split sizes); binary: whether its uint8 values are
  0/1 rather than intensities 0..255, as the source declares it (a built-in's info, a bool
  array), never guessed from values; open_streams() -> ({own split: Stream}, num_classes or
  None), the source's own splits (train always; valid and test when it has them).
  """

  target: str
  signature: object
  binary: bool
  open_streams: Callable[[], tuple]


def file_signature(path: str) -> list:
  """[size, mtime_ns] of the file `path`: what signs a file-backed source."""
  stat = os.stat(path)
  return [stat.st_size, stat.st_mtime_ns]


def chunk_rows(image_bytes: int) -> int:
  """Images per chunk: at most MAX_CHUNK and CHUNK_BYTES of native pixels, at least one."""
  return int(np.clip(CHUNK_BYTES // max(1, image_bytes), 1, MAX_CHUNK))


def array_stream(load: Callable, shape: tuple, dtype: np.dtype, labels, where: str) -> Stream:
  """A stream over an image array [N, h, w] or [N, h, w, c] (checked from its shape and dtype
  first; load() gives the array, which may be a memmap) with labels int [N] or None. Integer
  arrays with values in 0..255 are read as uint8, bool arrays as 0/1."""
  if (len(shape) not in (3, 4) or not shape[0] or (len(shape) == 4 and not 1 <= shape[3] <= 4)
      or not (np.issubdtype(dtype, np.integer) or dtype == np.bool_)):
    raise DataError(f'{where} has shape {tuple(shape)} and dtype {dtype}; expected uint8 '
                    '(or bool) [N, H, W] or [N, H, W, C] with N > 0 and C in 1..4')
  if labels is not None:
    labels = np.asarray(labels)
    if labels.shape != shape[:1] or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
      raise DataError(f'{where}: labels have shape {labels.shape} and dtype {labels.dtype}; '
                      f'expected non-negative integers of shape ({shape[0]},)')
    labels = labels.astype(np.int64)
  rows = chunk_rows(int(np.prod(shape[1:])) * np.dtype(dtype).itemsize)

  def read():
    array = load()
    for start in range(0, shape[0], rows):
      chunk = np.asarray(array[start:start + rows])
      if chunk.dtype != np.uint8:
        if chunk.dtype != np.bool_ and (chunk.min() < 0 or chunk.max() > 255):
          raise DataError(f'{where} has dtype {dtype} with values outside 0..255 (from '
                          f'{chunk.min()} to {chunk.max()}); expected uint8 images')
        chunk = chunk.astype(np.uint8)
      chunk = chunk if chunk.ndim == 4 else chunk[..., None]
      chunk_labels = None if labels is None else labels[start:start + rows]
      yield chunk, chunk_labels, [f'{where} image {i}' for i in range(start, start + len(chunk))]

  return Stream(shape[0], read)


def tf_message(exc: BaseException) -> str:
  """A TensorFlow error's message without its '{{function_node ...}}' and '[Op:...]' parts."""
  text = re.sub(r'\{\{[^}]*\}\}|\[Op:[^\]]*\]', '', getattr(exc, 'message', str(exc)))
  return ' '.join(text.split())[:300] or type(exc).__name__
