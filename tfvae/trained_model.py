"""A trained VAE for inference on NumPy arrays, in the manner of MusicVAE's TrainedModel.

    model = TrainedModel(run_dir='/tmp/vae')                  # a checkpoint (latest or named)
    model = TrainedModel(saved_model_dir='/tmp/vae_export')   # a SavedModel from bin/export.py
    mean, stddev, z = model.encode(x)                         # x [B, H, W, C]
    images = model.sample(16, temperature=0.5, seed=1)

Images are float in [0, 1], or uint8 as the run's dataset holds them: intensities 0..255,
scaled by 1/255, or 0/1 for a binary dataset (binarized_mnist, a bool array), taken as they
are; whether it is binary is recorded with the run, never guessed from the values. Any other
values, NaN or infinity are a one-line UserError. Both sources run the same functions
(tfvae.export.VAEModule), so they agree exactly. `log_likelihood` scores images as
bin/evaluate.py does, binarising them first for a binarize=true run.
"""

import json

import numpy as np
import tensorflow as tf

from tfvae import data
from tfvae import export
from tfvae.errors import UserError
from tfvae.sources import specs

INTERPOLATION_METHODS = ('linear', 'slerp')


def slerp(p0, p1, t):
  """Spherical interpolation [T, D] from p0 [D] to p1 [D] at fractions t [T]."""
  cos_omega = np.dot(p0, p1) / max(np.linalg.norm(p0) * np.linalg.norm(p1), 1e-12)
  omega = np.arccos(np.clip(cos_omega, -1.0, 1.0))
  if np.sin(omega) < 1e-6:  # (anti)parallel: the great circle is undefined, go straight
    return (1.0 - t)[:, None] * p0 + t[:, None] * p1
  return (np.sin((1.0 - t) * omega)[:, None] * p0
          + np.sin(t * omega)[:, None] * p1) / np.sin(omega)


