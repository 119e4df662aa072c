#!/usr/bin/env python
"""Training and evaluation speed of tfvae's real tools, against the plain PyTorch peer and the
GEMM ceiling of the machine.

    python bench/throughput.py                        # paper arch against the peer, 3 rounds
    python bench/throughput.py --arch=wide --rounds=5 # 784-512-512-32 relu, batch 1024
    python bench/throughput.py --arch=gated           # binarized_mnist_gated vs its ceiling
    python bench/throughput.py --arch=binarize        # mnist_fc: dynamic vs static data
    python bench/throughput.py --iw                   # IW log-likelihood, K=5000
    python bench/throughput.py --parts                # the paper step, part by part
    python bench/throughput.py --device               # examples/sec and % of device peak
    python bench/throughput.py --overhead             # cost of the default logging rates

Training runs are `bin/train.py` subprocesses (a fresh run_dir each, their default logging,
summaries, images and checkpoints), alternated round by round. Each run gives three figures:

    window   median examples/sec of its log windows (100 steps), leaving out the first
    span     examples/sec from the log timestamps, first log line (compilation done) to last:
             the steady rate including every checkpoint, summary and validation in between
    process  examples trained / wall-clock seconds of the whole process, start to end

and each figure reported is the median over rounds. The peer's are the same three: the median
of its epochs after the first, its epochs after the first end to end (training time only), and
its process. In the paper and wide modes the peer trains as many examples as tfvae.

Ceilings: the exact training FLOPs per example of the arch's GEMMs (each dense layer's forward
x W, weight gradient x^T dy and input gradient dy W^T, none for the first layer's input; the
encoder once per example, the decoder num_samples times; glu layers 2x wide), and TensorFlow's
own XLA GEMM rate, timed inside one compiled loop like the training step's: at a large size
(the best of 1024^3 and 2048^3) and at the arch's own GEMM shapes (the ceiling then is the
batch over the summed GEMM times of one step). The paper and wide modes also run the peer's
`matmul_ceiling.py` (torch's rate, 3 x forward FLOPs) for comparison.

The peer runs under --peer_python; without it, under /tmp/torchvenv, made here (torch 2.13.0
CPU, numpy, scipy) when it does not exist. If torch cannot be had, the bench exits with one
line. The bench prints figures (tables, then one JSON line) and asserts nothing. The machine
is shared: the 1-minute load average before and after is printed with every result.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from children import fmt
from children import loadavg
from children import median_or_none
from children import print_json
from children import run_child

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
flags.DEFINE_enum('arch', 'paper', ['paper', 'wide', 'gated', 'binarize'],
                  'What to train (see ARCHS): paper and wide against the peer; gated against '
                  'its GEMM ceiling; binarize: mnist_fc with dynamic against static data.')
flags.DEFINE_integer('rounds', 3, 'Alternating rounds.', lower_bound=1)
flags.DEFINE_float('seconds', 20.0, 'Rough length of one tfvae training run; sets '
                   '--num_steps from a rough rate for the arch.', lower_bound=0.0)
flags.DEFINE_integer('num_steps', 0, 'tfvae steps per run; 0 = from --seconds.', lower_bound=0)
flags.DEFINE_integer('peer_epochs', 0, 'Peer epochs per run; 0 = as many examples as tfvae '
                     '(at least 2, so there is an epoch after the first).', lower_bound=0)
flags.DEFINE_string('data_dir', os.path.join(ROOT, '..', 'shared', 'data'),
                    'Folder with binarized_mnist.npz and mnist.npz.')
flags.DEFINE_string('peers_dir', os.path.join(ROOT, '..', 'shared', 'peers'),
                    'Folder with torch_vae.py and matmul_ceiling.py.')
flags.DEFINE_string('peer_python', None, 'Python with torch for the peer; default: '
                    '/tmp/torchvenv/bin/python, the environment made here if it is missing.')
flags.DEFINE_string('tfvae_python', sys.executable, 'Python with tfvae installed.')
flags.DEFINE_integer('threads', 2, 'Peer and ceiling --threads (tfvae uses its default).')
flags.DEFINE_boolean('peer_variant', True, 'Also run the peer\'s faster variant.')
flags.DEFINE_boolean('ceiling', True, 'Time the GEMM ceilings.')
flags.DEFINE_string('tfvae_hparams', '', 'Extra hparams for tfvae\'s runs, appended to the '
                    'arch\'s (e.g. mixed_precision=bfloat16); the peer is unchanged.')
flags.DEFINE_boolean('overhead', False, 'Measure the cost of the default logging, summary, '
                     'image and checkpoint rates (paper arch, tfvae only).')
flags.DEFINE_boolean('iw', False, 'Time the importance-weighted log-likelihood instead.')
flags.DEFINE_integer('iw_k', 5000, 'Importance samples per image for --iw.', lower_bound=1)
flags.DEFINE_integer('iw_examples', 10000, 'Test images for --iw.', lower_bound=1)
flags.DEFINE_boolean('parts', False, 'Micro-benchmark the parts of the paper arch\'s training '
                     'step (XLA-compiled loops of the same shapes) against the whole step.')
flags.DEFINE_boolean('device', False, 'Examples/sec and fraction of the device\'s measured '
                     'GEMM peak for the paper, wide and conv models, per precision.')
flags.DEFINE_list('device_models', ['paper', 'wide', 'conv'], '--device: models to run.')
flags.DEFINE_list('precisions', ['none', 'bfloat16'], '--device: mixed_precision values.')
flags.DEFINE_string('train_flags', '', '--device: extra bin/train.py flags, space-separated '
                    '(e.g. "--strategy=tpu --tpu=NAME").')
flags.DEFINE_string('gemm_times', None, 'Internal (the ceilings\' child process): JSON '
                    '{"shapes": [[m, k, n, transpose_a, transpose_b], ...], "dtype": ..., '
                    '"big": [sizes]}; prints the ms of each GEMM and the big GEMMs\' GFLOP/s.')
flags.DEFINE_boolean('verbose', False, 'Echo the children\'s output.')

PIXELS = 784
TRAIN_EXAMPLES = 50000  # binarized MNIST's and MNIST's training splits
PAPER = dict(hidden=[500], z=20, act='tanh', batch=100, samples=1)
ARCHS = {
    'paper': dict(PAPER, config='binarized_mnist_fc', hparams='', rough_rate=25000,
                  peer_args=['--hidden', '500', '--layers', '1', '--z', '20', '--act', 'tanh'],
                  variant=('fused_adam+compile', ['--fused_adam', '--compile'])),
    'wide': dict(hidden=[512, 512], z=32, act='relu', batch=1024, samples=1,
                 config='binarized_mnist_fc',
                 hparams='hidden_sizes=[512,512],z_size=32,activation=relu,batch_size=1024',
                 rough_rate=30000,
                 peer_args=['--hidden', '512', '--layers', '2', '--z', '32', '--act', 'relu'],
                 variant=('compile', ['--compile'])),
    'gated': dict(hidden=[300, 300], z=40, act='glu', batch=100, samples=20,
                  config='binarized_mnist_gated', hparams='', rough_rate=2500),
    'binarize': dict(PAPER, config='mnist_fc', hparams='', rough_rate=25000),
}
LOG_EVERY = 100  # the trainer's default --log_every_n_steps
DEFAULT_RATES = ['--log_every_n_steps=100', '--checkpoint_every_secs=60',
                 '--image_every_n_steps=1000']
# "I1122 05:30:03.053728 1401... training.py:275] step 200/600  loss ...  21769 examples/sec"
LOG_LINE = re.compile(r'^I(\d{4}) (\d\d):(\d\d):(\d\d\.\d+) .*\] step (\d+)/(\d+) .*?'
                      r'([\d.]+) examples/sec')
GIB = 1024.0 ** 3
PEER_VENV = '/tmp/torchvenv'
PEER_PACKAGES = ['torch==2.13.0', 'numpy', 'scipy']


def _run(cmd, timeout):
  """children.run_child, echoing the child with --verbose."""
  return run_child(cmd, timeout, FLAGS.verbose)


def tail(lines, n=8):
  return '\n'.join('    ' + line for line in lines[-n:])


def last_json(lines):
  for line in reversed(lines):
    if line.startswith('{'):
      try:
        return json.loads(line)
      except ValueError:
        pass
  return None


def _child_json(cmd, timeout, what):
  """The last JSON line cmd prints; None (and its last lines printed) when it fails."""
  lines, rc, _, _ = _run(cmd, timeout)
  out = last_json(lines)
  if rc or not out:
    print(f'  {what} failed (rc {rc}):\n' + tail(lines), flush=True)
    return None
  return out


# FLOPs and GEMM ceilings


def mlp_layers(arch):
  """The dense layers of the arch's VAE as (inputs, outputs, rows per example): the encoder
  (hidden layers, then the mean and scale heads) once per example, the decoder once per
  posterior sample; a glu layer computes 2x its width."""
  def width(h):
    return 2 * h if arch['act'] == 'glu' else h
  layers, inputs = [], PIXELS
  for h in arch['hidden']:
    layers.append((inputs, width(h), 1))
    inputs = h
  layers += [(inputs, arch['z'], 1)] * 2
  inputs = arch['z']
  for h in reversed(arch['hidden']):
    layers.append((inputs, width(h), arch['samples']))
    inputs = h
  layers.append((inputs, PIXELS, arch['samples']))
  return layers


def step_gemms(arch):
  """The GEMMs of one training step, [(m, k, n, transpose_a, transpose_b)]: for each dense
  layer on m rows, the forward x W [m, k] @ [k, n], the weight gradient x^T dy, and but for the
  first layer (whose input is the data) the input gradient dy W^T."""
  gemms = []
  for i, (k, n, rows) in enumerate(mlp_layers(arch)):
    m = arch['batch'] * rows
    gemms.append((m, k, n, False, False))
    gemms.append((k, m, n, True, False))
    if i:
      gemms.append((m, n, k, False, True))
  return gemms


def gemm_flops(gemms):
  return sum(2 * m * k * n for m, k, n, _, _ in gemms)


def time_gemms(spec):
  """Runs this script as a child timing TensorFlow's GEMMs (see --gemm_times); its JSON."""
  return _child_json([FLAGS.tfvae_python, os.path.abspath(__file__),
                      '--gemm_times=' + json.dumps(spec)], 1800, 'TensorFlow GEMM timing')


