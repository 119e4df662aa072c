"""The `dataset=` of tfvae.train and KerasVAE.save_run: a spec string, or images held in Python
(NumPy arrays, a tf.data dataset) saved into the run directory, so that the run stays
reproducible and every tool reads its data from there without being told.

    spec string         'mnist', 'tfds:NAME', 'folder:PATH', 'npz:PATH', 'npy:PATH' (tfvae.sources)
    images              uint8 [N, H, W] or [N, H, W, C]       -> RUN_DIR/dataset.npy   (npy:)
                        (bool for binary 0/1 data, which declares it binary; else intensities)
    (images, labels)    labels integer [N]                      -> RUN_DIR/dataset.npz   (npz:)
    {'train': x, 'valid': x, 'test': x, 'train_labels': y, ...} -> RUN_DIR/dataset.npz   (npz:)
    tf.data.Dataset     finite; elements images [H, W(, C)] or batches of them, alone, in
                        (image, label) pairs or dicts {'image', 'label'}; read once -> as above

A lone array (or pair) is split by tfvae.sources' fixed carve-out: test = the first
max(1, N // 10) of np.random.RandomState(0).permutation(N), valid the next max(1, N // 10),
train the rest. A dict gives its own splits (valid or test carved out of train when missing).
A resumed run takes the same images again (or none: the saved ones); other images are an error,
never silently written over the run's.
"""

import os
import tempfile

from absl import logging
import numpy as np
import tensorflow as tf

from tfvae import data
from tfvae import sources
from tfvae.run_dir import RunDirError

ARRAY_FILE = 'dataset.npy'   # a lone image array
ARRAYS_FILE = 'dataset.npz'  # split arrays, or images with labels
SPLIT_KEYS = ('train', 'valid', 'validation', 'test')
FORMS = ('a dataset spec string (' + ', '.join(sources.SPEC_FORMS) + '), uint8 (or bool) '
         'images [N, H, W] or [N, H, W, C], an (images, labels) pair, a dict of split arrays '
         '{train, valid, test[, <split>_labels]}, or a finite tf.data.Dataset of images')
_CHUNK_BYTES = 1 << 26  # bytes of images copied at once


def spec_for(dataset, run_dir, check=None):
  """The dataset spec a run records for `dataset` (see the module doc; None: None, the
  config's). Arrays and tf.data datasets are written into run_dir (a RunDir) unless the run
  there already holds them, after check(images) (if given) has seen each image array;
  DataError (one line) for anything else, RunDirError if the run holds other images."""
  if dataset is None or isinstance(dataset, str):
    if dataset is not None:
      sources.parse_spec(dataset)  # a malformed spec fails here, with the forms listed
    return dataset
  if isinstance(dataset, tf.data.Dataset):
    return _save_tf_data(dataset, run_dir, check)
  if isinstance(dataset, dict):
    return _save_arrays(_checked_splits(dataset), run_dir, check)
  if isinstance(dataset, tuple) and len(dataset) == 2:
    images = _checked_images('images', dataset[0])
    labels = _checked_labels('labels', dataset[1], len(images))
    return _save_arrays({'images': images, 'images_labels': labels}, run_dir, check)
  if isinstance(dataset, np.ndarray) or hasattr(dataset, '__array__'):
    return _save_arrays({'images': _checked_images('images', dataset)}, run_dir, check)
  raise data.DataError(f'dataset= got a {type(dataset).__name__}; give {FORMS}')


def _checked_images(name, images, at_least=3):
  """`images` as a uint8 array [N, H, W] or [N, H, W, C] (bool, binary data, kept as bool),
  or a one-line DataError."""
  array = np.asarray(images)
  if array.ndim not in (3, 4) or (array.ndim == 4 and not 1 <= array.shape[3] <= 4):
    raise data.DataError(f'dataset {name} have shape {array.shape}; expected images [N, H, W] '
                         'or [N, H, W, C] with C in 1..4')
  if len(array) < at_least:
    raise data.DataError(f'dataset {name} hold {len(array)} images; need at least {at_least}'
                         + (' (one each for train, valid and test)' if at_least == 3 else ''))
  if array.dtype not in (np.uint8, np.bool_):
    if not np.issubdtype(array.dtype, np.integer):
      raise data.DataError(f'dataset {name} have dtype {array.dtype}; give uint8 values '
                           '0..255 (e.g. np.round(x * 255).astype(np.uint8) for floats in '
                           '[0, 1]), or bool for binary data')
    if array.size and (array.min() < 0 or array.max() > 255):
      raise data.DataError(f'dataset {name} hold values from {array.min()} to {array.max()}; '
                           'give uint8 values 0..255')
    array = array.astype(np.uint8)
  return array


