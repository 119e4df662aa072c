"""tf.distribute: 1-vs-2-replica equivalence, a real two-worker run, strategy errors.

The test session runs with the CPU split into two logical devices (tests/conftest.py), so
mirrored runs in this process have two replicas."""

import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import ROOT
from conftest import run_tool
from tests.scripts import one_step_equivalence
from tfvae import strategies

TRAIN = os.path.join(ROOT, 'bin', 'train.py')
SMALL = 'hidden_sizes=[16],z_size=2,batch_size=20'


def _check_equivalence(report):
  assert report['replicas'] == 2
  assert report['loss_1'] == pytest.approx(report['loss_2'], rel=1e-5)
  # The step moved the weights by ~1e-3 (Adam's first step is about lr * sign(g)); summing the
  # gradient in two halves changes its rounding, which Adam amplifies only where g ~ 0.
  assert report['max_weight_change'] > 1e-4
  assert report['max_weight_diff'] < 1e-5


def test_one_step_on_two_replicas_equals_one_device(tmp_path, data_dir):
  _check_equivalence(one_step_equivalence.compare(data_dir, str(tmp_path)))


@pytest.mark.e2e
def test_one_step_on_two_replicas_equals_one_device_in_a_fresh_process(tmp_path, data_dir):
  script = os.path.join(ROOT, 'tests', 'scripts', 'one_step_equivalence.py')
  result = subprocess.run([sys.executable, script, data_dir, str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  _check_equivalence(json.loads(result.stdout.strip().splitlines()[-1]))


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


@pytest.mark.e2e
def test_two_workers_on_localhost(tmp_path, data_dir):
  run_dir = tmp_path / 'run'
  ports = [_free_port(), _free_port()]
  cluster = {'worker': [f'localhost:{p}' for p in ports]}
  procs, scratch = [], []
  for index in range(2):
    tmp = tmp_path / f'tmp{index}'
    tmp.mkdir()
    scratch.append(tmp)
    env = dict(os.environ, TMPDIR=str(tmp),
               TF_CONFIG=json.dumps({'cluster': cluster, 'task': {'type': 'worker',
                                                                 'index': index}}))
    procs.append(subprocess.Popen(
        [sys.executable, TRAIN, '--strategy=multi_worker_mirrored',
         '--config=binarized_mnist_fc', f'--hparams={SMALL}', f'--run_dir={run_dir}',
         f'--data_dir={data_dir}', '--num_steps=10', '--log_every_n_steps=5',
         '--steps_per_loop=5'],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  try:
    outputs = [p.communicate(timeout=240)[0] for p in procs]
  finally:
    for p in procs:
      p.kill()
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  assert 'MultiWorkerMirroredStrategy with 2 replicas' in outputs[0]
  train_dir = run_dir / 'train'
  assert (train_dir / 'ckpt-10.index').exists()
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(train_dir))
  # The non-chief worker wrote into a temporary folder and removed it.
  assert not any(f.startswith('tfvae_worker_') for f in os.listdir(scratch[1]))
  from tfvae.run_dir import load_run
  run, _, step = load_run(str(run_dir))
  assert run.config.name == 'binarized_mnist_fc' and step == 10


def _train(*args):
  return run_tool('train', *args)


@pytest.mark.parametrize('args, message', [
    (['--strategy=bogus'], "flag --strategy=bogus: value should be one of"),
    (['--strategy=tpu', '--tpu=grpc://127.0.0.1:1'], 'error: no reachable TPU'),
    (['--strategy=mirrored', '--num_cpu_devices=2',
      '--hparams=hidden_sizes=[16],z_size=2,batch_size=21'],
     'error: batch_size 21 does not divide over 2 replicas'),
    (['--strategy=multi_worker_mirrored'], 'error: --strategy=multi_worker_mirrored needs'),
])
def test_strategy_errors_are_one_line(tmp_path, data_dir, args, message, monkeypatch):
  monkeypatch.delenv('TF_CONFIG', raising=False)
  env_args = [f'--run_dir={tmp_path / "run"}', '--config=binarized_mnist_fc',
              f'--hparams={SMALL}', f'--data_dir={data_dir}', '--num_steps=2']
  rc, out = _train(*env_args, *args)
  assert rc != 0, out
  assert message in out, out[-2000:]
  assert 'Traceback' not in out


def test_describe():
  import tensorflow as tf
  assert strategies.describe(tf.distribute.get_strategy()) == 'default strategy with 1 replica'
  assert (strategies.describe(tf.distribute.MultiWorkerMirroredStrategy())
          == 'MultiWorkerMirroredStrategy with 1 replica')
  with pytest.raises(strategies.StrategyError, match="unknown strategy 'x'; valid: default"):
    strategies.make_strategy('x')


@pytest.mark.parametrize('config, precision', [
    ('binarized_mnist_fc', 'bfloat16'), ('binarized_mnist_fc', 'float16'),
    # The README's fastest way to the best binarised-MNIST figure on CPUs with bfloat16 units.
    ('binarized_mnist_hvae_deep_pixelcnn', 'bfloat16')])
def test_mixed_precision_trains_with_float32_variables(tmp_path, data_dir, config, precision):
  run_dir = tmp_path / 'run'
  rc, out = _train(f'--run_dir={run_dir}', f'--config={config}',
                   f'--hparams={SMALL},mixed_precision={precision}', f'--data_dir={data_dir}',
                   '--num_steps=20', '--log_every_n_steps=10', '--steps_per_loop=10')
  assert rc == 0, out[-2000:]
  assert out.count('step 20/20') == 1
  from tfvae.run_dir import load_run
  run, model, step = load_run(str(run_dir))
  assert step == 20 and run.hparams.mixed_precision == precision
  assert {v.dtype for v in model.trainable_variables} == {'float32'}


def test_unknown_mixed_precision_is_one_line(tmp_path, data_dir):
  rc, out = _train(f'--run_dir={tmp_path / "run"}', '--config=binarized_mnist_fc',
                   f'--hparams={SMALL},mixed_precision=int8', f'--data_dir={data_dir}',
                   '--num_steps=2')
  assert rc == 1 and "error: unknown mixed_precision 'int8'; valid: none, bfloat16, float16" in out


def _small_hvae_trainer(run_dir, data_dir, strategy, spec, **kwargs):
  """A Trainer of a small binarized_mnist_hvae (16 hidden units, z 2 per group, batch 20, no
  weight averaging) with the hparam overrides `spec`, on `strategy`, seed 3."""
  from tfvae import configs
  from tfvae import sources
  from tfvae import training
  config = configs.get_config('binarized_mnist_hvae')
  hparams = config.hparams.parse(f'hidden_sizes=[16],z_size=2,batch_size=20,ema_decay=0,{spec}')
  return training.Trainer(config, hparams, str(run_dir),
                          sources.make_source(config.dataset, data_dir=data_dir),
                          strategy=strategies.make_strategy(strategy), seed=3, **kwargs)


def test_weight_decay_shrinks_every_weight_by_lr_times_lambda_on_any_replica_count(
    tmp_path, data_dir):
  """One update from the same weights w0, with weight_decay=λ and without: the two differ by
  exactly lr(0) * λ * w0 (decoupled decay: Adam's step does not see it), on one device and on
  two replicas alike (decayed once, not once per replica)."""
  import numpy as np
  from tfvae import hooks
  initial, after = None, {}
  for strategy, decay in (('default', 0.0), ('default', 0.5), ('mirrored', 0.0),
                          ('mirrored', 0.5)):
    trainer = _small_hvae_trainer(tmp_path / f'{strategy}_{decay}', data_dir, strategy,
                                  f'learning_rate=0.01,weight_decay={decay}', steps_per_loop=1)
    if initial is None:
      initial = trainer.model.get_weights()
    trainer.model.set_weights(initial)
    trainer.train(1, hooks.standard(trainer, 1, log_every_n_steps=1))
    after[strategy, decay] = trainer.model.get_weights()
  assert trainer.strategy.num_replicas_in_sync == 2
  for strategy in ('default', 'mirrored'):
    for w0, plain, decayed in zip(initial, after[strategy, 0.0], after[strategy, 0.5]):
      np.testing.assert_allclose(plain - decayed, 0.01 * 0.5 * w0, atol=2e-6)
  assert max(np.max(np.abs(w0)) for w0 in initial) > 0.1  # the decay was there to see


@pytest.mark.parametrize('strategy', ['default', 'mirrored'])
def test_an_update_above_grad_skip_threshold_is_skipped_and_counted(tmp_path, data_dir, strategy):
  """With a threshold below any gradient norm every update is skipped: the weights and the
  optimiser stay as they were, the steps still count, and the metrics of the call are the
  count of skipped updates and NaN for the rest (averages over no applied update). With a
  threshold above every norm the same steps update the weights."""
  import numpy as np
  for threshold, skipped in ((1e-9, 3), (1e9, 0)):
    trainer = _small_hvae_trainer(tmp_path / str(threshold), data_dir, strategy,
                                  f'grad_skip_threshold={threshold}')
    before = trainer.model.get_weights()
    block, offset, _ = trainer.batches.block(0)
    metrics = trainer._train_step(block, offset, 3)  # pylint: disable=protected-access
    assert trainer.step == 3 and metrics['skipped_updates'] == skipped
    changed = [not np.array_equal(a, b) for a, b in zip(before, trainer.model.get_weights())]
    if skipped:
      assert not any(changed) and int(trainer.state.optimizer.iterations.numpy()) == 0
      assert all(np.isnan(v) for k, v in metrics.items() if k != 'skipped_updates'), metrics
    else:
      assert all(changed) and int(trainer.state.optimizer.iterations.numpy()) == 3
      assert metrics['learning_rate'] == pytest.approx(1e-3, rel=1e-3)
      assert metrics['global_norm'] > 0 and np.isfinite(metrics['loss'])
