"""Resuming a run, in process: hparams that change the model's variables, its data or its
objective are refused in one line before anything is written; the others are taken and logged
as changes; config.json is written only once the checkpoint restored; and every tool finds the
run's data without --data_dir."""

import io
import json
import os
import sys

import pytest

from tfvae import cli
from tfvae.cli import evaluate
from tfvae.cli import sample
from tfvae.cli import train

SMALL = 'hidden_sizes=[8],z_size=2,batch_size=20'
FAST = ['--log_every_n_steps=2', '--steps_per_loop=2', '--image_every_n_steps=0',
        '--checkpoint_every_secs=0']


def _run(module, *args):
  """(exit status, stderr) of cli.run(module) with args, in this process."""
  err, saved = io.StringIO(), sys.stderr
  sys.stderr = err
  try:
    cli.run(module, ['tool', *args])
    status = 0
  except SystemExit as e:
    status = e.code or 0
  finally:
    sys.stderr = saved
  return status, err.getvalue()


def _snapshot(folder):
  """{path: (size, mtime)} of every file under folder."""
  found = {}
  for parent, _, names in os.walk(folder):
    for name in names:
      stat = os.stat(os.path.join(parent, name))
      found[os.path.relpath(os.path.join(parent, name), folder)] = (stat.st_size,
                                                                    stat.st_mtime_ns)
  return found


def _hparams(run_dir):
  with open(os.path.join(run_dir, 'config.json'), encoding='utf-8') as f:
    return json.load(f)['hparams']


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory, data_dir):
  """A tiny binarized_mnist_fc run trained 4 steps in this process, with --data_dir."""
  path = str(tmp_path_factory.mktemp('resume') / 'run')
  status, err = _run(train, '--config=binarized_mnist_fc', f'--hparams={SMALL}',
                     f'--run_dir={path}', f'--data_dir={data_dir}', '--num_steps=4', *FAST)
  assert status == 0, err
  return path


def test_a_changed_model_hparam_is_refused_before_anything_is_written(run_dir):
  before = _snapshot(run_dir)
  status, err = _run(train, f'--run_dir={run_dir}', '--num_steps=6',
                     '--hparams=z_size=3,hidden_sizes=[8],free_bits=1,learning_rate=0.01',
                     *FAST)
  assert status == 1
  assert err.count('\n') == 1 and err.startswith(
      f'error: cannot resume {run_dir} with z_size=3 (the run has 2), free_bits=1.0 (the run '
      "has 0.0): these hparams change the model's variables, its data or its objective; leave "
      'them out of --hparams')
  assert 'learning_rate,' in err  # what a resume may change
  assert _snapshot(run_dir) == before  # the run stays whole
  assert _hparams(run_dir)['z_size'] == 2


def test_other_hparams_change_with_a_log_line_and_the_data_dir_is_remembered(run_dir):
  status, err = _run(train, f'--run_dir={run_dir}', '--num_steps=6',
                     '--hparams=learning_rate=0.002,grad_clip=10,weight_decay=0.1', *FAST)
  assert status == 0, err
  assert 'Resuming with learning_rate=0.002 (was 0.001).' in err
  assert 'Resuming with grad_clip=10.0 (was 1000.0).' in err
  assert 'Resuming with weight_decay=0.1 (was 0.0).' in err
  assert 'step 6/6' in err and 'Resuming from' in err
  hparams = _hparams(run_dir)
  assert (hparams['learning_rate'], hparams['grad_clip'], hparams['weight_decay']) == (
      0.002, 10.0, 0.1)


def test_every_tool_reads_the_run_s_data_without_data_dir(run_dir, tmp_path):
  status, err = _run(train, f'--run_dir={run_dir}', '--mode=eval', '--eval_num_examples=20')
  assert status == 0 and 'eval test at step' in err, err
  status, err = _run(evaluate, f'--run_dir={run_dir}', '--num_importance_samples=2',
                     '--num_examples=10')
  assert status == 0, err
  status, err = _run(sample, f'--run_dir={run_dir}', f'--output_dir={tmp_path}',
                     '--kind=reconstruction', '--num=4')
  assert status == 0 and os.path.exists(tmp_path / 'reconstruction.png'), err


def test_config_json_is_written_only_after_the_checkpoint_restored(run_dir, tmp_path):
  backup = {}
  train_dir = os.path.join(run_dir, 'train')
  for name in os.listdir(train_dir):
    if '.data-' in name:
      path = os.path.join(train_dir, name)
      with open(path, 'rb') as f:
        backup[path] = f.read()
      with open(path, 'wb') as f:
        f.write(b'not a checkpoint')
  record = open(os.path.join(run_dir, 'config.json'), 'rb').read()
  try:
    status, err = _run(train, f'--run_dir={run_dir}', '--num_steps=8',
                       '--hparams=learning_rate=0.003', *FAST)
  finally:
    for path, content in backup.items():
      with open(path, 'wb') as f:
        f.write(content)
  assert status == 1 and err.strip().splitlines()[-1].startswith(
      'error: no readable checkpoint in'), err
  assert open(os.path.join(run_dir, 'config.json'), 'rb').read() == record
