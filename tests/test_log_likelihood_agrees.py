"""One truth: TrainedModel.log_likelihood gives bin/evaluate.py's figure (evaluation.evaluate_run)
for every kind of run, and whether data are binary is recorded with the run, not guessed.

Each run is made in-process: a run directory with its config.json and a checkpoint of a tiny
model's initial weights (no training: the weights only need to be the same for both)."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import checkpoints
from tfvae import configs
from tfvae import evaluation
from tfvae import sources
from tfvae.run_dir import Run
from tfvae.run_dir import RunDir
from tfvae.trained_model import TrainedModel

K = 3
SMALL = 'hidden_sizes=[8],z_size=2,batch_size=4'


def _data(tmp_path):
  """A data_dir with tiny binarized_mnist.npz and mnist.npz, and two .npy arrays: RGB uint8
  intensities and bool (binary) greyscale."""
  rng = np.random.RandomState(0)
  folder = tmp_path / 'data'
  folder.mkdir()
  np.savez(folder / 'binarized_mnist.npz',
           **{s: (rng.rand(n, 784) < 0.3).astype(np.uint8) for s, n in
              (('train', 12), ('valid', 6), ('test', 7))})
  np.savez(folder / 'mnist.npz', x_train=rng.randint(0, 256, (24, 28, 28)).astype(np.uint8),
           y_train=rng.randint(0, 10, 24), x_test=rng.randint(0, 256, (7, 28, 28)).astype(np.uint8),
           y_test=rng.randint(0, 10, 7))
  np.save(folder / 'rgb.npy', rng.randint(0, 256, (30, 6, 5, 3)).astype(np.uint8))
  np.save(folder / 'bool.npy', rng.rand(30, 6, 5) < 0.4)
  return folder


# (config, dataset, hparams, binary): every kind of run.
RUNS = {
    'binary built-in': ('binarized_mnist_fc', 'binarized_mnist', '', True),
    'binarize=true': ('mnist_fc', 'mnist', 'binarize=true', False),
    'intensities': ('mnist_fc', 'mnist', 'binarize=false', False),
    'colour mixture': ('conv_vae', 'npy:{data}/rgb.npy', 'conv_filters=[4,8],num_mixtures=2',
                       False),
    'bool array, binarize=true': ('mnist_fc', 'npy:{data}/bool.npy', 'binarize=true', True),
}


def _make_run(tmp_path, config_name, dataset, hparams, name='run'):
  """(RunDir, Source): config.json and a checkpoint of the initial weights in tmp_path/name."""
  config = dataclasses.replace(configs.get_config(config_name), dataset=dataset)
  hp = config.hparams.parse(','.join(h for h in (SMALL, hparams) if h))
  source = sources.make_source(dataset, data_dir=str(tmp_path / 'data'),
                               cache_dir=str(tmp_path / 'cache'))
  run_dir = RunDir(str(tmp_path / name))
  run_dir.save(Run(config, hp, source.info.image_shape, source.info.binary))
  keras.utils.set_random_seed(0)
  state = checkpoints.build_state(config, hp, source.info.image_shape)
  tf.train.CheckpointManager(state.checkpoint, run_dir.train_dir, 1).save()
  return run_dir, source


@pytest.mark.parametrize('kind', RUNS)
def test_trained_model_log_likelihood_is_evaluate_s(tmp_path, kind):
  config_name, dataset, hparams, binary = RUNS[kind]
  data_dir = _data(tmp_path)
  dataset = dataset.format(data=data_dir)
  run_dir, source = _make_run(tmp_path, config_name, dataset, hparams)
  test = source.split('test')
  assert test.info.binary == binary and run_dir.load().binary == binary
  evaluated = evaluation.evaluate_run(run_dir, split='test', num_importance_samples=K,
                                      data_dir=str(data_dir), cache_dir=str(tmp_path / 'cache'),
                                      seed=4, write_summaries=False)
  trained = TrainedModel(run_dir=run_dir.path)
  assert trained.binary == binary
  from_uint8 = trained.log_likelihood(test.images, K, seed=4)
  assert from_uint8.shape == (len(test.images),)
  np.testing.assert_allclose(from_uint8.mean(), evaluated['log_likelihood'], rtol=1e-5)
  floats = np.asarray(test.images, np.float32) / (1.0 if binary else 255.0)
  np.testing.assert_allclose(trained.log_likelihood(floats, K, seed=4), from_uint8, rtol=1e-5)
  if 'binarize=true' in hparams and not binary:
    # The estimate is of binarised images: not that of the intensities themselves.
    info = dataclasses.replace(test.info, binary=True)  # no binarisation inside
    raw = evaluation.log_likelihood(trained.model, floats, K, seed=4, info=info)
    assert not np.allclose(raw, from_uint8)


def test_uint8_values_are_read_as_the_run_records_them(tmp_path):
  """A binary run takes uint8 0/1 as they are (and refuses other values); an intensity run
  scales uint8 by 1/255, 0/1 values too: nothing is guessed from the values."""
  _data(tmp_path)
  binary_run, _ = _make_run(tmp_path, 'binarized_mnist_fc', 'binarized_mnist', '', 'binary')
  grey_run, _ = _make_run(tmp_path, 'mnist_fc', 'mnist', '', 'grey')
  zeros_ones = (np.random.RandomState(1).rand(3, 28, 28, 1) < 0.5).astype(np.uint8)
  binary, grey = TrainedModel(run_dir=binary_run.path), TrainedModel(run_dir=grey_run.path)
  np.testing.assert_array_equal(binary.encode(zeros_ones)[0],
                                binary.encode(zeros_ones.astype(np.float32))[0])
  with pytest.raises(ValueError, match='is binary: give its 0/1 values'):
    binary.encode(zeros_ones * 255)
  np.testing.assert_array_equal(grey.encode(zeros_ones)[0],
                                grey.encode(zeros_ones.astype(np.float32) / 255)[0])
  assert not np.allclose(grey.encode(zeros_ones)[0], grey.encode(zeros_ones.astype(np.float32))[0])
