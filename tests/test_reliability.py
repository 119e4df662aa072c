"""Reliability: damaged checkpoints and run records, evaluation while a training process
writes checkpoints and best/, a stop signal during long loop calls, and output paths checked
before anything is written."""

import glob
import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from conftest import TINY_STEPS
from conftest import copy_run
from conftest import run_tool
from conftest import signal_during_training
from tfvae import checkpoints
from tfvae import evaluation
from tfvae import export
from tfvae.run_dir import RunDir
from tfvae.run_dir import RunDirError
from tfvae.trained_model import TrainedModel

SMALL = 'hidden_sizes=[16],z_size=2,batch_size=20'
TRAIN = os.path.join(ROOT, 'bin', 'train.py')


def _run_all(*commands):
  """(exit code, output) of each command (tool name, *args), run one after another in this
  process."""
  return [run_tool(*command) for command in commands]


def _assert_one_error_line(rc, out, *names):
  """The tool failed with exactly one `error:` line, last, naming every one of `names`."""
  lines = out.strip().splitlines()
  assert rc == 1 and 'Traceback' not in out, out
  assert [line for line in lines if line.startswith('error:')] == lines[-1:], out
  for name in names:
    assert name in lines[-1], (name, lines[-1])


@pytest.fixture(scope='module')
def trained(tiny_run):
  """The shared run (conftest.tiny_run): a checkpoint after every loop call, the last at
  step 20, the four newest kept in train/."""
  run_dir, _ = tiny_run
  steps = _steps(RunDir(run_dir).train_dir)
  assert len(steps) == 4 and steps[0] == TINY_STEPS, steps
  return run_dir


@pytest.fixture(scope='module')
def tiny_data(tiny_run):
  """The shared run's data folder."""
  return tiny_run[1]


def _steps(folder):
  """The steps of the checkpoints in `folder`, newest first."""
  return [int(p.rsplit('-', 1)[1]) for p in checkpoints.listed(folder)]


def _damage(prefix, how):
  """Damages the checkpoint `prefix`: its data file cut to 1,000 bytes ('truncated_data'), or
  its index replaced by 1,000 random bytes ('garbage_index')."""
  if how == 'truncated_data':
    (data_file,) = glob.glob(prefix + '.data-*')
    os.truncate(data_file, 1000)
  else:
    with open(prefix + '.index', 'wb') as f:
      f.write(np.random.RandomState(0).bytes(1000))


def _warnings(caplog):
  return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_truncated_newest_checkpoint_is_skipped_by_every_tool(trained, tiny_data, tmp_path,
                                                                caplog):
  run_dir = copy_run(trained, tmp_path)
  train_dir = RunDir(run_dir).train_dir
  older = _steps(train_dir)[1]
  _damage(os.path.join(train_dir, 'ckpt-20'), 'truncated_data')
  common = [f'--run_dir={run_dir}', f'--data_dir={tiny_data}']
  # The readers first: the resumed run replaces the damaged checkpoint. (bin/export.py reads
  # checkpoints as TrainedModel does: test_a_garbage_index_is_skipped_in_process exports.)
  train_eval, evaluate, resume = _run_all(
      ('train', *common, '--mode=eval', '--eval_num_examples=10'),
      ('evaluate', *common, '--num_importance_samples=1', '--num_examples=10'),
      ('train', *common, '--num_steps=25', '--log_every_n_steps=5', '--steps_per_loop=5',
       '--checkpoint_every_secs=0', '--image_every_n_steps=0'))
  warning = f'cannot read checkpoint {train_dir}/ckpt-20'
  for rc, out in (resume, train_eval, evaluate):
    assert rc == 0 and 'Traceback' not in out, out
    assert warning in out, out
  assert f'Resuming from {train_dir}/ckpt-{older} at step {older}.' in resume[1]
  assert 'step 20/25' in resume[1] and 'step 25/25' in resume[1]
  assert f'eval test at step {older} over 10 examples' in train_eval[1]
  assert json.loads([line for line in evaluate[1].splitlines()
                     if line.startswith('{')][-1])['step'] == older
  # The resumed run wrote a whole ckpt-20 over the damaged one (a log step ends a loop
  # call, and each call is checkpointed), and went on to ckpt-25.
  caplog.clear()  # the tools' own warnings, logged in this process
  with caplog.at_level(logging.WARNING):
    assert TrainedModel(run_dir=run_dir).step == 25
    assert TrainedModel(run_dir=run_dir, checkpoint=os.path.join(train_dir, 'ckpt-20')).step == 20
  assert not _warnings(caplog)


