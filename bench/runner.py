"""The shared runner of the training benchmarks (throughput, gated, binarize, overhead, device,
iw): their common flags, the archs they train, one `bin/train.py` run and its three figures,
and the tables and medians they print.

A run is `bin/train.py` in a subprocess with a fresh run directory and its default logging,
summaries, images and checkpoints. Its figures:

    window   median examples/sec of its log windows (100 steps), leaving out the first
    span     examples/sec from the log timestamps, first log line (compilation done) to last:
             the steady rate including every checkpoint, summary and validation in between
    process  examples trained / wall-clock seconds of the whole process, start to end

Each figure a benchmark reports is the median over its alternating rounds.
"""

import json
import os
import re
import statistics
import sys

from absl import app
from absl import flags

from archs import ARCHS  # pylint: disable=unused-import (bench scripts read runner.ARCHS)
from archs import PIXELS
from children import ROOT
from children import fmt
from children import median_or_none
from children import run_child
from children import run_train

FLAGS = flags.FLAGS
flags.DEFINE_integer('rounds', 3, 'Alternating rounds.', lower_bound=1)
flags.DEFINE_float('seconds', 20.0, 'Rough length of one tfvae training run; sets '
                   '--num_steps from a rough rate for the arch.', lower_bound=0.0)
flags.DEFINE_integer('num_steps', 0, 'tfvae steps per run; 0 = from --seconds.', lower_bound=0)
flags.DEFINE_string('data_dir', os.path.join(ROOT, '..', 'shared', 'data'),
                    'Folder with binarized_mnist.npz and mnist.npz.')
flags.DEFINE_string('tfvae_python', sys.executable, 'Python with tfvae installed.')
flags.DEFINE_string('tfvae_hparams', '', 'Extra hparams for tfvae\'s runs, appended to the '
                    'arch\'s (e.g. mixed_precision=bfloat16); the peer is unchanged.')
flags.DEFINE_boolean('verbose', False, 'Echo the children\'s output.')

TRAIN_EXAMPLES = 50000  # binarized MNIST's and MNIST's training splits
LOG_EVERY = 100  # the trainer's default --log_every_n_steps
# "step 200/600  loss 98.765  ...  21769 examples/sec  0:00:03 left" (a plain progress line)
LOG_LINE = re.compile(r'^step (\d+)/(\d+) .*?([\d.]+) examples/sec')
GIB = 1024.0 ** 3
FIGURES = ('window', 'span', 'process')


def main(benchmark):
  """An absl main that runs benchmark() after checking the command line (paths made
  absolute)."""
  def run(argv):
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments {argv[1:]}')
    for name in ('data_dir', 'peers_dir'):
      if name in FLAGS:
        setattr(FLAGS, name, os.path.abspath(FLAGS[name].value))
    benchmark()
  return run


def run(cmd, timeout):
  """children.run_child, echoing the child with --verbose."""
  return run_child(cmd, timeout, FLAGS.verbose)


def tail(lines, n=8):
  return '\n'.join('    ' + line for line in lines[-n:])


def last_json(lines):
  """The last line of `lines` that parses as JSON, or None."""
  for line in reversed(lines):
    if line.startswith('{'):
      try:
        return json.loads(line)
      except ValueError:
        pass
  return None


def child_json(cmd, timeout, what):
  """The last JSON line cmd prints; None (and its last lines printed) when it fails."""
  lines, rc, _, _ = run(cmd, timeout)
  out = last_json(lines)
  if rc or not out:
    print(f'  {what} failed (rc {rc}):\n' + tail(lines), flush=True)
    return None
  return out


# tfvae runs


def tfvae_steps(arch):
  """--num_steps, or --seconds at the arch's rough rate (whole log windows, at least 3)."""
  if FLAGS.num_steps:
    return FLAGS.num_steps
  steps = FLAGS.seconds * arch['rough_rate'] / arch['batch']
  steps = int(round(steps / LOG_EVERY)) * LOG_EVERY
  return max(steps, 3 * LOG_EVERY)  # at least two windows after the compiled first one


def parse_tfvae(lines):
  """[(step, seconds since the first line, examples/sec)] from the trainer's log lines."""
  rows, base = [], None
  for line in lines:
    m = LOG_LINE.match(line)
    if not m:
      continue
    base = line.time if base is None else base  # children.Line: when the line arrived
    rows.append((int(m.group(1)), line.time - base, float(m.group(3))))
  return rows


def span_rate(rows, start_step, batch):
  """examples/sec from the log timestamps between step start_step and the last line."""
  first = [r for r in rows if r[0] == start_step]
  if not first or rows[-1][0] <= start_step:
    return None
  return (rows[-1][0] - start_step) * batch / max(rows[-1][1] - first[0][1], 1e-9)


def run_tfvae(config, hparams, batch, num_steps, extra_flags=(), label='tfvae'):
  """One bin/train.py run from scratch: its figures (window, span, process) and log rows."""
  args = [f'--config={config}', f'--num_steps={num_steps}']
  hparams = ','.join(h for h in (hparams, FLAGS.tfvae_hparams) if h)
  if hparams:
    args.append(f'--hparams={hparams}')
  args += list(extra_flags)
  if not any(f.startswith('--data_dir') or f.startswith('--dataset') for f in extra_flags):
    args.append(f'--data_dir={FLAGS.data_dir}')
  lines, rc, seconds, rss = run_train(FLAGS.tfvae_python, args, max(600, 20 * FLAGS.seconds),
                                      FLAGS.verbose)
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


# Reporting


def ratio(a, b):
  return None if a is None or not b else a / b


def print_rounds(names, per_round):
  """A table of every run of every round: its figures, wall time, peak memory and detail."""
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


def per_round_figures(names, per_round):
  """{name: {figure: [its value in each round]}}."""
  return {n: {f: [r[n][f] for r in per_round] for f in FIGURES} for n in names}


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