class TrainedModel:
  """Encode, decode, sample, reconstruct and interpolate with a trained VAE.

  Give run_dir (with an optional checkpoint path; default the latest) or saved_model_dir.
  Attributes: config_name, dataset, hparams (dict), step, image_shape (H, W, C), z_size
  (every latent group's dimensions together), groups (the latent groups, top first, as
  (name, size) pairs; one group for the paper's model), binary (whether the dataset's uint8
  values are 0/1) and model (the tfvae.model.VAE, or None for a SavedModel).
  """

  def __init__(self, run_dir=None, checkpoint=None, saved_model_dir=None):
    if (run_dir is None) == (saved_model_dir is None):
      raise UserError('TrainedModel needs exactly one of run_dir= (a training run) or '
                      'saved_model_dir= (an export from bin/export.py)')
    if saved_model_dir is not None:
      if checkpoint:
        raise UserError('checkpoint= applies to run_dir=, not to saved_model_dir=')
      metadata = export.read_metadata(saved_model_dir)
      try:
        self._functions = tf.saved_model.load(saved_model_dir).signatures
      except (tf.errors.OpError, ValueError, OSError) as e:
        raise UserError(f'cannot load the SavedModel {saved_model_dir} ({type(e).__name__}: '
                        f'{" ".join(str(e).split())[:200]})') from None
      self.model = None
    else:
      module = export.restore_module(run_dir, checkpoint)
      metadata = json.loads(module.metadata_json)
      self._functions = module.signatures()
      self.model = module.model
    self.config_name = metadata['config']
    self.dataset = metadata['dataset']
    self.hparams = metadata['hparams']
    self.step = metadata['step']
    self.image_shape = tuple(metadata['image_shape'])
    self.z_size = metadata['z_size']
    self.groups = [(g['name'], int(np.prod(g['shape']))) for g in metadata.get(
        'groups', [{'name': 'z', 'shape': [self.z_size]}])]
    binary = metadata.get('binary')  # exports from before it was recorded: as the spec says
    self.binary = specs.declared_binary(self.dataset) if binary is None else binary

  @classmethod
  def from_run_dir(cls, run_dir, checkpoint=None):
    """The latest (or given) checkpoint of a training run."""
    return cls(run_dir=run_dir, checkpoint=checkpoint)

  @classmethod
  def from_saved_model(cls, saved_model_dir):
    """A SavedModel written by tfvae.export.export_saved_model."""
    return cls(saved_model_dir=saved_model_dir)

  def _call(self, name, **inputs):
    """Runs function `name` on tensors; returns {output name: numpy array}."""
    return {k: v.numpy() for k, v in self._functions[name](**inputs).items()}

  def _images(self, x):
    """x as a float32 tensor in [0, 1] (uint8 scaled by 1/255, a binary dataset's kept), or a
    one-line UserError unless its shape is [B, H, W, C] and its values finite and in range."""
    array = np.asarray(x)
    if array.ndim != 4 or array.shape[1:] != self.image_shape or not len(array):
      raise UserError(f'images have shape {array.shape}; {self.config_name} expects '
                      f'[batch >= 1, {", ".join(map(str, self.image_shape))}]')
    if array.dtype == np.uint8:
      if self.binary and array.max() > 1:
        raise UserError(f'uint8 images hold the value {array.max()}, but {self.dataset} is '
                        'binary: give its 0/1 values, or float images in [0, 1]')
      array = array.astype(np.float32) / (1.0 if self.binary else 255.0)
    elif not (np.issubdtype(array.dtype, np.floating) or array.dtype == bool):
      raise UserError(f'images have dtype {array.dtype}; give float images in [0, 1] or '
                      'uint8 in 0..255')
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
      raise UserError('images have NaN or infinite values; give float images in [0, 1]')
    if array.min() < 0 or array.max() > 1:
      raise UserError(f'image values lie in [{array.min():g}, {array.max():g}]; give float '
                      'images in [0, 1] or uint8 in 0..255')
    return tf.constant(array)

  def _latents(self, z):
    """z as a float32 tensor, or a one-line error unless its shape is [B, z_size] and it is
    finite."""
    z = np.asarray(z, np.float32)
    if z.ndim != 2 or z.shape[1] != self.z_size:
      raise UserError(f'latents have shape {z.shape}; {self.config_name} expects '
                      f'[batch, {self.z_size}]')
    if not np.all(np.isfinite(z)):
      raise UserError('latents have NaN or infinite values')
    return tf.constant(z)

  def encode(self, x, seed=0):
    """(mean, stddev, z) [B, z_size] of q(z|x), z = mean + stddev * eps(seed)."""
    out = self._call('encode', x=self._images(x), seed=tf.constant(seed, tf.int64))
    return out['mean'], out['stddev'], out['z']

  def encode_groups(self, x, seed=0):
    """{group name: (mean, stddev, z)}, each [B, group size], top group first: encode's
    arrays cut at the group boundaries (a lower group's posterior is the one at the sampled
    groups above it)."""
    arrays = self.encode(x, seed)
    ends = np.cumsum([size for _, size in self.groups])[:-1]
    parts = [np.split(a, ends, axis=-1) for a in arrays]
    return {name: tuple(p[i] for p in parts) for i, (name, _) in enumerate(self.groups)}

  def resample(self, x, num_groups, temperature=1.0, seed=0):
    """Images [B, H, W, C] decoded from the posterior of the top num_groups groups of each
    image in x and the lower groups drawn from their priors (scales times temperature):
    num_groups = len(groups) reconstructs, 0 samples from the prior. What each level keeps."""
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) or not (
        0 <= num_groups <= len(self.groups)):
      raise UserError(f'resample keeps 0..{len(self.groups)} latent groups (this model has '
                      f'{len(self.groups)}), got num_groups={num_groups!r}')
    if not (np.isfinite(temperature) and temperature >= 0):
      raise UserError(f'temperature must be a finite number >= 0, got {temperature!r}')
    return self._call('resample', x=self._images(x), seed=tf.constant(seed, tf.int64),
                      num_groups=tf.constant(num_groups, tf.int32),
                      temperature=tf.constant(temperature, tf.float32))['x']

  def decode(self, z):
    """The decoded images [B, H, W, C] at latents z [B, z_size]: the likelihood's mean (an
    autoregressive decoder's mean-field pass; see VAE.decode_images)."""
    return self._call('decode', z=self._latents(z))['x']

  def sample(self, n, temperature=1.0, seed=None):
    """n images [n, H, W, C] decoded from z ~ N(0, temperature^2 I); seed None: random."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
      raise UserError(f'sample needs a whole number n >= 1 of images, got {n!r}')
    if not (np.isfinite(temperature) and temperature >= 0):
      raise UserError(f'temperature must be a finite number >= 0, got {temperature!r}')
    if seed is None:
      seed = np.random.default_rng().integers(2**62)
    return self._call('sample', n=tf.constant(n, tf.int32), seed=tf.constant(seed, tf.int64),
                      temperature=tf.constant(temperature, tf.float32))['x']

  def reconstruct(self, x, seed=0):
    """decode(z) [B, H, W, C] at a posterior sample z of each image in x."""
    return self._call('reconstruct', x=self._images(x), seed=tf.constant(seed, tf.int64))['x']

  def interpolate(self, x1, x2, num_steps=10, method='linear'):
    """Images [num_steps, H, W, C] decoded along a path from the posterior mean of image x1
    [H, W, C] to that of x2 (both ends included): 'linear' or 'slerp'."""
    if method not in INTERPOLATION_METHODS:
      raise UserError(f'unknown interpolation method {method!r}; valid: '
                      f'{", ".join(INTERPOLATION_METHODS)}')
    if num_steps < 2:
      raise UserError(f'num_steps is {num_steps}; an interpolation needs at least 2')
    pair = np.stack([np.asarray(x1), np.asarray(x2)])
    mean, _, _ = self.encode(pair)
    t = np.linspace(0.0, 1.0, num_steps, dtype=np.float32)
    if method == 'linear':
      z = (1.0 - t)[:, None] * mean[0] + t[:, None] * mean[1]
    else:
      z = slerp(mean[0], mean[1], t)
    return self.decode(z)

  def log_likelihood(self, x, num_samples, seed=0):
    """Importance-weighted estimate of log p(x) [B] in nats, from num_samples samples of q:
    bin/evaluate.py's estimate of the same images at the same seed, image i keyed as example
    i of a split. A binarize=true run scores x ~ Bernoulli(x) drawn as the evaluator draws it
    (binary data pass as they are)."""
    if self.model is None:
      raise UserError('log_likelihood needs the checkpoint: a SavedModel has no '
                      'log_likelihood signature; load TrainedModel(run_dir=...) instead')
    from tfvae import evaluation  # pylint: disable=import-outside-toplevel
    info = data.DatasetInfo(self.dataset, self.image_shape, self.binary, None, {})
    ll = evaluation.log_likelihood(self.model, self._images(x), num_samples, seed=seed,
                                   info=info, binarize=bool(self.hparams.get('binarize')))
    return np.asarray(ll)
