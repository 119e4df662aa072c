"""Splits carved out of a source that lacks them: one fixed permutation for every source.

    order = np.random.RandomState(0).permutation(N)
    holdout i (of `holdouts`, in order) = order[i * take:(i + 1) * take],  train = the rest

Frey Face (a built-in) holds out 200 test then 200 valid images and keeps the permutation's
order; a prepared source holds out the missing ones of (test, valid), take = max(1, N // 10),
each split sorted back into source order (`routes`).
"""

from __future__ import annotations

import numpy as np

from tfvae import data
from tfvae.errors import DataError

HOLDOUTS = ('test', 'valid')  # the order in which missing splits are taken from the permutation


def carve(num_examples: int, take: int, holdouts=HOLDOUTS) -> dict:
  """{split: indices into range(num_examples)}, in the permutation's order: each of
  `holdouts` takes `take` examples in turn, 'train' the rest (module docstring)."""
  order = np.random.RandomState(0).permutation(num_examples)
  parts = {split: order[i * take:(i + 1) * take] for i, split in enumerate(holdouts)}
  parts['train'] = order[len(holdouts) * take:]
  return parts


def routes(spec: str, own_sizes: dict) -> tuple:
  """Where each example of a source's own splits goes, its missing valid/test carved out of
  train: ({own split: (index into data.SPLITS [n] int8, row there [n])}, {split: size})."""
  empty = [split for split, size in own_sizes.items() if size == 0]
  if empty:
    raise DataError(f'{spec}: split {empty[0]} has no examples')
  num_train = own_sizes['train']
  missing = [split for split in HOLDOUTS if split not in own_sizes]
  take = max(1, num_train // 10)
  if num_train - take * len(missing) < 1:
    raise DataError(f'{spec}: {num_train} example(s) are too few to carve out '
                    f'{" and ".join(missing)}; need at least {len(missing) + 1}')
  codes = {split: np.full(size, data.SPLITS.index(split), np.int8)
           for split, size in own_sizes.items()}
  for split, indices in carve(num_train, take, missing).items():
    if split != 'train':
      codes['train'][indices] = data.SPLITS.index(split)
  found, sizes = {}, {}
  for own, split_codes in codes.items():
    rows = np.zeros(len(split_codes), np.int64)
    for code in np.unique(split_codes):
      chosen = split_codes == code
      rows[chosen] = np.arange(np.count_nonzero(chosen))
      sizes[data.SPLITS[code]] = int(np.count_nonzero(chosen))
    found[own] = (split_codes, rows)
  return found, {split: sizes[split] for split in data.SPLITS}
