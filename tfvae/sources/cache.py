"""The prepared-data cache: a source decoded, fitted and written once as uint8 .npy files.

ROOT (the cache_dir argument, else $TFVAE_CACHE_DIR, else ~/.cache/tfvae) holds one folder per
preparation, ROOT/<kind>-<name>-<hash>/:

    <split>.npy          uint8 [N, H, W, C], one per split of data.SPLITS
    <split>_labels.npy   int64 [N], when the source is labelled
    info.json            spec, image_shape, binary, num_classes, split_sizes, and what the
                         preparation is of: format, kind, target, image_size, channels, source
                         (a hash of those four and the format) and prepared (a Unix time)

The folder's hash covers CACHE_FORMAT, the kind and resolved source, the knobs and the source's
signature, so a changed file makes a new preparation. Splits are written in chunks into
memory-mapped files in a temporary sibling folder (`<folder>.tmp-*`) renamed into place with
`os.replace`: sources larger than memory work, and no process ever sees a partial preparation.
A long preparation logs its progress with the time left.

Stale preparations: when a preparation is written, the older ones of the same source and knobs
are removed, unless a process still reads them. Every process that reads a preparation holds a
shared lock (flock) on its info.json for as long as it lives (`hold`); removal takes an
exclusive lock without waiting and leaves a folder in use alone. `entries` lists the cache with
sizes and states, `prune` removes what is stale (the tfvae-cache tool).
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time

from absl import logging
import numpy as np

from tfvae import data
from tfvae import progress
from tfvae.errors import DataError
from tfvae.errors import describe
from tfvae.sources import carving

CACHE_FORMAT = 2  # 2: binary as the source declares it (1 guessed it from the values)
INFO = 'info.json'
TEMPORARY = '.tmp-'  # in the name of a folder being written
UNFINISHED_SECONDS = 3600  # a temporary folder untouched this long is a preparation that died


def root(cache_dir=None) -> str:
  """The cache's folder: cache_dir, else $TFVAE_CACHE_DIR, else ~/.cache/tfvae (absolute)."""
  folder = cache_dir or os.environ.get('TFVAE_CACHE_DIR') or '~/.cache/tfvae'
  return os.path.abspath(os.path.expanduser(os.fspath(folder)))


def identity(kind: str, target: str, image_size: int, channels: int) -> dict:
  """What a preparation is of, for info.json: the fields and `source`, their hash (with the
  format), the same for every preparation of one source with these knobs."""
  fields = {'format': CACHE_FORMAT, 'kind': kind, 'target': target, 'image_size': image_size,
            'channels': channels}
  fields['source'] = _hash(fields)
  return fields


def folder(cache_root: str, kind: str, name: str, fields: dict, signature) -> str:
  """ROOT/<kind>-<name>-<hash of the identity and the signature>."""
  slug = re.sub(r'[^A-Za-z0-9_.-]+', '_', os.path.basename(os.path.normpath(name)))[:40]
  digest = _hash([fields['source'], signature])
  return os.path.join(cache_root, f'{kind}-{slug}-{digest}')


def _hash(value) -> str:
  return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def is_prepared(path: str) -> bool:
  return os.path.isfile(os.path.join(path, INFO))


def read_info(path: str) -> dict:
  """The info.json of a preparation."""
  with open(os.path.join(path, INFO), encoding='utf-8') as f:
    return json.load(f)


def hold(path: str):
  """An open file holding a shared lock on the preparation `path` (keep it while reading it):
  `prune` and stale removal leave the folder alone meanwhile. FileNotFoundError if it is gone."""
  handle = open(os.path.join(path, INFO), encoding='utf-8')  # pylint: disable=consider-using-with
  try:
    fcntl.flock(handle, fcntl.LOCK_SH)
  except OSError:  # A file system without locks: nothing to hold.
    pass
  return handle


