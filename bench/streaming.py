#!/usr/bin/env python
"""The streaming input path: its speed against the in-memory path, and its peak memory.

    python bench/streaming.py                          # both parts, 3 alternating rounds
    python bench/streaming.py --parts=speed --rounds=5
    python bench/streaming.py --parts=memory --budget_mb=64 --big_mb=1536

speed: trains the same conv model on the same data with `bin/train.py` (a subprocess, a fresh
run_dir each time, its default logging, summaries, images and checkpoints), once held in
memory and once streamed from its prepared .npy (--data_memory_mb=--speed_memory_mb, below the
training split's size), alternating the two for --rounds rounds. A run's figure is the median
`examples/sec` of its log windows after the first (the first holds the XLA compilation); each
mode's figure is the median over rounds, and streaming / in-memory their ratio (the target is
at least 0.8).

memory: writes (once, into --work_dir) a synthetic uint8 .npy of --big_mb MiB of
--big_image_size^2 RGB images, prepares it (a child that only builds the tfvae cache, so that
the training runs read a ready .npy), then trains conv_vae on it for --big_steps steps with
--data_memory_mb=--budget_mb (streamed: the array is many times the budget) and, for the model's
own share, on a tiny array of the same image shape held in memory. It reports their peak RSS
(ru_maxrss of each child, from os.wait4), the streaming run's excess over the tiny run, and
whether that excess stays within the budget.

Figures only (tables, then one JSON line); it asserts nothing. The machine may be shared: runs
alternate, and the 1-minute load average is printed before and after each part.
"""

import os
import re
import shutil
import statistics
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

from children import ROOT
from children import alternate
from children import fmt
from children import loadavg
from children import median_or_none
from children import print_json
from children import run_child
from children import run_train

MIB = 2.0 ** 20

FLAGS = flags.FLAGS
flags.DEFINE_list('parts', ['speed', 'memory'], 'Parts to run: speed, memory.')
flags.DEFINE_integer('rounds', 3, 'Alternating rounds (in-memory, streaming) of the speed part.',
                     lower_bound=1)
flags.DEFINE_string('config', 'conv_vae', 'Config of the speed runs.')
flags.DEFINE_string('dataset', 'mnist', 'Dataset spec of the speed runs.')
flags.DEFINE_string('hparams', 'likelihood=bernoulli,binarize=true,conv_filters=[32,64],'
                    'hidden_sizes=[256],z_size=20,batch_size=100',
                    'Hparams of the speed runs (default: mnist_conv\'s model, for greyscale).')
flags.DEFINE_string('data_dir', os.path.join(ROOT, '..', 'shared', 'data'),
                    '--data_dir of the speed runs (the built-in datasets\' raw files).')
flags.DEFINE_integer('num_steps', 600, 'Steps of each speed run (log windows of 100).',
                     lower_bound=300)
flags.DEFINE_float('speed_memory_mb', 16, '--data_memory_mb of the streaming speed runs (below '
                   'the training split\'s size, so that it streams).', lower_bound=0)
flags.DEFINE_float('budget_mb', 64, '--data_memory_mb of the streaming memory run.',
                   lower_bound=0)
flags.DEFINE_float('big_mb', 1536, 'Size of the synthetic array of the memory part, in MiB.',
                   lower_bound=1)
flags.DEFINE_integer('big_image_size', 64, 'Side of its RGB images.', lower_bound=4)
flags.DEFINE_integer('big_steps', 60, 'Steps of each memory run.', lower_bound=1)
flags.DEFINE_string('big_hparams', 'conv_filters=[16,32],hidden_sizes=[128],z_size=16,'
                    'num_mixtures=1', 'Hparams of the memory runs (a small conv_vae, batch 64; '
                    'conv_vae\'s own when empty).')
flags.DEFINE_string('work_dir', None, 'Folder for the synthetic arrays and the prepared cache, '
                    'kept between invocations; default a temporary folder removed at the end.')
flags.DEFINE_string('tfvae_python', sys.executable, 'Python with tfvae installed.')
flags.DEFINE_boolean('verbose', False, 'Echo the children\'s output.')

# "I1122 05:30:03.053728 1401... hooks.py:74] step 200/600  loss ...  21769 examples/sec ..."
LOG_LINE = re.compile(r'^step (\d+)/(\d+) .*?([\d.]+) examples/sec')
STREAMING_LINE = 'streaming it from'