def merge_gemm_times(timings):
  """The best of several --gemm_times results (the fastest time of each shape, the highest
  rate of each big GEMM): on a shared machine, the closest to what the hardware can do."""
  timings = [t for t in timings if t]
  if not timings:
    return None
  best = dict(timings[0])
  best['shapes'] = [list(s[:5]) + [min(t['shapes'][i][5] for t in timings)]
                    for i, s in enumerate(timings[0]['shapes'])]
  best['big'] = {k: max(t['big'][k] for t in timings) for k in timings[0]['big']}
  return best


def gemm_spec(arch):
  return {'shapes': sorted(set(step_gemms(arch))), 'dtype': 'float32', 'big': [1024, 2048]}


def tf_ceilings(arch, timed):
  """The arch's ceilings (examples/sec) at TF's GEMM rates `timed` (from --gemm_times of
  gemm_spec(arch)), or None."""
  if not timed:
    return None
  gemms = step_gemms(arch)
  ms = {tuple(s[:5]): s[5] for s in timed['shapes']}
  step_ms = sum(ms[g] for g in gemms)
  flops = gemm_flops(gemms) / arch['batch']
  big = max(timed['big'].values())
  return dict(device=timed['device'], big_gemm_gflops=timed['big'],
              flops_per_example=flops, forward_macs_per_example=sum(
                  k * n * rows for k, n, rows in mlp_layers(arch)),
              layer_gemm_ms_per_step=step_ms,
              layer_gemm_gflops=gemm_flops(gemms) / step_ms / 1e6,
              ceiling_big=big * 1e9 / flops,
              ceiling_layers=arch['batch'] / step_ms * 1e3)


def print_ceilings(c, figures):
  """The ceilings and each figure's fraction of them; figures: {label: examples/sec}."""
  print(f'  GEMM FLOPs per example (exact)   {c["flops_per_example"] / 1e6:,.3f} M   (forward '
        f'MACs {c["forward_macs_per_example"]:,})')
  big = ', '.join(f'{s}^3 {g:.1f}' for s, g in c['big_gemm_gflops'].items())
  print(f'  TF GEMM rate, large              {big} GFLOP/s  ({c["device"]})')
  print(f'  TF GEMM rate, the arch\'s shapes  {c["layer_gemm_gflops"]:.1f} GFLOP/s '
        f'({c["layer_gemm_ms_per_step"]:.3f} ms of GEMMs a step)')
  for name, key in (('ceiling at the large-GEMM rate', 'ceiling_big'),
                    ('ceiling at the arch\'s shapes', 'ceiling_layers')):
    fractions = ', '.join(f'{label} {fmt(ratio(v, c[key]), ".1%")}'
                          for label, v in figures.items())
    print(f'  {name:<32} {fmt(c[key]):>8} ex/s   {fractions}')


def run_torch_ceiling(arch, python):
  cmd = [python, os.path.join(FLAGS.peers_dir, 'matmul_ceiling.py'),
         '--threads', str(FLAGS.threads), '--hidden', str(arch['hidden'][0]),
         '--layers', str(len(arch['hidden'])), '--z', str(arch['z']),
         '--batch', str(arch['batch'])]
  return _child_json(cmd, 600, 'matmul_ceiling.py')


