"""The one TFDS reader: ``tfds:NAME[/CONFIG][:VERSION]`` sources, and the built-ins when no
data_dir is given.

A dataset prepared in data_dir is read from its files by name (TFDS's read-only builder), so its
builder class need not be importable; one that is not prepared is downloaded and prepared, after
a probe of TFDS's download host (`check_reachable`) that fails in seconds when offline, where
TFDS would retry for minutes. Images: the `tfds.features.Image` feature named ``image``, else
the first Image feature; labels: a `ClassLabel` named ``label``, else none. Splits: ``train``,
``validation`` (or ``valid``) and ``test``, read in file order.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket

import numpy as np
import tensorflow as tf

from tfvae.errors import DataError
from tfvae.errors import describe
from tfvae.errors import did_you_mean
from tfvae.sources import streams

DOWNLOAD_HOST = 'storage.googleapis.com'
PREPARED_FIX = 'pass --data_dir=DIR holding the prepared dataset'
_OWN_SPLITS = (('train', ('train',)), ('valid', ('validation', 'valid')), ('test', ('test',)))


@contextlib.contextmanager
def _quiet_lookup():
  """Drops TFDS's 'Variant folder ... has no dataset_info.json' warnings inside the block: TFDS
  logs one for each folder it looks in while finding a dataset that is not prepared there,
  which is what tfvae is about to say (or to download)."""
  def keep(record):
    return 'has no dataset_info.json' not in record.getMessage()
  logger = logging.getLogger('absl')
  logger.addFilter(keep)
  try:
    yield
  finally:
    logger.removeFilter(keep)


def check_reachable(label: str, fix: str) -> None:
  """DataError (`label`: the dataset, `fix`: what to do) unless TFDS's download host answers
  within 5 s."""
  try:
    socket.create_connection((DOWNLOAD_HOST, 443), timeout=5).close()
  except OSError as exc:
    raise DataError(f'{label}: it is not in the TFDS cache and {DOWNLOAD_HOST} cannot be '
                    f'reached to download it ({describe(exc)}); {fix}') from exc


def prepared_builder(label: str, name: str, data_dir: str | None, fix: str):
  """The TFDS builder of `name` (NAME[/CONFIG][:VERSION]), registered or read-only from files
  prepared in data_dir, downloaded and prepared first when it is not."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  try:
    with _quiet_lookup():
      builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.DatasetNotFoundError as exc:
    where = data_dir or 'the default TFDS data dir'
    known = tfds.list_builders(with_community_datasets=False)
    raise DataError(f'{label}: TFDS has no dataset {name!r}'
                    f'{did_you_mean(name.split("/")[0].split(":")[0], known)}: it is neither '
                    f'registered nor prepared in {where}') from exc
  except Exception as exc:  # Any other TFDS failure (unknown config or version, ...).
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(':')
    raise DataError(f'{label}: TFDS cannot open {name!r} ({first_line[:300]})') from exc
  with _quiet_lookup():
    prepared = builder.is_prepared()
  if not prepared:
    check_reachable(label, fix)
    try:
      builder.download_and_prepare()
    except Exception as exc:  # Any download or preparation failure is a DataError.
      raise DataError(f'{label}: TFDS could not download and prepare it ({describe(exc)}); '
                      f'{fix}') from exc
  return builder


def image_feature(label: str, builder) -> tuple:
  """(image feature key, number of classes or None) of a builder (module docstring)."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  features = builder.info.features
  images = [key for key, f in features.items() if isinstance(f, tfds.features.Image)]
  if not images:
    raise DataError(f'{label}: TFDS dataset {builder.info.full_name} has no image feature; '
                    f'its features are {", ".join(features.keys())}')
  image_key = 'image' if 'image' in images else images[0]
  if features[image_key].np_dtype != np.uint8:
    raise DataError(f'{label}: its image feature {image_key!r} has dtype '
                    f'{features[image_key].np_dtype.__name__}; only uint8 is supported')
  label_feature = features['label'] if 'label' in features.keys() else None
  num_classes = (label_feature.num_classes
                 if isinstance(label_feature, tfds.features.ClassLabel) else None)
  return image_key, num_classes


def own_splits(label: str, builder) -> dict:
  """{split of data.SPLITS: TFDS split name} of the splits the dataset has; train required."""
  own = {}
  for split, names in _OWN_SPLITS:
    found = [name for name in names if name in builder.info.splits]
    if found:
      own[split] = found[0]
  if 'train' not in own:
    raise DataError(f'{label}: TFDS dataset {builder.info.full_name} has no train split; '
                    f'its splits are {", ".join(builder.info.splits)}')
  return own


def _chunks(label: str, builder, split: str, image_key: str, num_classes: int | None):
  """(images, labels, names) chunks of TFDS split `split` in file order: chunks of a fixed
  image shape, else one image a chunk."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  shape = builder.info.features[image_key].shape
  rows = streams.chunk_rows(int(np.prod(shape))) if None not in shape else 1
  dataset = builder.as_dataset(split=split, shuffle_files=False)
  dataset = dataset.map(lambda example: (
      example[image_key], example['label'] if num_classes is not None else 0)).batch(rows)
  start = 0
  try:
    for images, labels in tfds.as_numpy(dataset):
      names = [f'{split} example {i}' for i in range(start, start + len(images))]
      yield images, labels.astype(np.int64) if num_classes is not None else None, names
      start += len(images)
  except tf.errors.OpError as exc:
    raise DataError(f'{label}: cannot read TFDS split {split} '
                    f'({streams.tf_message(exc)})') from exc


def read_split(label: str, builder, split: str, image_key: str, num_classes: int | None) -> tuple:
  """(images uint8 [N, h, w, c], labels int64 [N] or None): TFDS split `split` of one image
  shape, read into memory."""
  chunks = list(_chunks(label, builder, split, image_key, num_classes))
  return (np.concatenate([images for images, _, _ in chunks]),
          None if num_classes is None else np.concatenate([labels for _, labels, _ in chunks]))


def resolve(spec: str, parsed, data_dir: str | None) -> streams.Resolved:
  """A ``tfds:`` source (module docstring): signed by its full name, version and split sizes."""
  name = (parsed.target + (f'/{parsed.config}' if parsed.config else '')
          + (f':{parsed.version}' if parsed.version else ''))
  builder = prepared_builder(spec, name, data_dir, PREPARED_FIX)
  image_key, num_classes = image_feature(spec, builder)
  own = own_splits(spec, builder)
  sizes = {name: builder.info.splits[name].num_examples for name in own.values()}
  signature = [builder.info.full_name, str(builder.version), sizes]

  def open_streams():
    return ({split: streams.Stream(size, functools.partial(_chunks, spec, builder, name,
                                                           image_key, num_classes))
             for (split, name), size in zip(own.items(), sizes.values())}, num_classes)

  return streams.Resolved(builder.data_dir, signature, False, open_streams)
