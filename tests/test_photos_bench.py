"""bench/photos.py: the bands, crops and tiles of the photo dataset (no test or valid pixel in
any training crop) and the lossless codec figures."""

import io

import numpy as np
from PIL import Image
import pytest

from bench import photos

SIZE = 4


def _photo(index, height, width):
  """uint8 [H, W, 3] whose pixel (r, c) holds (r, c, index): every crop tells where it lies."""
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  return np.stack([rows, cols, np.full_like(rows, index)], -1).astype(np.uint8)


@pytest.mark.parametrize('width', [13, 40, 101, 255])
def test_bands_are_disjoint_tile_multiples_with_train_on_the_left(width):
  bands = photos.Bands(width, SIZE, test_fraction=0.25, valid_fraction=0.1)
  assert bands.train[0] == 0 and bands.train[1] == bands.valid[0]
  assert bands.valid[1] == bands.test[0] and bands.test[1] == width
  for start, stop in (bands.valid, bands.test):
    assert stop - start >= SIZE and (stop - start) % SIZE == 0
  assert bands.train[1] >= SIZE


def test_a_photo_too_narrow_for_three_bands_is_refused():
  with pytest.raises(ValueError, match='no room for a train band'):
    photos.Bands(2 * SIZE, SIZE, 0.25, 0.1)


def test_no_training_crop_touches_a_valid_or_test_tile():
  images = {'a.png': _photo(0, 37, 120), 'b.png': _photo(1, 50, 61), 'c.jpg': _photo(2, 9, 30)}
  arrays, layout = photos.make_dataset(images, SIZE, num_train=500, test_fraction=0.25,
                                       valid_fraction=0.1, seed=3)
  assert arrays['train'].shape == (500, SIZE, SIZE, 3)
  assert sum(count for _, count, _, _ in layout.values()) == 500
  held_out = {}  # photo index -> set of (row, col) pixels in valid or test tiles
  for split in ('valid', 'test'):
    seen = set()
    for tile in arrays[split]:
      r, c, index = (int(v) for v in tile[0, 0])
      np.testing.assert_array_equal(tile, _photo(index, 256, 256)[r:r + SIZE, c:c + SIZE])
      assert r % SIZE == 0 and (r, c, index) not in seen  # tiles from the band's corner
      seen.add((r, c, index))
      held_out.setdefault(index, set()).update(
          (r + i, c + j) for i in range(SIZE) for j in range(SIZE))
    for name, (bands, _, valid, test) in layout.items():
      index = int(images[name][0, 0, 2])
      start, stop = getattr(bands, split)
      tiles = [(r, c) for r, c, i in seen if i == index]
      assert len(tiles) == {'valid': valid, 'test': test}[split]
      assert len(tiles) == (images[name].shape[0] // SIZE) * ((stop - start) // SIZE)
      assert all(start <= c and c + SIZE <= stop for _, c in tiles)
  for crop in arrays['train']:
    r, c, index = (int(v) for v in crop[0, 0])
    np.testing.assert_array_equal(crop, _photo(index, 256, 256)[r:r + SIZE, c:c + SIZE])
    pixels = {(r + i, c + j) for i in range(SIZE) for j in range(SIZE)}
    assert not pixels & held_out[index]
  # Crops are shared in proportion to the train bands' areas.
  assert layout['a.png'][1] > layout['b.png'][1] > layout['c.jpg'][1]


def test_mosaic_lays_tiles_row_by_row_and_leaves_the_rest_black():
  tiles = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
  grid = photos.mosaic(tiles)
  assert grid.shape == (2 * 2, 3 * 2, 3)
  for i, tile in enumerate(tiles):
    row, col = divmod(i, 3)
    np.testing.assert_array_equal(grid[2 * row:2 * row + 2, 2 * col:2 * col + 2], tile)
  assert not grid[2:, 4:].any()


@pytest.mark.parametrize('codec', ['png', 'webp'])
def test_codec_figures_are_lossless_bytes_per_sub_pixel(codec):
  rng = np.random.RandomState(0)
  noise = rng.randint(0, 256, (16, 8, 8, 3)).astype(np.uint8)
  flat = np.full((16, 8, 8, 3), 77, np.uint8)
  noisy_bits = photos.codec_bits_per_dim(noise, codec, seed=1)
  assert 7.9 < noisy_bits < 9.0          # random bytes do not compress
  assert photos.codec_bits_per_dim(flat, codec) < 0.5
  shuffled = noise[np.random.RandomState(1).permutation(16)]
  image = photos.mosaic(shuffled)
  assert noisy_bits == 8.0 * photos.encoded_bytes(image, codec) / noise.size
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format=codec.upper(), lossless=True)
  buffer.seek(0)
  with Image.open(buffer) as decoded:
    np.testing.assert_array_equal(np.asarray(decoded.convert('RGB')), image)
  with pytest.raises(ValueError, match="unknown codec 'gif'"):
    photos.encoded_bytes(image, 'gif')