# tfvae runs


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


def run_tfvae(config, hparams, batch, num_steps, extra_flags=(), label='tfvae'):
  """One bin/train.py run from scratch: its figures (window, span, process) and log rows."""
  run_dir = tempfile.mkdtemp(prefix='tfvae_bench_')
  cmd = [FLAGS.tfvae_python, os.path.join(ROOT, 'bin', 'train.py'), f'--config={config}',
         f'--run_dir={run_dir}', f'--num_steps={num_steps}']
  hparams = ','.join(h for h in (hparams, FLAGS.tfvae_hparams) if h)
  if hparams:
    cmd.append(f'--hparams={hparams}')
  cmd += list(extra_flags)
  if not any(f.startswith('--data_dir') or f.startswith('--dataset') for f in extra_flags):
    cmd.append(f'--data_dir={FLAGS.data_dir}')
  try:
    lines, rc, seconds, rss = _run(cmd, timeout=max(600, 20 * FLAGS.seconds))
  finally:
    shutil.rmtree(run_dir, ignore_errors=True)
  rows = parse_tfvae(lines)
  result = dict(rc=rc, wall_s=round(seconds, 1), peak_rss_gib=round(rss / GIB, 3),
                num_steps=num_steps, windows=[r[2] for r in rows], window=None, span=None,
                process=None)
  if rc or len(rows) < 2:
    print(f'  {label} failed (rc {rc}, {len(rows)} log lines parsed); its last lines:\n'
          + tail(lines), flush=True)
    return result, rows
  result.update(window=statistics.median(r[2] for r in rows[1:]),
                span=span_rate(rows, rows[0][0], batch),
                process=num_steps * batch / seconds)
  return result, rows


# The peer


def _torch_version(python):
  try:
    check = subprocess.run([python, '-c', 'import torch; print(torch.__version__)'],
                           capture_output=True, text=True, timeout=300)
  except OSError:
    return None
  return check.stdout.strip() if check.returncode == 0 else None


def peer_python():
  """The Python that runs the peer: --peer_python, else /tmp/torchvenv/bin/python (making the
  environment, or installing torch into it, when needed). Exits with one line if the peer's
  script is missing or torch cannot be had."""
  script = os.path.join(FLAGS.peers_dir, 'torch_vae.py')
  if not os.path.exists(script):
    sys.exit(f'error: the peer {script} does not exist; pass --peers_dir=FOLDER holding '
             'torch_vae.py and matmul_ceiling.py')
  if FLAGS.peer_python:
    if not _torch_version(FLAGS.peer_python):
      sys.exit(f'error: torch does not import under --peer_python={FLAGS.peer_python}; give '
               'a Python with torch, or leave the flag out to use /tmp/torchvenv')
    return FLAGS.peer_python
  python = os.path.join(PEER_VENV, 'bin', 'python')
  if os.path.exists(PEER_VENV) and _torch_version(python):
    return python
  install = ' '.join(PEER_PACKAGES)
  if not os.path.exists(PEER_VENV):
    print(f'making the peer\'s environment: python3 -m venv {PEER_VENV} && '
          f'{PEER_VENV}/bin/pip install {install}', flush=True)
    made = subprocess.run(['python3', '-m', 'venv', PEER_VENV], capture_output=True, text=True)
    if made.returncode:
      sys.exit(f'error: python3 -m venv {PEER_VENV} failed ({_last_line(made)}); pass '
               '--peer_python=PYTHON, a Python with torch')
  else:
    print(f'torch does not import under {python}: {PEER_VENV}/bin/pip install {install}',
          flush=True)
  pip = subprocess.run([os.path.join(PEER_VENV, 'bin', 'pip'), 'install', '-q']
                       + PEER_PACKAGES, capture_output=True, text=True)
  if pip.returncode or not _torch_version(python):
    sys.exit(f'error: could not install {install} into {PEER_VENV} ({_last_line(pip)}); '
             'pass --peer_python=PYTHON, a Python with torch')
  print(f'  made {PEER_VENV} with torch {_torch_version(python)}', flush=True)
  return python


def _last_line(completed):
  text = (completed.stderr or completed.stdout or '').strip().splitlines()
  return text[-1] if text else f'exit status {completed.returncode}'


def run_peer(python, arch, epochs, extra_flags=()):
  """One peer run: its figures (window: median epoch after the first; span: those epochs end
  to end; process: all examples over the process's wall time)."""
  cmd = [python, os.path.join(FLAGS.peers_dir, 'torch_vae.py'),
         '--data', os.path.join(FLAGS.data_dir, 'binarized_mnist.npz')] + arch['peer_args'] + [
         '--batch', str(arch['batch']), '--epochs', str(epochs),
         '--threads', str(FLAGS.threads)] + list(extra_flags)
  lines, rc, seconds, rss = _run(cmd, timeout=3600)
  out = last_json(lines)
  result = dict(rc=rc, wall_s=round(seconds, 1), peak_rss_gib=round(rss / GIB, 3),
                window=None, span=None, process=None)
  if rc or not out or out.get('examples_per_sec') is None:
    print(f'  peer failed (rc {rc}); its last lines:\n' + tail(lines), flush=True)
    return result
  later = out['epochs'][1:] or out['epochs']
  result.update(window=out['examples_per_sec'], torch=out.get('torch'),
                span=TRAIN_EXAMPLES * len(later) / sum(e['train_s'] for e in later),
                process=TRAIN_EXAMPLES * epochs / seconds,
                epochs=[e['examples_per_sec'] for e in out['epochs']],
                compiled=out.get('compiled'), compile_error=out.get('compile_error'),
                compile_s=out.get('compile_s'))
  if '--compile' in extra_flags and not out.get('compiled'):
    print(f'  note: torch.compile failed, the variant ran eagerly: {out.get("compile_error")}',
          flush=True)
  return result


# Reporting

FIGURES = ('window', 'span', 'process')


def ratio(a, b):
  return None if a is None or not b else a / b


def print_rounds(names, per_round):
  print(f'\n{"round":>5}  {"run":<26} {"window":>8} {"span":>8} {"process":>8}  {"wall s":>7}  '
        f'{"peak GiB":>8}  detail')
  for i, results in enumerate(per_round, 1):
    for name in names:
      r = results.get(name)
      if r is None:
        continue
      detail = ''
      if 'windows' in r:
        first_window = r['windows'][0] if r['windows'] else None
        detail = f'{len(r["windows"])} windows, first {fmt(first_window)}'
      elif r.get('epochs'):
        detail = 'epochs ' + ' '.join(fmt(e) for e in r['epochs'])
        if r.get('compiled'):
          detail += f' (compile {r["compile_s"]} s)'
      print(f'{i:>5}  {name:<26} {fmt(r["window"]):>8} {fmt(r["span"]):>8} '
            f'{fmt(r["process"]):>8}  {r["wall_s"]:>7.1f}  {r["peak_rss_gib"]:>8.2f}  {detail}')