def test_a_garbage_index_is_skipped_in_process(trained, tiny_data, tmp_path, caplog):
  run_dir = copy_run(trained, tmp_path)
  train_dir = RunDir(run_dir).train_dir
  older = _steps(train_dir)[1]
  _damage(os.path.join(train_dir, 'ckpt-20'), 'garbage_index')
  warning = f'cannot read checkpoint {train_dir}/ckpt-20'
  with caplog.at_level(logging.WARNING):
    assert TrainedModel(run_dir=run_dir).step == older
  assert any(warning in w for w in _warnings(caplog)), _warnings(caplog)
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    results = evaluation.evaluate_run(run_dir, num_importance_samples=1, data_dir=tiny_data,
                                      num_examples=5, write_summaries=False)
  assert results['step'] == older
  assert any(warning in w for w in _warnings(caplog)), _warnings(caplog)
  export_dir = export.export_saved_model(run_dir, str(tmp_path / 'export'))
  assert export.read_metadata(export_dir)['step'] == older
  # Naming the damaged checkpoint is an error naming it, not a fallback.
  with pytest.raises(checkpoints.CheckpointError,
                     match=f'cannot read checkpoint {train_dir}/ckpt-20'):
    TrainedModel(run_dir=run_dir, checkpoint=os.path.join(train_dir, 'ckpt-20'))


def test_a_checkpoint_of_another_model_is_a_one_line_error(trained, tmp_path):
  other = tf.train.Checkpoint(v=tf.Variable(1.0)).write(str(tmp_path / 'other' / 'ckpt-1'))
  with pytest.raises(checkpoints.CheckpointError,
                     match=f'{other} is not a checkpoint of this model') as e:
    TrainedModel(run_dir=trained, checkpoint=other)
  assert '\n' not in str(e.value)


def test_with_no_readable_checkpoint_every_tool_ends_with_one_error_line(trained, tiny_data,
                                                                        tmp_path):
  run_dir = copy_run(trained, tmp_path)
  train_dir = RunDir(run_dir).train_dir
  steps = _steps(train_dir)
  for i, step in enumerate(steps):
    _damage(os.path.join(train_dir, f'ckpt-{step}'), ('truncated_data', 'garbage_index')[i % 2])
  export_dir = tmp_path / 'export'
  common = [f'--run_dir={run_dir}', f'--data_dir={tiny_data}']
  results = _run_all(
      ('train', *common, '--num_steps=25'),
      ('train', *common, '--mode=eval'),
      ('evaluate', *common, '--num_importance_samples=1'),
      ('export', f'--run_dir={run_dir}', f'--export_dir={export_dir}'))
  damaged = [f'{train_dir}/ckpt-{step}' for step in steps]
  for rc, out in results:
    _assert_one_error_line(rc, out, f'error: no readable checkpoint in {train_dir}', *damaged)
  assert not export_dir.exists()
  with pytest.raises(checkpoints.CheckpointError, match=f'no readable checkpoint in {train_dir}'):
    TrainedModel(run_dir=run_dir)


def _state_file_cut_in_line_one(text):
  return text[:30]


def _state_file_cut_after_line_two(text):
  return ''.join(text.splitlines(keepends=True)[:2])


@pytest.mark.parametrize('damage', [
    lambda text: '', _state_file_cut_in_line_one, _state_file_cut_after_line_two,
    lambda text: '\xff\xfe garbage',
], ids=['empty', 'cut_in_line_one', 'cut_after_line_two', 'garbage'])
def test_a_damaged_state_file_hides_no_checkpoint(trained, tmp_path, damage):
  run_dir = copy_run(trained, tmp_path)
  state_file = os.path.join(RunDir(run_dir).train_dir, 'checkpoint')
  with open(state_file, encoding='utf-8') as f:
    text = f.read()
  with open(state_file, 'wb') as f:
    f.write(damage(text).encode('latin-1'))
  assert _steps(os.path.dirname(state_file)) == _steps(RunDir(trained).train_dir)
  assert TrainedModel(run_dir=run_dir).step == 20


def test_training_resumes_past_a_garbage_state_file(trained, tiny_data, tmp_path):
  run_dir = copy_run(trained, tmp_path)
  train_dir = RunDir(run_dir).train_dir
  with open(os.path.join(train_dir, 'checkpoint'), 'wb') as f:
    f.write(b'\xff\xfe garbage')
  rc, out = run_tool('train', f'--run_dir={run_dir}', f'--data_dir={tiny_data}',
                     '--num_steps=20')
  assert rc == 0 and 'Traceback' not in out, out
  assert f'Resuming from {train_dir}/ckpt-20 at step 20.' in out


