"""tfvae.train: the command-line trainer as one Python call, on spec strings, arrays and
tf.data; its run directories open in every tool; its dataset forms and one-line errors."""

import json
import os

from absl import logging
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import api
from tfvae import data
from tfvae import evaluation
from tfvae import run_data
from tfvae import sources
from tfvae.errors import UserError
from tfvae.run_dir import RunDir
from conftest import last_json, run_scripts

SMALL = 'hidden_sizes=[16],z_size=4,batch_size=20'
FAST = dict(image_every_n_steps=0, log_every_n_steps=5, checkpoint_every_secs=0)


@pytest.fixture(scope='module')
def images():
  """150 greyscale 12x12 uint8 images."""
  rng = np.random.RandomState(0)
  return (rng.rand(150, 12, 12) * 255 * (rng.rand(150, 12, 12) < 0.25)).astype(np.uint8)


@pytest.fixture(scope='module')
def array_run(images, tmp_path_factory):
  """(run_dir, stdout): mnist_fc trained 10 steps by tfvae.train on the images array."""
  run_dir = str(tmp_path_factory.mktemp('array') / 'run')
  cache = str(tmp_path_factory.mktemp('cache'))
  capture = _Stdout()
  with capture:
    model = tfvae.train(config='mnist_fc', dataset=images, hparams=SMALL, run_dir=run_dir,
                        num_steps=10, cache_dir=cache, **FAST)
  assert isinstance(model, tfvae.TrainedModel) and model.step == 10
  return run_dir, cache, capture.text


class _Stdout:
  """Captures what is printed to sys.stdout inside the block (a notebook's cell output)."""

  def __enter__(self):
    import io  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    self._saved, sys.stdout = sys.stdout, io.StringIO()
    return self

  def __exit__(self, *exc):
    import sys  # pylint: disable=import-outside-toplevel
    self.text = sys.stdout.getvalue()
    sys.stdout = self._saved


def test_train_on_an_array_prints_progress_and_makes_a_complete_run(array_run, images):
  run_dir, cache, out = array_run
  lines = out.splitlines()
  assert lines[0] == f'Saved the dataset (images 150x12x12) to {run_dir}/dataset.npy.'
  assert 'Running under default strategy with 1 replica.' in lines
  progress = [line for line in lines if line.startswith('step ')]
  assert [line.split()[1] for line in progress] == ['5/10', '10/10']
  assert all('loss ' in line and ' bits ' in line and 'examples/sec' in line for line in progress)
  assert lines[-1] == f'Done: step 10, checkpoint {run_dir}/train/ckpt-10.'
  # Written as tfvae-train writes it: the array is an npy: dataset inside the run.
  record = json.load(open(os.path.join(run_dir, 'config.json')))
  assert record['config'] == 'mnist_fc' and record['dataset'] == f'npy:{run_dir}/dataset.npy'
  assert record['image_shape'] == [12, 12, 1] and record['hparams']['hidden_sizes'] == [16]
  np.testing.assert_array_equal(np.load(os.path.join(run_dir, 'dataset.npy')), images)
  # The carve-out of tfvae.sources: 15 test, 15 valid, 120 train.
  source = sources.make_source(record['dataset'], cache_dir=cache)
  assert source.info.split_sizes == {'train': 120, 'valid': 15, 'test': 15}
  results = evaluation.evaluate_run(run_dir, num_importance_samples=2, cache_dir=cache)
  assert results['step'] == 10 and results['num_examples'] == 15


def test_logging_comes_back_after_the_call(array_run, images):
  """absl's verbosity, handlers and propagation are the caller's again after the call, even
  when it fails."""
  run_dir, cache, _ = array_run
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)
  handlers = list(logging.get_absl_logger().handlers)
  try:
    with pytest.raises(UserError):
      tfvae.train(dataset=images[:50], run_dir=run_dir, num_steps=20, cache_dir=cache)
    assert logging.get_verbosity() == logging.ERROR
    assert logging.get_absl_logger().handlers == handlers
    assert logging.get_absl_logger().propagate
  finally:
    logging.set_verbosity(verbosity)


