#!/usr/bin/env python
"""Photo tiles: a colour dataset cut from real photographs, and the bits/dim of trained colour
runs on its test tiles beside lossless PNG and WebP of the same tiles.

    python bench/photos.py --photos_dir=../shared/data/photos --out=/tmp/colour/photos.npz
    python bin/train.py --config=conv_hvae_pixelcnn --dataset=npz:/tmp/colour/photos.npz \\
        --run_dir=/tmp/colour/runs/hvae_pixelcnn --max_train_minutes=30
    python bench/photos.py --out=/tmp/colour/photos.npz \\
        --run=/tmp/colour/runs/hvae_pixelcnn --run=/tmp/colour/runs/hvae

Each photo (RGB, 8-bit) is split by columns into three bands that share no pixel:

    | train: random crops, overlapping | valid: tiles | test: tiles |   (left to right)

the test band its rightmost round(test_fraction * W / S) * S columns, the valid band the
round(valid_fraction * W / S) * S columns left of it (at least S each), S = --size. The test
(and valid) images are the non-overlapping S x S tiles of their band, from its top-left corner;
the training images are --num_train random S x S crops lying wholly in the train band, shared
among the photos in proportion to their train bands' areas. No crop touches a valid or test
pixel. The .npz holds uint8 arrays train [N, S, S, 3], valid and test (what --dataset=npz:PATH
reads), and the tiles are shuffled (seeded).

The reference: the test tiles laid out as one mosaic (shuffled, ceil(sqrt(n)) tiles a row, the
empty cells of the last row black), written by Pillow as PNG (optimize, level 9) and as
lossless WebP (method 6, the slowest and smallest), bits/dim = 8 * bytes / (n * S * S * 3): no
per-file headers, and no tile beside its true neighbour. Each --run is evaluated on the same
test tiles by bin/evaluate.py (importance-weighted, K = --num_importance_samples), whose
bits/dim is -log2 p(x) per sub-pixel; the ELBO's bits/dim is printed beside it.
"""

import io
import json
import math
import os
import sys

from absl import app
from absl import flags
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import children  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string('photos_dir', os.path.join(children.ROOT, '..', 'shared', 'data', 'photos'),
                    'Folder of photographs (.png, .jpg).')
flags.DEFINE_string('out', None, 'The .npz to write (or, with --nowrite, to read).')
flags.DEFINE_bool('write', True, 'Make the .npz from --photos_dir (else read --out as it is).')
flags.DEFINE_integer('size', 32, 'Side S of the crops and tiles.', lower_bound=4)
flags.DEFINE_integer('num_train', 20000, 'Training crops.', lower_bound=1)
flags.DEFINE_float('test_fraction', 0.25, 'Width of each photo\'s test band.', lower_bound=0)
flags.DEFINE_float('valid_fraction', 0.1, 'Width of each photo\'s valid band.', lower_bound=0)
flags.DEFINE_integer('seed', 0, 'Seed of the crops and of the shuffles.')
flags.DEFINE_multi_string('run', [], 'Run directories of colour configs trained on --out.')
flags.DEFINE_integer('num_importance_samples', 100, 'K for bin/evaluate.py.', lower_bound=1)
flags.DEFINE_string('checkpoint', 'latest', 'Checkpoint of each run: latest or best.')
flags.DEFINE_integer('timeout', 3600, 'Seconds allowed to each evaluation.', lower_bound=1)
flags.DEFINE_bool('verbose', False, 'Echo the evaluations\' output.')

EXTENSIONS = ('.png', '.jpg', '.jpeg')


class Bands:
  """The column bands of one W-wide photo (module docstring): [start, stop) of each."""

  def __init__(self, width, size, test_fraction, valid_fraction):
    test = size * max(1, round(test_fraction * width / size))
    valid = size * max(1, round(valid_fraction * width / size))
    if test + valid + size > width:
      raise ValueError(f'a photo {width} pixels wide has no room for a train band beside '
                       f'{valid}-pixel valid and {test}-pixel test bands of {size}-pixel tiles')
    self.test = (width - test, width)
    self.valid = (width - test - valid, width - test)
    self.train = (0, width - test - valid)


