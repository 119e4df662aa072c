"""``npz:PATH`` and ``npy:PATH`` sources: image arrays.

Arrays [N, H, W] or [N, H, W, C] (C in 1..4) under the keys ``train``, ``valid`` (or
``validation``) and ``test`` of an .npz, or exactly one array under any key; each with optional
integer labels under ``<key>_labels``. ``npy:PATH``: one such array. uint8 arrays are
intensities 0..255 (integer arrays with all values in 0..255 are accepted and cast); bool arrays
are binary data (0/1), the one way an array declares itself binary. An .npz array is read into
memory whole, a .npy one is memory-mapped. PATH is relative to the current folder; the file's
size and modification time sign it.
"""

from __future__ import annotations

import functools
import os
import zipfile

import numpy as np

from tfvae.errors import DataError
from tfvae.errors import describe
from tfvae.sources import streams

_SPLIT_KEYS = {'train': 'train', 'valid': 'valid', 'validation': 'valid', 'test': 'test'}


def _existing_file(spec: str, path: str) -> str:
  """The absolute path of the file `path`; DataError if there is none."""
  path = os.path.abspath(os.path.expanduser(path))
  if not os.path.isfile(path):
    raise DataError(f'{spec}: file {path} does not exist')
  return path


def _binary(spec: str, dtypes: dict) -> bool:
  """Whether the image arrays {key: dtype} are bool (binary); DataError if only some are."""
  kinds = {key: dtype == np.bool_ for key, dtype in dtypes.items()}
  if len(set(kinds.values())) > 1:
    bool_key = next(key for key, is_bool in kinds.items() if is_bool)
    other = next(key for key, is_bool in kinds.items() if not is_bool)
    raise DataError(f'{spec}: {bool_key} is bool (binary) but {other} is {dtypes[other]}; give '
                    'every image array the same kind: bool for 0/1 data, uint8 for intensities')
  return any(kinds.values())


def resolve_npy(spec: str, parsed, data_dir: str | None) -> streams.Resolved:
  """One .npy image array, carved into three splits."""
  del data_dir  # Paths are relative to the current folder.
  path = _existing_file(spec, parsed.target)
  try:
    array = np.load(path, mmap_mode='r', allow_pickle=False)
  except (OSError, ValueError) as exc:
    raise DataError(f'{spec}: cannot read {path} as a .npy array ({describe(exc)})') from exc
  stream = streams.array_stream(lambda: array, array.shape, array.dtype, None, path)
  return streams.Resolved(path, streams.file_signature(path), array.dtype == np.bool_,
                          lambda: ({'train': stream}, None))


def _npz_headers(spec: str, path: str) -> dict:
  """{key: (shape, dtype)} of the arrays in the .npz file `path`, read from their headers."""
  headers = {}
  try:
    with zipfile.ZipFile(path) as archive:
      for member in archive.namelist():
        with archive.open(member) as f:
          version = np.lib.format.read_magic(f)
          read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                         else np.lib.format.read_array_header_2_0)
          shape, _, dtype = read_header(f)
        headers[member.removesuffix('.npy')] = (shape, dtype)
  except (OSError, ValueError, zipfile.BadZipFile) as exc:
    raise DataError(f'{spec}: cannot read {path} as a .npz file ({describe(exc)})') from exc
  return headers


def _npz_split_keys(spec: str, path: str, keys: list) -> dict:
  """{own split: key} of an .npz's image arrays: train/valid/validation/test, or its only one."""
  image_keys = [key for key in keys if not (key.endswith('_labels') and key[:-7] in keys)]
  own = {_SPLIT_KEYS[key]: key for key in image_keys if key in _SPLIT_KEYS}
  if 'train' in own and len(own) == len(image_keys):
    return own
  if len(image_keys) == 1:
    return {'train': image_keys[0]}
  raise DataError(f'{spec}: {path} has the keys {", ".join(keys) or "(none)"}; expected '
                  'train with optional valid (or validation) and test, or exactly one '
                  'image array, each with optional <key>_labels')


def _npz_array(path: str, key: str) -> np.ndarray:
  """The array under `key` in the .npz file `path`, read into memory."""
  with np.load(path, allow_pickle=False) as npz:
    return npz[key]


def resolve_npz(spec: str, parsed, data_dir: str | None) -> streams.Resolved:
  """An .npz with split arrays, or one array to carve."""
  del data_dir  # Paths are relative to the current folder.
  path = _existing_file(spec, parsed.target)
  headers = _npz_headers(spec, path)
  own = _npz_split_keys(spec, path, list(headers))
  labelled = [key for key in own.values() if f'{key}_labels' in headers]
  if labelled and len(labelled) != len(own):
    unlabelled = sorted(set(own.values()) - set(labelled))
    raise DataError(f'{spec}: {path} has {labelled[0]}_labels but no {unlabelled[0]}_labels; '
                    'give labels for every image array or for none')
  binary = _binary(spec, {key: headers[key][1] for key in own.values()})
  labels = {key: _npz_array(path, f'{key}_labels') for key in labelled}
  split_streams = {split: streams.array_stream(functools.partial(_npz_array, path, key),
                                               *headers[key], labels.get(key), f'{path} key {key}')
                   for split, key in own.items()}
  num_classes = int(max(y.max() for y in labels.values())) + 1 if labels else None
  return streams.Resolved(path, streams.file_signature(path), binary,
                          lambda: (split_streams, num_classes))