@pytest.mark.parametrize('record, problem', [
    (lambda text: text[:len(text) // 2], 'JSONDecodeError'),
    (lambda text: '[]', 'TypeError'),
    (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != 'hparams'}),
     "KeyError: 'hparams'"),
    (lambda text: json.dumps(dict(json.loads(text), hparams={'z_sise': 2})),
     "unknown hparam 'z_sise'"),
], ids=['truncated', 'a_list', 'no_hparams', 'unknown_hparam'])
def test_a_damaged_run_record_is_a_one_line_error(trained, tmp_path, record, problem):
  run_dir = copy_run(trained, tmp_path)
  config_path = RunDir(run_dir).config_path
  with open(config_path, encoding='utf-8') as f:
    text = f.read()
  with open(config_path, 'w', encoding='utf-8') as f:
    f.write(record(text))
  with pytest.raises(RunDirError, match=f'{config_path} is not a readable tfvae run record') as e:
    RunDir(run_dir).load()
  assert problem in str(e.value) and '\n' not in str(e.value)


def test_a_damaged_run_record_through_the_tools(trained, tiny_data, tmp_path):
  run_dir = copy_run(trained, tmp_path)
  config_path = RunDir(run_dir).config_path
  with open(config_path, 'w', encoding='utf-8') as f:
    f.write('{"config": "binarized_mnist_fc", "hpar')
  rc, out = run_tool('train', f'--run_dir={run_dir}', f'--data_dir={tiny_data}',
                     '--num_steps=25')
  _assert_one_error_line(rc, out, f'error: {config_path} is not a readable tfvae run record',
                         'JSONDecodeError')


@pytest.mark.e2e
def test_evaluating_while_training_writes_checkpoints_and_best(data_dir, tmp_path):
  """Evaluation, export and TrainedModel of `best` and `latest`, round after round, while a
  training process replaces train/'s one checkpoint after every loop call and best/'s at
  every epoch (10 steps) with a better validation ELBO; none may fail."""
  run_dir = str(tmp_path / 'run')
  log_path = tmp_path / 'train.log'
  with open(log_path, 'w', encoding='utf-8') as log:
    proc = subprocess.Popen(
        [sys.executable, TRAIN, '--config=binarized_mnist_fc', f'--run_dir={run_dir}',
         f'--data_dir={data_dir}', f'--hparams={SMALL},early_stopping_patience=1000000,'
         'learning_rate=3e-4', '--num_steps=100000000', '--checkpoint_every_secs=0',
         '--checkpoints_to_keep=1', '--log_every_n_steps=1000', '--image_every_n_steps=0'],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        # The readers' rounds first (a third of their share), but not starved: at nice 19 a
        # machine busy with other work left it minutes without its first checkpoint.
        preexec_fn=lambda: os.nice(5))
  steps, rounds = {'best': set(), 'latest': set()}, 0
  try:
    deadline = time.time() + 600  # a watchdog: start-up on a loaded machine takes minutes
    while not checkpoints.listed(RunDir(run_dir).best_dir):
      assert proc.poll() is None and time.time() < deadline, log_path.read_text()
      time.sleep(0.2)
    # Until best/ and train/ have each been seen at three steps: the race is real.
    while rounds < 2 or min(len(seen) for seen in steps.values()) < 3:
      assert proc.poll() is None and time.time() < deadline, (steps, log_path.read_text())
      for which in ('best', 'latest'):
        steps[which].add(evaluation.evaluate_run(
            run_dir, checkpoint=which, num_importance_samples=1, data_dir=data_dir,
            num_examples=20, write_summaries=which == 'best')['step'])
      # Alternately: export best and load latest, export latest and load best.
      exported, loaded = ('best', 'latest') if rounds % 2 == 0 else ('latest', 'best')
      export_dir = export.export_saved_model(run_dir, str(tmp_path / f'export_{rounds}'),
                                             checkpoint=exported)
      steps[exported].add(export.read_metadata(export_dir)['step'])
      trained = TrainedModel(run_dir=run_dir, checkpoint=loaded)
      steps[loaded].add(trained.step)
      assert np.all(np.isfinite(trained.encode(np.zeros([2, 28, 28, 1]))[0]))
      rounds += 1
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
  finally:
    proc.kill()
    proc.wait()
  out = log_path.read_text()
  assert proc.returncode == 0 and 'Stopped by signal at step' in out, out
  assert 'saved to run_dir/best' in out and 'Traceback' not in out


