"""SavedModel export: bin/export.py, standalone loading without tfvae, metadata and errors."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_script, run_scripts
from tfvae import export
from tfvae import noise
from tfvae.run_dir import RunDir
from tfvae.run_dir import RunDirError

SEED = 7

# Runs in a fresh interpreter where `import tfvae` / `import configs` fail: loads the
# SavedModel, runs every signature on the saved inputs, compares with the in-process outputs
# and reports (as JSON) the metadata and the errors of bad inputs.
_STANDALONE = textwrap.dedent('''
    import importlib.abc, json, sys

    class _Block(importlib.abc.MetaPathFinder):
      def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tfvae', 'configs'):
          raise ImportError(f'{name} is blocked in this test')

    sys.meta_path.insert(0, _Block())
    try:
      import tfvae
      sys.exit('tfvae could be imported')
    except ImportError:
      pass
    import numpy as np
    import tensorflow as tf

    export_dir, data_path = sys.argv[1:]
    data = dict(np.load(data_path))
    loaded = tf.saved_model.load(export_dir)
    sigs = loaded.signatures
    seed = tf.constant(int(data['seed']), tf.int64)
    x, z = tf.constant(data['x']), tf.constant(data['z'])
    outputs = {
        'encode': sigs['encode'](x=x, seed=seed),
        'decode': sigs['decode'](z=z),
        'sample': sigs['sample'](n=tf.constant(5), seed=seed, temperature=tf.constant(1.0)),
        'reconstruct': sigs['reconstruct'](x=x, seed=seed),
        'resample': sigs['resample'](x=x, seed=seed, num_groups=tf.constant(0),
                                     temperature=tf.constant(0.5)),
        'elbo': sigs['elbo'](x=x, seed=seed),
        'serving_default': sigs['serving_default'](x=x, seed=seed),
    }
    for name, out in outputs.items():
      for key, value in out.items():
        np.testing.assert_allclose(value.numpy(), data[f'{name}/{key}'], rtol=1e-5, atol=1e-6,
                                   err_msg=f'{name}/{key}')
    errors = {}
    for case, call in [
        ('shape', lambda: sigs['encode'](x=tf.zeros([2, 20, 28, 1]), seed=seed)),
        ('dtype', lambda: sigs['encode'](x=tf.zeros([2, 28, 28, 1], tf.float64), seed=seed)),
        ('z_shape', lambda: sigs['decode'](z=tf.zeros([2, 5]))),
        ('range', lambda: sigs['encode'](x=tf.fill([2, 28, 28, 1], 255.0), seed=seed)),
        ('nan', lambda: sigs['reconstruct'](x=tf.fill([2, 28, 28, 1], np.nan), seed=seed)),
        ('n', lambda: sigs['sample'](n=tf.constant(0), seed=seed, temperature=tf.constant(1.0))),
    ]:
      try:
        call()
        errors[case] = None
      except (tf.errors.InvalidArgumentError, TypeError, ValueError) as e:
        errors[case] = str(e)
    with open(loaded.metadata_file.asset_path.numpy().decode()) as f:
      asset = json.load(f)
    print(json.dumps({
        'signatures': sorted(sigs.keys()),
        'outputs': {name: sorted(out) for name, out in outputs.items()},
        'config_name': loaded.config_name.numpy().decode(),
        'dataset': loaded.dataset.numpy().decode(),
        'hparams': json.loads(loaded.hparams_json.numpy()),
        'step': int(loaded.step.numpy()),
        'asset': asset,
        'errors': errors,
    }))
''')


@pytest.fixture(scope='module')
def exported(mnist_z2_run, tmp_path_factory):
  """(run_dir, export_dir) with export_dir written by bin/export.py."""
  run_dir, _ = mnist_z2_run
  export_dir = str(tmp_path_factory.mktemp('export') / 'saved_model')
  rc, out = run_script('export.py', f'--run_dir={run_dir}', f'--export_dir={export_dir}')
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


def test_signatures_compute_the_model(mnist_z2_run):
  run_dir, _ = mnist_z2_run
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


def test_saved_model_runs_without_tfvae_and_matches(exported, tmp_path):
  run_dir, export_dir = exported
  module = export.restore_module(run_dir)
  x = tf.random.stateless_uniform([3, 28, 28, 1], [3, 4])
  z = tf.random.stateless_normal([4, 2], [5, 6])
  data_path = str(tmp_path / 'expected.npz')
  np.savez(data_path, **_expected_outputs(module, x, z))
  script = tmp_path / 'standalone.py'
  script.write_text(_STANDALONE)
  result = subprocess.run([sys.executable, str(script), export_dir, data_path],
                          capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
  assert result.returncode == 0, result.stdout + result.stderr
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report['signatures'] == sorted(export.SIGNATURES)
  assert report['outputs'] == {
      'encode': ['mean', 'stddev', 'z'], 'decode': ['x'], 'sample': ['x', 'z'],
      'reconstruct': ['x'], 'resample': ['x', 'z'],
      'elbo': ['elbo', 'group_kl', 'kl', 'reconstruction'], 'serving_default': ['x']}
  saved = json.load(open(os.path.join(run_dir, 'config.json')))
  assert report['config_name'] == 'mnist_fc_z2' and report['dataset'] == 'mnist'
  assert report['hparams'] == saved['hparams']
  assert report['step'] == 10
  asset = report['asset']
  assert asset == export.read_metadata(export_dir)
  assert (asset['config'], asset['step'], asset['z_size'], asset['image_shape']) == (
      'mnist_fc_z2', 10, 2, [28, 28, 1])
  assert asset['hparams'] == saved['hparams']
  errors = report['errors']
  assert 'Shape of tensor x [2,20,28,1] is not compatible with expected shape [?,28,28,1]' in (
      errors['shape']), errors
  assert 'expected to be a float tensor but is a double tensor' in errors['dtype'], errors
  assert 'Shape of tensor z [2,5] is not compatible with expected shape [?,2]' in (
      errors['z_shape']), errors
  assert 'x has values above 1; images must be float32 in [0, 1]' in errors['range'], errors
  assert 'x has NaN or infinite values' in errors['nan'], errors
  assert 'n must be >= 1' in errors['n'], errors


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


def test_export_a_named_checkpoint(mnist_z2_run, tmp_path):
  run_dir, _ = mnist_z2_run
  checkpoint = os.path.join(run_dir, 'train', 'ckpt-5')
  assert os.path.exists(checkpoint + '.index')
  export_dir = export.export_saved_model(run_dir, str(tmp_path / 'sm'), checkpoint=checkpoint)
  assert export.read_metadata(export_dir)['step'] == 5
  assert int(tf.saved_model.load(export_dir).step.numpy()) == 5


def test_export_errors(mnist_z2_run, tmp_path):
  run_dir, _ = mnist_z2_run
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
  rc, out = run_script('export.py', f'--run_dir={empty}', f'--export_dir={tmp_path / "c"}')
  assert rc == 1, out
  assert out.strip().splitlines()[-1].startswith(f'error: no checkpoint in {empty}/train')
  assert 'Traceback' not in out
  assert not os.path.exists(tmp_path / 'c')


def test_evaluate_a_saved_model_like_its_run(mnist_z2_run, exported):
  _, data_dir = mnist_z2_run
  run_dir, export_dir = exported
  errors = (([], 'give exactly one of --run_dir=DIR'),
            ([f'--run_dir={run_dir}', f'--saved_model={export_dir}'],
             'give exactly one of --run_dir=DIR'),
            ([f'--saved_model={export_dir}', '--checkpoint=best'],
             '--checkpoint applies to --run_dir only'),
            ([f'--saved_model={run_dir}'], 'is not a tfvae SavedModel'))
  outputs = run_scripts(*[('evaluate.py', source, f'--data_dir={data_dir}',
                           '--num_importance_samples=20', '--seed=3')
                          for source in (f'--run_dir={run_dir}', f'--saved_model={export_dir}')],
                        *[('evaluate.py', *args) for args, _ in errors])
  results = []
  for rc, out in outputs[:2]:
    assert rc == 0, out
    results.append(json.loads([line for line in out.splitlines() if line.startswith('{')][-1]))
  by_run, by_export = results
  assert by_export['config'] == by_run['config'] and by_export['step'] == by_run['step']
  for key in ('log_likelihood', 'elbo', 'kl', 'active_units'):
    assert by_export[key] == pytest.approx(by_run[key], rel=1e-6), key
  for (rc, out), (_, message) in zip(outputs[2:], errors):
    assert rc == 1 and out.strip().splitlines()[-1].startswith('error: '), out
    assert message in out and 'Traceback' not in out


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


def test_the_decoder_converts_to_tflite_and_matches(mnist_z2_run, tmp_path):
  run_dir, _ = mnist_z2_run
  rc, out = run_script('export.py', f'--run_dir={run_dir}', f'--export_dir={tmp_path / "sm"}',
                       '--tflite')
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