def train(work_dir, args, timeout=3600):
  """bin/train.py with args into a fresh run_dir under work_dir (removed after): a dict of rc,
  wall_s, peak_rss_mb, windows (the examples/sec of each log line), examples_per_sec (their
  median after the first), streamed (whether the log says it streams) and, on failure, the
  output's last lines."""
  lines, rc, seconds, rss = run_train(FLAGS.tfvae_python, args, timeout, FLAGS.verbose,
                                      parent=work_dir)
  windows = [float(m.group(3)) for m in map(LOG_LINE.search, lines) if m]
  result = dict(rc=rc, wall_s=round(seconds, 1), peak_rss_mb=round(rss / MIB, 1),
                windows=windows, streamed=any(STREAMING_LINE in line for line in lines),
                examples_per_sec=statistics.median(windows[1:]) if len(windows) > 1 else None)
  if rc or result['examples_per_sec'] is None:
    result['tail'] = lines[-8:]
    print(f'  run failed (rc {rc}, {len(windows)} log lines); its last lines:\n'
          + '\n'.join('    ' + line for line in lines[-8:]), flush=True)
  return result


def speed(work_dir):
  """In-memory against streaming examples/sec, alternating; returns the results dict."""
  common = [f'--config={FLAGS.config}', f'--dataset={FLAGS.dataset}',
            f'--hparams={FLAGS.hparams}', f'--data_dir={os.path.abspath(FLAGS.data_dir)}',
            f'--cache_dir={os.path.join(work_dir, "cache")}', f'--num_steps={FLAGS.num_steps}']
  modes = {'in-memory': [], 'streaming': [f'--data_memory_mb={FLAGS.speed_memory_mb:g}']}
  load_before = loadavg()
  print(f'speed: {FLAGS.config} on {FLAGS.dataset} ({FLAGS.hparams}), {FLAGS.num_steps} steps '
        f'a run, streaming with --data_memory_mb={FLAGS.speed_memory_mb:g}; {FLAGS.rounds} '
        f'rounds; load average {load_before}', flush=True)
  per_round = alternate({name: (lambda extra=extra: train(work_dir, common + extra))
                         for name, extra in modes.items()}, FLAGS.rounds, show_load=True)
  load_after = loadavg()
  print(f'\n{"round":>5}  {"run":<10} {"examples/sec":>12}  {"wall s":>7}  {"peak MiB":>8}  '
        'streamed  windows')
  for i, results in enumerate(per_round, 1):
    for name, r in results.items():
      print(f'{i:>5}  {name:<10} {fmt(r["examples_per_sec"]):>12}  {r["wall_s"]:>7.1f}  '
            f'{r["peak_rss_mb"]:>8.0f}  {str(r["streamed"]):<8}  '
            + ' '.join(fmt(w) for w in r['windows']))
  medians = {n: median_or_none(r[n]['examples_per_sec'] for r in per_round) for n in modes}
  ratios = [r['streaming']['examples_per_sec'] / r['in-memory']['examples_per_sec']
            for r in per_round if r['streaming']['examples_per_sec']
            and r['in-memory']['examples_per_sec']]
  ratio = (medians['streaming'] / medians['in-memory']
           if medians['streaming'] and medians['in-memory'] else None)
  print('\nmedian over rounds (examples/sec):')
  for n in modes:
    print(f'  {n:<10} {fmt(medians[n]):>10}')
  print(f'  streaming / in-memory {fmt(ratio, ".3f")} (per round: '
        f'{", ".join(f"{x:.3f}" for x in ratios)}; target >= 0.8)')
  print(f'  load average before/after {load_before} / {load_after}', flush=True)
  return dict(examples_per_sec=medians, streaming_over_in_memory=ratio,
              per_round_ratio=ratios,
              per_round={n: [r[n]['examples_per_sec'] for r in per_round] for n in modes},
              streamed={n: [r[n]['streamed'] for r in per_round] for n in modes},
              load_average=[load_before, load_after])


