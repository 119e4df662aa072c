"""What a tfvae SavedModel does for TensorFlow alone: loads it with tf.saved_model.load, runs
every signature on saved inputs, compares the outputs with the expected ones saved beside
them, and reports the signatures, the metadata and the errors of bad inputs.

The fast tier calls `report` in its own process; run as a script,

    python tests/saved_model_report.py EXPORT_DIR EXPECTED.npz

it first makes `import tfvae` and `import configs` fail, so the SavedModel is shown to need
neither, and prints the report as one JSON line.
"""

import importlib.abc
import json
import sys


class _Block(importlib.abc.MetaPathFinder):
  """Fails every import of tfvae or configs."""

  def find_spec(self, name, path=None, target=None):
    del path, target
    if name.split('.')[0] in ('tfvae', 'configs'):
      raise ImportError(f'{name} is blocked in this test')


def report(export_dir, data_path):
  """The report (a JSON-able dict) of the SavedModel in export_dir; the npz at data_path
  holds the inputs (x, z, seed) and the expected outputs, keyed 'signature/output'."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
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
  with open(loaded.metadata_file.asset_path.numpy().decode(), encoding='utf-8') as f:
    asset = json.load(f)
  return {
      'signatures': sorted(sigs.keys()),
      'outputs': {name: sorted(out) for name, out in outputs.items()},
      'config_name': loaded.config_name.numpy().decode(),
      'dataset': loaded.dataset.numpy().decode(),
      'hparams': json.loads(loaded.hparams_json.numpy()),
      'step': int(loaded.step.numpy()),
      'asset': asset,
      'errors': errors,
  }


if __name__ == '__main__':
  sys.meta_path.insert(0, _Block())
  try:
    import tfvae  # pylint: disable=unused-import
    sys.exit('tfvae could be imported')
  except ImportError:
    pass
  print(json.dumps(report(*sys.argv[1:])))