def _checked_labels(name, labels, count):
  """`labels` as an int64 array [count] of non-negative integers, or a one-line DataError."""
  array = np.asarray(labels)
  if (array.shape != (count,) or not np.issubdtype(array.dtype, np.integer)
      or (array.size and array.min() < 0)):
    raise data.DataError(f'dataset {name} have shape {array.shape} and dtype {array.dtype}; '
                         f'expected non-negative integers of shape ({count},)')
  return array.astype(np.int64)


def _checked_splits(splits):
  """A dict of split arrays as the arrays of an .npz the npz: source reads."""
  unknown = [k for k in splits if k not in SPLIT_KEYS
             and not (k.endswith('_labels') and k[:-len('_labels')] in splits)]
  if unknown or 'train' not in splits:
    problem = f'has the unknown key(s) {", ".join(map(repr, unknown))}' if unknown else (
        'has no train')
    raise data.DataError(f'the dataset dict {problem}; expected train with optional valid (or '
                         'validation) and test, each with optional <split>_labels')
  images = {k: _checked_images(k, v, at_least=1) for k, v in splits.items() if k in SPLIT_KEYS}
  shapes = {k: v.shape[1:] if v.ndim == 4 else v.shape[1:] + (1,) for k, v in images.items()}
  if len(set(shapes.values())) > 1:
    raise data.DataError('the dataset dict\'s splits have images of different shapes ('
                         + ', '.join(f'{k} {s}' for k, s in shapes.items()) + '); give one shape')
  labelled = [k for k in images if f'{k}_labels' in splits]
  if labelled and len(labelled) != len(images):
    raise data.DataError('the dataset dict has labels for ' + ', '.join(labelled) + ' only; give '
                         '<split>_labels for every split or for none')
  return dict(images, **{f'{k}_labels': _checked_labels(f'{k}_labels', splits[f'{k}_labels'],
                                                        len(images[k])) for k in labelled})


def _target(arrays, run_dir):
  """(path, spec) where `arrays` go in run_dir: a lone array as .npy, else an .npz."""
  if '://' in run_dir.path:
    raise data.DataError(f'images given as arrays are saved into the run directory, which must '
                         f'be a local folder, not {run_dir.path}; save them as .npy yourself and '
                         'pass dataset="npy:PATH"')
  name, kind = (ARRAY_FILE, 'npy') if list(arrays) == ['images'] else (ARRAYS_FILE, 'npz')
  path = os.path.abspath(os.path.join(run_dir.path, name))
  return path, f'{kind}:{path}'


