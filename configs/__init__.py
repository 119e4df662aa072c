"""Named configs: each bundles a model (encoder + decoder), hparams and a dataset.

Installed as `tfvae.configs`. `get_config(name)` returns one; `CONFIG_MAP` lists all. Reading
the configs imports no TensorFlow (the command-line tools list them in --help at once): a config
names its model's parts ('encoders.MLPEncoder': tfvae.encoders.MLPEncoder) and keeps its hparams
as overrides of tfvae.model.default_hparams, both looked up when first used.
"""

import dataclasses
import functools
import importlib

from tfvae.errors import UserError
from tfvae.errors import did_you_mean


class ConfigError(UserError):
  """An unknown config name."""


def _part(path):
  """The class a config names as 'module.Class', a module of the tfvae package."""
  module, name = path.rsplit('.', 1)
  return getattr(importlib.import_module(f'tfvae.{module}'), name)


@dataclasses.dataclass(frozen=True)
class Config:
  """A named experiment: which model, with which hparams, on which data."""
  name: str
  description: str
  encoder: str         # an encoders.BaseEncoder subclass, as 'module.Class' in tfvae
  decoder: str         # a decoders.BaseDecoder subclass, likewise
  overrides: dict      # hparams that differ from tfvae.model.default_hparams()
  dataset: str         # a dataset spec (tfvae.sources): a built-in name, tfds:, folder:, ...
  top_down: str = 'top_down.DenseLadder'  # the latent groups below the top one

  @functools.cached_property
  def hparams(self):
    """The config's HParams: the defaults with its overrides."""
    from tfvae.model import default_hparams  # pylint: disable=import-outside-toplevel
    return default_hparams().override(**self.overrides)

  def build_model(self, hparams, image_shape):
    """A VAE with `hparams` for images of shape image_shape [H, W, C]."""
    from tfvae.model import VAE  # pylint: disable=import-outside-toplevel
    return VAE(_part(self.encoder)(hparams, image_shape, name='encoder'),
               _part(self.decoder)(hparams, image_shape, name='decoder'), hparams,
               top_down=_part(self.top_down)(hparams, image_shape, name='top_down'),
               name='vae')


def _config(name, description, encoder, decoder, dataset,
            top_down_class='top_down.DenseLadder', **hparams):
  return Config(name=name, description=description, encoder=encoder, decoder=decoder,
                overrides=hparams, dataset=dataset, top_down=top_down_class)


_PAPER_MNIST = dict(z_size=20, hidden_sizes=[500], activation='tanh', batch_size=100)
# Gated 300-300 MLPs, z 40, Adam 1e-3 decaying to 1e-4, weight averaging, early stopping.
_GATED = dict(z_size=40, hidden_sizes=[300, 300], activation='glu', batch_size=100,
              learning_rate=1e-3, decay_rate=0.99999, min_learning_rate=1e-4,
              early_stopping_patience=30, ema_decay=0.999)

# Colour (or any 8-bit) images: stride-2 convolutions 32-64-128, a dense layer of 512, z 64,
# five discretised logistics per sub-pixel. Without XLA: on CPUs TensorFlow's own kernels run
# the mixture's transcendentals 2.4x faster (conv_vae on 28x28x3 at batch 64: 0.23 s a step
# against 0.55 s compiled).
_COLOUR_CONV = dict(z_size=64, hidden_sizes=[512], activation='relu', conv_filters=[32, 64, 128],
                    likelihood='logistic_mixture', num_mixtures=5, batch_size=64,
                    jit_compile=False)

# Two groups of 40 latents (Tomczak & Welling's HVAE sizes) over the gated 300-300 MLPs, trained
# on the IWAE bound with doubly reparameterised gradients; updates with a gradient norm above
# 1000 are skipped.
_HIERARCHY = dict(_GATED, num_groups=2, objective='iwae_dreg', num_samples=10,
                  early_stopping_patience=50, grad_skip_threshold=1000.0)

