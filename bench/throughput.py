#!/usr/bin/env python
"""Training throughput of tfvae's real trainer against the plain PyTorch peer.

    python bench/throughput.py                        # paper arch, 3 rounds of ~20 s each
    python bench/throughput.py --arch=wide --rounds=5
    python bench/throughput.py --overhead             # cost of the default logging rates
    python bench/throughput.py --iw                   # IW log-likelihood, K=5000, test set

For --arch (paper: 784-500-20 tanh, batch 100; wide: 784-512-512-32 relu, batch 1024) it
alternates, --rounds times: tfvae's `bin/train.py` (a subprocess, a fresh run_dir each round,
its default logging, summaries, images and checkpoints), the peer `torch_vae.py` as in its
README, then the peer's faster variant (paper: --fused_adam --compile; wide: --compile).

tfvae's figure for a round is the median `examples/sec` of its log windows (100 steps each),
leaving out the first (XLA compilation); the peer's is the `examples_per_sec` of its final JSON
line (median over epochs after the first). The figure reported for each run is the median over
rounds. It also reports the peak memory (max RSS) of each child, runs
`matmul_ceiling.py` once for the arch and gives tfvae's fraction of that ceiling. That ceiling
is torch's GEMM rate (MKL); it also times the same 1024^3 float32 GEMM in TensorFlow (XLA) and
gives the ceiling at that rate, the bound for tfvae itself.

--overhead trains the paper arch twice per round instead: with the trainer's default rates
(--log_every_n_steps=100 --checkpoint_every_secs=60 --image_every_n_steps=1000) and with all of
them as rare as possible (--log_every_n_steps=num_steps/4 --checkpoint_every_secs=100000
--image_every_n_steps=0), and prints (rare - default) / rare examples/sec. Its primary rate is
taken from the log timestamps over the same steps [num_steps/4, num_steps] in both runs, so it
includes the writing of scalars, images and checkpoints (a window's own rate leaves out the
cost of the report that ends it); the window medians are printed too.

--iw times the importance-weighted test log-likelihood instead (paper arch): tfvae's
`bin/evaluate.py` on a briefly trained run against the peer's `--iw_k` on a model it trains for
one epoch, both with K = --iw_k samples over --iw_examples test images (a seeded random subset
when fewer than 10,000; each tool picks its own), alternating for --rounds rounds. The figure is
the time of the estimate itself: `seconds` in tfvae's JSON line, `iw_s` in the peer's.

The script prints figures only (a table, then one JSON line); it asserts nothing. Timings are
only meaningful on a quiet machine: the 1-minute load average before and after is printed.
"""

import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
flags.DEFINE_enum('arch', 'paper', ['paper', 'wide'], 'Architecture and batch (see above).')
flags.DEFINE_integer('rounds', 3, 'Alternating rounds (tfvae, peer, peer variant).',
                     lower_bound=1)
flags.DEFINE_float('seconds', 20.0, 'Rough length of one tfvae training run; sets '
                   '--num_steps from a rough rate for the arch.', lower_bound=0.0)
flags.DEFINE_integer('num_steps', 0, 'tfvae steps per run; 0 = from --seconds.', lower_bound=0)
flags.DEFINE_integer('peer_epochs', 0, 'Peer epochs per run; 0 = 3 for paper, 2 for wide '
                     '(at least 2, so there is an epoch after the first).', lower_bound=0)
flags.DEFINE_string('data_dir', os.path.join(ROOT, '..', 'shared', 'data'),
                    'Folder with binarized_mnist.npz.')
flags.DEFINE_string('peers_dir', os.path.join(ROOT, '..', 'shared', 'peers'),
                    'Folder with torch_vae.py and matmul_ceiling.py.')
flags.DEFINE_string('peer_python', '/tmp/torchvenv/bin/python',
                    'Python with torch for the peer; without torch the peer is skipped.')
