"""Shared helpers and fixtures of both tiers.

- `run_tool(name, *args)`: a command-line tool (bin/<name>.py) run in this process: its own
  entry point (tfvae.cli.<name>.run, what bin/<name>.py calls) with sys.argv set, its output
  (prints, absl log lines, the `error:` line) and exit code returned. The fast tier's way to
  run a tool: a subprocess pays a TensorFlow start-up per case.
- `run_script('<name>.py', *args)`: the same tool as a real subprocess, for the end-to-end
  tier (`@pytest.mark.e2e`: signals, several processes, fresh interpreters).
- `tiny_run`: THE shared tiny training of the session (made once, in this process, by
  bin/train.py's entry point), which the run fixtures below reuse.
- `signal_during_training(monkeypatch, step)`: a tool trained in this process gets a SIGTERM
  from this process at `step`, as a user's Ctrl-C or a scheduler's SIGTERM would come.

The session's CPU is split into two logical devices before TensorFlow starts, so that
mirrored training in this process has two replicas (what --num_cpu_devices=2 does for a tool);
everything else runs on the first, as it would without the split.
"""

import concurrent.futures
import contextlib
import importlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import traceback

import numpy as np
import pytest

from tfvae import strategies

strategies.split_cpu(2)

from tfvae import hooks as hooks_lib  # pylint: disable=wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI_PACKAGE = 'tfvae.cli'


def _tool_module(name):
  """tfvae.cli.<name> with its flags defined. The tools define flags of the same names
  (--run_dir, --seed, ...) on absl's one FLAGS, so only one tool's flags can be defined at a
  time: switching tools deletes the other tools' flags (and tfvae.cli's shared data flags)
  and imports the tool afresh, which defines them again."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  module_name = f'{CLI_PACKAGE}.{name}'
  by_module = flags.FLAGS.flags_by_module_dict()
  if module_name in sys.modules and by_module.get(module_name):
    return sys.modules[module_name]
  for module, defined in list(by_module.items()):
    if module == CLI_PACKAGE or module.startswith(CLI_PACKAGE + '.'):
      for flag in list(defined):
        if flag.name in flags.FLAGS:
          delattr(flags.FLAGS, flag.name)
  for loaded in [m for m in sys.modules if m.startswith(CLI_PACKAGE + '.')]:
    del sys.modules[loaded]
  return importlib.import_module(module_name)


def run_tool(name, *args):
  """(exit code, everything it printed) of bin/<name>.py with args, run in this process: the
  flags reset to their defaults and parsed from args, the tool's entry point called as the
  script calls it. An exception it lets out is printed as a traceback with exit code 1, as
  the interpreter would."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  from absl import logging  # pylint: disable=import-outside-toplevel
  tool = _tool_module(name)
  flags.FLAGS.unparse_flags()
  printed = io.StringIO()
  handler = logging.get_absl_handler().python_handler
  saved = sys.argv, handler.stream, logging.get_verbosity()
  sys.argv, handler.stream = [os.path.join(ROOT, 'bin', f'{name}.py'), *args], printed
  try:
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
      try:
        tool.run()
        code = 0
      except SystemExit as exit_:
        code = exit_.code
        if isinstance(code, str):  # sys.exit('message'): printed, exit code 1
          print(code, file=sys.stderr)
          code = 1
        code = code or 0
      except BaseException:  # pylint: disable=broad-except
        traceback.print_exc()
        code = 1
  finally:
    sys.argv, handler.stream, verbosity = saved
    logging.set_verbosity(verbosity)
  return code, printed.getvalue()


