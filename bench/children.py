"""What the bench scripts share: running a child process for its output, time and peak memory,
and printing figures."""

import datetime
import json
import os
import statistics
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(cmd, timeout, verbose=False):
  """Runs cmd from the repository root, killed after `timeout` seconds; returns (output
  lines, return code, seconds, peak RSS in bytes: ru_maxrss of this one child, from
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
      lines.append(line.rstrip('\n'))
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