flags.DEFINE_string('tfvae_python', sys.executable, 'Python with tfvae installed.')
flags.DEFINE_integer('threads', 2, 'Peer and ceiling --threads (tfvae uses its default).')
flags.DEFINE_boolean('peer_variant', True, 'Also run the peer\'s faster variant.')
flags.DEFINE_boolean('ceiling', True, 'Run matmul_ceiling.py once.')
flags.DEFINE_boolean('overhead', False, 'Measure the cost of the default logging, summary, '
                     'image and checkpoint rates (paper arch, tfvae only).')
flags.DEFINE_boolean('iw', False, 'Time the importance-weighted log-likelihood instead.')
flags.DEFINE_integer('iw_k', 5000, 'Importance samples per image for --iw.', lower_bound=1)
flags.DEFINE_integer('iw_examples', 10000, 'Test images for --iw.', lower_bound=1)
flags.DEFINE_string('tfvae_hparams', '', 'Extra hparams for tfvae\'s runs, appended to the '
                    'arch\'s (e.g. mixed_precision=bfloat16); the peer is unchanged.')
flags.DEFINE_boolean('verbose', False, 'Echo the children\'s output.')

ARCHS = {
    'paper': dict(hidden=500, layers=1, z=20, act='tanh', batch=100, hparams='',
                  rough_rate=30000, peer_epochs=3,
                  variant=('fused_adam+compile', ['--fused_adam', '--compile'])),
    'wide': dict(hidden=512, layers=2, z=32, act='relu', batch=1024,
                 hparams='hidden_sizes=[512,512],z_size=32,activation=relu,batch_size=1024',
                 rough_rate=20000, peer_epochs=2, variant=('compile', ['--compile'])),
}
LOG_EVERY = 100  # the trainer's default --log_every_n_steps
DEFAULT_RATES = ['--log_every_n_steps=100', '--checkpoint_every_secs=60',
                 '--image_every_n_steps=1000']
# "I1122 05:30:03.053728 1401... training.py:275] step 200/600  loss ...  21769 examples/sec"
LOG_LINE = re.compile(r'^I(\d{4}) (\d\d):(\d\d):(\d\d\.\d+) .*\] step (\d+)/(\d+) .*?'
                      r'([\d.]+) examples/sec')
GIB = 1024.0 ** 3


def run_child(cmd, timeout):
  """Runs cmd; returns (output lines, return code, seconds, max RSS in bytes).

  The peak memory comes from os.wait4 on this one child (ru_maxrss, KiB on Linux).
  """
  if FLAGS.verbose:
    print('  $ ' + ' '.join(cmd), flush=True)
  start = time.time()
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          cwd=ROOT, bufsize=1)
  timer = threading.Timer(timeout, proc.kill)
  timer.start()
  lines = []
  try:
    for line in proc.stdout:
      lines.append(line.rstrip('\n'))
      if FLAGS.verbose:
        print('    ' + lines[-1], flush=True)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
  finally:
    timer.cancel()
    if proc.returncode is None:
      proc.kill()
      proc.wait()
  return lines, proc.returncode, time.time() - start, usage.ru_maxrss * 1024


def tail(lines, n=8):
  return '\n'.join('    ' + line for line in lines[-n:])


# tfvae


def tfvae_steps(arch):
  if FLAGS.num_steps:
    return FLAGS.num_steps
  steps = FLAGS.seconds * arch['rough_rate'] / arch['batch']
  steps = int(round(steps / LOG_EVERY)) * LOG_EVERY
  return max(steps, 3 * LOG_EVERY)  # at least two windows after the compiled first one


def parse_tfvae(lines):
  """[(step, seconds since the first line, examples/sec)] from the trainer's log lines."""
  rows, base, last = [], None, None
  for line in lines:
    m = LOG_LINE.match(line)
    if not m:
      continue
    t = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))
    if last is not None and t < last - 43200:  # past midnight
      t += 86400
    last = t
    base = t if base is None else base
    rows.append((int(m.group(5)), t - base, float(m.group(7))))
  return rows


def span_rate(rows, start_step, batch):
  """examples/sec from the log timestamps between step start_step and the last line."""
  first = [r for r in rows if r[0] == start_step]
  if not first or rows[-1][0] <= start_step:
    return None
  return (rows[-1][0] - start_step) * batch / max(rows[-1][1] - first[0][1], 1e-9)


