"""The command-line tools as a user meets them: --help, console scripts, a quiet start-up, and
what a run leaves for TensorBoard's HParams dashboard."""

import os
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from conftest import ROOT
from conftest import run_tool
from tfvae import configs

TOOLS = {'train': '--num_steps', 'evaluate': '--num_importance_samples', 'sample': '--kind',
         'export': '--export_dir'}


def _run(command, timeout=120):
  result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
  return result.returncode, result.stdout, result.stderr


@pytest.mark.e2e
@pytest.mark.parametrize('tool', TOOLS)
def test_console_script_help_lists_its_flags_and_the_configs(tool):
  script = os.path.join(os.path.dirname(sys.executable), f'tfvae-{tool}')
  assert os.path.exists(script), f'{script} is not installed (pip install -e .)'
  rc, out, err = _run([script, '--help'])
  assert rc == 0, err
  for name in configs.CONFIG_MAP:
    assert (name in out) == (tool == 'train'), name  # the trainer lists the configs
  assert TOOLS[tool] in out and 'Traceback' not in out + err
  # The tool's own flags, not absl's: those are behind --helpfull.
  assert '--verbosity' not in out


@pytest.mark.e2e
def test_bin_script_is_the_same_tool():
  rc, out, _ = _run([sys.executable, os.path.join(ROOT, 'bin', 'train.py'), '--help'])
  assert rc == 0 and '--num_steps' in out and 'binarized_mnist_gated' in out


@pytest.mark.e2e
def test_start_up_is_free_of_tensorflow_chatter(tmp_path, data_dir):
  rc, out, err = _run([sys.executable, os.path.join(ROOT, 'bin', 'train.py'),
                       '--config=binarized_mnist_fc', f'--run_dir={tmp_path / "run"}',
                       f'--data_dir={data_dir}', '--hparams=hidden_sizes=[8],z_size=2',
                       '--num_steps=2', '--image_every_n_steps=0'], timeout=240)
  assert rc == 0, err
  for noise in ('cuda', 'cpu_feature_guard', 'absl::InitializeLog', 'Sharding callback',
                'oneDNN', 'port.cc', 'hooks.py:'):
    assert noise not in out + err, noise
  assert '\nstep 2/2  loss ' in err  # a plain progress line, without absl's prefix


def test_a_run_is_a_session_of_the_hparams_dashboard(tiny_run):
  run_dir, _ = tiny_run
  acc = event_accumulator.EventAccumulator(run_dir)
  acc.Reload()
  content = acc.PluginTagToContent('hparams')
  assert '_hparams_/session_start_info' in content
  start = plugin_data_pb2.HParamsPluginData.FromString(
      content['_hparams_/session_start_info']).session_start_info
  assert start.hparams['config'].string_value == 'mnist_fc_z2'
  assert start.hparams['z_size'].number_value == 2
  assert start.hparams['hidden_sizes'].string_value == '[16]'