def tile_corners(height, columns, size):
  """(row, col) of the top-left corners of the non-overlapping size x size tiles of the band
  of all rows and columns [start, stop), from its top-left corner."""
  start, stop = columns
  return [(r, c) for r in range(0, height - size + 1, size)
          for c in range(start, stop - size + 1, size)]


def crop_corners(height, columns, size, count, rng):
  """`count` random (row, col) corners of size x size crops inside rows [0, height) and the
  columns [start, stop)."""
  start, stop = columns
  rows = rng.randint(0, height - size + 1, count)
  cols = rng.randint(start, stop - size + 1, count)
  return list(zip(rows, cols))


def cut(image, corners, size):
  """The size x size patches [n, size, size, C] of image [H, W, C] at corners."""
  return np.stack([image[r:r + size, c:c + size] for r, c in corners]) if corners else (
      np.zeros((0, size, size, image.shape[-1]), image.dtype))


def read_photos(folder):
  """{name: uint8 [H, W, 3]} of the photographs in folder, by name."""
  names = sorted(n for n in os.listdir(folder) if n.lower().endswith(EXTENSIONS))
  if not names:
    raise ValueError(f'no photographs ({", ".join(EXTENSIONS)}) in {folder}')
  photos = {}
  for name in names:
    with Image.open(os.path.join(folder, name)) as image:
      photos[name] = np.asarray(image.convert('RGB'))
  return photos


def make_dataset(photos, size, num_train, test_fraction, valid_fraction, seed):
  """(arrays {train, valid, test}, layout {name: (Bands, #train, #valid, #test)}) for photos
  {name: uint8 [H, W, 3]}: the crops and tiles of the module docstring, shuffled."""
  rng = np.random.RandomState(seed)
  bands = {name: Bands(image.shape[1], size, test_fraction, valid_fraction)
           for name, image in photos.items()}
  areas = np.array([(photos[n].shape[0] - size + 1) * (b.train[1] - b.train[0] - size + 1)
                    for n, b in bands.items()], np.float64)
  counts = np.floor(num_train * areas / areas.sum()).astype(int)
  counts[np.argmax(areas)] += num_train - counts.sum()
  parts = {'train': [], 'valid': [], 'test': []}
  layout = {}
  for (name, image), count in zip(photos.items(), counts):
    b, height = bands[name], image.shape[0]
    parts['train'].append(cut(image, crop_corners(height, b.train, size, count, rng), size))
    parts['valid'].append(cut(image, tile_corners(height, b.valid, size), size))
    parts['test'].append(cut(image, tile_corners(height, b.test, size), size))
    layout[name] = (b, count, len(parts['valid'][-1]), len(parts['test'][-1]))
  arrays = {}
  for split, pieces in parts.items():
    joined = np.concatenate(pieces)
    arrays[split] = joined[rng.permutation(len(joined))]
  return arrays, layout


def mosaic(tiles):
  """uint8 [rows * S, cols * S, C]: tiles [n, S, S, C] row by row, cols = ceil(sqrt(n)),
  the empty cells of the last row 0."""
  n, size, _, channels = tiles.shape
  cols = math.ceil(math.sqrt(n))
  rows = math.ceil(n / cols)
  grid = np.zeros((rows, cols, size, size, channels), np.uint8)
  grid.reshape(rows * cols, size, size, channels)[:n] = tiles
  return grid.transpose(0, 2, 1, 3, 4).reshape(rows * size, cols * size, channels)


def encoded_bytes(image, codec):
  """Bytes of uint8 image [H, W, 3] as a lossless file: codec png or webp."""
  buffer = io.BytesIO()
  if codec == 'png':
    Image.fromarray(image).save(buffer, format='PNG', optimize=True, compress_level=9)
  elif codec == 'webp':
    Image.fromarray(image).save(buffer, format='WEBP', lossless=True, quality=100, method=6)
  else:
    raise ValueError(f'unknown codec {codec!r}; valid: png, webp')
  return len(buffer.getvalue())