def run_tfvae(arch, num_steps, extra_flags=()):
  run_dir = tempfile.mkdtemp(prefix='tfvae_bench_')
  cmd = [FLAGS.tfvae_python, os.path.join(ROOT, 'bin', 'train.py'),
         '--config=binarized_mnist_fc', f'--data_dir={FLAGS.data_dir}',
         f'--run_dir={run_dir}', f'--num_steps={num_steps}']
  hparams = ','.join(h for h in (arch['hparams'], FLAGS.tfvae_hparams) if h)
  if hparams:
    cmd.append(f'--hparams={hparams}')
  cmd += list(extra_flags)
  try:
    lines, rc, seconds, rss = run_child(cmd, timeout=max(600, 20 * FLAGS.seconds))
  finally:
    shutil.rmtree(run_dir, ignore_errors=True)
  rows = parse_tfvae(lines)
  result = dict(rc=rc, wall_s=round(seconds, 1), peak_rss_gib=round(rss / GIB, 3),
                num_steps=num_steps, windows=[r[2] for r in rows])
  if rc or len(rows) < 2:
    print(f'  tfvae failed (rc {rc}, {len(rows)} log lines parsed); its last lines:\n'
          + tail(lines), flush=True)
    result['examples_per_sec'] = None
    return result, rows
  result['examples_per_sec'] = statistics.median(r[2] for r in rows[1:])
  return result, rows


# The peer


def peer_available():
  script = os.path.join(FLAGS.peers_dir, 'torch_vae.py')
  if not os.path.exists(script):
    return f'no {script}'
  if not os.path.exists(FLAGS.peer_python):
    return f'no {FLAGS.peer_python} (make it: python3 -m venv /tmp/torchvenv && ' \
           '/tmp/torchvenv/bin/pip install torch==2.13.0 numpy scipy)'
  check = subprocess.run([FLAGS.peer_python, '-c', 'import torch; print(torch.__version__)'],
                         capture_output=True, text=True)
  if check.returncode:
    return f'torch does not import under {FLAGS.peer_python}'
  return None


def last_json(lines):
  for line in reversed(lines):
    if line.startswith('{'):
      try:
        return json.loads(line)
      except ValueError:
        pass
  return None


def run_peer(arch, epochs, extra_flags=()):
  cmd = [FLAGS.peer_python, os.path.join(FLAGS.peers_dir, 'torch_vae.py'),
         '--data', os.path.join(FLAGS.data_dir, 'binarized_mnist.npz'),
         '--hidden', str(arch['hidden']), '--layers', str(arch['layers']),
         '--z', str(arch['z']), '--act', arch['act'], '--batch', str(arch['batch']),
         '--epochs', str(epochs), '--threads', str(FLAGS.threads)] + list(extra_flags)
  lines, rc, seconds, rss = run_child(cmd, timeout=1800)
  out = last_json(lines)
  result = dict(rc=rc, wall_s=round(seconds, 1), peak_rss_gib=round(rss / GIB, 3))
  if rc or not out or out.get('examples_per_sec') is None:
    print(f'  peer failed (rc {rc}); its last lines:\n' + tail(lines), flush=True)
    result['examples_per_sec'] = None
    return result
  result.update(examples_per_sec=out['examples_per_sec'], torch=out.get('torch'),
                epochs=[e['examples_per_sec'] for e in out.get('epochs', [])],
                compiled=out.get('compiled'), compile_error=out.get('compile_error'),
                compile_s=out.get('compile_s'))
  if '--compile' in extra_flags and not out.get('compiled'):
    print(f'  note: torch.compile failed, the variant ran eagerly: {out.get("compile_error")}',
          flush=True)
  return result


def run_ceiling(arch):
  cmd = [FLAGS.peer_python, os.path.join(FLAGS.peers_dir, 'matmul_ceiling.py'),
         '--threads', str(FLAGS.threads), '--hidden', str(arch['hidden']),
         '--layers', str(arch['layers']), '--z', str(arch['z']), '--batch', str(arch['batch'])]
  lines, rc, _, _ = run_child(cmd, timeout=600)
  out = last_json(lines)
  if rc or not out:
    print(f'  matmul_ceiling.py failed (rc {rc}):\n' + tail(lines), flush=True)
    return None
  return out


