"""Dataset specs: the one string that says where a run's images come from.

    mnist | fashion_mnist | binarized_mnist | frey_face    a built-in (tfvae.data)
    tfds:NAME[/CONFIG][:VERSION]                          a TFDS dataset
    folder:PATH                                           PNG and JPEG files under a folder
    npz:PATH, npy:PATH                                    image arrays

A malformed spec is one DataError listing the forms, with a "did you mean" when a built-in name
or a kind is misspelt.
"""

from __future__ import annotations

import dataclasses
import os
import re

from tfvae import data
from tfvae.errors import DataError
from tfvae.errors import closest

PATH_KINDS = ('folder', 'npz', 'npy')
SPEC_FORMS = ('|'.join(data.DATASET_NAMES), 'tfds:NAME[/CONFIG][:VERSION]', 'folder:PATH',
              'npz:PATH', 'npy:PATH')
_TFDS_SPEC = re.compile(  # NAME[/CONFIG][:VERSION]
    r'([a-z][a-z0-9_]*)(?:/([A-Za-z0-9_.+-]+))?(?::([0-9*]+\.[0-9*]+\.[0-9*]+))?')


@dataclasses.dataclass(frozen=True)
class SourceSpec:
  """A parsed spec: kind in builtin/tfds/folder/npz/npy; target = the built-in or TFDS name, or
  the path as written; config and version: a TFDS dataset's (else None)."""

  kind: str
  target: str
  config: str | None = None
  version: str | None = None


def parse_spec(spec: str) -> SourceSpec:
  """The parts of a dataset spec; DataError listing the allowed forms if it is malformed."""
  kind, colon, rest = str(spec).partition(':')
  if not colon and kind in data.DATASET_NAMES:
    return SourceSpec('builtin', kind)
  if kind == 'tfds' and (match := _TFDS_SPEC.fullmatch(rest)):
    return SourceSpec('tfds', *match.groups())
  if kind in PATH_KINDS and rest:
    return SourceSpec(kind, rest)
  raise DataError(f'malformed dataset spec {spec!r}{_suggestion(str(spec))}; use one of '
                  f'{", ".join(SPEC_FORMS)}')


def _suggestion(spec: str) -> str:
  """' (did you mean ...?)' for a misspelt built-in or kind, or a bare TFDS-like name."""
  kind, colon, rest = spec.partition(':')
  if colon:
    match = closest(kind, ('tfds',) + PATH_KINDS)
    return f' (did you mean {match}:{rest}?)' if match and match != kind else ''
  match = closest(spec, data.DATASET_NAMES)
  if match:
    return f' (did you mean {match}?)'
  return f' (a TFDS dataset is tfds:{spec})' if _TFDS_SPEC.fullmatch(spec) else ''


def declared_binary(spec: str) -> bool:
  """Whether a spec's data are binary as far as the spec alone says: a built-in's info; False
  for the rest (a bool array declares itself when it is read). For records from before binary
  was recorded."""
  if not spec:
    return False
  parsed = parse_spec(spec)
  return parsed.kind == 'builtin' and data.dataset_info(parsed.target).binary


def absolute_spec(spec: str) -> str:
  """`spec` with a folder:, npz: or npy: path made absolute, so that a run records where its
  data is whatever folder later tools start in."""
  parsed = parse_spec(spec)
  if parsed.kind in PATH_KINDS:
    return f'{parsed.kind}:{os.path.abspath(os.path.expanduser(parsed.target))}'
  return spec