# Colour images, a hierarchy of latent maps: 32-64-64-wide levels (for 32x32: 16x16, 8x8 and
# 4x4), latent maps of 8 channels: 1 group at the coarsest level, 2 at the next, 1 at 16x16.
_COLOUR_HIERARCHY = dict(conv_filters=[32, 64, 64], groups_per_level=[1, 2, 1],
                         latent_channels=8, res_blocks=1, activation='swish',
                         likelihood='logistic_mixture', num_mixtures=5, batch_size=32,
                         jit_compile=False, grad_skip_threshold=2000.0, learning_rate=1e-3,
                         decay_rate=0.99998, min_learning_rate=1e-4)

# The colour models' output made strong enough for photographs: ten discretised logistics per
# pixel coupling its channels (PixelCNN++) under a local autoregressive head (three masked
# convolutions of 64 features, the first 5x5; PixelVAE's decoder). Measured on photo crops:
# gradient norms of a batch's loss (nats per image) run at 1-2 x 10^5, and clipping them at any
# fixed norm slowed learning (5.8 against 5.0 bits/dim after 400 steps of the head alone), so
# there is none; updates above 10^6 (or not finite) are skipped, which a run without that guard
# needed after 2,000 steps. Adam at 2e-3 learned faster than at 1e-3, and batches of 16 faster
# than of 32 for the same examples and time.
_COLOUR_PIXELCNN = dict(channel_coupling=True, num_mixtures=10, autoregressive_layers=3,
                        autoregressive_units=64, autoregressive_window=5, grad_clip=0.0,
                        grad_skip_threshold=1e6, learning_rate=2e-3, batch_size=16)

# Photographs at about 10 steps a second: at a nearly constant 2e-3 (decay_rate 0.99998) or
# one decaying 10x in 23,000 steps (0.9999) runs diverged after 5,000-8,000 steps, the KL of the
# 8x8 and 16x16 groups exploding under ordinary gradient norms until every update was
# non-finite. Halving the rate every 2,800 steps (0.99975, down to 1e-4 by step 12,000) ran 30
# minutes (19,000 steps) with one update skipped; the weights are averaged (EMA 0.999) and the
# best validated checkpoint is kept (an epoch of 20,000 crops is 1,250 steps).
_PHOTO_SCHEDULE = dict(decay_rate=0.99975, ema_decay=0.999, early_stopping_patience=10)