@pytest.mark.e2e
def test_a_stop_signal_is_answered_during_long_loop_calls(data_dir, tmp_path):
  """With one loop call allowed 10^6 steps of a model whose steps take a while, SIGTERM sent
  after the first calls still stops training soon, at the step it got to, with a checkpoint
  that restores."""
  train_dir = tmp_path / 'run' / 'train'
  proc = subprocess.Popen(
      [sys.executable, TRAIN, '--config=binarized_mnist_fc', f'--run_dir={train_dir.parent}',
       f'--data_dir={data_dir}', '--hparams=hidden_sizes=[500,500],z_size=2,batch_size=200',
       '--num_steps=100000000', '--steps_per_loop=1000000', '--log_every_n_steps=1000000',
       '--checkpoint_every_secs=2', '--image_every_n_steps=0'],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    # Past the first call (one step, compiled): a checkpoint (every 2 s) of a later step.
    deadline = time.time() + 300  # a watchdog: start-up on a loaded machine takes minutes
    while not [s for s in _steps(str(train_dir)) if s > 1]:
      assert proc.poll() is None, proc.communicate()[0]
      assert time.time() < deadline, 'no checkpoint past step 1 within 300 s of starting'
      time.sleep(0.2)
    started = max(_steps(str(train_dir)))
    proc.send_signal(signal.SIGTERM)
    # 10^6 steps would take hours; stopping after the current call (about a second) does not.
    out = proc.communicate(timeout=60)[0]
  finally:
    proc.kill()
    proc.wait()
  assert proc.returncode == 0, out
  step = int(out.split('Stopped by signal at step ')[1].split(';')[0])
  assert started <= step < 1000000
  assert max(_steps(str(train_dir))) == step
  assert TrainedModel(run_dir=str(train_dir.parent)).step == step


def test_a_stop_signal_ends_training_whatever_steps_per_loop(data_dir, tmp_path, monkeypatch):
  """In this process: with one loop call allowed 10^6 steps, calls still stay short (about a
  second), so a SIGTERM is answered at the step it arrived at, with a checkpoint that
  restores."""
  run_dir = str(tmp_path / 'run')
  sender = signal_during_training(monkeypatch, 2)  # after the first call, which compiles
  rc, out = run_tool('train', '--config=binarized_mnist_fc', f'--run_dir={run_dir}',
                     f'--data_dir={data_dir}', f'--hparams={SMALL},jit_compile=false',
                     '--num_steps=100000000', '--steps_per_loop=1000000',
                     '--log_every_n_steps=1000000', '--checkpoint_every_secs=100000',
                     '--image_every_n_steps=0')
  assert rc == 0, out
  step = int(out.split('Stopped by signal at step ')[1].split(';')[0])
  assert step == sender.sent_at and 1 < step < 1000000
  assert _steps(RunDir(run_dir).train_dir) == [step]
  assert TrainedModel(run_dir=run_dir).step == step


def test_output_paths_are_checked_before_anything_is_written(trained, tiny_data, tmp_path):
  a_file = tmp_path / 'a_file'
  a_file.write_text('not a folder')
  under_file, in_proc = str(a_file / 'out'), '/proc/tfvae_reliability_test'
  results = _run_all(
      ('export', f'--run_dir={trained}', f'--export_dir={under_file}'),
      ('train', '--config=binarized_mnist_fc', f'--run_dir={under_file}',
       f'--data_dir={tiny_data}', '--num_steps=1'),
      ('sample', f'--run_dir={trained}', f'--output_dir={in_proc}', '--kind=prior'))
  for (rc, out), flag in zip(results, ('--export_dir', '--run_dir', '--output_dir')):
    _assert_one_error_line(rc, out, f'error: {flag}=', 'cannot be written')
  assert 'is a file, not a folder' in results[0][1] and 'is not writable' in results[2][1]
  # /proc takes no new files, even from root.
  with pytest.raises(ValueError, match='--export_dir=/proc/.* cannot be written: /proc is not '
                                       'writable'):
    export.export_saved_model(trained, os.path.join(in_proc, 'export'))
  assert a_file.read_text() == 'not a folder' and os.listdir(tmp_path) == ['a_file']
  assert not os.path.exists(in_proc)


def test_log_likelihood_rejects_non_finite_images(trained):
  model = TrainedModel(run_dir=trained)
  x = np.zeros([2, 28, 28, 1], np.float32)
  x[1, 3, 4, 0] = np.nan
  with pytest.raises(ValueError, match='images have NaN or infinite values'):
    model.log_likelihood(x, 4)
  assert np.all(np.isfinite(model.log_likelihood(x[:1], 4)))
