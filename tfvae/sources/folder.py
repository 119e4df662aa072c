"""``folder:PATH`` sources: the PNG and JPEG files under a folder.

The ``.png``, ``.jpg`` and ``.jpeg`` files (any case) under PATH, recursively, in sorted order of
relative path (hidden files and folders, ``.name``, are skipped: macOS's ``._name.png`` are not
images). With a ``PATH/train`` folder, ``train/``, ``valid/`` (or ``validation/``) and ``test/``
are the splits (nothing else is read); else all of PATH is one pool. The first folder level
below PATH (below the split folder if there are split folders) names the class: label = index
among the sorted class folder names; if any file sits directly in PATH (or a split folder), the
whole dataset has no labels. Their pixels are intensities (never binary). Signed by every
file's relative path, size and modification time.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from tfvae.errors import DataError
from tfvae.sources import streams

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')


def _image_files(spec: str, folder: str) -> list:
  """Sorted relative paths (with /) of the image files under `folder`, hidden ones (.name)
  left out; DataError if there are none."""
  found = []
  for parent, subfolders, filenames in os.walk(folder):
    subfolders[:] = [name for name in subfolders if not name.startswith('.')]
    found += [os.path.relpath(os.path.join(parent, filename), folder).replace(os.sep, '/')
              for filename in filenames
              if filename.lower().endswith(IMAGE_EXTENSIONS) and not filename.startswith('.')]
  if not found:
    raise DataError(f'{spec}: no image files ({", ".join(IMAGE_EXTENSIONS)}, any case) '
                    f'under {folder}')
  return sorted(found)


def _split_folders(spec: str, root: str) -> dict:
  """{own split: folder}: train/ and valid/ (or validation/) and test/ if root has train/,
  else {'train': root} (a pool to carve)."""
  if not os.path.isdir(os.path.join(root, 'train')):
    return {'train': root}
  valid = [name for name in ('valid', 'validation') if os.path.isdir(os.path.join(root, name))]
  if len(valid) > 1:
    raise DataError(f'{spec}: {root} has both valid/ and validation/; keep one')
  names = {'train': 'train', 'valid': valid[0] if valid else None, 'test': 'test'}
  return {split: os.path.join(root, name) for split, name in names.items()
          if name and os.path.isdir(os.path.join(root, name))}


def decode_image(path: str) -> np.ndarray:
  """The PNG or JPEG file `path` as uint8 [h, w, c]; DataError naming it if it cannot be read."""
  try:
    with open(path, 'rb') as f:
      contents = f.read()
    return tf.io.decode_image(contents, dtype=tf.uint8, expand_animations=False).numpy()
  except (OSError, tf.errors.OpError) as exc:
    raise DataError(f'cannot decode {path} as a PNG or JPEG image '
                    f'({streams.tf_message(exc)})') from exc


def resolve(spec: str, parsed, data_dir: str | None) -> streams.Resolved:
  """A folder of PNG/JPEG files (module docstring)."""
  del data_dir  # Paths are relative to the current folder.
  root = os.path.abspath(os.path.expanduser(parsed.target))
  if not os.path.isdir(root):
    raise DataError(f'{spec}: folder {root} does not exist')
  folders = _split_folders(spec, root)
  files = {split: _image_files(spec, folder) for split, folder in folders.items()}
  class_of = {split: [rel.split('/')[0] if '/' in rel else None for rel in rels]
              for split, rels in files.items()}
  all_classes = [name for names in class_of.values() for name in names]
  classes = None if None in all_classes else sorted(set(all_classes))
  paths = {split: [os.path.join(folders[split], rel) for rel in rels]
           for split, rels in files.items()}
  signature = [[os.path.relpath(path, root)] + streams.file_signature(path)
               for split in files for path in paths[split]]
  label_of = {name: label for label, name in enumerate(classes or [])}

  def stream(split):
    split_paths = paths[split]
    labels = None if classes is None else np.array([label_of[c] for c in class_of[split]])

    def read():
      for start in range(0, len(split_paths), streams.MAX_CHUNK):
        chunk = split_paths[start:start + streams.MAX_CHUNK]
        yield (map(decode_image, chunk),
               None if labels is None else labels[start:start + streams.MAX_CHUNK], chunk)

    return streams.Stream(len(split_paths), read)

  return streams.Resolved(root, signature, False, lambda: (
      {split: stream(split) for split in files}, None if classes is None else len(classes)))