# The same 1024^3 float32 GEMM timed in TensorFlow (XLA), in tfvae's Python.
TF_GEMM = '''
import json, time, tensorflow as tf
x = tf.random.normal([1024, 1024], seed=1)
f = tf.function(lambda a: tf.matmul(a, a), jit_compile=True)
f(x).numpy()
rates = []
for _ in range(5):
  start = time.perf_counter()
  for _ in range(20):
    y = f(x)
  y.numpy()
  rates.append(20 * 2 * 1024 ** 3 / (time.perf_counter() - start) / 1e9)
print(json.dumps(dict(gflops=round(max(rates), 1))))
'''


def run_tf_gemm():
  """GFLOP/s of TensorFlow's float32 1024^3 GEMM, or None."""
  lines, rc, _, _ = run_child([FLAGS.tfvae_python, '-c', TF_GEMM], timeout=600)
  out = last_json(lines)
  if rc or not out:
    print(f'  TensorFlow GEMM timing failed (rc {rc}):\n' + tail(lines), flush=True)
    return None
  return out['gflops']


# Reporting


def fmt(value, spec=',.0f'):
  return '-' if value is None else format(value, spec)


def median_or_none(values):
  values = [v for v in values if v is not None]
  return statistics.median(values) if values else None


def ratio(a, b):
  return None if a is None or not b else a / b


def loadavg():
  return round(os.getloadavg()[0], 2)


def commit():
  try:
    return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, text=True,
                          capture_output=True).stdout.strip() or None
  except OSError:
    return None


def print_rounds(names, per_round):
  print(f'\n{"round":>5}  {"run":<28} {"examples/sec":>12}  {"wall s":>7}  {"peak GiB":>8}  '
        'detail')
  for i, results in enumerate(per_round, 1):
    for name in names:
      r = results.get(name)
      if r is None:
        continue
      detail = ''
      if 'windows' in r:
        detail = f'{len(r["windows"])} windows, first {fmt(r["windows"][0] if r["windows"] else None)}'
      elif r.get('epochs'):
        detail = 'epochs ' + ' '.join(fmt(e) for e in r['epochs'])
        if r.get('compiled'):
          detail += f' (compile {r["compile_s"]} s)'
      if 'span_examples_per_sec' in r:
        detail = f'span {fmt(r["span_examples_per_sec"])}/s, ' + detail
      print(f'{i:>5}  {name:<28} {fmt(r["examples_per_sec"]):>12}  {r["wall_s"]:>7.1f}  '
            f'{r["peak_rss_gib"]:>8.2f}  {detail}')