def medians_of(names, per_round):
  """{name: {figure: median over rounds}}."""
  return {n: {f: median_or_none(r[n][f] for r in per_round if n in r) for f in FIGURES}
          for n in names}


def print_medians(medians, pairs):
  """The medians of every run and the ratios of `pairs` [(label, a, b)], figure by figure."""
  print(f'\nmedian over rounds (examples/sec)  {"window":>8} {"span":>8} {"process":>8}')
  for name, m in medians.items():
    print(f'  {name:<32} {fmt(m["window"]):>8} {fmt(m["span"]):>8} {fmt(m["process"]):>8}')
  for label, a, b in pairs:
    values = [fmt(ratio(medians[a][f], medians[b][f]), '.3f') for f in FIGURES]
    print(f'  {label:<32} {values[0]:>8} {values[1]:>8} {values[2]:>8}')


def ratios_json(medians, pairs):
  return {label: {f: ratio(medians[a][f], medians[b][f]) for f in FIGURES}
          for label, a, b in pairs}


def throughput():
  """paper / wide: tfvae against the peer (plain and its faster variant), alternating."""
  arch = ARCHS[FLAGS.arch]
  python = peer_python()
  num_steps = tfvae_steps(arch)
  epochs = FLAGS.peer_epochs or max(2, round(num_steps * arch['batch'] / TRAIN_EXAMPLES))
  variant_name, variant_flags = arch['variant']
  names = ['tfvae', 'peer plain'] + ([f'peer {variant_name}'] if FLAGS.peer_variant else [])
  load_before = loadavg()
  print(f'arch {FLAGS.arch}: {"-".join(map(str, [PIXELS] + arch["hidden"] + [arch["z"]]))} '
        f'{arch["act"]}, batch {arch["batch"]}; tfvae {num_steps} steps ('
        f'{num_steps * arch["batch"]:,} examples), peer {epochs} epochs '
        f'({epochs * TRAIN_EXAMPLES:,}); {FLAGS.rounds} rounds; load average {load_before}'
        + (f'; tfvae hparams {FLAGS.tfvae_hparams}' if FLAGS.tfvae_hparams else ''), flush=True)
  if FLAGS.ceiling:
    print('GEMM rates (timed before and after the rounds; the best of both is used)', flush=True)
  gemms_before = time_gemms(gemm_spec(arch)) if FLAGS.ceiling else None
  per_round = []
  for i in range(1, FLAGS.rounds + 1):
    results = {}
    print(f'round {i}/{FLAGS.rounds}: tfvae', flush=True)
    results['tfvae'], _ = run_tfvae(arch['config'], arch['hparams'], arch['batch'], num_steps)
    print(f'round {i}/{FLAGS.rounds}: peer plain', flush=True)
    results['peer plain'] = run_peer(python, arch, epochs)
    if FLAGS.peer_variant:
      print(f'round {i}/{FLAGS.rounds}: peer {variant_name}', flush=True)
      results[f'peer {variant_name}'] = run_peer(python, arch, epochs, variant_flags)
    per_round.append(results)
  ceilings = torch_ceiling = None
  if FLAGS.ceiling:
    print('GEMM ceilings', flush=True)
    ceilings = tf_ceilings(arch, merge_gemm_times([gemms_before,
                                                   time_gemms(gemm_spec(arch))]))
    torch_ceiling = run_torch_ceiling(arch, python)
  load_after = loadavg()

  print_rounds(names, per_round)
  medians = medians_of(names, per_round)
  best = max(names[1:], key=lambda n: medians[n]['span'] or 0)
  pairs = [('tfvae / peer plain', 'tfvae', 'peer plain')]
  if best != 'peer plain':  # the faster variant
    pairs.append((f'tfvae / {best}', 'tfvae', best))
  print_medians(medians, pairs)
  tf_figures = {f: medians['tfvae'][f] for f in ('window', 'span')}
  if ceilings:
    print_ceilings(ceilings, {f'tfvae {f}': v for f, v in tf_figures.items()})
  if torch_ceiling:
    big = torch_ceiling['ceiling_examples_per_sec_big_gemm']
    print(f'  torch ceiling (1024^3 GEMM, 3x)  {fmt(big):>8} ex/s   tfvae window '
          f'{fmt(ratio(tf_figures["window"], big), ".1%")}   (torch 1024^3 '
          f'{torch_ceiling["gflops"].get("1024x1024 @ 1024x1024")} GFLOP/s)')
  print(f'  load average before/after        {load_before} / {load_after}')
  print_json(dict(
      bench='throughput', arch=FLAGS.arch, batch=arch['batch'], rounds=FLAGS.rounds,
      tfvae_hparams=FLAGS.tfvae_hparams, tfvae_num_steps=num_steps, peer_epochs=epochs,
      threads=FLAGS.threads, examples_per_sec=medians, ratios=ratios_json(medians, pairs),
      per_round={n: {f: [r[n][f] for r in per_round] for f in FIGURES} for n in names},
      ceilings=ceilings, torch_ceiling=torch_ceiling and {
          k: torch_ceiling[k] for k in ('gflops', 'ceiling_examples_per_sec_big_gemm',
                                        'ceiling_examples_per_sec_layer_gemm')},
      fraction_of_ceiling=ceilings and {
          f'{f}_{c}': ratio(v, ceilings[f'ceiling_{c}'])
          for f, v in tf_figures.items() for c in ('big', 'layers')},
      peak_rss_gib={n: max(r[n]['peak_rss_gib'] for r in per_round) for n in names},
      torch=next((r['peer plain'].get('torch') for r in per_round), None),
      load_average=[load_before, load_after]))


