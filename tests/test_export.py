"""SavedModel export: bin/export.py, loading without tfvae, metadata and errors."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from conftest import TINY_STEPS
from conftest import copy_run
from conftest import last_json
from conftest import run_script
from conftest import run_tool
from saved_model_report import report
from tfvae import checkpoints
from tfvae import export
from tfvae import noise
from tfvae.run_dir import RunDir
from tfvae.run_dir import RunDirError

SEED = 7


@pytest.fixture(scope='module')
def exported(tiny_run, tmp_path_factory):
  """(run_dir, export_dir) with export_dir written by bin/export.py's entry point."""
  run_dir, _ = tiny_run
  export_dir = str(tmp_path_factory.mktemp('export') / 'saved_model')
  rc, out = run_tool('export', f'--run_dir={run_dir}', f'--export_dir={export_dir}')
  assert rc == 0, out
  assert f'wrote {export_dir}' in out
  return run_dir, export_dir


def _close(actual, desired):
  np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=1e-6)


def _expected_outputs(module, x, z):
  """Every signature's outputs in process, keyed 'signature/output', plus the inputs."""
  seed = tf.constant(SEED, tf.int64)
  calls = {'encode': module.encode(x, seed), 'decode': module.decode(z),
           'sample': module.sample(tf.constant(5), seed, tf.constant(1.0)),
           'reconstruct': module.reconstruct(x, seed),
           'resample': module.resample(x, seed, tf.constant(0), tf.constant(0.5)),
           'elbo': module.elbo(x, seed),
           'serving_default': module.reconstruct(x, seed)}
  flat = {f'{name}/{key}': v.numpy() for name, out in calls.items() for key, v in out.items()}
  return dict(flat, x=x.numpy(), z=z.numpy(), seed=np.int64(SEED))


def test_signatures_compute_the_model(tiny_run):
  run_dir, _ = tiny_run
  module = export.restore_module(run_dir)
  model = module.model
  x = tf.cast(tf.random.stateless_uniform([4, 28, 28, 1], [1, 2]) < 0.3, tf.float32)
  seed = tf.constant(SEED, tf.int64)
  q = model.encode(x)
  eps = noise.normal(noise.key(SEED, 'eval_posterior'), 4, 1, 2)[0]
  enc = module.encode(x, seed)
  _close(enc['mean'], q.mean())
  _close(enc['stddev'], q.stddev())
  _close(enc['z'], q.mean() + q.stddev() * eps)
  _close(module.decode(enc['z'])['x'], model.decode(enc['z']).mean())
  _close(module.reconstruct(x, seed)['x'], model.decode(enc['z']).mean())
  losses = model.compute_losses(x, 0, eps[None])
  elbo = module.elbo(x, seed)
  _close(elbo['elbo'], losses.elbo)
  _close(elbo['reconstruction'], -losses.r_loss)
  _close(elbo['kl'], losses.kl_div)
  _close(elbo['elbo'], elbo['reconstruction'] - elbo['kl'])
  sample = module.sample(tf.constant(3), seed, tf.constant(1.0))
  assert sample['x'].shape == (3, 28, 28, 1) and sample['z'].shape == (3, 2)
  _close(sample['z'], model.prior_sample(3, SEED))
  _close(sample['x'], model.decode(sample['z']).mean())
  pixels = sample['x'].numpy()
  assert pixels.min() >= 0.0 and pixels.max() <= 1.0


def _expected_file(run_dir, tmp_path):
  """The path of an npz with inputs and every signature's in-process outputs."""
  module = export.restore_module(run_dir)
  x = tf.random.stateless_uniform([3, 28, 28, 1], [3, 4])
  z = tf.random.stateless_normal([4, 2], [5, 6])
  data_path = str(tmp_path / 'expected.npz')
  np.savez(data_path, **_expected_outputs(module, x, z))
  return data_path