def test_resume_takes_the_same_array_and_refuses_another(array_run, images, capsys):
  run_dir, cache, _ = array_run
  model = tfvae.train(dataset=images, run_dir=run_dir, num_steps=15, cache_dir=cache, **FAST)
  out = capsys.readouterr().out
  assert model.step == 15 and 'Resuming from' in out and 'at step 10' in out
  assert 'Saved the dataset' not in out
  other = images.copy()
  other[0, 0, 0] ^= 1
  with pytest.raises(UserError, match='holds a run on npy:.*not on these images') as error:
    tfvae.train(dataset=other, run_dir=run_dir, num_steps=20, cache_dir=cache)
  assert '\n' not in str(error.value)
  np.testing.assert_array_equal(np.load(os.path.join(run_dir, 'dataset.npy')), images)


def test_train_on_tf_data_with_labels(images, tmp_path, capsys):
  labels = np.arange(len(images)) % 3
  dataset = tf.data.Dataset.from_tensor_slices({'image': images[..., None], 'label': labels})
  run_dir = str(tmp_path / 'run')
  model = tfvae.train('mnist_fc', dataset.batch(32), {'hidden_sizes': [16], 'z_size': 4,
                                                      'batch_size': 20}, run_dir, 3,
                      cache_dir=str(tmp_path / 'cache'), verbose=False, **FAST)
  assert model.step == 3 and model.dataset == f'npz:{run_dir}/dataset.npz'
  assert capsys.readouterr().out == ''  # verbose=False
  with np.load(os.path.join(run_dir, 'dataset.npz')) as saved:
    np.testing.assert_array_equal(saved['images'], images[..., None])
    np.testing.assert_array_equal(saved['images_labels'], labels)
  assert 'dataset.npz' in os.listdir(run_dir)
  assert not [name for name in os.listdir(run_dir) if name.startswith('.')]  # temporaries


@pytest.mark.parametrize('form', ['pairs', 'batched_pairs', 'images', 'batched_images'])
def test_tf_data_element_forms(images, tmp_path, form):
  labels = np.arange(len(images)) % 3
  pairs = 'pairs' in form
  dataset = tf.data.Dataset.from_tensor_slices((images, labels) if pairs else images)
  if form.startswith('batched'):
    dataset = dataset.batch(40)
  spec = run_data.spec_for(dataset, RunDir(str(tmp_path)))
  source = sources.make_source(spec, cache_dir=str(tmp_path / 'cache'))
  assert source.info.image_shape == (12, 12, 1)
  assert (source.split('test').labels is not None) == pairs
  assert sum(source.info.split_sizes.values()) == len(images)


def test_split_dict_and_pairs(images, tmp_path):
  labels = np.arange(len(images)) % 3
  run_dir = RunDir(str(tmp_path / 'dict'))
  spec = run_data.spec_for({'train': images[:100], 'test': images[100:],
                            'train_labels': labels[:100], 'test_labels': labels[100:]}, run_dir)
  source = sources.make_source(spec, cache_dir=str(tmp_path / 'cache'))
  assert source.info.split_sizes == {'train': 90, 'valid': 10, 'test': 50}  # valid from train
  np.testing.assert_array_equal(source.split('test').labels, labels[100:])
  spec = run_data.spec_for((images, labels), RunDir(str(tmp_path / 'pair')))
  assert spec == f'npz:{tmp_path}/pair/dataset.npz'
  assert sources.make_source(spec, cache_dir=str(tmp_path / 'cache')).info.num_classes == 3


