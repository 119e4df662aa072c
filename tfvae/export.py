"""SavedModel export: a trained VAE as self-contained signatures that need no tfvae to run,
and its decoder as a TensorFlow Lite model.

    python bin/export.py --run_dir=/tmp/vae --export_dir=/tmp/vae_export [--tflite]

Signatures (B is dynamic; x is float32 [B, H, W, C] in the dataset's image shape, pixels
in [0, 1]; seeds are int64 scalars; every output is float32):

    encode(x, seed)      -> mean [B, z], stddev [B, z], z [B, z]   z = mean + stddev * eps,
                            every latent group's, top first (a lower group's mean and stddev
                            are its posterior's at the sampled groups above it)
    decode(z)            -> x [B, H, W, C]      VAE.decode_images: the likelihood's mean
                                                (Bernoulli: probabilities; made: mean-field)
    sample(n, seed, temperature)
                         -> x [n, H, W, C], z [n, z]   z ~ p(z) with every group's scale times
                                                the temperature (1: the prior), x = decode(z)
    reconstruct(x, seed) -> x [B, H, W, C]      decode(encode(x, seed).z)
    resample(x, seed, num_groups, temperature)
                         -> x [B, H, W, C], z [B, z]   the top num_groups groups from the
                                                posterior, the others from their priors at
                                                the temperature: what each level encodes
    elbo(x, seed)        -> elbo, reconstruction, kl [B] and group_kl [B, L] nats, as in
                            training: reconstruction = log p(x|z) (mean over num_samples z),
                            kl = sum of the groups' KL(q || p), elbo = reconstruction - kl
    serving_default      =  reconstruct

Inputs are checked when the signatures run: x of the wrong shape, with values outside [0, 1]
or not finite, z of the wrong shape, or n < 1 fail with an InvalidArgumentError saying so.
Randomness is counter-based (`tfvae.noise`), so outputs are reproducible: eps for row b of x
is noise.normal(noise.key(seed, 'eval_posterior'), ...) at row b, the prior's z for sample i
noise.normal(noise.key(seed, 'prior'), ...) at row i; the same numbers on every device.

What the export is: the module's variables `config_name`, `dataset`, `hparams_json`
(string) and `step` (int64), and the same facts as JSON in the asset `assets/tfvae.json`
(see `read_metadata`). `--tflite` also writes `decode.tflite`, the decode signature
converted for TensorFlow Lite (z float32 [1, z_size] -> x), to the export folder.
"""

import dataclasses
import json
import os
import tempfile

from absl import logging
import tensorflow as tf

from tfvae import __version__
from tfvae import checkpoints
from tfvae import configs
from tfvae import noise
from tfvae.errors import UserError
from tfvae.run_dir import Run
from tfvae.run_dir import check_writable
from tfvae.run_dir import load_run as load_run_dir

METADATA_FILE = 'tfvae.json'
TFLITE_FILE = 'decode.tflite'
SIGNATURES = ('encode', 'decode', 'sample', 'reconstruct', 'resample', 'elbo',
              'serving_default')