def gated():
  """binarized_mnist_gated (gated 300-300, z 40, IWAE K=20): examples/sec and its fraction of
  its own GEMM ceiling."""
  arch = ARCHS['gated']
  num_steps = tfvae_steps(arch)
  load_before = loadavg()
  print(f'arch gated: binarized_mnist_gated (gated 300-300, z 40, K = 20 decoder passes), '
        f'batch 100; {num_steps} steps; {FLAGS.rounds} rounds; load average {load_before}',
        flush=True)
  if FLAGS.ceiling:
    print('GEMM rates (timed before and after the rounds; the best of both is used)', flush=True)
  gemms_before = time_gemms(gemm_spec(arch)) if FLAGS.ceiling else None
  per_round = []
  for i in range(1, FLAGS.rounds + 1):
    print(f'round {i}/{FLAGS.rounds}: tfvae gated', flush=True)
    per_round.append({'tfvae gated': run_tfvae(arch['config'], arch['hparams'],
                                               arch['batch'], num_steps)[0]})
  ceilings = None
  if FLAGS.ceiling:
    print('GEMM ceilings', flush=True)
    ceilings = tf_ceilings(arch, merge_gemm_times([gemms_before,
                                                   time_gemms(gemm_spec(arch))]))
  load_after = loadavg()
  print_rounds(['tfvae gated'], per_round)
  medians = medians_of(['tfvae gated'], per_round)
  print_medians(medians, [])
  figures = {f: medians['tfvae gated'][f] for f in ('window', 'span')}
  if ceilings:
    print_ceilings(ceilings, {f'tfvae {f}': v for f, v in figures.items()})
  print(f'  load average before/after        {load_before} / {load_after}')
  print_json(dict(
      bench='throughput', arch='gated', batch=arch['batch'], rounds=FLAGS.rounds,
      tfvae_num_steps=num_steps, examples_per_sec=medians['tfvae gated'],
      per_round={f: [r['tfvae gated'][f] for r in per_round] for f in FIGURES},
      ceilings=ceilings, fraction_of_ceiling=ceilings and {
          f'{f}_{c}': ratio(v, ceilings[f'ceiling_{c}'])
          for f, v in figures.items() for c in ('big', 'layers')},
      load_average=[load_before, load_after]))


def binarize():
  """mnist_fc (dynamically binarised MNIST) against the same model on the same images with
  binarize=false (static intensities), alternating."""
  arch = ARCHS['binarize']
  num_steps = tfvae_steps(arch)
  runs = {'mnist_fc dynamic': '', 'mnist_fc binarize=false': 'binarize=false'}
  load_before = loadavg()
  print(f'arch binarize: mnist_fc (784-500-20 tanh, batch 100) with dynamic binarisation '
        f'against binarize=false; {num_steps} steps; {FLAGS.rounds} rounds; load average '
        f'{load_before}', flush=True)
  per_round = []
  for i in range(1, FLAGS.rounds + 1):
    results = {}
    for name, hparams in runs.items():
      print(f'round {i}/{FLAGS.rounds}: {name}', flush=True)
      results[name] = run_tfvae(arch['config'], hparams, arch['batch'], num_steps,
                                label=name)[0]
    per_round.append(results)
  load_after = loadavg()
  names = list(runs)
  print_rounds(names, per_round)
  medians = medians_of(names, per_round)
  pairs = [('dynamic / static', names[0], names[1])]
  print_medians(medians, pairs)
  print(f'  load average before/after        {load_before} / {load_after}')
  print_json(dict(
      bench='throughput', arch='binarize', batch=arch['batch'], rounds=FLAGS.rounds,
      tfvae_num_steps=num_steps, examples_per_sec=medians, ratios=ratios_json(medians, pairs),
      per_round={n: {f: [r[n][f] for r in per_round] for f in FIGURES} for n in names},
      load_average=[load_before, load_after]))


def overhead():
  """The cost of the trainer's default logging, summary, image and checkpoint rates."""
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
      r, rows = run_tfvae(arch['config'], arch['hparams'], arch['batch'], num_steps, extra)
      r['span'] = span_rate(rows, quarter, arch['batch'])
      results[name] = r
    per_round.append(results)
  load_after = loadavg()
  names = list(modes)
  print_rounds(names, per_round)
  span = {n: median_or_none(r[n]['span'] for r in per_round) for n in names}
  window = {n: median_or_none(r[n]['window'] for r in per_round) for n in names}

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
  print_json(dict(
      bench='overhead', arch='paper', batch=arch['batch'], rounds=FLAGS.rounds,
      tfvae_num_steps=num_steps, measured_steps=[quarter, num_steps],
      flags={n: modes[n] for n in names},
      examples_per_sec_span=span, examples_per_sec_window_median=window,
      per_round_span={n: [r[n]['span'] for r in per_round] for n in names},
      relative_cost_span=cost(span), relative_cost_window=cost(window),
      peak_rss_gib={n: max(r[n]['peak_rss_gib'] for r in per_round) for n in names},
      load_average=[load_before, load_after]))


def iw_speed():
  """tfvae's bin/evaluate.py against the peer's --iw_k: seconds for the same K and images."""
  arch = ARCHS['paper']
  python = peer_python()
  run_dir = tempfile.mkdtemp(prefix='tfvae_bench_iw_')
  load_before = loadavg()
  print(f'IW log-likelihood, K={FLAGS.iw_k}, {FLAGS.iw_examples} test images, paper arch; '
        f'{FLAGS.rounds} rounds; load average {load_before}', flush=True)
  per_round = {'tfvae': [], 'peer': []}
  rows = []
  try:
    lines, rc, _, _ = _run(
        [FLAGS.tfvae_python, os.path.join(ROOT, 'bin', 'train.py'),
         '--config=binarized_mnist_fc', f'--data_dir={FLAGS.data_dir}', f'--run_dir={run_dir}',
         '--num_steps=500'], timeout=600)
    if rc:
      raise RuntimeError('tfvae training failed:\n' + tail(lines))
    for r in range(1, FLAGS.rounds + 1):
      print(f'round {r}/{FLAGS.rounds}: tfvae', flush=True)
      lines, rc, wall, rss = _run(
          [FLAGS.tfvae_python, os.path.join(ROOT, 'bin', 'evaluate.py'), f'--run_dir={run_dir}',
           f'--data_dir={FLAGS.data_dir}', f'--num_importance_samples={FLAGS.iw_k}',
           f'--num_examples={FLAGS.iw_examples}'], timeout=7200)
      out = last_json(lines)
      if rc or not out:
        raise RuntimeError('bin/evaluate.py failed:\n' + tail(lines))
      per_round['tfvae'].append(out['seconds'])
      rows.append((r, 'tfvae', out['seconds'], wall, rss, f'log p(x) {out["log_likelihood"]:.3f}'))
      print(f'round {r}/{FLAGS.rounds}: peer', flush=True)
      cmd = [python, os.path.join(FLAGS.peers_dir, 'torch_vae.py'),
             '--data', os.path.join(FLAGS.data_dir, 'binarized_mnist.npz')] + arch['peer_args'] + [
             '--epochs', '1', '--threads', str(FLAGS.threads), '--iw_k', str(FLAGS.iw_k)]
      if FLAGS.iw_examples < 10000:
        cmd += ['--iw_n', str(FLAGS.iw_examples)]
      lines, rc, wall, rss = _run(cmd, timeout=7200)
      out = last_json(lines)
      if rc or not out or 'iw_s' not in out:
        raise RuntimeError('the peer failed:\n' + tail(lines))
      per_round['peer'].append(out['iw_s'])
      rows.append((r, 'peer', out['iw_s'], wall, rss, f'NLL {out["test_nll"]:.3f}'))
  finally:
    shutil.rmtree(run_dir, ignore_errors=True)
  load_after = loadavg()
  print(f'\n{"round":>5}  {"run":<8}{"IW seconds":>12}{"wall s":>9}{"peak GiB":>10}  detail')
  for r, name, secs, wall, rss, detail in rows:
    print(f'{r:>5}  {name:<8}{secs:>12.1f}{wall:>9.1f}{rss / GIB:>10.2f}  {detail}')
  tfvae_s, peer_s = median_or_none(per_round['tfvae']), median_or_none(per_round['peer'])
  print(f'\nmedian seconds: tfvae {fmt(tfvae_s, ".1f")}, peer {fmt(peer_s, ".1f")}; '
        f'tfvae / peer time {fmt(ratio(tfvae_s, peer_s), ".3f")}; load average before/after '
        f'{load_before} / {load_after}')
  print_json({
      'bench': 'iw', 'iw_k': FLAGS.iw_k, 'iw_examples': FLAGS.iw_examples,
      'rounds': FLAGS.rounds, 'seconds': {'tfvae': tfvae_s, 'peer': peer_s},
      'per_round': per_round, 'tfvae_over_peer_time': ratio(tfvae_s, peer_s),
      'peak_rss_gib': {name: max(r[4] for r in rows if r[1] == name) / GIB
                       for name in ('tfvae', 'peer')},
      'load_average': [load_before, load_after]})


