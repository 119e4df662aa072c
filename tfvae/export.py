"""SavedModel export: a trained VAE as self-contained signatures that need no tfvae to run.

    python bin/export.py --run_dir=/tmp/vae --export_dir=/tmp/vae_export

Signatures (B is dynamic; x is float32 [B, H, W, C] in the dataset's image shape, pixels
in [0, 1]; seeds are int64 scalars; every output is float32):

    encode(x, seed)      -> mean [B, z], stddev [B, z], z [B, z]   z = mean + stddev * eps
    decode(z)            -> x [B, H, W, C]      VAE.decode_images: the likelihood's mean
                                                (Bernoulli: probabilities; made: mean-field)
    sample(n, seed)      -> x [n, H, W, C], z [n, z]   z ~ N(0, I), x = decode(z); n is int32
    reconstruct(x, seed) -> x [B, H, W, C]      decode(encode(x, seed).z)
    elbo(x, seed)        -> elbo, reconstruction, kl, each [B] nats, as in training:
                            reconstruction = log p(x|z) (mean over num_samples z),
                            kl = KL(q(z|x) || p(z)), elbo = reconstruction - kl
    serving_default      =  reconstruct

Randomness is stateless, so outputs are reproducible: the standard-normal noise of shape
`shape` is eps = tf.random.stateless_normal(shape, seed=[seed, 0]), shape [B, z_size] (or,
for elbo, [num_samples, B, z_size] with the run's num_samples hparam).

What the export is: the module's variables `config_name`, `dataset`, `hparams_json`
(string) and `step` (int64), and the same facts as JSON in the asset `assets/tfvae.json`
(see `read_metadata`).
"""

import json
import os
import tempfile

from absl import logging
import tensorflow as tf

from tfvae import __version__
from tfvae import configs
from tfvae.run_dir import RunDir

METADATA_FILE = 'tfvae.json'
SIGNATURES = ('encode', 'decode', 'sample', 'reconstruct', 'elbo', 'serving_default')


def noise(shape, seed):
  """eps ~ N(0, I) of `shape` from the stateless seed [seed, 0]."""
  seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
  return tf.random.stateless_normal(shape, seed=seed)