@pytest.mark.parametrize('dataset, message', [
    (np.zeros((10, 12, 12), np.float32), 'have dtype float32; give uint8 values 0..255'),
    (np.zeros((10, 144), np.uint8), r'have shape \(10, 144\); expected images'),
    (np.zeros((10, 8, 8, 5), np.uint8), 'with C in 1..4'),
    (np.zeros((2, 8, 8), np.uint8), 'hold 2 images; need at least 3'),
    (np.full((5, 8, 8), 300), 'hold values from 300 to 300'),
    ((np.zeros((5, 8, 8), np.uint8), np.zeros(4, int)), r'expected non-negative integers of '
     r'shape \(5,\)'),
    ({'training': np.zeros((5, 8, 8), np.uint8)}, "unknown key.*'training'"),
    ({'train': np.zeros((5, 8, 8), np.uint8), 'test': np.zeros((5, 9, 9), np.uint8)},
     'images of different shapes'),
    ([np.zeros((8, 8), np.uint8)] * 5, 'dataset= got a list; give a dataset spec string'),
    ('mnits', "malformed dataset spec 'mnits'"),
    (tf.data.Dataset.from_tensor_slices(np.zeros((5, 8, 8), np.uint8)).repeat(),
     'is infinite'),
    (tf.data.Dataset.from_tensor_slices(np.zeros((5, 8, 8), np.float32)),
     'have dtype float32'),
    (tf.data.Dataset.from_tensor_slices({'x': np.zeros((5, 8, 8), np.uint8)}),
     'cannot be read; give elements that are images'),
])
def test_dataset_errors_are_one_line(dataset, message, tmp_path):
  with pytest.raises(data.DataError, match=message) as error:
    run_data.spec_for(dataset, RunDir(str(tmp_path / 'run')))
  assert '\n' not in str(error.value)
  assert not os.path.exists(tmp_path / 'run' / 'dataset.npy')


@pytest.mark.parametrize('kwargs, message', [
    (dict(config='mnist_fc', run_dir=None), 'run_dir= is required'),
    (dict(config='mnist_fcc'), "unknown config 'mnist_fcc'"),
    (dict(config=3), 'config= got a int'),
    (dict(config='mnist_fc', hparams='z_sise=2'), "unknown hparam 'z_sise'"),
    (dict(config='mnist_fc', hparams=['z_size=2']), 'hparams= got a list'),
    (dict(config='mnist_fc', num_steps=0), 'num_steps=0: give an integer >= 1'),
    (dict(config='mnist_fc', seed=1.5), 'seed=1.5: give an integer >= 0'),
    (dict(config='mnist_fc', checkpoint_every_secs=-1), 'give a number >= 0'),
    (dict(config='mnist_fc', strategy='mirorred'), "strategy='mirorred': give one of"),
    (dict(config=None), 'config= is required for a new run_dir'),
    (dict(config='conv_vae', dataset=None), 'trains on your own images'),
])
def test_argument_errors_are_one_line(kwargs, message, tmp_path):
  kwargs.setdefault('run_dir', str(tmp_path / 'run'))
  kwargs.setdefault('dataset', np.zeros((5, 8, 8), np.uint8))
  with pytest.raises(UserError, match=message) as error:
    tfvae.train(**kwargs)
  assert '\n' not in str(error.value)
  assert not os.path.exists(tmp_path / 'run')  # nothing written


def test_config_objects():
  from tfvae import configs  # pylint: disable=import-outside-toplevel
  import dataclasses  # pylint: disable=import-outside-toplevel
  mnist = configs.get_config('mnist_fc')
  assert api.config_name(mnist) == 'mnist_fc'
  assert api.config_name(dataclasses.replace(mnist, dataset='npy:/x.npy')) == 'mnist_fc'
  with pytest.raises(UserError, match='is a modified Config'):
    api.config_name(dataclasses.replace(mnist, overrides=dict(mnist.overrides, z_size=3)))


