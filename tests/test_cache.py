"""The prepared-data cache (tfvae.sources.cache): stale preparations removed when a new one is
written, listing and pruning with sizes, the locks that keep a folder in use, progress in the
log, and the tfvae-cache tool."""

import functools
import gc
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from tfvae import progress
from tfvae import sources
from tfvae.sources import cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _fresh():
  sources._SOURCES.clear()
  yield
  sources._SOURCES.clear()
  gc.collect()


def _release():
  """Drops every Source of this process, and with them their locks on the cache."""
  sources._SOURCES.clear()
  gc.collect()


def _write_npy(path, seed, mtime_ns):
  np.save(path, np.random.RandomState(seed).randint(0, 256, (20, 4, 3)).astype(np.uint8))
  os.utime(path, ns=(mtime_ns, mtime_ns))


def _prepare(spec, cache_dir, **knobs):
  """The cache folder of spec, prepared (its Source dropped again unless kept)."""
  source = sources.make_source(spec, cache_dir=cache_dir, **knobs)
  source.split('train')
  return source.cache_folder


def test_a_new_preparation_removes_the_stale_one(tmp_path):
  path, cache_dir = tmp_path / 'x.npy', tmp_path / 'cache'
  _write_npy(path, 0, 10**18)
  old = _prepare(f'npy:{path}', cache_dir)
  resized = _prepare(f'npy:{path}', cache_dir, image_size=2)  # other knobs: another source
  _release()
  _write_npy(path, 1, 2 * 10**18)
  new = sources.make_source(f'npy:{path}', cache_dir=cache_dir)
  np.testing.assert_array_equal(new.split('test').images[..., 0],
                                np.load(path)[np.sort(np.random.RandomState(0).permutation(20)[:2])])
  assert new.cache_folder != old and not os.path.exists(old)
  assert sorted(os.listdir(cache_dir)) == sorted(map(os.path.basename, [new.cache_folder, resized]))


def test_a_stale_preparation_in_use_is_kept_until_pruned(tmp_path):
  path, cache_dir = tmp_path / 'x.npy', str(tmp_path / 'cache')
  _write_npy(path, 0, 10**18)
  reader = sources.make_source(f'npy:{path}', cache_dir=cache_dir)
  reader.split('train')  # a tool reading it holds its lock
  sources._SOURCES.clear()
  _write_npy(path, 1, 2 * 10**18)
  new = _prepare(f'npy:{path}', cache_dir)
  states = {e.path: e.state for e in cache.entries(cache_dir)}
  assert states == {reader.cache_folder: 'superseded', new: 'ready'}
  assert [(e.path, why) for e, why in cache.prune(cache_dir)] == [(reader.cache_folder, 'in use')]
  assert os.path.isdir(reader.cache_folder)
  del reader
  _release()
  (entry, why), = cache.prune(cache_dir)
  assert entry.state == 'superseded' and why is None and entry.bytes > 20 * 4 * 3
  assert [e.path for e in cache.entries(cache_dir)] == [new]


