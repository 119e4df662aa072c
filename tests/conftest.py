"""Shared fixtures: tiny trained runs of bin/train.py, made once per test session."""

import concurrent.futures
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(name, *args, timeout=240):
  """(returncode, stdout + stderr) of bin/<name>.py run with args in a subprocess."""
  result = subprocess.run([sys.executable, os.path.join(ROOT, 'bin', name), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
  return result.returncode, result.stdout + result.stderr


def last_json(out):
  """The last line of a tool's output that is a JSON object, parsed."""
  return json.loads(next(line for line in reversed(out.splitlines()) if line.startswith('{')))


def run_scripts(*calls, timeout=240):
  """[(returncode, stdout + stderr)] of several run_script calls, each (name, *args), run at
  the same time: a TensorFlow start-up is mostly one core's work, so independent tools
  overlap well even on two cores."""
  with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
    futures = [pool.submit(run_script, *call, timeout=timeout) for call in calls]
    return [future.result() for future in futures]


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  """A tiny statically binarised MNIST (200 train, 60 valid, 60 test) as binarized_mnist.npz."""
  path = tmp_path_factory.mktemp('binarized_data')
  rng = np.random.RandomState(0)
  splits = {s: (rng.rand(n, 784) < 0.2).astype(np.uint8)
            for s, n in [('train', 200), ('valid', 60), ('test', 60)]}
  np.savez(path / 'binarized_mnist.npz', **splits)
  return str(path)


def _train(run_dir, data_dir, config, hparams):
  """Trains `config` for 10 steps into run_dir (checkpoints ckpt-5, ckpt-10); returns it."""
  rc, out = run_script('train.py', f'--config={config}', f'--hparams={hparams}',
                       f'--run_dir={run_dir}', f'--data_dir={data_dir}', '--num_steps=10',
                       '--log_every_n_steps=5', '--steps_per_loop=5', '--checkpoint_every_secs=0')
  assert rc == 0, out
  return str(run_dir)


@pytest.fixture(scope='session')
def mnist_z2_run(tmp_path_factory):
  """(run_dir, data_dir): mnist_fc_z2 (16 hidden units) trained 10 steps on a tiny labelled
  mnist.npz (120 train, 30 test images)."""
  data_dir = tmp_path_factory.mktemp('mnist_data')
  rng = np.random.RandomState(0)
  x = (rng.rand(150, 28, 28) * 255 * (rng.rand(150, 28, 28) < 0.2)).astype(np.uint8)
  y = rng.randint(0, 10, 150)
  np.savez(data_dir / 'mnist.npz', x_train=x[:120], y_train=y[:120], x_test=x[120:],
           y_test=y[120:])
  run_dir = _train(tmp_path_factory.mktemp('mnist_z2') / 'run', data_dir, 'mnist_fc_z2',
                   'hidden_sizes=[16],z_size=2,batch_size=20')
  return run_dir, str(data_dir)


@pytest.fixture(scope='session')
def frey_run(tmp_path_factory):
  """(run_dir, data_dir): frey_face_fc (28x20 faces, Gaussian decoder, z_size 3) trained 10
  steps on a tiny frey_rawface.npz (420 images: 20 train, 200 valid, 200 test)."""
  data_dir = tmp_path_factory.mktemp('frey_data')
  rng = np.random.RandomState(1)
  np.savez(data_dir / 'frey_rawface.npz', ff=rng.randint(0, 256, (420, 560)).astype(np.uint8))
  run_dir = _train(tmp_path_factory.mktemp('frey') / 'run', data_dir, 'frey_face_fc',
                   'hidden_sizes=[16],z_size=3,batch_size=20')
  return run_dir, str(data_dir)


@pytest.fixture(scope='session')
def made_run(tmp_path_factory, data_dir):
  """(run_dir, data_dir): binarized_mnist_made (autoregressive decoder, 16 hidden units,
  20 autoregressive units, z_size 3) trained 10 steps on the tiny binarized MNIST."""
  run_dir = _train(tmp_path_factory.mktemp('made') / 'run', data_dir, 'binarized_mnist_made',
                   'hidden_sizes=[16],z_size=3,autoregressive_units=20,batch_size=20')
  return run_dir, data_dir