# TensorFlow timing (in this process: --parts, and the --gemm_times child)


def xla_loop_ms(body, state, min_seconds=0.2, repeats=5):
  """ms per iteration of `state = body(i, state)` inside one XLA while loop: the best of
  `repeats` runs of n iterations, n doubled until a run lasts min_seconds. body must change
  its inputs each iteration (see `poke`), or XLA hoists the work out of the loop."""
  import tensorflow as tf

  @tf.function(jit_compile=True)
  def run(state, n):
    return tf.while_loop(lambda i, s: i < n, lambda i, s: (i + 1, body(i, s)),
                         (tf.constant(0), state))[1]

  def seconds(n):
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), run(state, tf.constant(n)))
    return time.perf_counter() - start

  seconds(1)
  n = 1
  while seconds(n) < min_seconds and n < 2**14:
    n *= 2
  return min(seconds(n) for _ in range(repeats)) / n * 1e3


def poke(tensor, value):
  """tensor with its first element replaced by value: a one-element update XLA does in place,
  so that a loop body's inputs differ every iteration at no cost."""
  import tensorflow as tf
  index = tf.zeros([1, tensor.shape.rank], tf.int32)
  return tf.tensor_scatter_nd_update(tensor, index,
                                     tf.reshape(tf.cast(value, tensor.dtype), [1]))


def first(tensor):
  import tensorflow as tf
  return tf.reshape(tf.slice(tensor, [0] * tensor.shape.rank, [1] * tensor.shape.rank), [])


def gemm_ms(m, k, n, transpose_a, transpose_b, dtype='float32'):
  """ms of one [m, k] @ [k, n] GEMM (operands stored transposed as flagged) in XLA."""
  import numpy as np
  import tensorflow as tf
  rng = np.random.default_rng(0)
  a = tf.cast(rng.normal(size=(k, m) if transpose_a else (m, k)).astype(np.float32), dtype)
  b = tf.cast(rng.normal(size=(n, k) if transpose_b else (k, n)).astype(np.float32), dtype)

  def body(i, s):
    a, b = s
    y = tf.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
    return poke(a, first(y) * 1e-9), b
  return xla_loop_ms(body, (a, b))


def device_name():
  """The device TensorFlow computes on: the first GPU or TPU, else the CPU."""
  import tensorflow as tf
  for kind in ('GPU', 'TPU'):
    devices = tf.config.list_physical_devices(kind)
    if devices:
      details = tf.config.experimental.get_device_details(devices[0])
      return f'{len(devices)} x {details.get("device_name", kind)}'
  try:
    with open('/proc/cpuinfo') as f:
      model = next((line.split(':', 1)[1].strip() for line in f
                    if line.startswith('model name')), 'CPU')
  except OSError:
    model = 'CPU'
  return f'{model}, {os.cpu_count()} cores (CPU)'


def gemm_times(spec):
  """The --gemm_times child: ms of each shape and the GFLOP/s of the big square GEMMs
  (spec['big']: their sizes, or 'auto': 8192 on a GPU or TPU, 2048 on a CPU)."""
  import tensorflow as tf
  dtype = spec.get('dtype', 'float32')
  shapes = [list(s) + [gemm_ms(*s, dtype=dtype)] for s in spec.get('shapes', [])]
  sizes = spec.get('big', [])
  if sizes == 'auto':
    accelerator = any(tf.config.list_physical_devices(kind) for kind in ('GPU', 'TPU'))
    sizes = [8192 if accelerator else 2048]
  big = {str(size): 2 * size**3 / gemm_ms(size, size, size, False, False, dtype) / 1e6
         for size in sizes}
  print(json.dumps(dict(device=device_name(), dtype=dtype, shapes=shapes, big=big,
                        tensorflow=tf.__version__)))