@pytest.mark.e2e
def test_every_tool_opens_python_made_runs(array_run, images, tmp_path):
  """bin/evaluate.py, bin/sample.py and bin/export.py on a run of tfvae.train and on a
  KerasVAE's save_run, with no --data_dir or --dataset; and tfvae-train and tfvae.train make
  the same run from the same arguments (bit-identical weights)."""
  run_dir, cache, _ = array_run
  model = tfvae.keras_model('mnist_fc', SMALL, image_shape=(12, 12, 1))
  model.compile(jit_compile=False)
  model.fit(images[:100], batch_size=20, verbose=0)
  keras_run = model.save_run(str(tmp_path / 'keras'), dataset=images)
  env_cache = f'--cache_dir={cache}'
  calls = []
  for name, run in (('api', run_dir), ('keras', keras_run)):
    calls += [('evaluate.py', f'--run_dir={run}', '--num_importance_samples=2', env_cache),
              ('sample.py', f'--run_dir={run}', f'--output_dir={tmp_path / name / "pics"}',
               '--kind=prior', '--kind=reconstruction', env_cache),
              ('export.py', f'--run_dir={run}', f'--export_dir={tmp_path / name / "export"}')]
  np.save(tmp_path / 'x.npy', images)
  cli_run, api_run = str(tmp_path / 'cli_run'), str(tmp_path / 'api_run')
  calls.append(('train.py', '--config=mnist_fc', f'--dataset=npy:{tmp_path / "x.npy"}',
                f'--hparams={SMALL}', f'--run_dir={cli_run}', '--num_steps=10',
                '--image_every_n_steps=0', env_cache))
  results = run_scripts(*calls)
  for (rc, out), call in zip(results, calls):
    assert rc == 0, (call, out)
  assert last_json(results[0][1])['step'] == 10 and last_json(results[3][1])['step'] == 5
  assert tfvae.TrainedModel(saved_model_dir=str(tmp_path / 'keras' / 'export')).step == 5
  assert os.listdir(tmp_path / 'api' / 'pics')

  tfvae.train(config='mnist_fc', dataset=f'npy:{tmp_path / "x.npy"}', hparams=SMALL,
              run_dir=api_run, num_steps=10, cache_dir=cache, image_every_n_steps=0)
  assert open(os.path.join(cli_run, 'config.json')).read() == open(
      os.path.join(api_run, 'config.json')).read()
  for ours, theirs in zip(tfvae.TrainedModel(run_dir=api_run).model.get_weights(),
                          tfvae.TrainedModel(run_dir=cli_run).model.get_weights()):
    np.testing.assert_array_equal(ours, theirs)


def test_an_interrupt_returns_the_model_at_its_checkpoint(images, tmp_path, monkeypatch, capsys):
  """Ctrl-C (a notebook's interrupt) during tfvae.train saves a checkpoint and returns the
  model at that step."""
  import signal  # pylint: disable=import-outside-toplevel
  from tfvae import hooks as hooks_lib  # pylint: disable=import-outside-toplevel

  class Interrupt(hooks_lib.Hook):
    def next_boundary(self, step):
      return 5 if step < 5 else float('inf')

    def after_steps(self, trainer, steps, metrics):
      if trainer.step == 5:
        os.kill(os.getpid(), signal.SIGINT)

  standard = hooks_lib.standard
  monkeypatch.setattr(hooks_lib, 'standard', lambda *a, **k: [Interrupt()] + standard(*a, **k))
  before = signal.getsignal(signal.SIGINT)  # default_int_handler; SIG_IGN in an xdist worker
  model = tfvae.train('mnist_fc', images, SMALL, str(tmp_path / 'run'), num_steps=100,
                      cache_dir=str(tmp_path / 'cache'), **FAST)
  assert model.step == 5
  assert 'Stopped by signal at step 5; checkpoint saved.' in capsys.readouterr().out
  assert signal.getsignal(signal.SIGINT) is before  # the training's handler is gone


def test_bool_images_are_saved_as_binary_data(images, tmp_path):
  """bool arrays (and tf.data of bool) declare binary data: saved as bool, read as 0/1; uint8
  stays intensities."""
  bits = images > 127
  for name, dataset in (('array', bits), ('tf_data', tf.data.Dataset.from_tensor_slices(bits))):
    spec = run_data.spec_for(dataset, RunDir(str(tmp_path / name)))
    assert np.load(spec[len('npy:'):]).dtype == np.bool_
    source = sources.make_source(spec, cache_dir=str(tmp_path / 'cache'))
    assert source.info.binary and source.split('train').images.max() == 1
  spec = run_data.spec_for(bits.astype(np.uint8), RunDir(str(tmp_path / 'uint8')))
  assert not sources.make_source(spec, cache_dir=str(tmp_path / 'cache')).info.binary