CONFIG_MAP = {c.name: c for c in [
    _config('mnist_fc',
            "The paper's MNIST model: 784-500-20 tanh MLPs, Bernoulli decoder, "
            'dynamically binarised MNIST.',
            'encoders.MLPEncoder', 'decoders.MLPDecoder', 'mnist', binarize=True, **_PAPER_MNIST),
    _config('mnist_fc_z2',
            'mnist_fc with a 2-D latent space, for pictures of the learned manifold.',
            'encoders.MLPEncoder', 'decoders.MLPDecoder', 'mnist', binarize=True,
            **dict(_PAPER_MNIST, z_size=2)),
    _config('binarized_mnist_fc',
            "The paper's MNIST model on statically binarised MNIST (Larochelle & Murray), "
            'the standard log-likelihood benchmark.',
            'encoders.MLPEncoder', 'decoders.MLPDecoder', 'binarized_mnist', **_PAPER_MNIST),
    _config('binarized_mnist_gated',
            'A strong single-stochastic-layer VAE with a standard-normal prior: gated 300-300 '
            'MLPs, 40-D latent, trained on the IWAE bound (K=20) with doubly reparameterised '
            'gradients, weight averaging and early stopping on the validation ELBO.',
            'encoders.MLPEncoder', 'decoders.MLPDecoder', 'binarized_mnist', objective='iwae_dreg',
            num_samples=20, **dict(_GATED, early_stopping_patience=50)),
    _config('binarized_mnist_made',
            'The gated encoder of binarized_mnist_gated and an autoregressive MADE decoder, '
            'p(x|z) = prod_d p(x_d | x_<d, z), on the ELBO with early stopping.',
            'encoders.MLPEncoder', 'autoregressive.MADEDecoder', 'binarized_mnist',
            autoregressive_units=500, **_GATED),
    _config('binarized_mnist_pixelcnn',
            'The gated encoder of binarized_mnist_gated and a shallow PixelCNN decoder: '
            'causal 7x7 window features weighed by z, on the ELBO with early stopping.',
            'encoders.MLPEncoder', 'autoregressive.PixelCNNDecoder', 'binarized_mnist',
            autoregressive_units=16, autoregressive_window=7, **_GATED),
    _config('binarized_mnist_vampprior',
            'binarized_mnist_gated with a VampPrior: p(z) the mixture of the encoder\'s '
            'posteriors at 500 learned pseudo-inputs (one latent group of 40).',
            'encoders.MLPEncoder', 'decoders.MLPDecoder', 'binarized_mnist', objective='iwae_dreg',
            num_samples=20, prior='vampprior', prior_components=500,
            **dict(_GATED, early_stopping_patience=50)),
    # Decoupled weight decay 0.05 holds off overfitting: validation ELBO peaked at epoch 79
    # (-91.27) where the same config without it peaked at epoch 49 (-91.57); 0.5 underfit (5
    # nats behind at epoch 16).
    _config('binarized_mnist_hvae',
            'A two-group hierarchical VAE (z2 over z1, 40 each, inferred top-down) with a '
            'standard-normal top prior, gated 300-300 MLPs, IWAE bound (K=10) with DReG, '
            'weight decay 0.05.',
            'encoders.MLPEncoder', 'decoders.MLPDecoder', 'binarized_mnist',
            **dict(_HIERARCHY, weight_decay=0.05)),
    _config('binarized_mnist_hvae_pixelcnn',
            'Two latent groups (z2 over z1, 40 each) with a '
            'VampPrior on the top one and a shallow PixelCNN decoder (7x7 causal window, 32 '
            'features), on the ELBO.',
            'encoders.MLPEncoder', 'autoregressive.PixelCNNDecoder', 'binarized_mnist',
            prior='vampprior', prior_components=500, autoregressive_units=32,
            autoregressive_window=7,
            **dict(_HIERARCHY, objective='elbo', num_samples=1)),
    _config('binarized_mnist_hvae_deep_pixelcnn',
            'The best binarised-MNIST model: binarized_mnist_hvae_pixelcnn with a deeper '
            'PixelCNN, the 7x7 causal window then '
            'three residual 3x3 masked convolutions (32 features), z-free so shared by the '
            'latent samples; compiled without XLA (faster for its convolutions on CPU), '
            'updates skipped only when not finite.',
            'encoders.MLPEncoder', 'autoregressive.PixelCNNDecoder', 'binarized_mnist',
            prior='vampprior', prior_components=500, autoregressive_units=32,
            autoregressive_window=7, autoregressive_layers=4, jit_compile=False,
            **dict(_HIERARCHY, objective='elbo', num_samples=1, grad_skip_threshold=0.0)),
    _config('mnist_conv',
            'Convolutional encoder/decoder (32, 64 filters), Bernoulli decoder, '
            'dynamically binarised MNIST.',
            'encoders.ConvEncoder', 'decoders.ConvDecoder', 'mnist', binarize=True,
            z_size=20, hidden_sizes=[256], activation='relu', conv_filters=[32, 64]),
    _config('fashion_mnist_conv',
            'Convolutional encoder/decoder on Fashion-MNIST, Bernoulli likelihood on '
            'greyscale intensities.',
            'encoders.ConvEncoder', 'decoders.ConvDecoder', 'fashion_mnist',
            z_size=32, hidden_sizes=[256], activation='relu', conv_filters=[32, 64]),
    _config('conv_vae',
            'A convolutional VAE for your own images at any size and channel count: pass '
            '--dataset=folder:PATH (or npz:, npy:, tfds:NAME) and --hparams=image_size=N; '
            'a discretised logistic mixture likelihood on the 8-bit values.',
            'encoders.ConvEncoder', 'decoders.ConvDecoder', '', **_COLOUR_CONV),
    _config('cifar10_conv',
            'conv_vae on CIFAR-10 (32x32 RGB, through TFDS), with a discretised logistic '
            'mixture likelihood: bits/dim comparable with published figures.',
            'encoders.ConvEncoder', 'decoders.ConvDecoder', 'tfds:cifar10', **_COLOUR_CONV),
    _config('celeb_a_64_conv',
            'conv_vae on CelebA faces (through TFDS) resized and centre-cropped to 64x64 RGB.',
            'encoders.ConvEncoder', 'decoders.ConvDecoder', 'tfds:celeb_a',
            **dict(_COLOUR_CONV, image_size=64, conv_filters=[32, 64, 128, 256], z_size=128)),
    _config('conv_hvae',
            'A hierarchical VAE for your own colour (or grey) images at any size: latent maps '
            'at several resolutions inferred top-down over residual blocks (VDVAE-like), a '
            'discretised logistic mixture likelihood; pass --dataset=folder:PATH (or npz:, '
            'npy:, tfds:).',
            'conv_hierarchy.ResNetEncoder', 'conv_hierarchy.StateDecoder', '',
            top_down_class='conv_hierarchy.ConvTopDown', **_COLOUR_HIERARCHY),
    _config('cifar10_hvae', 'conv_hvae on CIFAR-10 (32x32 RGB, through TFDS).',
            'conv_hierarchy.ResNetEncoder', 'conv_hierarchy.StateDecoder', 'tfds:cifar10',
            top_down_class='conv_hierarchy.ConvTopDown', **_COLOUR_HIERARCHY),
    _config('celeb_a_64_hvae',
            'conv_hvae on CelebA faces (through TFDS) resized and centre-cropped to 64x64 RGB, '
            'with one more resolution (32x32 .. 4x4).',
            'conv_hierarchy.ResNetEncoder', 'conv_hierarchy.StateDecoder', 'tfds:celeb_a',
            top_down_class='conv_hierarchy.ConvTopDown',
            **dict(_COLOUR_HIERARCHY, image_size=64, conv_filters=[32, 64, 64, 64],
                   groups_per_level=[1, 2, 2, 1])),
    _config('conv_hvae_pixelcnn',
            'conv_hvae with a decoder for photographs: a mixture of discretised logistics '
            "coupling each pixel's channels (PixelCNN++) under a local autoregressive head of "
            'masked convolutions over the pixels (PixelVAE); pass --dataset=folder:PATH (or '
            'npz:, npy:, tfds:).',
            'conv_hierarchy.ResNetEncoder', 'conv_hierarchy.StateDecoder', '',
            top_down_class='conv_hierarchy.ConvTopDown',
            **dict(_COLOUR_HIERARCHY, **_COLOUR_PIXELCNN, **_PHOTO_SCHEDULE)),
    _config('conv_vae_pixelcnn',
            'conv_vae (one latent layer of 64) with the decoder of conv_hvae_pixelcnn: coupled '
            'channels under a local autoregressive head.',
            'encoders.ConvEncoder', 'decoders.ConvDecoder', '',
            **dict(_COLOUR_CONV, **_COLOUR_PIXELCNN)),
    _config('frey_face_fc',
            "The paper's Frey Face model: 200 tanh hidden units, Gaussian decoder with a "
            'sigmoid mean, 10-D latent.',
            'encoders.MLPEncoder', 'decoders.MLPDecoder', 'frey_face', z_size=10,
            hidden_sizes=[200], activation='tanh', likelihood='gaussian', batch_size=100),
    _config('frey_face_fc_z2',
            'frey_face_fc with a 2-D latent space, for pictures of the learned manifold.',
            'encoders.MLPEncoder', 'decoders.MLPDecoder', 'frey_face', z_size=2,
            hidden_sizes=[200], activation='tanh', likelihood='gaussian', batch_size=100),
]}


def get_config(name):
  """The config called `name`, or ConfigError listing the valid names."""
  try:
    return CONFIG_MAP[name]
  except KeyError:
    raise ConfigError(f'unknown config {name!r}{did_you_mean(name, CONFIG_MAP)}; valid '
                      f'configs: {", ".join(sorted(CONFIG_MAP))}') from None