def parts():
  """The paper arch's training step, part by part: each as an XLA-compiled loop of the same
  shapes, against the whole step (tfvae's fused loop of 100 steps)."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  import numpy as np
  import tensorflow as tf
  import keras
  import tensorflow_probability as tfp
  sys.path.insert(0, ROOT)
  import configs
  from tfvae import likelihoods, noise, optimization, sources, training

  arch, batch = ARCHS['paper'], ARCHS['paper']['batch']
  rng = np.random.default_rng(0)

  def normal(*shape, scale=0.05):
    return tf.constant(rng.normal(size=shape).astype(np.float32) * scale)

  load_before = loadavg()
  print(f'parts of the paper step (784-500-20 tanh, batch 100, Adam), ms per step, each the '
        f'best of 5 loops; load average {load_before}', flush=True)
  rows = []

  def part(name, body, state, group):
    rows.append((name, xla_loop_ms(body, state), group))
    print(f'  {name:<52} {rows[-1][1]:7.3f} ms', flush=True)

  for m, k, n, ta, tb in step_gemms(arch):
    label = f'GEMM [{m}x{k}]{"^T" if ta else ""} @ [{k}x{n}]{"^T" if tb else ""}'
    rows.append((label, gemm_ms(m, k, n, ta, tb), 'GEMM'))
    print(f'  {label:<52} {rows[-1][1]:7.3f} ms  {2 * m * k * n / rows[-1][1] / 1e6:6.1f} '
          'GFLOP/s', flush=True)

  def total(t):
    """A scalar that depends on every element of t (a dot product: XLA cannot narrow it)."""
    flat = tf.reshape(t, [-1])
    return tf.tensordot(flat, tf.ones_like(flat), 1)

  images = tf.Variable(rng.integers(0, 2, size=(TRAIN_EXAMPLES, 28, 28, 1), dtype=np.uint8))

  def gather(i, s):
    indices, = s
    x = tf.cast(tf.gather(images, indices), tf.float32)
    return poke(indices, tf.cast(total(x), tf.int32) % 7 + i),
  part('gather 100 images + to float', gather, (tf.range(batch),), 'data')
  key = noise.key(0, 'train_binarize')
  probs = tf.constant(rng.random((batch, 28, 28, 1)).astype(np.float32))

  def binarise(i, s):
    p, = s
    return p + 1e-9 * noise.bernoulli(p, key, tf.range(batch), i),
  part('noise: binarisation, 78,400 uniforms (mnist_fc)', binarise, (probs,), 'noise')
  eps_key = noise.key(0, 'train_posterior')

  def eps(i, s):
    return s[0] + total(noise.normal(eps_key, tf.range(batch), 1, arch['z'], i)),
  part('noise: eps, 2,000 normals', eps, (tf.constant(0.0),), 'noise')

  def hidden(i, s):
    h, bias = s
    with tf.GradientTape() as tape:
      tape.watch(h)
      y = tf.tanh(h + bias)
    return h + 1e-9 * tape.gradient(y, h, output_gradients=h), bias
  part('bias + tanh, forward and backward, [100, 500] x 2', lambda i, s: hidden(i, hidden(i, s)),
       (normal(batch, 500), normal(500)), 'elementwise')
  tfd = tfp.distributions
  posterior_eps = normal(1, batch, arch['z'], scale=1.0)

  def posterior(i, s):
    loc, raw = s
    with tf.GradientTape() as tape:
      tape.watch([loc, raw])
      q = tfd.MultivariateNormalDiag(loc=loc, scale_diag=tf.nn.softplus(raw) + 1e-4)
      z = q.mean() + q.stddev() * posterior_eps
      kl = tfd.kl_divergence(q, tfd.MultivariateNormalDiag(loc=tf.zeros(arch['z'])))
      value = tf.reduce_sum(z) + tf.reduce_mean(kl)
    g_loc, g_raw = tape.gradient(value, [loc, raw])
    return loc + 1e-9 * g_loc, raw + 1e-9 * g_raw
  part('posterior: softplus, z = mu + sigma eps, KL, with grads', posterior,
       (normal(batch, arch['z']), normal(batch, arch['z'])), 'elementwise')
  x = tf.cast(rng.random((batch, 28, 28, 1)) < 0.3, tf.float32)

  def bernoulli(i, s):
    logits, = s
    with tf.GradientTape() as tape:
      tape.watch(logits)
      value = tf.reduce_mean(likelihoods.bernoulli_log_prob(logits, x, [-3, -2, -1]))
    return logits + 1e-9 * (tape.gradient(value, logits) + value),
  part('Bernoulli log-likelihood + gradient, 78,400 logits', bernoulli,
       (normal(1, batch, 28, 28, 1, scale=3.0),), 'likelihood')
  sizes = [(PIXELS, 500), (500,), (500, 20), (20,), (500, 20), (20,), (20, 500), (500,),
           (500, PIXELS), (PIXELS,)]
  grads = tuple(normal(*s) for s in sizes)

  def bias_grads(i, s):
    return tuple(poke(t, total(tf.reduce_sum(t, 0)) * 1e-9) for t in s)
  part('bias gradients: sums over the batch, 5 layers', bias_grads,
       (normal(batch, PIXELS), normal(batch, 500), normal(batch, 500), normal(batch, 20),
        normal(batch, 20)), 'elementwise')

  def norm_with(fn):
    def body(i, s):
      return tuple([poke(s[0], fn(list(s)) * 1e-9)] + list(s[1:]))
    return body
  # The clip's scaling fuses into Adam's update; the norm is the pass of its own.
  part('global norm: tf.linalg.global_norm (815,824 values)', norm_with(tf.linalg.global_norm),
       grads, None)
  part('global norm: optimization.global_norm (815,824 values)',
       norm_with(optimization.global_norm), grads, 'clipping')
  variables = [tf.Variable(g) for g in grads]
  adam = keras.optimizers.Adam(learning_rate=1e-3)
  adam.build(variables)

  def adam_step(i, s):
    adam.apply_gradients(zip(list(s), variables))
    return tuple([poke(s[0], first(variables[0]))] + list(s[1:]))
  part('Adam: apply_gradients (815,824 parameters)', adam_step, grads, 'Adam')

  config = configs.get_config(arch['config'])
  source = sources.make_source(config.dataset, data_dir=FLAGS.data_dir,
                               cache_dir=tempfile.mkdtemp(prefix='tfvae_bench_cache_'))
  run_dir = tempfile.mkdtemp(prefix='tfvae_bench_parts_')
  try:
    trainer = training.Trainer(config, config.hparams, run_dir, source, steps_per_loop=100)
    block, _, _ = trainer.batches.block(0)
    trainer._train_step(block, 0, 100)  # pylint: disable=protected-access
    step_ms = []
    for _ in range(5):
      start = time.perf_counter()
      trainer._train_step(block, 0, 100)  # pylint: disable=protected-access
      step_ms.append((time.perf_counter() - start) * 10)
  finally:
    shutil.rmtree(run_dir, ignore_errors=True)
  step = min(step_ms)
  groups = {}
  for _, ms, group in rows:
    if group:
      groups[group] = groups.get(group, 0.0) + ms
  total = sum(groups.values())
  print(f'\n  {"group":<24} {"ms/step":>8} {"share of parts":>15}')
  for group, ms in groups.items():
    print(f'  {group:<24} {ms:8.3f} {ms / total:15.1%}')
  print(f'  {"sum of the parts":<24} {total:8.3f}')
  print(f'  {"the whole step":<24} {step:8.3f}   (tfvae\'s fused loop, best of 5 x 100 steps: '
        f'{batch / step * 1e3:,.0f} examples/sec)')
  print(f'  GEMMs are {groups["GEMM"] / step:.1%} of the step; the step at the GEMMs\' own '
        f'speed would be {batch / groups["GEMM"] * 1e3:,.0f} examples/sec')
  print(f'  load average before/after {load_before} / {loadavg()}')
  print_json(dict(bench='parts', arch='paper', parts_ms={name: ms for name, ms, _ in rows},
                  groups_ms=groups, sum_of_parts_ms=total, step_ms=step,
                  load_average=[load_before, loadavg()]))


# --device

CONV = dict(config='conv_vae', image=(32, 32, 3), filters=[32, 64, 128], hidden=512, z=64,
            kernel=3, params=15, batch=64, rough_rate=800)  # logistic mixture: 3 x 5 params
DEVICE_MODELS = {
    'paper': dict(ARCHS['paper'], label='paper 784-500-20 tanh, batch 100'),
    'wide': dict(ARCHS['wide'], label='wide 784-512-512-32 relu, batch 1024'),
    'conv': dict(CONV, hparams='', label='conv_vae 32x32x3 (synthetic), batch 64'),
}


def conv_flops_per_example(c):
  """Exact training GEMM/convolution FLOPs per example of conv_vae on c['image']: stride-2
  'same' 3x3 convolutions (MACs = output pixels x k^2 x C_in x C_out), the dense layers, and
  stride-2 transposed convolutions (MACs = input pixels x k^2 x C_in x C_out); backward 2x the
  forward, but no input gradient for the first convolution."""
  height, width, channels = c['image']
  k2, macs, inputs = c['kernel'] ** 2, [], channels
  for f in c['filters']:
    height, width = -(-height // 2), -(-width // 2)
    macs.append(height * width * k2 * inputs * f)
    inputs = f
  macs += [height * width * inputs * c['hidden'], 2 * c['hidden'] * c['z'],
           c['z'] * c['hidden'], c['hidden'] * height * width * inputs]
  for f in list(reversed(c['filters'][:-1])) + [channels * c['params']]:
    macs.append(height * width * k2 * inputs * f)
    height, width, inputs = 2 * height, 2 * width, f
  return 6 * sum(macs) - 2 * macs[0]


def device():
  """Examples/sec of bin/train.py on the device TensorFlow sees, per model and precision, and
  the fraction of the device's own measured GEMM peak (float32 or bfloat16) they reach."""
  unknown = [m for m in FLAGS.device_models if m not in DEVICE_MODELS]
  if unknown:
    sys.exit(f'error: unknown --device_models {",".join(unknown)}; valid: '
             f'{",".join(DEVICE_MODELS)}')
  load_before = loadavg()
  scratch = tempfile.mkdtemp(prefix='tfvae_bench_device_')
  try:
    if 'conv' in FLAGS.device_models:
      import numpy as np
      images = np.random.default_rng(0).integers(0, 256, (6000,) + CONV['image'], np.uint8)
      np.save(os.path.join(scratch, 'images.npy'), images)
    dtypes = sorted({'float32' if p == 'none' else p for p in FLAGS.precisions})

    def measure_peaks():
      print(f'peak: a large GEMM in {", ".join(dtypes)}', flush=True)
      return {d: time_gemms({'dtype': d, 'big': 'auto'}) for d in dtypes}
    peaks_before = measure_peaks()
    device_label = next((p['device'] for p in peaks_before.values() if p), '?')
    print(f'device: {device_label}; models {",".join(FLAGS.device_models)}; precisions '
          f'{",".join(FLAGS.precisions)}; {FLAGS.rounds} rounds; load average {load_before}',
          flush=True)
    runs = [(m, p) for m in FLAGS.device_models for p in FLAGS.precisions]
    per_round = []
    for i in range(1, FLAGS.rounds + 1):
      results = {}
      for model, precision in runs:
        spec = DEVICE_MODELS[model]
        name = f'{model} {precision}'
        print(f'round {i}/{FLAGS.rounds}: {name}', flush=True)
        hparams = ','.join(h for h in (spec['hparams'], f'mixed_precision={precision}') if h)
        extra = FLAGS.train_flags.split()
        if model == 'conv':
          extra += [f'--dataset=npy:{os.path.join(scratch, "images.npy")}',
                    f'--cache_dir={os.path.join(scratch, "cache")}']
        results[name] = run_tfvae(spec['config'], hparams, spec['batch'], tfvae_steps(spec),
                                  extra, label=name)[0]
      per_round.append(results)
    peaks_after = measure_peaks()
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  peaks = {d: merge_gemm_times([peaks_before[d], peaks_after[d]]) for d in dtypes}
  load_after = loadavg()
  names = [f'{m} {p}' for m, p in runs]
  print_rounds(names, per_round)
  medians = medians_of(names, per_round)
  print(f'\n{"model":<40} {"precision":<9} {"window":>8} {"span":>8} {"MFLOP/ex":>9} '
        f'{"GFLOP/s":>8} {"peak":>8} {"of peak":>8}')
  table = {}
  for model, precision in runs:
    spec, name = DEVICE_MODELS[model], f'{model} {precision}'
    flops = (conv_flops_per_example(spec) if model == 'conv'
             else gemm_flops(step_gemms(spec)) / spec['batch'])
    peak = peaks.get('float32' if precision == 'none' else precision)
    peak_gflops = max(peak['big'].values()) if peak else None
    rate = medians[name]['span']
    achieved = rate and rate * flops / 1e9
    table[name] = dict(medians[name], flops_per_example=flops, gflops=achieved,
                       peak_gflops=peak_gflops, fraction_of_peak=ratio(achieved, peak_gflops))
    print(f'{spec["label"]:<40} {precision:<9} {fmt(medians[name]["window"]):>8} '
          f'{fmt(rate):>8} {flops / 1e6:>9.2f} {fmt(achieved, ".1f"):>8} '
          f'{fmt(peak_gflops, ".1f"):>8} {fmt(ratio(achieved, peak_gflops), ".1%"):>8}')
  for dtype, peak in peaks.items():
    if peak:
      sizes = ', '.join(f'{s}^3 {g:.1f} GFLOP/s' for s, g in peak['big'].items())
      print(f'  peak {dtype}: {sizes} ({peak["device"]}, TF {peak["tensorflow"]})')
  print('  GFLOP/s and "of peak" use the span rate and the exact GEMM/convolution FLOPs')
  if '--strategy=tpu' in FLAGS.train_flags:
    print('  note: the peak was measured on the device this process sees, not the TPU')
  print(f'  load average before/after {load_before} / {load_after}')
  print_json(dict(bench='device', device=device_label, rounds=FLAGS.rounds,
                  train_flags=FLAGS.train_flags, models=table,
                  peaks={d: p and p['big'] for d, p in peaks.items()},
                  per_round={n: {f: [r[n][f] for r in per_round] for f in FIGURES}
                             for n in names},
                  load_average=[load_before, load_after]))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments {argv[1:]}')
  FLAGS.data_dir = os.path.abspath(FLAGS.data_dir)
  FLAGS.peers_dir = os.path.abspath(FLAGS.peers_dir)
  if FLAGS.gemm_times:
    gemm_times(json.loads(FLAGS.gemm_times))
  elif FLAGS.parts:
    parts()
  elif FLAGS.device:
    device()
  elif FLAGS.overhead:
    overhead()
  elif FLAGS.iw:
    iw_speed()
  elif FLAGS.arch == 'gated':
    gated()
  elif FLAGS.arch == 'binarize':
    binarize()
  else:
    throughput()


if __name__ == '__main__':
  app.run(main)