def _saved_matches(path, arrays):
  """Whether the file at `path` holds exactly `arrays` (compared in chunks)."""
  if path.endswith('.npy'):
    saved = {'images': np.load(path, mmap_mode='r')}
  else:
    with np.load(path) as npz:
      saved = {k: npz[k] for k in npz.files}
  if sorted(saved) != sorted(arrays):
    return False
  for key, array in arrays.items():
    if saved[key].shape != array.shape or saved[key].dtype != array.dtype:
      return False
    rows = max(1, _CHUNK_BYTES // max(1, array[:1].nbytes))
    if any(not np.array_equal(saved[key][i:i + rows], array[i:i + rows])
           for i in range(0, len(array), rows)):
      return False
  return True


def _check_resumable(run_dir, spec, path, matches):
  """RunDirError unless the run in run_dir (if any) trains on `spec`, whose file at `path`
  `matches()` what was given."""
  if not run_dir.has_config():
    return False
  recorded = run_dir.load().config.dataset
  if recorded != spec or not os.path.isfile(path) or not matches():
    raise RunDirError(f'{run_dir.path} holds a run on {recorded}, not on these images: leave '
                      'dataset= out to resume it, or use a new run_dir')
  return True


def _save_arrays(arrays, run_dir, check=None):
  """Writes `arrays` ({'images': x} or .npz keys) into run_dir (atomically), after
  check(images) of each image array; returns the spec."""
  path, spec = _target(arrays, run_dir)
  if _check_resumable(run_dir, spec, path, lambda: _saved_matches(path, arrays)):
    return spec
  for key, array in arrays.items():
    if check and not key.endswith('_labels'):
      check(array)
  os.makedirs(run_dir.path, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix='.dataset-', suffix=os.path.splitext(path)[1],
                             dir=run_dir.path)
  os.close(fd)
  try:
    if path.endswith('.npy'):
      np.save(tmp, arrays['images'])
    else:
      np.savez(tmp, **arrays)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  logging.info('Saved the dataset (%s) to %s.', ', '.join(
      f'{k} {"x".join(map(str, v.shape))}' for k, v in arrays.items()), path)
  return spec


def _element_parts(element_spec):
  """(images spec, labels spec or None, how to take them from an element) of a tf.data
  element: a tensor, an (image, label) pair, or a dict with 'image' (and 'label')."""
  if isinstance(element_spec, tf.TensorSpec):
    return element_spec, None, lambda e: (e, None)
  if isinstance(element_spec, tuple) and len(element_spec) == 2:
    return element_spec[0], element_spec[1], lambda e: e
  if isinstance(element_spec, dict) and 'image' in element_spec:
    return (element_spec['image'], element_spec.get('label'),
            lambda e: (e['image'], e.get('label')))
  raise data.DataError(f'a tf.data dataset with elements {element_spec} cannot be read; give '
                       'elements that are images, (image, label) pairs or dicts with an '
                       '"image" (and "label") key')


def _save_tf_data(dataset, run_dir, check=None):
  """Reads a finite tf.data dataset once, in chunks, into run_dir like arrays (a batch at a
  time: a dataset larger than memory is written through a memory-mapped file)."""
  if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
    raise data.DataError('the tf.data dataset is infinite (repeat() without a count); give a '
                         'finite one: it is read once into the run directory')
  image_spec, label_spec, parts = _element_parts(dataset.element_spec)
  rank, dims = image_spec.shape.rank, image_spec.shape.as_list() if image_spec.shape.rank else []
  # Batches: [B, H, W, C], or [B, H, W] with an unknown batch size; else single images.
  batched = rank == 4 or (rank == 3 and dims[0] is None)
  if rank not in (2, 3, 4):
    raise data.DataError(f'the tf.data dataset\'s images have shape {image_spec.shape}; expected '
                         '[H, W], [H, W, C] or batches of them')
  if label_spec is not None and (not label_spec.dtype.is_integer
                                 or label_spec.shape.rank != int(batched)):
    raise data.DataError(f'the tf.data dataset\'s labels are {label_spec}; expected one integer '
                         'per image')
  os.makedirs(run_dir.path, exist_ok=True)
  logging.info('Reading the tf.data dataset into %s.', run_dir.path)
  raw = tempfile.TemporaryFile(dir=run_dir.path)
  count, shape, dtype, labels = 0, None, None, []
  with raw:
    for element in dataset.as_numpy_iterator():
      images, label = parts(element)
      images = np.asarray(images)
      images = images if batched else images[None]
      images = _checked_images('images', images, at_least=0)
      if shape is None:
        shape, dtype = images.shape[1:], images.dtype
      if images.shape[1:] != shape:
        raise data.DataError(f'the tf.data dataset has images of shape {shape} and '
                             f'{images.shape[1:]}; give images of one shape')
      raw.write(images.tobytes())
      count += len(images)
      if label is not None:
        labels.append(np.reshape(label, [-1]))
    if count < 3:
      raise data.DataError(f'the tf.data dataset holds {count} images; need at least 3 (one '
                           'each for train, valid and test)')
    images = _copy_to_memmap(raw, (count,) + shape, dtype, run_dir)
  try:
    arrays = {'images': images}
    if labels:
      arrays['images_labels'] = _checked_labels('labels', np.concatenate(labels), count)
    return _save_arrays(arrays, run_dir, check)
  finally:
    path = images.filename
    del images, arrays
    os.remove(path)


def _copy_to_memmap(raw, shape, dtype, run_dir):
  """The bytes of file `raw` as an array of `shape` and `dtype` (one byte an element: uint8
  or bool), memory-mapped in run_dir."""
  fd, path = tempfile.mkstemp(prefix='.dataset-read-', suffix='.npy', dir=run_dir.path)
  os.close(fd)
  array = np.lib.format.open_memmap(path, 'w+', dtype, shape)
  flat = array.reshape(-1).view(np.uint8)
  raw.seek(0)
  for start in range(0, flat.size, _CHUNK_BYTES):
    chunk = raw.read(_CHUNK_BYTES)
    flat[start:start + len(chunk)] = np.frombuffer(chunk, np.uint8)
  array.flush()
  return array