def run_script(name, *args, timeout=240):
  """(returncode, stdout + stderr) of bin/<name>.py run with args in a subprocess."""
  result = subprocess.run([sys.executable, os.path.join(ROOT, 'bin', name), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
  return result.returncode, result.stdout + result.stderr


class SignalAt(hooks_lib.Hook):
  """Sends this process `signum` after the first loop call that takes training to `step` or
  past it (before the stop-signal hook looks, so that call is the last); `sent_at`: the step
  it did so at."""

  def __init__(self, step, signum=signal.SIGTERM):
    self._step, self._signum, self.sent_at = step, signum, None

  def after_steps(self, trainer, steps, metrics):
    if self.sent_at is None and trainer.step >= self._step:
      self.sent_at = trainer.step
      signal.raise_signal(self._signum)


def signal_during_training(monkeypatch, step, signum=signal.SIGTERM):
  """Puts a SignalAt(step, signum) first among the hooks bin/train.py trains with
  (tfvae.hooks.standard) until monkeypatch.undo() or the test's end; returns it."""
  standard = hooks_lib.standard
  sender = SignalAt(step, signum)
  monkeypatch.setattr(hooks_lib, 'standard',
                      lambda *args, **kwargs: [sender] + standard(*args, **kwargs))
  return sender


def run_scripts(*calls, timeout=240):
  """[(returncode, stdout + stderr)] of several run_script calls, each (name, *args), run at
  the same time: a TensorFlow start-up is mostly one core's work, so independent tools
  overlap well even on two cores."""
  with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
    futures = [pool.submit(run_script, *call, timeout=timeout) for call in calls]
    return [future.result() for future in futures]


def last_json(out):
  """The last line of a tool's output that is a JSON object, parsed."""
  return json.loads(next(line for line in reversed(out.splitlines()) if line.startswith('{')))


def copy_run(run_dir, tmp_path):
  """A copy of run_dir under tmp_path (for tests that change or extend a shared run)."""
  copy = str(tmp_path / 'run')
  shutil.copytree(run_dir, copy)
  return copy


@pytest.fixture(autouse=True)
def _fresh_collective_keys():
  """Mirrored strategies made by different tests of this process use different collective
  keys: TensorFlow caches a collective's parameters by its keys, which every new strategy
  starts at the same base (TensorFlow's own tests move the base the same way)."""
  from tensorflow.python.distribute import mirrored_strategy  # pylint: disable=import-outside-toplevel
  mirrored_strategy.MirroredStrategy._collective_key_base += 100000  # pylint: disable=protected-access


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  """A tiny statically binarised MNIST (200 train, 60 valid, 60 test) as binarized_mnist.npz."""
  path = tmp_path_factory.mktemp('binarized_data')
  rng = np.random.RandomState(0)
  splits = {s: (rng.rand(n, 784) < 0.2).astype(np.uint8)
            for s, n in [('train', 200), ('valid', 60), ('test', 60)]}
  np.savez(path / 'binarized_mnist.npz', **splits)
  return str(path)


@pytest.fixture(scope='session')
def mnist_dir(tmp_path_factory):
  """A tiny labelled MNIST (120 train, 30 test images) as mnist.npz."""
  path = tmp_path_factory.mktemp('mnist_data')
  rng = np.random.RandomState(0)
  x = (rng.rand(150, 28, 28) * 255 * (rng.rand(150, 28, 28) < 0.2)).astype(np.uint8)
  y = rng.randint(0, 10, 150)
  np.savez(path / 'mnist.npz', x_train=x[:120], y_train=y[:120], x_test=x[120:],
           y_test=y[120:])
  return str(path)


TINY_STEPS = 20  # the shared run's steps: a checkpoint after each loop call, the last 4 kept
TINY_HPARAMS = 'hidden_sizes=[16],z_size=2,batch_size=20'


@pytest.fixture(scope='session')
def tiny_training(tmp_path_factory, mnist_dir):
  """(run_dir, data_dir, output): the session's one shared training, bin/train.py's entry
  point run in this process: mnist_fc_z2 (16 hidden units, z_size 2) on the tiny labelled
  MNIST, TINY_STEPS steps in loop calls of at most 5 with a checkpoint after each (the 4
  newest kept, the last ckpt-20), logged every 5 steps, and what the tool printed. Tests
  read it; those that change a run, or evaluate it (which writes summaries into it), work on
  a copy (copy_run)."""
  run_dir = str(tmp_path_factory.mktemp('tiny') / 'run')
  rc, out = run_tool('train', '--config=mnist_fc_z2', f'--hparams={TINY_HPARAMS}',
                     f'--run_dir={run_dir}', f'--data_dir={mnist_dir}',
                     f'--num_steps={TINY_STEPS}', '--log_every_n_steps=5',
                     '--steps_per_loop=5', '--checkpoint_every_secs=0',
                     '--checkpoints_to_keep=4')
  assert rc == 0, out
  return run_dir, mnist_dir, out


@pytest.fixture(scope='session')
def tiny_run(tiny_training):
  """(run_dir, data_dir) of the shared training (tiny_training)."""
  return tiny_training[:2]


def untrained_run(run_dir, config_name, hparams_spec, image_shape):
  """Writes a run directory for config_name with its initial weights as checkpoint ckpt-0
  (what a tool restores like any trained run), without training; returns run_dir."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfvae import checkpoints  # pylint: disable=import-outside-toplevel
  from tfvae import configs  # pylint: disable=import-outside-toplevel
  from tfvae.run_dir import Run  # pylint: disable=import-outside-toplevel
  from tfvae.run_dir import RunDir  # pylint: disable=import-outside-toplevel
  config = configs.get_config(config_name)
  hparams = config.hparams.parse(hparams_spec)
  run = RunDir(str(run_dir))
  state = checkpoints.build_state(config, hparams, image_shape)
  tf.train.CheckpointManager(state.checkpoint, run.train_dir, max_to_keep=1).save(0)
  run.save(Run(config, hparams, image_shape))
  return str(run_dir)


@pytest.fixture(scope='session')
def frey_run(tmp_path_factory):
  """(run_dir, data_dir): frey_face_fc (28x20 faces, Gaussian decoder, z_size 3) with its
  initial weights, and a tiny frey_rawface.npz (420 images: 20 train, 200 valid, 200 test)."""
  data_dir = tmp_path_factory.mktemp('frey_data')
  rng = np.random.RandomState(1)
  np.savez(data_dir / 'frey_rawface.npz', ff=rng.randint(0, 256, (420, 560)).astype(np.uint8))
  run_dir = untrained_run(tmp_path_factory.mktemp('frey') / 'run', 'frey_face_fc',
                          'hidden_sizes=[16],z_size=3,batch_size=20', (28, 20, 1))
  return run_dir, str(data_dir)


@pytest.fixture(scope='session')
def made_run(tmp_path_factory, data_dir):
  """(run_dir, data_dir): binarized_mnist_made (autoregressive decoder, 16 hidden units,
  20 autoregressive units, z_size 3) with its initial weights, and the tiny binarized MNIST."""
  run_dir = untrained_run(tmp_path_factory.mktemp('made') / 'run', 'binarized_mnist_made',
                          'hidden_sizes=[16],z_size=3,autoregressive_units=20,batch_size=20',
                          (28, 28, 1))
  return run_dir, data_dir