class VAEModule(tf.Module):
  """The inference functions of a VAE as tf.functions with fixed input signatures.

  The same functions serve in-process (tfvae.TrainedModel on a checkpoint) and as the
  SavedModel's signatures, so both give identical outputs for the same inputs and seed.
  """

  def __init__(self, model, run, step):
    super().__init__(name='tfvae')
    self.model = model
    self.config_name = tf.Variable(run.config.name, trainable=False, name='config_name')
    self.dataset = tf.Variable(run.config.dataset, trainable=False, name='dataset')
    self.hparams_json = tf.Variable(run.hparams.to_json(), trainable=False, name='hparams_json')
    self.step = tf.Variable(step, dtype=tf.int64, trainable=False, name='step')
    # A JSON string, not a dict: tf.Module would track a dict's contents.
    self.metadata_json = json.dumps({
        'config': run.config.name, 'dataset': run.config.dataset,
        'hparams': run.hparams.values(), 'step': int(step),
        'image_shape': list(model.image_shape), 'binary': run.binary, 'z_size': model.z_size,
        'groups': [{'name': g.name, 'shape': list(g.shape)} for g in model.groups],
        'tfvae_version': __version__,
        'noise': "Philox4x32-10 counter-based (tfvae.noise): eps of row b from "
                 "key(seed, 'eval_posterior'), prior z of row i from key(seed, 'prior')",
        'signatures': list(SIGNATURES)}, indent=2, sort_keys=True) + '\n'
    self._image_shape = tuple(model.image_shape)
    x = tf.TensorSpec((None,) + self._image_shape, tf.float32, name='x')
    z = tf.TensorSpec([None, model.z_size], tf.float32, name='z')
    n = tf.TensorSpec([], tf.int32, name='n')
    seed = tf.TensorSpec([], tf.int64, name='seed')
    temperature = tf.TensorSpec([], tf.float32, name='temperature')
    num_groups = tf.TensorSpec([], tf.int32, name='num_groups')
    self.encode = tf.function(self._encode, input_signature=[x, seed])
    self.decode = tf.function(self._decode, input_signature=[z])
    self.sample = tf.function(self._sample, input_signature=[n, seed, temperature])
    self.reconstruct = tf.function(self._reconstruct, input_signature=[x, seed])
    self.resample = tf.function(self._resample,
                                input_signature=[x, seed, num_groups, temperature])
    self.elbo = tf.function(self._elbo, input_signature=[x, seed])

  def signatures(self):
    """{name: tf.function} for every name in SIGNATURES."""
    fns = {name: getattr(self, name) for name in SIGNATURES[:-1]}
    return dict(fns, serving_default=self.reconstruct)

  def _check_images(self, x):
    """x with its shape [B, H, W, C], finiteness and range [0, 1] checked at run time."""
    x = tf.ensure_shape(x, (None,) + self._image_shape, name='check_x_shape')
    checks = [tf.debugging.assert_all_finite(x, 'x has NaN or infinite values'),
              tf.debugging.assert_greater_equal(x, 0.0, message='x has values below 0; '
                                                'images must be float32 in [0, 1]'),
              tf.debugging.assert_less_equal(x, 1.0, message='x has values above 1; images '
                                             'must be float32 in [0, 1] (uint8: divide by 255)')]
    with tf.control_dependencies(checks):
      return tf.identity(x)

  def _eps(self, x, seed):
    """The posterior noise eps [B, z] of images x: row b from key(seed, 'eval_posterior')."""
    return noise.normal(noise.key(seed, 'eval_posterior'), tf.shape(x)[0], 1,
                        self.model.z_size)[0]

  def _encode(self, x, seed):
    x = self._check_images(x)
    path = self.model.descend(self.model.infer(x), self._eps(x, seed)[tf.newaxis])
    joined = lambda parts: tf.concat(parts, -1)[0]
    shape = tf.shape(path.zs[0])
    broadcast = lambda t: tf.broadcast_to(t, tf.concat([shape[:2], tf.shape(t)[-1:]], 0))
    return {'mean': joined([broadcast(q.mean()) for q in path.posteriors]),
            'stddev': joined([broadcast(q.stddev()) for q in path.posteriors]),
            'z': joined(path.zs)}

  def _decode(self, z):
    # Only the shape is checked: decode stays free of assertion ops, so that converters
    # (TF.js, TF Lite) take it as it is.
    z = tf.ensure_shape(z, [None, self.model.z_size], name='check_z_shape')
    return {'x': self.model.decode_images(z)}

  def _sample(self, n, seed, temperature):
    with tf.control_dependencies([
        tf.debugging.assert_positive(n, message='n must be >= 1'),
        tf.debugging.assert_non_negative(temperature, message='temperature must be >= 0')]):
      z = self.model.prior_sample(n, seed, temperature)
    return {'x': self.model.decode_images(z), 'z': z}

  def _reconstruct(self, x, seed):
    x = self._check_images(x)
    return {'x': self.model.decode_images(self.model.posterior_sample(x, self._eps(x, seed)))}

  def _resample(self, x, seed, num_groups, temperature):
    x = self._check_images(x)
    u = noise.uniform(noise.key(seed, 'prior_component'), tf.shape(x)[0], 1, 1)[0, :, 0]
    z = self.model.posterior_sample(x, self._eps(x, seed), num_groups, temperature, u)
    return {'x': self.model.decode_images(z), 'z': z}

  def _elbo(self, x, seed):
    x = self._check_images(x)
    eps = noise.normal(noise.key(seed, 'eval_posterior'), tf.shape(x)[0],
                       self.model.num_samples, self.model.z_size)
    losses = self.model.compute_losses(x, self.step, eps)
    return {'elbo': losses.elbo, 'reconstruction': -losses.r_loss, 'kl': losses.kl_div,
            'group_kl': losses.group_kl}