class VAEModule(tf.Module):
  """The inference functions of a VAE as tf.functions with fixed input signatures.

  The same functions serve in-process (tfvae.TrainedModel on a checkpoint) and as the
  SavedModel's signatures, so both give identical outputs for the same inputs and seed.
  """

  def __init__(self, model, config, hparams, step):
    super().__init__(name='tfvae')
    self.model = model
    self.config_name = tf.Variable(config.name, trainable=False, name='config_name')
    self.dataset = tf.Variable(config.dataset, trainable=False, name='dataset')
    self.hparams_json = tf.Variable(hparams.to_json(), trainable=False, name='hparams_json')
    self.step = tf.Variable(step, dtype=tf.int64, trainable=False, name='step')
    # A JSON string, not a dict: tf.Module would track a dict's contents.
    self.metadata_json = json.dumps({
        'config': config.name, 'dataset': config.dataset, 'hparams': hparams.values(),
        'step': int(step), 'image_shape': list(model.image_shape), 'z_size': model.z_size,
        'tfvae_version': __version__, 'noise': 'eps = stateless_normal(shape, [seed, 0])',
        'signatures': list(SIGNATURES)}, indent=2, sort_keys=True) + '\n'
    self._image_shape = tuple(model.image_shape)
    x = tf.TensorSpec((None,) + self._image_shape, tf.float32, name='x')
    z = tf.TensorSpec([None, model.z_size], tf.float32, name='z')
    n = tf.TensorSpec([], tf.int32, name='n')
    seed = tf.TensorSpec([], tf.int64, name='seed')
    self.encode = tf.function(self._encode, input_signature=[x, seed])
    self.decode = tf.function(self._decode, input_signature=[z])
    self.sample = tf.function(self._sample, input_signature=[n, seed])
    self.reconstruct = tf.function(self._reconstruct, input_signature=[x, seed])
    self.elbo = tf.function(self._elbo, input_signature=[x, seed])

  def signatures(self):
    """{name: tf.function} for every name in SIGNATURES."""
    fns = {name: getattr(self, name) for name in SIGNATURES[:-1]}
    return dict(fns, serving_default=self.reconstruct)

  def _check_images(self, x):
    """x with its shape checked at run time against [B, H, W, C]."""
    return tf.ensure_shape(x, (None,) + self._image_shape, name='check_x_shape')

  def _posterior(self, x, seed):
    """(q(z|x), z = mean + stddev * eps) for images x [B, H, W, C]."""
    q = self.model.encode(self._check_images(x))
    mean = q.mean()
    return q, mean + q.stddev() * noise(tf.shape(mean), seed)

  def _encode(self, x, seed):
    q, z = self._posterior(x, seed)
    return {'mean': q.mean(), 'stddev': q.stddev(), 'z': z}

  def _decode(self, z):
    z = tf.ensure_shape(z, [None, self.model.z_size], name='check_z_shape')
    return {'x': self.model.decode_images(z)}

  def _sample(self, n, seed):
    z = noise([n, self.model.z_size], seed)
    return {'x': self.model.decode_images(z), 'z': z}

  def _reconstruct(self, x, seed):
    _, z = self._posterior(x, seed)
    return {'x': self.model.decode_images(z)}

  def _elbo(self, x, seed):
    x = self._check_images(x)
    eps = noise(self.model.noise_shape(tf.shape(x)[0]), seed)
    losses = self.model.compute_losses(x, self.step, eps)
    return {'elbo': losses.elbo, 'reconstruction': -losses.r_loss, 'kl': losses.kl_div}


def restore_module(run_dir, checkpoint=None):
  """A VAEModule of the checkpoint of `run_dir` (a path or RunDir) that `checkpoint` names:
  latest (None), best or a path."""
  run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
  config, hparams, model, step = run_dir.restore_model(checkpoint)
  return VAEModule(model, config, hparams, step)


def export_saved_model(run_dir, export_dir, checkpoint=None):
  """Writes the latest (or given) checkpoint of `run_dir` as a SavedModel; returns export_dir."""
  module = restore_module(run_dir, checkpoint)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, METADATA_FILE)
    with open(path, 'w', encoding='utf-8') as f:
      f.write(module.metadata_json)
    module.metadata_file = tf.saved_model.Asset(path)
    tf.saved_model.save(module, export_dir, signatures=module.signatures())
  logging.info('Exported %s at step %d to %s.', module.config_name.numpy().decode(),
               int(module.step), export_dir)
  return export_dir


def read_metadata(export_dir):
  """The dict in export_dir/assets/tfvae.json (config, dataset, hparams, step, ...)."""
  path = os.path.join(export_dir, 'assets', METADATA_FILE)
  if not tf.io.gfile.exists(path):
    raise ValueError(f'{export_dir} is not a tfvae SavedModel: no {path}; export one with '
                     'bin/export.py --run_dir=... --export_dir=...')
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def restore_model(export_dir):
  """(config, hparams, model, step) of a SavedModel written by export_saved_model: the model
  is rebuilt from the exported config and hparams and takes the SavedModel's variables, so
  tfvae's own code (e.g. the importance-weighted evaluation) can run on it."""
  metadata = read_metadata(export_dir)
  config = configs.get_config(metadata['config'])
  hparams = config.hparams.override(**metadata['hparams'])
  model = config.build_model(hparams)
  model.build_variables()
  # The SavedModel's variables are a checkpoint of VAEModule, whose `model` is the VAE.
  status = tf.train.Checkpoint(model=model).read(
      os.path.join(export_dir, 'variables', 'variables'))
  status.assert_existing_objects_matched().expect_partial()
  return config, hparams, model, int(metadata['step'])