def codec_bits_per_dim(tiles, codec, seed=0):
  """8 * bytes / (n * S * S * C) of the mosaic of the tiles [n, S, S, C], shuffled."""
  shuffled = tiles[np.random.RandomState(seed).permutation(len(tiles))]
  return 8.0 * encoded_bytes(mosaic(shuffled), codec) / tiles.size


def evaluate(run_dir, npz):
  """bin/evaluate.py's JSON results of run_dir on the test tiles of npz (None on failure)."""
  cmd = [sys.executable, os.path.join(children.ROOT, 'bin', 'evaluate.py'),
         f'--run_dir={run_dir}', f'--dataset=npz:{npz}', '--split=test',
         f'--num_importance_samples={FLAGS.num_importance_samples}',
         f'--checkpoint={FLAGS.checkpoint}']
  lines, code, seconds, _ = children.run_child(cmd, FLAGS.timeout, FLAGS.verbose)
  results = [json.loads(line) for line in lines if line.startswith('{')]
  if code or not results:
    print(f'  evaluation of {run_dir} failed (exit {code}): {" | ".join(lines[-3:])}')
    return None, seconds
  return results[-1], seconds


def main(argv):
  del argv
  if not FLAGS.out:
    raise app.UsageError('--out (the .npz) is required')
  if FLAGS.write:
    photos = read_photos(FLAGS.photos_dir)
    arrays, layout = make_dataset(photos, FLAGS.size, FLAGS.num_train, FLAGS.test_fraction,
                                  FLAGS.valid_fraction, FLAGS.seed)
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    np.savez(FLAGS.out, **arrays)
    print(f'wrote {FLAGS.out}: ' + ', '.join(f'{k} {v.shape}' for k, v in arrays.items()))
    print(f'{"photo":<24} {"H x W":>10} {"train cols":>12} {"valid cols":>12} '
          f'{"test cols":>12} {"crops":>6} {"valid":>6} {"test":>5}')
    for name, (b, crops, valid, test) in layout.items():
      shape = photos[name].shape
      print(f'{name:<24} {shape[0]:>4} x {shape[1]:<4} {str(b.train):>12} {str(b.valid):>12} '
            f'{str(b.test):>12} {crops:>6} {valid:>6} {test:>5}')
  with np.load(FLAGS.out) as npz:
    test = npz['test']
  figures = {codec: codec_bits_per_dim(test, codec, FLAGS.seed) for codec in ('png', 'webp')}
  rows = [(f'PNG (lossless, Pillow, optimize, level 9)', figures['png'], None, None),
          (f'WebP (lossless, Pillow, method 6)', figures['webp'], None, None)]
  runs = {}
  for run_dir in FLAGS.run:
    result, seconds = evaluate(run_dir, os.path.abspath(FLAGS.out))
    if result is None:
      continue
    elbo_bits = -result['elbo'] / (test[0].size * math.log(2.0))
    runs[run_dir] = dict(bits_per_dim=result['bits_per_dim'], elbo_bits_per_dim=elbo_bits,
                         config=result.get('config'), step=result.get('step'),
                         seconds=seconds)
    rows.append((f'{os.path.basename(os.path.normpath(run_dir))} '
                 f'({result.get("config")}, step {result.get("step")})',
                 result['bits_per_dim'], elbo_bits, seconds))
  print(f'\n{len(test)} test tiles of {test.shape[1]}x{test.shape[2]}x{test.shape[3]}; '
        f'bits/dim (K = {FLAGS.num_importance_samples} for the runs)')
  print(f'{"":<58} {"bits/dim":>9} {"ELBO b/d":>9} {"eval s":>7}')
  for name, bits, elbo_bits, seconds in rows:
    print(f'{name:<58} {bits:>9.4f} {children.fmt(elbo_bits, ".4f"):>9} '
          f'{children.fmt(seconds, ".0f"):>7}')
  children.print_json(dict(test_tiles=len(test), png=figures['png'], webp=figures['webp'],
                           runs=runs, num_importance_samples=FLAGS.num_importance_samples))


if __name__ == '__main__':
  app.run(main)