def restore_module(run_dir, checkpoint=None):
  """A VAEModule of the checkpoint of `run_dir` (a path or RunDir) that `checkpoint` names:
  latest (None), best or a path."""
  run, model, step = load_run_dir(run_dir, checkpoint)
  return VAEModule(model, run, step)


def export_saved_model(run_dir, export_dir, checkpoint=None, tflite=False):
  """Writes the latest (or given) checkpoint of `run_dir` as a SavedModel (and, with
  `tflite`, its decoder as export_dir/decode.tflite); returns export_dir."""
  check_writable(export_dir, '--export_dir')
  module = restore_module(run_dir, checkpoint)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, METADATA_FILE)
    with open(path, 'w', encoding='utf-8') as f:
      f.write(module.metadata_json)
    module.metadata_file = tf.saved_model.Asset(path)
    tf.saved_model.save(module, export_dir, signatures=module.signatures())
  if tflite:
    write_tflite(module, os.path.join(export_dir, TFLITE_FILE))
  logging.info('Exported %s at step %d to %s.', module.config_name.numpy().decode(),
               int(module.step), export_dir)
  return export_dir


def write_tflite(module, path):
  """Converts the decode function of a VAEModule (z [1, z_size] -> x [1, H, W, C]) to a
  TensorFlow Lite flatbuffer at `path`."""
  decoder = tf.Module(name='decoder')
  # The converter freezes the tf.Variables its module tracks; Keras 3 holds them inside its
  # own variables, so hand them over (else the weights come out uninitialised).
  decoder.weights = [v.value for v in module.model.variables]
  decoder.decode = tf.function(module.model.decode_images, input_signature=[
      tf.TensorSpec([1, module.model.z_size], tf.float32, name='z')])
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [decoder.decode.get_concrete_function()], decoder)
  # Autoregressive decoders' mean-field pass is a while loop of TF ops.
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                         tf.lite.OpsSet.SELECT_TF_OPS]
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(converter.convert())
  return path


def read_metadata(export_dir):
  """The dict in export_dir/assets/tfvae.json (config, dataset, hparams, step, ...)."""
  path = os.path.join(export_dir, 'assets', METADATA_FILE)
  if not tf.io.gfile.exists(path):
    raise UserError(f'{export_dir} is not a tfvae SavedModel: no {path}; export one with '
                    'bin/export.py --run_dir=... --export_dir=...')
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def load_run(export_dir):
  """(Run, model, step) of a SavedModel written by export_saved_model: the model is rebuilt
  from the exported config and hparams and takes the SavedModel's variables, so tfvae's own
  code (e.g. the importance-weighted evaluation) can run on it."""
  metadata = read_metadata(export_dir)
  config = configs.get_config(metadata['config'])
  run = Run(dataclasses.replace(config, dataset=metadata['dataset']),
            config.hparams.override(**metadata['hparams']), tuple(metadata['image_shape']),
            metadata.get('binary'))
  model = config.build_model(run.hparams, run.image_shape)
  model.build_variables()
  # The SavedModel's variables are a checkpoint of VAEModule, whose `model` is the VAE.
  checkpoints.restore_file(tf.train.Checkpoint(model=model),
                           os.path.join(export_dir, 'variables', 'variables'))
  return run, model, int(metadata['step'])