def _check_report(run_dir, export_dir, report_):
  """saved_model_report's report of the export of run_dir is what the run holds."""
  assert report_['signatures'] == sorted(export.SIGNATURES)
  assert report_['outputs'] == {
      'encode': ['mean', 'stddev', 'z'], 'decode': ['x'], 'sample': ['x', 'z'],
      'reconstruct': ['x'], 'resample': ['x', 'z'],
      'elbo': ['elbo', 'group_kl', 'kl', 'reconstruction'], 'serving_default': ['x']}
  saved = json.load(open(os.path.join(run_dir, 'config.json')))
  assert report_['config_name'] == 'mnist_fc_z2' and report_['dataset'] == 'mnist'
  assert report_['hparams'] == saved['hparams']
  assert report_['step'] == TINY_STEPS
  asset = report_['asset']
  assert asset == export.read_metadata(export_dir)
  assert (asset['config'], asset['step'], asset['z_size'], asset['image_shape']) == (
      'mnist_fc_z2', TINY_STEPS, 2, [28, 28, 1])
  assert asset['hparams'] == saved['hparams']
  errors = report_['errors']
  assert 'Shape of tensor x [2,20,28,1] is not compatible with expected shape [?,28,28,1]' in (
      errors['shape']), errors
  assert 'expected to be a float tensor but is a double tensor' in errors['dtype'], errors
  assert 'Shape of tensor z [2,5] is not compatible with expected shape [?,2]' in (
      errors['z_shape']), errors
  assert 'x has values above 1; images must be float32 in [0, 1]' in errors['range'], errors
  assert 'x has NaN or infinite values' in errors['nan'], errors
  assert 'n must be >= 1' in errors['n'], errors


def test_saved_model_loads_with_tensorflow_and_matches(exported, tmp_path):
  run_dir, export_dir = exported
  _check_report(run_dir, export_dir, report(export_dir, _expected_file(run_dir, tmp_path)))


