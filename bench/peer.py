"""The PyTorch peer of ../shared/peers (torch_vae.py, matmul_ceiling.py): its Python and its runs.

The peer runs under --peer_python; without it, under /tmp/torchvenv/bin/python, made here
(`python3 -m venv /tmp/torchvenv` and pip install torch 2.13.0 CPU, numpy, scipy, which install
offline from the local wheels) when it does not exist or torch does not import there. If torch
cannot be had, the bench exits with one line: it never reports tfvae alone in a mode that
compares with the peer.
"""

import os
import subprocess
import sys

from absl import flags

import runner
from children import ROOT

FLAGS = flags.FLAGS
flags.DEFINE_string('peers_dir', os.path.join(ROOT, '..', 'shared', 'peers'),
                    'Folder with torch_vae.py and matmul_ceiling.py.')
flags.DEFINE_string('peer_python', None, 'Python with torch for the peer; default: '
                    '/tmp/torchvenv/bin/python, the environment made here if it is missing.')
flags.DEFINE_integer('threads', 2, 'Peer and ceiling --threads (tfvae uses its default).')
flags.DEFINE_integer('peer_epochs', 0, 'Peer epochs per run; 0 = as many examples as tfvae '
                     '(at least 2, so there is an epoch after the first).', lower_bound=0)
flags.DEFINE_boolean('peer_variant', True, 'Also run the peer\'s faster variant.')

PEER_VENV = '/tmp/torchvenv'
PEER_PACKAGES = ['torch==2.13.0', 'numpy', 'scipy']


def _torch_version(python):
  try:
    check = subprocess.run([python, '-c', 'import torch; print(torch.__version__)'],
                           capture_output=True, text=True, timeout=300)
  except OSError:
    return None
  return check.stdout.strip() if check.returncode == 0 else None


def _last_line(completed):
  text = (completed.stderr or completed.stdout or '').strip().splitlines()
  return text[-1] if text else f'exit status {completed.returncode}'


def python():
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
  venv_python = os.path.join(PEER_VENV, 'bin', 'python')
  if os.path.exists(PEER_VENV) and _torch_version(venv_python):
    return venv_python
  install = ' '.join(PEER_PACKAGES)
  if not os.path.exists(PEER_VENV):
    print(f'making the peer\'s environment: python3 -m venv {PEER_VENV} && '
          f'{PEER_VENV}/bin/pip install {install}', flush=True)
    made = subprocess.run(['python3', '-m', 'venv', PEER_VENV], capture_output=True, text=True)
    if made.returncode:
      sys.exit(f'error: python3 -m venv {PEER_VENV} failed ({_last_line(made)}); pass '
               '--peer_python=PYTHON, a Python with torch')
  else:
    print(f'torch does not import under {venv_python}: {PEER_VENV}/bin/pip install {install}',
          flush=True)
  pip = subprocess.run([os.path.join(PEER_VENV, 'bin', 'pip'), 'install', '-q']
                       + PEER_PACKAGES, capture_output=True, text=True)
  if pip.returncode or not _torch_version(venv_python):
    sys.exit(f'error: could not install {install} into {PEER_VENV} ({_last_line(pip)}); '
             'pass --peer_python=PYTHON, a Python with torch')
  print(f'  made {PEER_VENV} with torch {_torch_version(venv_python)}', flush=True)
  return venv_python


def command(peer_python, arch, *args):
  """torch_vae.py on binarized MNIST with the arch's layers and `args`."""
  return [peer_python, os.path.join(FLAGS.peers_dir, 'torch_vae.py'),
          '--data', os.path.join(FLAGS.data_dir, 'binarized_mnist.npz')] + arch['peer_args'] + [
          '--threads', str(FLAGS.threads), *args]


def run(peer_python, arch, epochs, extra_flags=()):
  """One peer training run: its figures (window: median epoch after the first; span: those
  epochs end to end; process: all examples over the process's wall time)."""
  cmd = command(peer_python, arch, '--batch', str(arch['batch']), '--epochs', str(epochs),
                *extra_flags)
  lines, rc, seconds, rss = runner.run(cmd, timeout=3600)
  out = runner.last_json(lines)
  result = dict(rc=rc, wall_s=round(seconds, 1), peak_rss_gib=round(rss / runner.GIB, 3),
                window=None, span=None, process=None)
  if rc or not out or out.get('examples_per_sec') is None:
    print(f'  peer failed (rc {rc}); its last lines:\n' + runner.tail(lines), flush=True)
    return result
  later = out['epochs'][1:] or out['epochs']
  result.update(window=out['examples_per_sec'], torch=out.get('torch'),
                span=runner.TRAIN_EXAMPLES * len(later) / sum(e['train_s'] for e in later),
                process=runner.TRAIN_EXAMPLES * epochs / seconds,
                epochs=[e['examples_per_sec'] for e in out['epochs']],
                compiled=out.get('compiled'), compile_error=out.get('compile_error'),
                compile_s=out.get('compile_s'))
  if '--compile' in extra_flags and not out.get('compiled'):
    print(f'  note: torch.compile failed, the variant ran eagerly: {out.get("compile_error")}',
          flush=True)
  return result


def ceiling(arch, peer_python):
  """matmul_ceiling.py's JSON (torch's GEMM rate, 3 x forward FLOPs) for the arch, or None."""
  cmd = [peer_python, os.path.join(FLAGS.peers_dir, 'matmul_ceiling.py'),
         '--threads', str(FLAGS.threads), '--hidden', str(arch['hidden'][0]),
         '--layers', str(len(arch['hidden'])), '--z', str(arch['z']),
         '--batch', str(arch['batch'])]
  return runner.child_json(cmd, 600, 'matmul_ceiling.py')
