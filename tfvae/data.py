"""What the rest of tfvae knows of a dataset: its info and splits, the training order, and the
images as the model sees them.

* `DatasetInfo` (image shape, binary, classes, split sizes) and `Split` (uint8 images with
  labels): what every reader gives (`tfvae.sources`), whatever the data came from.
* The built-ins, `DATASET_NAMES`, each with the splits `SPLITS` (read by
  `tfvae.sources.builtin` from their upstream files or TFDS):

  * ``mnist`` and ``fashion_mnist``: 28x28 greyscale digits / clothes with 10 classes. ``train``
    is the first 5/6 of the upstream training set, ``valid`` its last 1/6 (``len(train) // 6``
    examples: 50,000 / 10,000 for the real data) and ``test`` the upstream test set.
  * ``binarized_mnist``: the statically binarized MNIST of Larochelle & Murray (2011) with its
    own train / valid / test splits (50,000 / 10,000 / 10,000); pixels are already 0/1.
  * ``frey_face``: 1965 greyscale 28x20 faces without an official split; a fixed permutation
    (``np.random.RandomState(0)``) gives ``test`` = 200, ``valid`` = 200 and ``train`` = the
    rest.

* `index_batches`: the example indices of any training step (a pure function of seed and step).
* `model_input`: a batch as the model sees it: uint8 scaled to [0, 1] (binary data: 0/1 as they
  are), and with `binarize` drawn as x ~ Bernoulli(intensity).

Whether a dataset is binary (its uint8 values are 0/1, not 0..255 intensities) is a property of
the dataset, recorded when it is read or prepared, never guessed from the values of a batch.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import tensorflow as tf

from tfvae import noise
from tfvae.errors import DataError
from tfvae.errors import did_you_mean

DATASET_NAMES = ('binarized_mnist', 'fashion_mnist', 'frey_face', 'mnist')
SPLITS = ('train', 'valid', 'test')


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Static description of a dataset; `split_sizes` maps each of `SPLITS` to its example count;
  `binary`: its uint8 values are 0/1 (not intensities 0..255)."""

  name: str
  image_shape: tuple
  binary: bool
  num_classes: int | None
  split_sizes: dict


@dataclasses.dataclass(frozen=True)
class Split:
  """One split: images uint8 [N, H, W, C], labels int64 [N] or None, and its info."""

  images: np.ndarray
  labels: np.ndarray | None
  info: DatasetInfo


def _mnist_like_info(name: str, binary: bool, num_classes: int | None) -> DatasetInfo:
  """Info for a 28x28 MNIST-style dataset with the canonical 50k/10k/10k split sizes."""
  sizes = {'train': 50_000, 'valid': 10_000, 'test': 10_000}
  return DatasetInfo(name, (28, 28, 1), binary, num_classes, sizes)


_INFOS = {
    'binarized_mnist': _mnist_like_info('binarized_mnist', binary=True, num_classes=None),
    'fashion_mnist': _mnist_like_info('fashion_mnist', binary=False, num_classes=10),
    'frey_face': DatasetInfo('frey_face', (28, 20, 1), False, None,
                             {'train': 1565, 'valid': 200, 'test': 200}),
    'mnist': _mnist_like_info('mnist', binary=False, num_classes=10),
}


def dataset_info(name: str) -> DatasetInfo:
  """The DatasetInfo of the built-in `name` with the canonical split sizes of the real data."""
  if name not in _INFOS:
    raise DataError(f'unknown dataset {name!r}{did_you_mean(name, DATASET_NAMES)}; choose one '
                    f'of {", ".join(DATASET_NAMES)}')
  return _INFOS[name]


def check_split(name: str, split: str) -> None:
  """DataError unless `split` is one of SPLITS (`name`: the dataset, for the message)."""
  if split not in SPLITS:
    raise DataError(f'{name}: unknown split {split!r}; choose one of {", ".join(SPLITS)}'
                    f'{did_you_mean(split, SPLITS)}')


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Full batches in one pass over num_examples (the remainder is left out that epoch);
  DataError if there is not even one."""
  if batch_size > num_examples:
    raise DataError(f'batch size {batch_size} exceeds the {num_examples} training examples; '
                    'use a smaller batch_size')
  return num_examples // batch_size


def index_batches(num_examples: int, batch_size: int, seed: int, start_step: int,
                  num_steps: int) -> np.ndarray:
  """The example indices of training steps [start_step, start_step + num_steps): int32
  [num_steps, batch_size].

  Step s takes rows (s mod E) * B ... + B of epoch s // E's permutation of the examples
  (E = steps_per_epoch, B = batch_size; the permutation is seeded by (seed, epoch)). The data
  order is a pure function of (seed, step), so a resumed run sees exactly the batches an
  uninterrupted one would.
  """
  per_epoch = steps_per_epoch(num_examples, batch_size)
  out = np.empty((num_steps, batch_size), np.int32)
  step, end = start_step, start_step + num_steps
  while step < end:  # one epoch's run of steps at a time
    epoch, first = divmod(step, per_epoch)
    count = min(per_epoch - first, end - step)
    order = _epoch_permutation(num_examples, seed, epoch)
    out[step - start_step:step - start_step + count] = order[
        first * batch_size:(first + count) * batch_size].reshape(count, batch_size)
    step += count
  return out


@functools.lru_cache(maxsize=4)
def _epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """A permutation of range(num_examples), int32, fixed by (seed, epoch)."""
  order = np.random.default_rng([seed, epoch]).permutation(num_examples).astype(np.int32)
  order.setflags(write=False)
  return order


def to_float(images, info: DatasetInfo) -> tf.Tensor:
  """uint8 images [B, H, W, C] -> float32 intensities in [0, 1] (binary data: 0/1 as is);
  float images are intensities already and pass as they are."""
  images = tf.convert_to_tensor(images)
  if images.dtype.is_floating:
    return tf.cast(images, tf.float32)
  return tf.cast(images, tf.float32) / (1.0 if info.binary else 255.0)


def model_input(images, info: DatasetInfo, binarize: bool, key=None, rows=None,
                step=0) -> tf.Tensor:
  """What the model sees of images [B, H, W, C] (uint8, or float intensities): their
  intensities in [0, 1], or with `binarize` (greyscale data only; binary data pass as they are)
  x ~ Bernoulli(intensity), drawn by noise.bernoulli from `key`, the images' rows (ids [B]) and
  `step`."""
  x = to_float(images, info)
  if not binarize or info.binary:
    return x
  return noise.bernoulli(x, key, rows, step)