def test_entries_and_prune(tmp_path):
  cache_dir = str(tmp_path / 'cache')
  _write_npy(tmp_path / 'kept.npy', 0, 10**18)
  _write_npy(tmp_path / 'gone.npy', 1, 10**18)
  ready = _prepare(f'npy:{tmp_path / "kept.npy"}', cache_dir)
  gone = _prepare(f'npy:{tmp_path / "gone.npy"}', cache_dir)
  _release()
  os.remove(tmp_path / 'gone.npy')
  assert _prepare(f'npy:{tmp_path / "kept.npy"}', cache_dir) == ready  # held from here on
  old_format = ready + '-old'
  os.makedirs(old_format)
  with open(os.path.join(old_format, 'info.json'), 'w', encoding='utf-8') as f:
    json.dump(dict(cache.read_info(ready), format=1), f)
  os.makedirs(os.path.join(cache_dir, 'damaged'))
  dead, busy = (os.path.join(cache_dir, f'npy-x-{n}.tmp-abc') for n in (1, 2))
  for folder in (dead, busy):
    os.makedirs(folder)
    np.save(os.path.join(folder, 'train.npy'), np.zeros(3))
  long_ago = time.time() - 2 * cache.UNFINISHED_SECONDS
  os.utime(os.path.join(dead, 'train.npy'), (long_ago, long_ago))
  os.utime(dead, (long_ago, long_ago))
  states = {os.path.basename(e.path): e.state for e in cache.entries(cache_dir)}
  assert states == {os.path.basename(ready): 'ready', os.path.basename(gone): 'source gone',
                    os.path.basename(old_format): 'old format', 'damaged': 'damaged',
                    os.path.basename(dead): 'unfinished', os.path.basename(busy): 'unfinished'}
  assert all(why == 'dry run' for _, why in cache.prune(cache_dir, dry_run=True))
  assert len(os.listdir(cache_dir)) == 6
  results = {os.path.basename(e.path): why for e, why in cache.prune(cache_dir)}
  assert results == {os.path.basename(gone): None, os.path.basename(old_format): None,
                     'damaged': None, os.path.basename(dead): None,
                     os.path.basename(busy): 'being written'}
  assert sorted(os.listdir(cache_dir)) == sorted(map(os.path.basename, [ready, busy]))
  spec = sources.absolute_spec(f'npy:{tmp_path / "kept.npy"}')
  assert [why for _, why in cache.prune(cache_dir, spec=spec)] == ['in use']
  _release()
  assert [why for _, why in cache.prune(cache_dir, everything=True)] == [None, 'being written']
  assert os.listdir(cache_dir) == [os.path.basename(busy)]


def test_long_preparations_log_their_progress(tmp_path, monkeypatch):
  lines = []
  clock = iter(range(0, 1000, 7)).__next__  # 7 s a call
  counter = progress.Progress('Preparing x', 50, log=lambda f, *a: lines.append(f % a),
                              clock=clock)
  for _ in range(5):
    counter.add(10)
  assert lines == ['Preparing x: 20/50 images (40%), 1 images/sec, 0:00:21 left',
                   'Preparing x: 40/50 images (80%), 1 images/sec, 0:00:07 left']
  assert progress.duration(3725.4) == '1:02:05'
  monkeypatch.setattr(cache.progress, 'Progress', functools.partial(
      progress.Progress, every_secs=0, log=lambda f, *a: lines.append(f % a)))
  _write_npy(tmp_path / 'x.npy', 0, 10**18)
  _prepare(f'npy:{tmp_path / "x.npy"}', tmp_path / 'cache')
  assert lines[-1].startswith(f'Preparing npy:{tmp_path / "x.npy"}: 20/20 images (100%), ')
  assert lines[-1].endswith(' images/sec, 0:00:00 left')


@pytest.mark.e2e
def test_the_cache_tool(tmp_path):
  cache_dir = str(tmp_path / 'cache')
  _write_npy(tmp_path / 'x.npy', 0, 10**18)
  ready = _prepare(f'npy:{tmp_path / "x.npy"}', cache_dir)
  os.makedirs(os.path.join(cache_dir, 'damaged'))
  _release()

  def tool(*args):
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'bin', 'cache.py'), *args,
                             f'--cache_dir={cache_dir}'], capture_output=True, text=True,
                            timeout=240, cwd=ROOT)
    return result.returncode, result.stdout, result.stderr

  rc, out, err = tool('list')
  assert rc == 0, err
  assert f'{cache_dir}: 2 prepared datasets' in out and 'KiB' in out
  assert 'ready' in out and 'damaged' in out and '4x3x1' in out and '16/2/2' in out
  rc, out, err = tool('prune', '--dry_run')
  assert rc == 0 and 'would remove' in out and os.path.isdir(os.path.join(cache_dir, 'damaged'))
  rc, out, err = tool('prune')
  assert rc == 0 and 'removed' in out and 'freed' in out
  assert os.listdir(cache_dir) == [os.path.basename(ready)]
  rc, out, err = tool('prnue')
  assert rc == 1 and err.strip().splitlines()[-1] == (
      "error: unknown command 'prnue' (did you mean 'prune'?); use list or prune")