def write(path: str, spec: str, own_streams: dict, num_classes, fitter, record: dict) -> None:
  """Prepares the folder `path` from a source's own split streams ({split: Stream}), carving
  missing splits, fitting with `fitter` (fitting.Fitter); `record`: info.json's identity fields
  and binary. Then removes the stale preparations of the same source."""
  routes, sizes = carving.routes(spec, {split: s.size for split, s in own_streams.items()})
  total = sum(sizes.values())
  logging.info('Preparing %s: %s images into %s', spec, f'{total:,}', path)
  cache_root = os.path.dirname(path)
  try:
    os.makedirs(cache_root, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix=os.path.basename(path) + TEMPORARY, dir=cache_root)
    try:
      writer = _Writer(temporary, sizes, num_classes, fitter,
                       progress.Progress(f'Preparing {spec}', total))
      for split, stream in own_streams.items():
        writer.write(stream, *routes[split])
      writer.finish(record)
      try:
        os.replace(temporary, path)
      except OSError:  # Another process got there first: use its folder.
        if not is_prepared(path):
          raise
      logging.info('Prepared %s in %s.', spec, progress.duration(writer.progress.seconds))
    finally:
      shutil.rmtree(temporary, ignore_errors=True)
  except OSError as exc:
    raise DataError(f'{spec}: cannot write the prepared dataset under {cache_root} '
                    f'({describe(exc)}); set TFVAE_CACHE_DIR to a writable folder') from exc
  for entry in entries(cache_root):
    if entry.path != path and entry.info and entry.info.get('source') == record['source']:
      removed = _remove(entry)
      logging.info('%s the stale preparation %s of %s (%s).',
                   'Removed' if removed is None else f'Kept ({removed})', entry.name, spec,
                   size_text(entry.bytes))


class _Writer:
  """Fits chunks of images and writes them to their rows of the memory-mapped split files."""

  def __init__(self, path: str, sizes: dict, num_classes, fitter, counter):
    self.path, self.sizes, self.num_classes = path, sizes, num_classes
    self.fitter, self.progress = fitter, counter
    self.images = {}  # split -> memmap, opened at its first image
    self.labels = {split: np.zeros(size, np.int64) for split, size in sizes.items()}
    self.max_value = 0

  def write(self, stream, codes: np.ndarray, rows: np.ndarray) -> None:
    """Writes example i of `stream` to row rows[i] of split data.SPLITS[codes[i]]."""
    start = 0
    for images, labels, names in stream.read():
      fitted = self.fitter.fit(images, names)
      end = start + len(fitted)
      self.max_value = max(self.max_value, int(fitted.max()))
      for code, split in enumerate(data.SPLITS):
        chosen = codes[start:end] == code
        if chosen.any():
          self._file(split, fitted.shape[1:])[rows[start:end][chosen]] = fitted[chosen]
          if labels is not None:
            self.labels[split][rows[start:end][chosen]] = labels[chosen]
      self.progress.add(len(fitted))
      start = end

  def _file(self, split: str, shape: tuple) -> np.ndarray:
    """The memmap of split's uint8 [N, H, W, C] .npy file, created at its first image."""
    if split not in self.images:
      self.images[split] = np.lib.format.open_memmap(
          os.path.join(self.path, f'{split}.npy'), 'w+', np.uint8,
          (self.sizes[split],) + tuple(shape))
    return self.images[split]

  def finish(self, record: dict) -> None:
    """Flushes the split files and writes the labels and info.json (`record` and the rest)."""
    for memmap in self.images.values():
      memmap.flush()
    self.images.clear()
    if self.num_classes is not None:
      for split, labels in self.labels.items():
        np.save(os.path.join(self.path, f'{split}_labels.npy'), labels)
    if not record['binary'] and self.max_value <= 1:
      logging.warning('%s holds only the values 0 and 1: read as intensities 0 and 1/255. '
                      'Binary data is declared, not guessed: save it as a bool array (npy:, '
                      'npz:) or use the built-in binarized_mnist.', record['spec'])
    info = dict(record, image_shape=list(self.fitter.shape), num_classes=self.num_classes,
                split_sizes=self.sizes, prepared=time.time())
    with open(os.path.join(self.path, INFO), 'w', encoding='utf-8') as f:
      json.dump(info, f, indent=1)