def throughput(_):
  arch = ARCHS[FLAGS.arch]
  num_steps = tfvae_steps(arch)
  epochs = FLAGS.peer_epochs or arch['peer_epochs']
  epochs = max(epochs, 2)
  missing = peer_available()
  if missing:
    print(f'PEER SKIPPED: {missing}. Reporting tfvae only.', flush=True)
  variant_name, variant_flags = arch['variant']
  names = ['tfvae'] + ([] if missing else
                       ['peer plain'] + ([f'peer {variant_name}'] if FLAGS.peer_variant else []))
  load_before = loadavg()
  print(f'arch {FLAGS.arch}: 784-{"-".join([str(arch["hidden"])] * arch["layers"])}-'
        f'{arch["z"]} {arch["act"]}, batch {arch["batch"]}; tfvae {num_steps} steps, peer '
        f'{epochs} epochs; {FLAGS.rounds} rounds; load average {load_before}'
        + (f'; tfvae hparams {FLAGS.tfvae_hparams}' if FLAGS.tfvae_hparams else ''), flush=True)
  per_round = []
  for i in range(1, FLAGS.rounds + 1):
    results = {}
    print(f'round {i}/{FLAGS.rounds}: tfvae', flush=True)
    results['tfvae'], _ = run_tfvae(arch, num_steps)
    if not missing:
      print(f'round {i}/{FLAGS.rounds}: peer plain', flush=True)
      results['peer plain'] = run_peer(arch, epochs)
      if FLAGS.peer_variant:
        print(f'round {i}/{FLAGS.rounds}: peer {variant_name}', flush=True)
        results[f'peer {variant_name}'] = run_peer(arch, epochs, variant_flags)
    per_round.append(results)
  ceiling = None
  if FLAGS.ceiling and not missing:
    print('matmul ceiling', flush=True)
    ceiling = run_ceiling(arch)
  tf_gflops = run_tf_gemm() if ceiling else None
  load_after = loadavg()

  print_rounds(names, per_round)
  medians = {n: median_or_none(r[n]['examples_per_sec'] for r in per_round) for n in names}
  peaks = {n: max(r[n]['peak_rss_gib'] for r in per_round) for n in names}
  tf_rate = medians['tfvae']
  peer_plain = medians.get('peer plain')
  peer_best = max([v for n, v in medians.items() if n != 'tfvae' and v is not None],
                  default=None)
  print('\nmedian over rounds (examples/sec):')
  for n in names:
    print(f'  {n:<28} {fmt(medians[n]):>10}   peak memory {peaks[n]:.2f} GiB')
  print(f'  tfvae / peer plain           {fmt(ratio(tf_rate, peer_plain), ".3f"):>10}')
  print(f'  tfvae / peer best            {fmt(ratio(tf_rate, peer_best), ".3f"):>10}')
  ceil_big = ceil_layer = None
  if ceiling:
    ceil_big = ceiling['ceiling_examples_per_sec_big_gemm']
    ceil_layer = ceiling['ceiling_examples_per_sec_layer_gemm']
    print(f'  ceiling (1024^3 GEMM rate)   {fmt(ceil_big):>10}   tfvae at '
          f'{fmt(ratio(tf_rate, ceil_big), ".1%")}')
    print(f'  ceiling (layer GEMM rate)    {fmt(ceil_layer):>10}   tfvae at '
          f'{fmt(ratio(tf_rate, ceil_layer), ".1%")}')
  ceil_tf = None
  if ceiling and tf_gflops:
    ceil_tf = round(tf_gflops * 1e9 / ceiling['train_flops_per_example_3x'])
    print(f'  ceiling (TF\'s own GEMM rate) {fmt(ceil_tf):>10}   tfvae at '
          f'{fmt(ratio(tf_rate, ceil_tf), ".1%")}   (TF 1024^3 GEMM {tf_gflops} GFLOP/s, '
          f'torch {ceiling["gflops"].get("1024x1024 @ 1024x1024")})')
  print(f'  load average before/after    {load_before} / {load_after}')
  result = dict(
      bench='throughput', arch=FLAGS.arch, batch=arch['batch'], rounds=FLAGS.rounds,
      tfvae_hparams=FLAGS.tfvae_hparams,
      tfvae_num_steps=num_steps, peer_epochs=epochs, threads=FLAGS.threads,
      peer_skipped=missing,
      examples_per_sec={n: medians[n] for n in names},
      per_round={n: [r[n]['examples_per_sec'] for r in per_round] for n in names},
      tfvae_over_peer_plain=ratio(tf_rate, peer_plain),
      tfvae_over_peer_best=ratio(tf_rate, peer_best),
      ceiling_examples_per_sec_big_gemm=ceil_big,
      ceiling_examples_per_sec_layer_gemm=ceil_layer,
      tfvae_fraction_of_ceiling_big_gemm=ratio(tf_rate, ceil_big),
      tfvae_fraction_of_ceiling_layer_gemm=ratio(tf_rate, ceil_layer),
      ceiling_gflops=ceiling and ceiling['gflops'],
      tf_gemm_gflops=tf_gflops, ceiling_examples_per_sec_tf_gemm=ceil_tf,
      tfvae_fraction_of_ceiling_tf_gemm=ratio(tf_rate, ceil_tf),
      peak_rss_gib=peaks,
      torch=next((r['peer plain'].get('torch') for r in per_round if 'peer plain' in r), None),
      load_average=[load_before, load_after], commit=commit(),
      date=datetime.datetime.now().isoformat(timespec='seconds'))
  print(json.dumps(_rounded(result)), flush=True)


