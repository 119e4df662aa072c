"""bin/train.py: train, resume, evaluate, summaries, stop signals, and one-line user errors.

The fast tier runs the tool's entry point in this process (conftest.run_tool); the e2e tier
sends a real SIGTERM to a bin/train.py subprocess."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from conftest import ROOT
from conftest import TINY_STEPS
from conftest import copy_run
from conftest import last_json
from conftest import run_script
from conftest import run_tool
from conftest import signal_during_training
from tfvae import checkpoints

TRAIN = os.path.join(ROOT, 'bin', 'train.py')
SMALL = 'hidden_sizes=[16],z_size=2,batch_size=20'
# Runs whose subject is not the compiled step skip XLA's compilation (the shared run, resumes
# and the equivalence tests compile it).
SMALL_UNCOMPILED = SMALL + ',jit_compile=false'


def _run(*args):
  return run_tool('train', *args)


def _tags(folder):
  acc = event_accumulator.EventAccumulator(folder, size_guidance={'tensors': 0})
  acc.Reload()
  return acc


def _checkpoints(run_dir):
  return sorted(f for f in os.listdir(os.path.join(run_dir, 'train')) if f.endswith('.index'))


def test_train_stop_resume_and_eval(tiny_training, tmp_path, monkeypatch):
  trained, data_dir, out = tiny_training
  assert f'step {TINY_STEPS}/{TINY_STEPS}' in out and 'examples/sec' in out and 'left' in out
  saved = json.load(open(os.path.join(trained, 'config.json')))
  assert saved['config'] == 'mnist_fc_z2'
  assert saved['hparams']['hidden_sizes'] == [16] and saved['hparams']['z_size'] == 2
  assert len(_checkpoints(trained)) == 4 and f'ckpt-{TINY_STEPS}.index' in _checkpoints(trained)

  acc = _tags(os.path.join(trained, 'train'))
  tags = set(acc.Tags()['tensors'])
  for tag in ('loss', 'losses/r_loss', 'losses/kl_loss', 'losses/kl_bits', 'losses/kl_beta',
              'elbo', 'learning_rate', 'global_norm', 'examples_per_sec', 'hparams'):
    assert tag in tags, tag
  assert [e.step for e in acc.Tensors('loss')] == [5, 10, 15, 20]

  # The same command with more steps resumes (no --config needed), here stopped by a SIGTERM
  # this process sends itself at step 25 (the handler bin/train.py installed is put back).
  run_dir = copy_run(trained, tmp_path)
  common = [f'--run_dir={run_dir}', f'--data_dir={data_dir}', '--log_every_n_steps=5',
            '--steps_per_loop=5']
  sender = signal_during_training(monkeypatch, 25)
  before = signal.getsignal(signal.SIGTERM)
  rc, out = _run('--num_steps=100000000', '--checkpoint_every_secs=100000', *common)
  assert rc == 0, out
  assert 'Resuming from' in out and 'at step 20' in out and 'step 5/' not in out
  assert sender.sent_at == 25 and signal.getsignal(signal.SIGTERM) is before
  assert f'Got signal {int(signal.SIGTERM)}' in out and 'Stopped by signal at step 25;' in out
  assert os.path.exists(os.path.join(run_dir, 'train', 'ckpt-25.index'))
  monkeypatch.undo()
  rc, out = _run('--num_steps=30', *common)
  assert rc == 0, out
  assert 'at step 25' in out and 'step 30/30' in out
  assert os.path.exists(os.path.join(run_dir, 'train', 'ckpt-30.index'))

  rc, out = _run('--mode=eval', '--eval_split=test', f'--run_dir={run_dir}',
                 f'--data_dir={data_dir}')
  assert rc == 0, out
  assert 'eval test at step 30 over 30 examples' in out
  eval_tags = _tags(os.path.join(run_dir, 'eval'))
  assert {'elbo', 'losses/r_loss', 'losses/kl_bits'} <= set(eval_tags.Tags()['tensors'])
  assert [e.step for e in eval_tags.Tensors('elbo')] == [30]


def test_non_finite_loss_stops_with_one_line_and_keeps_checkpoint(tiny_run, tmp_path):
  trained, data_dir = tiny_run
  run_dir = copy_run(trained, tmp_path)
  kept = _checkpoints(run_dir)
  rc, out = _run(f'--run_dir={run_dir}', f'--data_dir={data_dir}', '--num_steps=40',
                 '--log_every_n_steps=5', '--steps_per_loop=5',
                 '--hparams=learning_rate=1e30,min_learning_rate=0,grad_clip=0')
  assert rc == 1
  assert 'error: the loss became non-finite' in out and 'ckpt-20' in out
  assert 'Traceback' not in out
  assert _checkpoints(run_dir) == kept


@pytest.mark.parametrize('args, message', [
    (['--config=nope'], "error: unknown config 'nope'; valid configs: binarized_mnist_fc"),
    (['--config=mnist_fc', '--hparams=z_sise=2'],
     "error: unknown hparam 'z_sise' (did you mean 'z_size'?); valid"),
    (['--config=mnist_fc', '--hparams=z_size=two'], "error: hparam 'z_size' wants an integer"),
    (['--config=mnist_fc', '--hparams=activation=tanhh'], "error: unknown activation 'tanhh'"),
    (['--hparams=z_size=2'], 'error: --config is required for a new run_dir'),
    (['--config=binarized_mnist_fc', '--data_dir=/nonexistent/dir'],
     'error: binarized_mnist: data directory /nonexistent/dir does not exist'),
    (['--config=mnist_fc', '--mode=eval'], 'is not a tfvae run directory'),
])
def test_user_errors_are_one_line(tmp_path, args, message):
  rc, out = _run(f'--run_dir={tmp_path / "run"}', '--num_steps=1', *args)
  assert rc == 1, out
  assert message in out, out
  assert 'Traceback' not in out
  assert out.strip().splitlines()[-1].startswith('error: ')


@pytest.mark.e2e
def test_sigterm_saves_a_checkpoint_and_resume_carries_on(tmp_path, data_dir):
  run_dir = tmp_path / 'run'
  proc = subprocess.Popen(
      [sys.executable, TRAIN, '--config=binarized_mnist_fc', f'--hparams={SMALL}',
       f'--run_dir={run_dir}', f'--data_dir={data_dir}', '--num_steps=100000000',
       '--log_every_n_steps=10', '--steps_per_loop=10', '--checkpoint_every_secs=100000'],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    for line in proc.stdout:  # wait until it is training
      if 'step 10/' in line:
        break
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
  finally:
    proc.kill()
  assert proc.returncode == 0, out
  assert 'Stopped by signal at step' in out
  step = int(out.split('Stopped by signal at step ')[1].split(';')[0])
  assert step >= 10
  assert (run_dir / 'train' / f'ckpt-{step}.index').exists()
  rc, out = run_script('train.py', f'--run_dir={run_dir}', f'--data_dir={data_dir}',
                       f'--num_steps={step + 10}', '--log_every_n_steps=10',
                       '--steps_per_loop=10')
  assert rc == 0 and f'at step {step}' in out, out


def test_early_stopping_keeps_the_best_checkpoint(tmp_path, data_dir):
  run_dir = tmp_path / 'run'
  # A zero learning rate never improves the validation ELBO after the first epoch.
  rc, out = _run('--config=binarized_mnist_fc', f'--run_dir={run_dir}', f'--data_dir={data_dir}',
                 f'--hparams={SMALL_UNCOMPILED},early_stopping_patience=2,learning_rate=0,'
                 'min_learning_rate=0', '--num_steps=1000', '--log_every_n_steps=5',
                 '--steps_per_loop=5')
  assert rc == 0, out
  # 200 training images at batch 20: 10 steps an epoch; best at epoch 1, stop after epoch 3.
  assert 'epoch 1: valid elbo' in out and 'saved to run_dir/best' in out
  assert 'Early stopping: no better validation ELBO for 2 epochs.' in out
  assert (run_dir / 'train' / 'ckpt-30.index').exists()
  assert (run_dir / 'best' / 'ckpt-10.index').exists()
  tags = _tags(str(run_dir / 'train')).Tags()['tensors']
  assert 'valid/elbo' in tags and 'valid/best_elbo' in tags
  # bin/evaluate.py can evaluate the best checkpoint rather than the latest.
  checkpoints = (('best', 10), (str(run_dir / 'train' / 'ckpt-30'), 30))
  for which, step in checkpoints:
    rc, out = run_tool('evaluate', f'--run_dir={run_dir}', f'--data_dir={data_dir}',
                       '--num_importance_samples=2', f'--checkpoint={which}')
    assert rc == 0, out
    assert last_json(out)['step'] == step
  # A run that then diverges names the best validated checkpoint beside the newest finite one.
  rc, out = _run(f'--run_dir={run_dir}', f'--data_dir={data_dir}', '--num_steps=60',
                 '--hparams=learning_rate=1e30,min_learning_rate=0,grad_clip=0',
                 '--log_every_n_steps=5', '--steps_per_loop=5')
  assert rc == 1 and 'error: the loss became non-finite' in out, out
  assert 'newest finite checkpoint' in out and 'ckpt-30' in out
  assert os.path.join('best', 'ckpt-10') in out and '--checkpoint=best' in out


def _variables(checkpoint_prefix):
  reader = tf.train.load_checkpoint(checkpoint_prefix)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if name != '_CHECKPOINTABLE_OBJECT_GRAPH' and not name.startswith('save_counter')}


def test_a_resumed_run_ends_with_the_weights_of_an_unbroken_one(tmp_path, tiny_run):
  # The shared run is the unbroken one: 120 images at batch 20, 6 steps an epoch, so its 20
  # steps cross three epoch boundaries. A copy cut back to its oldest kept checkpoint is a
  # run broken there (what it holds is what a run stopped at that step saved), resumed here.
  whole, data_dir = tiny_run
  run_dir = copy_run(whole, tmp_path)
  train_dir = os.path.join(run_dir, 'train')
  *newer, oldest = checkpoints.listed(train_dir)
  for prefix in newer:
    for path in glob.glob(prefix + '.*'):
      os.remove(path)
  os.remove(os.path.join(train_dir, 'checkpoint'))
  step = int(oldest.rsplit('-', 1)[1])
  rc, out = _run(f'--run_dir={run_dir}', f'--data_dir={data_dir}', '--log_every_n_steps=5',
                 '--steps_per_loop=5', f'--num_steps={TINY_STEPS}')
  assert rc == 0 and f'at step {step}.' in out and step < TINY_STEPS, out
  expected = _variables(os.path.join(whole, 'train', f'ckpt-{TINY_STEPS}'))
  got = _variables(os.path.join(train_dir, f'ckpt-{TINY_STEPS}'))
  assert expected.keys() == got.keys() and any('optimizer' in k for k in got)
  for name, value in expected.items():
    np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_max_train_minutes_stops_with_a_checkpoint(tmp_path, data_dir):
  run_dir = tmp_path / 'run'
  rc, out = _run('--config=binarized_mnist_fc', f'--hparams={SMALL_UNCOMPILED}',
                 f'--run_dir={run_dir}', f'--data_dir={data_dir}', '--num_steps=100000000',
                 '--log_every_n_steps=10', '--steps_per_loop=10', '--max_train_minutes=0.05')
  assert rc == 0, out
  step = int(out.split('Time budget of 0.1 minutes used up at step ')[1].split('.')[0])
  assert step >= 1 and (run_dir / 'train' / f'ckpt-{step}.index').exists()
  rc, out = _run(f'--run_dir={run_dir}', '--max_train_minutes=-1')
  assert rc == 1 and 'max_train_minutes' in out


def test_polyak_averaged_weights_are_what_a_run_restores(tmp_path, data_dir):
  from tfvae.run_dir import load_run  # pylint: disable=import-outside-toplevel
  run_dir = tmp_path / 'run'
  rc, out = _run('--config=binarized_mnist_fc', f'--hparams={SMALL_UNCOMPILED},ema_decay=0.9',
                 f'--run_dir={run_dir}', f'--data_dir={data_dir}', '--num_steps=20',
                 '--log_every_n_steps=10', '--steps_per_loop=10')
  assert rc == 0, out
  run, averaged, _ = load_run(str(run_dir))
  # The raw weights: the same checkpoint restored into a model with no optimiser.
  raw = run.config.build_model(run.hparams, run.image_shape)
  raw.build_variables()
  tf.train.Checkpoint(model=raw).restore(
      tf.train.latest_checkpoint(str(run_dir / 'train'))).expect_partial()
  pairs = [(a.numpy(), r.numpy()) for a, r in zip(averaged.trainable_variables,
                                                  raw.trainable_variables)
           if 'kernel' in a.path]
  assert len(pairs) == 5  # encoder hidden, loc, raw_scale; decoder hidden, pixel_params
  for average, last in pairs:
    # Every kernel restored is the average: near the last weights, but not equal to them.
    assert not np.array_equal(average, last)
    assert np.abs(average - last).max() < 0.1


def test_a_batch_larger_than_the_data_is_a_one_line_error(tmp_path, data_dir):
  rc, out = _run('--config=binarized_mnist_fc', '--hparams=batch_size=500',
                 f'--run_dir={tmp_path / "run"}', f'--data_dir={data_dir}', '--num_steps=1')
  assert rc == 1 and 'Traceback' not in out
  assert out.strip().splitlines()[-1] == ('error: batch size 500 exceeds the 200 training '
                                          'examples; use a smaller batch_size')