@pytest.mark.e2e
def test_saved_model_runs_without_tfvae_and_matches(exported, tmp_path):
  run_dir, export_dir = exported
  data_path = _expected_file(run_dir, tmp_path)
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'tests', 'saved_model_report.py'), export_dir,
       data_path], capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
  assert result.returncode == 0, result.stdout + result.stderr
  _check_report(run_dir, export_dir, json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.mark.e2e
def test_saved_model_cli_lists_signatures(exported):
  _, export_dir = exported
  cli = os.path.join(os.path.dirname(sys.executable), 'saved_model_cli')
  result = subprocess.run([cli, 'show', '--all', '--dir', export_dir], capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  out = result.stdout
  for name in export.SIGNATURES:
    assert f"signature_def['{name}']" in out, out
  for tensor in ("inputs['x']", "inputs['z']", "inputs['n']", "inputs['seed']",
                 "outputs['mean']", "outputs['stddev']", "outputs['elbo']", "outputs['kl']",
                 "outputs['reconstruction']", 'shape: (-1, 28, 28, 1)'):
    assert tensor in out, tensor


def test_export_a_named_checkpoint(tiny_run, tmp_path):
  run_dir, _ = tiny_run
  checkpoint = checkpoints.listed(RunDir(run_dir).train_dir)[-1]  # the oldest kept
  step = int(checkpoint.rsplit('-', 1)[1])
  assert step < TINY_STEPS
  export_dir = export.export_saved_model(run_dir, str(tmp_path / 'sm'), checkpoint=checkpoint)
  assert export.read_metadata(export_dir)['step'] == step
  assert int(tf.saved_model.load(export_dir).step.numpy()) == step


def test_export_errors(tiny_run, tmp_path):
  run_dir, _ = tiny_run
  with pytest.raises(RunDirError,
                     match=r"checkpoint '.*ckpt-99' does not exist; use latest, best or"):
    export.export_saved_model(run_dir, str(tmp_path / 'a'),
                              checkpoint=os.path.join(run_dir, 'train', 'ckpt-99'))
  with pytest.raises(RunDirError, match='is not a tfvae run directory'):
    export.export_saved_model(str(tmp_path / 'nothing'), str(tmp_path / 'b'))
  with pytest.raises(ValueError, match='is not a tfvae SavedModel'):
    export.read_metadata(str(tmp_path))

  # A run with a config but no checkpoint: one line from bin/export.py, nothing written.
  empty = tmp_path / 'untrained'
  empty.mkdir()
  shutil.copy(RunDir(run_dir).config_path, empty / 'config.json')
  rc, out = run_tool('export', f'--run_dir={empty}', f'--export_dir={tmp_path / "c"}')
  assert rc == 1, out
  assert out.strip().splitlines()[-1].startswith(f'error: no checkpoint in {empty}/train')
  assert 'Traceback' not in out
  assert not os.path.exists(tmp_path / 'c')


def test_evaluate_a_saved_model_like_its_run(tiny_run, exported, tmp_path):
  _, data_dir = tiny_run
  run_dir, export_dir = exported
  run_dir = copy_run(run_dir, tmp_path)  # evaluating a run writes summaries into it
  errors = (([], 'give exactly one of --run_dir=DIR'),
            ([f'--run_dir={run_dir}', f'--saved_model={export_dir}'],
             'give exactly one of --run_dir=DIR'),
            ([f'--saved_model={export_dir}', '--checkpoint=best'],
             '--checkpoint applies to --run_dir only'),
            ([f'--saved_model={run_dir}'], 'is not a tfvae SavedModel'))
  outputs = [run_tool('evaluate', source, f'--data_dir={data_dir}',
                      '--num_importance_samples=20', '--seed=3')
             for source in (f'--run_dir={run_dir}', f'--saved_model={export_dir}')]
  outputs += [run_tool('evaluate', *args) for args, _ in errors]
  results = []
  for rc, out in outputs[:2]:
    assert rc == 0, out
    results.append(last_json(out))
  by_run, by_export = results
  assert by_export['config'] == by_run['config'] and by_export['step'] == by_run['step']
  for key in ('log_likelihood', 'elbo', 'kl', 'active_units'):
    assert by_export[key] == pytest.approx(by_run[key], rel=1e-6), key
  for (rc, out), (_, message) in zip(outputs[2:], errors):
    assert rc == 1 and out.strip().splitlines()[-1].startswith('error: '), out
    assert message in out and 'Traceback' not in out


# A SavedModel round trip of MADE (e2e: its traced while-loops take seconds to save).
@pytest.mark.e2e
def test_an_autoregressive_decoder_exports_and_matches(made_run, tmp_path):
  run_dir, _ = made_run
  module = export.restore_module(run_dir)
  export_dir = export.export_saved_model(run_dir, str(tmp_path / 'made'))
  loaded = tf.saved_model.load(export_dir).signatures
  x = tf.cast(tf.random.stateless_uniform([3, 28, 28, 1], [1, 2]) < 0.3, tf.float32)
  z = tf.random.stateless_normal([2, 3], [3, 4])
  seed = tf.constant(SEED, tf.int64)
  decoded = loaded['decode'](z=z)['x']
  _close(decoded, module.decode(z)['x'])
  _close(decoded, module.model.decode_images(z))  # the mean-field pass
  _close(loaded['sample'](n=tf.constant(2), seed=seed, temperature=tf.constant(1.0))['x'],
         module.sample(tf.constant(2), seed, tf.constant(1.0))['x'])
  for name in ('elbo', 'reconstruction', 'kl'):
    _close(loaded['elbo'](x=x, seed=seed)[name], module.elbo(x, seed)[name])


@pytest.mark.parametrize('in_process', [True, pytest.param(False, marks=pytest.mark.e2e)],
                         ids=['in_process', 'bin_export'])
def test_the_decoder_converts_to_tflite_and_matches(tiny_run, tmp_path, in_process):
  run_dir, _ = tiny_run
  args = (f'--run_dir={run_dir}', f'--export_dir={tmp_path / "sm"}', '--tflite')
  rc, out = run_tool('export', *args) if in_process else run_script('export.py', *args)
  assert rc == 0 and 'and decode.tflite' in out, out
  interpreter = tf.lite.Interpreter(model_path=str(tmp_path / 'sm' / export.TFLITE_FILE))
  interpreter.allocate_tensors()
  (z_input,), (x_output,) = interpreter.get_input_details(), interpreter.get_output_details()
  assert list(z_input['shape']) == [1, 2] and list(x_output['shape']) == [1, 28, 28, 1]
  module = export.restore_module(run_dir)
  for z in np.random.RandomState(0).randn(3, 1, 2).astype(np.float32):
    interpreter.set_tensor(z_input['index'], z)
    interpreter.invoke()
    _close(interpreter.get_tensor(x_output['index']), module.decode(tf.constant(z))['x'])