# Listing and pruning.


@dataclasses.dataclass(frozen=True)
class Entry:
  """One folder of the cache: its path, name, size in bytes, info (None when unreadable) and
  state: ready, superseded (a newer preparation of the same source exists), old format,
  source gone (its folder or file no longer exists), unfinished (being written, or left by a
  preparation that died) or damaged (no readable info.json)."""

  path: str
  name: str
  bytes: int
  info: dict | None
  state: str


def entries(cache_root: str) -> list:
  """The Entry of every folder in the cache, sorted by name."""
  if not os.path.isdir(cache_root):
    return []
  found = []
  for item in sorted(os.scandir(cache_root), key=lambda item: item.name):
    if not item.is_dir(follow_symlinks=False):
      continue
    info = None
    if is_prepared(item.path):
      try:
        info = read_info(item.path)
      except (OSError, ValueError):
        pass
    found.append([item.path, item.name, _folder_bytes(item.path), info])
  newest = {}
  for _, _, _, info in found:
    if info and info.get('source'):
      newest[info['source']] = max(newest.get(info['source'], 0), info.get('prepared', 0))
  return [Entry(path, name, size, info, _state(name, info, newest))
          for path, name, size, info in found]


def _state(name: str, info, newest: dict) -> str:
  if TEMPORARY in name:
    return 'unfinished'
  if info is None:
    return 'damaged'
  if info.get('format') != CACHE_FORMAT:
    return 'old format'
  if info.get('prepared', 0) < newest.get(info.get('source'), 0):
    return 'superseded'
  if info.get('kind') in ('folder', 'npz', 'npy') and not os.path.exists(info['target']):
    return 'source gone'
  return 'ready'


def _folder_bytes(path: str) -> int:
  total = 0
  for parent, _, filenames in os.walk(path):
    for filename in filenames:
      try:
        total += os.lstat(os.path.join(parent, filename)).st_size
      except OSError:
        pass
  return total


def size_text(num_bytes: int) -> str:
  """Bytes as KiB, MiB or GiB, e.g. '37.4 MiB'."""
  if num_bytes >= 2**30:
    return f'{num_bytes / 2**30:,.2f} GiB'
  if num_bytes >= 2**20:
    return f'{num_bytes / 2**20:,.1f} MiB'
  return f'{num_bytes / 2**10:,.1f} KiB'


def _remove(entry: Entry):
  """Removes the folder of `entry` unless it is in use; None when removed, else why not."""
  if entry.state == 'unfinished':
    newest = max([os.path.getmtime(os.path.join(parent, name))
                  for parent, _, names in os.walk(entry.path) for name in names]
                 + [os.path.getmtime(entry.path)])
    if time.time() - newest < UNFINISHED_SECONDS:
      return 'being written'
    shutil.rmtree(entry.path, ignore_errors=True)
    return None
  lock = None
  if os.path.isfile(os.path.join(entry.path, INFO)):
    lock = open(os.path.join(entry.path, INFO), encoding='utf-8')  # pylint: disable=consider-using-with
    try:
      fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
      lock.close()
      return 'in use' if exc.errno in (errno.EAGAIN, errno.EACCES) else 'cannot lock it'
  try:
    shutil.rmtree(entry.path, ignore_errors=True)
  finally:
    if lock is not None:
      lock.close()
  return None


STALE = ('superseded', 'old format', 'source gone', 'unfinished', 'damaged')


def prune(cache_root: str, everything: bool = False, spec: str | None = None,
          dry_run: bool = False) -> list:
  """Removes the stale entries of the cache (states STALE; unfinished ones only when untouched
  for an hour), or with `everything` all of them, or with `spec` (an absolute spec) those
  prepared from it; folders in use are kept. Returns [(Entry, None or why it was kept)]."""
  chosen = [entry for entry in entries(cache_root)
            if everything or (entry.info and entry.info.get('spec') == spec if spec
                              else entry.state in STALE)]
  if dry_run:
    return [(entry, 'dry run') for entry in chosen]
  return [(entry, _remove(entry)) for entry in chosen]