def overhead(_):
  arch = ARCHS['paper']
  num_steps = tfvae_steps(arch)
  num_steps = max(int(round(num_steps / (4 * LOG_EVERY))) * 4 * LOG_EVERY, 4 * LOG_EVERY)
  quarter = num_steps // 4
  modes = {
      'default rates': DEFAULT_RATES,
      'rare': [f'--log_every_n_steps={quarter}', '--checkpoint_every_secs=100000',
               '--image_every_n_steps=0'],
  }
  load_before = loadavg()
  print(f'overhead: paper arch, {num_steps} steps per run, {FLAGS.rounds} rounds; rate over '
        f'steps {quarter}-{num_steps}; load average {load_before}', flush=True)
  per_round = []
  for i in range(1, FLAGS.rounds + 1):
    results = {}
    for name, extra in modes.items():
      print(f'round {i}/{FLAGS.rounds}: tfvae {name}', flush=True)
      r, rows = run_tfvae(arch, num_steps, extra)
      r['span_examples_per_sec'] = span_rate(rows, quarter, arch['batch'])
      results[name] = r
    per_round.append(results)
  load_after = loadavg()
  names = list(modes)
  print_rounds(names, per_round)
  span = {n: median_or_none(r[n]['span_examples_per_sec'] for r in per_round) for n in names}
  window = {n: median_or_none(r[n]['examples_per_sec'] for r in per_round) for n in names}

  def cost(rates):
    rare, default = rates['rare'], rates['default rates']
    return None if rare is None or default is None else (rare - default) / rare

  print('\nmedian over rounds (examples/sec):')
  print(f'  {"":<16} {"span":>10} {"window median":>14}')
  for n in names:
    print(f'  {n:<16} {fmt(span[n]):>10} {fmt(window[n]):>14}')
  print(f'  relative cost of the default rates, (rare - default) / rare: '
        f'{fmt(cost(span), ".1%")} (span), {fmt(cost(window), ".1%")} (window medians)')
  print(f'  load average before/after {load_before} / {load_after}')
  if num_steps * arch['batch'] / arch['rough_rate'] < 60:
    print('  note: runs shorter than 60 s write no periodic checkpoint (only the final one, '
          'after the measured span); use --seconds >= 120 to include one.')
  result = dict(
      bench='overhead', arch='paper', batch=arch['batch'], rounds=FLAGS.rounds,
      tfvae_num_steps=num_steps, measured_steps=[quarter, num_steps],
      flags={n: modes[n] for n in names},
      examples_per_sec_span=span, examples_per_sec_window_median=window,
      per_round_span={n: [r[n]['span_examples_per_sec'] for r in per_round] for n in names},
      relative_cost_span=cost(span), relative_cost_window=cost(window),
      peak_rss_gib={n: max(r[n]['peak_rss_gib'] for r in per_round) for n in names},
      load_average=[load_before, load_after], commit=commit(),
      date=datetime.datetime.now().isoformat(timespec='seconds'))
  print(json.dumps(_rounded(result)), flush=True)