def write_synthetic(path, num_images, side):
  """Writes uint8 [num_images, side, side, 3] noise to path (in chunks; kept if it exists)."""
  shape = (num_images, side, side, 3)
  if os.path.exists(path):
    existing = np.load(path, mmap_mode='r')
    if existing.shape == shape and existing.dtype == np.uint8:
      return False
  rng = np.random.default_rng(0)
  array = np.lib.format.open_memmap(path + '.tmp', 'w+', np.uint8, shape)
  chunk = max(1, int(64 * MIB) // (side * side * 3))
  for start in range(0, num_images, chunk):
    array[start:start + chunk] = rng.integers(0, 256, (min(chunk, num_images - start),) + shape[1:],
                                              np.uint8)
  array.flush()
  del array
  os.replace(path + '.tmp', path)
  return True


PREPARE = '''
import os, sys
from tfvae import sources
source = sources.make_source(sys.argv[1], cache_dir=sys.argv[2])
ready = os.path.isfile(os.path.join(source.cache_folder, 'info.json'))
print('already prepared' if ready else 'prepared', source.info.split_sizes, flush=True)
'''


def memory(work_dir):
  """Peak RSS of a streaming run on an array many times its budget, against a tiny in-memory
  run of the same model; returns the results dict."""
  side = FLAGS.big_image_size
  image_bytes = side * side * 3
  num_big = max(3, int(FLAGS.big_mb * MIB) // image_bytes)
  big = os.path.join(work_dir, f'synthetic_{side}x{side}x3_{num_big}.npy')
  tiny = os.path.join(work_dir, f'synthetic_{side}x{side}x3_tiny.npy')
  load_before = loadavg()
  print(f'\nmemory: conv_vae on {num_big} images {side}x{side}x3 '
        f'({num_big * image_bytes / MIB:,.0f} MiB), --data_memory_mb={FLAGS.budget_mb:g}, '
        f'{FLAGS.big_steps} steps; load average {load_before}', flush=True)
  start = time.time()
  if write_synthetic(big, num_big, side):
    print(f'  wrote {big} in {time.time() - start:.0f} s', flush=True)
  write_synthetic(tiny, 640, side)
  cache = os.path.join(work_dir, 'cache')
  prepared = {}
  for name, path in (('big', big), ('tiny', tiny)):
    lines, rc, seconds, rss = run_child(
        [FLAGS.tfvae_python, '-c', PREPARE, f'npy:{path}', cache], 3600, FLAGS.verbose)
    if rc:
      raise RuntimeError(f'preparing {path} failed:\n' + '\n'.join(lines[-8:]))
    prepared[name] = dict(wall_s=round(seconds, 1), peak_rss_mb=round(rss / MIB, 1),
                          already=any(line.startswith('already prepared') for line in lines))
  big_prepared = prepared['big']
  print(f'  {"found the prepared cache" if big_prepared["already"] else "prepared the cache"}: '
        f'{big_prepared["wall_s"]} s, peak RSS {big_prepared["peak_rss_mb"]:,.0f} MiB', flush=True)
  common = ['--config=conv_vae', f'--cache_dir={cache}', f'--num_steps={FLAGS.big_steps}',
            '--log_every_n_steps=10']
  if FLAGS.big_hparams:
    common.append(f'--hparams={FLAGS.big_hparams}')
  runs = {}
  for name, extra in (('tiny in-memory', [f'--dataset=npy:{tiny}']),
                      ('streaming', [f'--dataset=npy:{big}',
                                     f'--data_memory_mb={FLAGS.budget_mb:g}'])):
    print(f'  {name} (load average {loadavg()})', flush=True)
    runs[name] = train(work_dir, common + extra)
  model_mb = runs['tiny in-memory']['peak_rss_mb']
  stream_mb = runs['streaming']['peak_rss_mb']
  excess = stream_mb - model_mb
  bounded = excess <= FLAGS.budget_mb
  print(f'\n  {"run":<16} {"peak RSS MiB":>12}  {"wall s":>7}  {"examples/sec":>12}  streamed')
  for name, r in runs.items():
    print(f'  {name:<16} {r["peak_rss_mb"]:>12,.0f}  {r["wall_s"]:>7.1f}  '
          f'{fmt(r["examples_per_sec"]):>12}  {r["streamed"]}')
  print(f'  data {num_big * image_bytes / MIB:,.0f} MiB, budget {FLAGS.budget_mb:g} MiB; '
        f'streaming - tiny = {excess:,.0f} MiB: '
        f'{"within" if bounded else "OVER"} the budget (bounded by budget + model: {bounded})')
  print(f'  load average before/after {load_before} / {loadavg()}', flush=True)
  return dict(data_mb=round(num_big * image_bytes / MIB, 1), budget_mb=FLAGS.budget_mb,
              prepare=prepared['big'], peak_rss_mb={n: r['peak_rss_mb'] for n, r in runs.items()},
              streamed={n: r['streamed'] for n, r in runs.items()},
              excess_mb=round(excess, 1), bounded_by_budget_plus_model=bounded,
              examples_per_sec={n: r['examples_per_sec'] for n, r in runs.items()})


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}')
  unknown = set(FLAGS.parts) - {'speed', 'memory'}
  if unknown:
    raise app.UsageError(f'unknown --parts {sorted(unknown)}; use speed, memory')
  work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix='tfvae_bench_streaming_')
  os.makedirs(work_dir, exist_ok=True)
  result = dict(bench='streaming')
  try:
    if 'speed' in FLAGS.parts:
      result['speed'] = speed(work_dir)
    if 'memory' in FLAGS.parts:
      result['memory'] = memory(work_dir)
  finally:
    if not FLAGS.work_dir:
      shutil.rmtree(work_dir, ignore_errors=True)
  print_json(result)


if __name__ == '__main__':
  app.run(main)
