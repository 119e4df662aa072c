"""What every bench script shares: running a child process (a tool, bin/train.py in a fresh run
directory) for its output, time and peak memory, alternating runs round by round, and printing
figures."""

import datetime
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Line(str):
  """A line a child printed, with `time`: when it arrived (time.time()). The tools' progress
  lines carry no timestamp of their own."""

  def __new__(cls, text, arrived):
    line = super().__new__(cls, text)
    line.time = arrived
    return line


def run_child(cmd, timeout, verbose=False):
  """Runs cmd from the repository root, killed after `timeout` seconds; returns (output
  lines (Line: each with its arrival time), return code, seconds, peak RSS in bytes: ru_maxrss of this one child, from
  os.wait4). With verbose, echoes the command and its output."""
  if verbose:
    print('  $ ' + ' '.join(cmd), flush=True)
  start = time.time()
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          cwd=ROOT, bufsize=1)
  timer = threading.Timer(timeout, proc.kill)
  timer.start()
  lines, usage = [], None
  try:
    for line in proc.stdout:
      lines.append(Line(line.rstrip('\n'), time.time()))
      if verbose:
        print('    ' + lines[-1], flush=True)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
  finally:
    timer.cancel()
    if proc.returncode is None:
      proc.kill()
      proc.wait()
  return lines, proc.returncode, time.time() - start, usage.ru_maxrss * 1024


def run_train(python, args, timeout, verbose=False, parent=None):
  """bin/train.py under `python` with args and a fresh run directory (made in `parent`, else
  the temporary folder, and removed after): run_child's (lines, rc, seconds, peak RSS)."""
  run_dir = tempfile.mkdtemp(prefix='tfvae_bench_run_', dir=parent)
  cmd = [python, os.path.join(ROOT, 'bin', 'train.py'), f'--run_dir={run_dir}', *args]
  try:
    return run_child(cmd, timeout, verbose)
  finally:
    shutil.rmtree(run_dir, ignore_errors=True)


def alternate(runs, rounds, show_load=False):
  """[{name: result} for each round]: every run of `runs` ({name: fn() -> result}) once a
  round, in order, for `rounds` rounds, each announced (with the load average if asked)."""
  per_round = []
  for i in range(1, rounds + 1):
    results = {}
    for name, fn in runs.items():
      load = f' (load average {loadavg()})' if show_load else ''
      print(f'round {i}/{rounds}: {name}{load}', flush=True)
      results[name] = fn()
    per_round.append(results)
  return per_round


def loadavg():
  """The 1-minute load average, rounded: printed beside figures on a shared machine."""
  return round(os.getloadavg()[0], 2)


def fmt(value, spec=',.0f'):
  """A figure formatted with spec, '-' for None."""
  return '-' if value is None else format(value, spec)


def median_or_none(values):
  """The median of the values that are not None; None when there are none."""
  values = [v for v in values if v is not None]
  return statistics.median(values) if values else None


def _rounded(obj):
  """obj with its floats rounded: 4 decimals below 10, else 1."""
  if isinstance(obj, float):
    return round(obj, 4) if abs(obj) < 10 else round(obj, 1)
  if isinstance(obj, dict):
    return {k: _rounded(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_rounded(v) for v in obj]
  return obj


def _commit():
  try:
    return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, text=True,
                          capture_output=True).stdout.strip() or None
  except OSError:
    return None


def print_json(result):
  """Prints the dict `result`, rounded, with the commit and the time, as one JSON line."""
  stamp = dict(commit=_commit(), date=datetime.datetime.now().isoformat(timespec='seconds'))
  print(json.dumps(_rounded(dict(result, **stamp))), flush=True)
