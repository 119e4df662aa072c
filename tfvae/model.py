"""The VAE and its objective: the one place where the loss is defined.

For a batch x [B, H, W, C] with encoder q(z|x), decoder p(x|z) and prior p(z) = N(0, I):

    z         = mu + sigma * eps,  eps ~ N(0, I)            (reparameterisation, [B, z])
    r_loss    = -log p(x|z)                                  (nats, [B])
    kl_div    = KL(q(z|x) || p(z))   via tfd.kl_divergence   (nats, [B])
    elbo      = -(r_loss + kl_div)                           (the true lower bound, [B])
    free_nats = free_bits * ln 2
    kl_cost   = max(kl_div - free_nats, 0)                   ([B])
    beta      = (1 - beta_rate**step) * max_beta
    loss      = mean(r_loss) + beta * mean(kl_cost)          (what training minimises)

Under free bits or beta != 1 the loss is not -ELBO, so the ELBO is reported on its own.
"""

import math
from typing import NamedTuple

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.hparams import HParams

tfd = tfp.distributions


def default_hparams():
  """Every hparam tfvae knows, with its default; configs and --hparams override these."""
  return HParams(
      # Model.
      z_size=20,                    # latent dimensions
      hidden_sizes=[500],           # MLP hidden layers (decoder uses them reversed)
      activation='tanh',            # hidden activation: tanh (the paper), relu, elu, ...
      conv_filters=[32, 64],        # conv encoder/decoder: one stride-2 layer per entry
      likelihood='bernoulli',       # p(x|z): bernoulli or gaussian
      min_posterior_scale=1e-4,     # floor on q(z|x)'s sigma
      min_decoder_scale=1e-2,       # floor on the Gaussian decoder's sigma
      # Objective.
      free_bits=0.0,                # KL below free_bits * ln 2 nats is not penalised
      max_beta=1.0,                 # final KL weight
      beta_rate=0.0,                # beta = (1 - beta_rate**step) * max_beta
      # Data.
      batch_size=100,               # global batch size
      binarize=False,               # dynamic binarisation of greyscale images
      # Optimisation.
      optimizer='adam',             # adam or adagrad (the paper used adagrad)
      learning_rate=1e-3,           # lr = (learning_rate - min_learning_rate) *
      decay_rate=0.9999,            #      decay_rate**step + min_learning_rate
      min_learning_rate=1e-5,
      grad_clip=1e3,                # global-norm gradient clipping (0 turns it off)
      jit_compile=True,             # XLA-compile the training step
      mixed_precision='none',       # none, bfloat16 or float16 (with loss scaling)
      early_stopping_patience=0,    # epochs without a better valid ELBO before stopping (0: off)
  )


class Losses(NamedTuple):
  """The objective's terms; per-example tensors are [B], nats."""
  loss: tf.Tensor        # scalar: mean(r_loss) + beta * mean(kl_cost)
  r_loss: tf.Tensor      # -log p(x|z)
  kl_div: tf.Tensor      # KL(q(z|x) || p(z))
  kl_cost: tf.Tensor     # max(kl_div - free_nats, 0)
  elbo: tf.Tensor        # -(r_loss + kl_div)
  beta: tf.Tensor        # scalar KL weight at this step


def beta_schedule(step, beta_rate, max_beta):
  """beta = (1 - beta_rate**step) * max_beta: rises from 0 towards max_beta."""
  step = tf.cast(step, tf.float32)
  return (1.0 - tf.pow(tf.cast(beta_rate, tf.float32), step)) * max_beta


class VAE(keras.layers.Layer):
  """An encoder, a decoder and a standard-normal prior, with the AEVB objective."""

  def __init__(self, encoder, decoder, hparams, **kwargs):
    super().__init__(**kwargs)
    self.encoder = encoder
    self.decoder = decoder
    self.hparams = hparams
    self.z_size = hparams.z_size
    self.image_shape = encoder.image_shape

  @property
  def prior(self):
    """p(z) = N(0, I) over [z_size]."""
    zeros = tf.zeros([self.z_size])
    return tfd.MultivariateNormalDiag(loc=zeros, scale_diag=tf.ones_like(zeros))

  def build_variables(self):
    """Creates every weight by running the model once on zeros."""
    self.compute_losses(tf.zeros((1,) + self.image_shape), step=0,
                        eps=tf.zeros([1, self.z_size]))

  def encode(self, x):
    """q(z|x) for images x [B, H, W, C]."""
    return self.encoder(x)

  def decode(self, z):
    """p(x|z) for latents z [B, z_size]."""
    return self.decoder(z)

  @staticmethod
  def reparameterize(q, eps):
    """z = mu + sigma * eps [B, z], differentiable in q's parameters."""
    return q.mean() + q.stddev() * eps

  def sample(self, n, seed=None):
    """n images from p(x|z) at z ~ p(z): the decoded means [n, H, W, C]."""
    z = self.prior.sample(n, seed=seed)
    return self.decode(z).mean()

  def compute_losses(self, x, step, eps=None):
    """The objective's terms for images x [B, H, W, C] at training step `step`.

    eps [B, z_size] is the standard-normal noise for z = mu + sigma * eps; None draws
    fresh noise (passing it makes a step reproducible across devices and replicas).
    """
    hp = self.hparams
    q = self.encode(x)
    if eps is None:
      eps = tf.random.normal(tf.shape(q.mean()))
    z = self.reparameterize(q, eps)
    r_loss = -self.decode(z).log_prob(x)
    kl_div = tfd.kl_divergence(q, self.prior)
    free_nats = hp.free_bits * math.log(2.0)
    kl_cost = tf.maximum(kl_div - free_nats, 0.0)
    beta = beta_schedule(step, hp.beta_rate, hp.max_beta)
    loss = tf.reduce_mean(r_loss) + beta * tf.reduce_mean(kl_cost)
    return Losses(loss=loss, r_loss=r_loss, kl_div=kl_div, kl_cost=kl_cost,
                  elbo=-(r_loss + kl_div), beta=beta)