def iw_speed(_):
  """tfvae's bin/evaluate.py against the peer's --iw_k: seconds for the same K and images."""
  arch = ARCHS['paper']
  run_dir = tempfile.mkdtemp(prefix='tfvae_bench_iw_')
  skipped = peer_available()
  if skipped:
    print(f'peer skipped: {skipped}', flush=True)
  print(f'IW log-likelihood, K={FLAGS.iw_k}, {FLAGS.iw_examples} test images, paper arch; '
        f'{FLAGS.rounds} rounds; load average {loadavg()}', flush=True)
  per_round = {'tfvae': [], 'peer': []}
  rows = []
  try:
    lines, rc, _, _ = run_child(
        [FLAGS.tfvae_python, os.path.join(ROOT, 'bin', 'train.py'),
         '--config=binarized_mnist_fc', f'--data_dir={FLAGS.data_dir}', f'--run_dir={run_dir}',
         '--num_steps=500'], timeout=600)
    if rc:
      raise RuntimeError('tfvae training failed:\n' + tail(lines))
    for r in range(1, FLAGS.rounds + 1):
      print(f'round {r}/{FLAGS.rounds}: tfvae', flush=True)
      lines, rc, wall, rss = run_child(
          [FLAGS.tfvae_python, os.path.join(ROOT, 'bin', 'evaluate.py'), f'--run_dir={run_dir}',
           f'--data_dir={FLAGS.data_dir}', f'--num_importance_samples={FLAGS.iw_k}',
           f'--num_examples={FLAGS.iw_examples}'], timeout=7200)
      out = last_json(lines)
      if rc or not out:
        raise RuntimeError('bin/evaluate.py failed:\n' + tail(lines))
      per_round['tfvae'].append(out['seconds'])
      rows.append((r, 'tfvae', out['seconds'], wall, rss, f'log p(x) {out["log_likelihood"]:.3f}'))
      if skipped:
        continue
      print(f'round {r}/{FLAGS.rounds}: peer', flush=True)
      cmd = [FLAGS.peer_python, os.path.join(FLAGS.peers_dir, 'torch_vae.py'),
             '--data', os.path.join(FLAGS.data_dir, 'binarized_mnist.npz'),
             '--hidden', str(arch['hidden']), '--layers', str(arch['layers']),
             '--z', str(arch['z']), '--act', arch['act'], '--epochs', '1',
             '--threads', str(FLAGS.threads), '--iw_k', str(FLAGS.iw_k)]
      if FLAGS.iw_examples < 10000:
        cmd += ['--iw_n', str(FLAGS.iw_examples)]
      lines, rc, wall, rss = run_child(cmd, timeout=7200)
      out = last_json(lines)
      if rc or not out or 'iw_s' not in out:
        raise RuntimeError('the peer failed:\n' + tail(lines))
      per_round['peer'].append(out['iw_s'])
      rows.append((r, 'peer', out['iw_s'], wall, rss, f'NLL {out["test_nll"]:.3f}'))
  finally:
    shutil.rmtree(run_dir, ignore_errors=True)
  print(f'\n{"round":>5}  {"run":<8}{"IW seconds":>12}{"wall s":>9}{"peak GiB":>10}  detail')
  for r, name, secs, wall, rss, detail in rows:
    print(f'{r:>5}  {name:<8}{secs:>12.1f}{wall:>9.1f}{rss / GIB:>10.2f}  {detail}')
  tfvae_s, peer_s = median_or_none(per_round['tfvae']), median_or_none(per_round['peer'])
  print(f'\nmedian seconds: tfvae {fmt(tfvae_s, ".1f")}, peer {fmt(peer_s, ".1f")}; '
        f'tfvae / peer time {fmt(ratio(tfvae_s, peer_s), ".3f")}; '
        f'load average after {loadavg()}')
  print(json.dumps(_rounded({
      'bench': 'iw', 'iw_k': FLAGS.iw_k, 'iw_examples': FLAGS.iw_examples,
      'rounds': FLAGS.rounds, 'seconds': {'tfvae': tfvae_s, 'peer': peer_s},
      'per_round': per_round, 'tfvae_over_peer_time': ratio(tfvae_s, peer_s),
      'peak_rss_gib': {name: max(r[4] for r in rows if r[1] == name) / GIB
                       for name in ('tfvae', 'peer') if any(r[1] == name for r in rows)},
      'peer_skipped': skipped, 'commit': commit(),
      'date': datetime.datetime.now().isoformat(timespec='seconds')})), flush=True)


def _rounded(obj):
  if isinstance(obj, float):
    return round(obj, 4) if abs(obj) < 10 else round(obj, 1)
  if isinstance(obj, dict):
    return {k: _rounded(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_rounded(v) for v in obj]
  return obj


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}')
  FLAGS.data_dir = os.path.abspath(FLAGS.data_dir)
  FLAGS.peers_dir = os.path.abspath(FLAGS.peers_dir)
  if FLAGS.overhead:
    overhead(argv)
  elif FLAGS.iw:
    iw_speed(argv)
  else:
    throughput(argv)


if __name__ == '__main__':
  app.run(main)
