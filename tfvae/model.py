"""The VAE and its objective: the one place where the loss is defined.

For a batch x [B, H, W, C] with encoder q(z|x), decoder p(x|z) and prior p(z) = N(0, I),
drawing L = num_samples posterior samples per example:

    z_l       = mu + sigma * eps_l,  eps_l ~ N(0, I)         (reparameterisation, [L, B, z])
    log w_l   = log p(x|z_l) + log p(z_l) - log q(z_l|x)     (importance log-weights, [L, B])
    r_loss    = -(1/L) sum_l log p(x|z_l)                    (nats, [B])
    kl_div    = KL(q(z|x) || p(z))   via tfd.kl_divergence   (analytic, nats, [B])
    elbo      = -(r_loss + kl_div)                           (the SGVB estimate of the bound, [B])

objective=elbo (the paper's SGVB estimator, L = 1 by default):

    free_nats = free_bits * ln 2
    kl_cost   = max(kl_div - free_nats, 0)                   ([B])
    beta      = (1 - beta_rate**step) * max_beta
    loss      = mean(r_loss) + beta * mean(kl_cost)          (what training minimises)

objective=iwae (Burda et al. 2015, K = L samples; no free bits, beta = 1):

    iwae      = log (1/K) sum_k w_k  =  logsumexp_k(log w_k) - log K     ([B], <= log p(x))
    loss      = -mean(iwae)

objective=iwae_dreg: the same loss, differentiated with the doubly reparameterised estimator
(Tucker et al. 2018): with normalised weights v_k = w_k / sum_j w_j, the decoder's gradient is
sum_k v_k grad log w_k as for iwae, the encoder's sum_k v_k^2 (d log w_k / d z_k)(d z_k / d phi)
with q's parameters held fixed inside log q: no score-function term, so its variance does not
grow with K.

IWAE with K = 1 is the ELBO with a one-sample estimate of the KL instead of the analytic one.
Under free bits or beta != 1 the loss is not -ELBO, so the ELBO is reported on its own.
"""

import math
from typing import NamedTuple

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import layers
from tfvae import noise
from tfvae import optimization
from tfvae.likelihoods import LIKELIHOODS
from tfvae.hparams import Bool
from tfvae.hparams import Choice
from tfvae.hparams import Float
from tfvae.hparams import HParams
from tfvae.hparams import HParamsError
from tfvae.hparams import Int
from tfvae.hparams import IntList
from tfvae.hparams import Str

tfd = tfp.distributions

OBJECTIVES = ('elbo', 'iwae', 'iwae_dreg')


def default_hparams():
  """Every hparam tfvae knows, with its default and its range; configs and --hparams override
  these, and check_hparams ties them together."""
  return HParams(
      # Model.
      # latent dimensions
      z_size=Int(20, min=1),
      # MLP hidden layers (decoder uses them reversed)
      hidden_sizes=IntList([500], min=1),
      # hidden activation: tanh (the paper), relu, elu, ...
      activation=Str('tanh', check=layers.activation,
                     description='a Keras activation name (tanh, relu, elu, ...) or glu'),
      # conv encoder/decoder: one stride-2 layer per entry
      conv_filters=IntList([32, 64], min=1, max_length=8),
      # autoregressive decoders: MADE units / PixelCNN features
      autoregressive_units=Int(500, min=1),
      # PixelCNN decoder: side of its causal window (odd)
      autoregressive_window=Int(7, min=3, odd=True),
      # p(x|z): bernoulli, gaussian or logistic_mixture (discretised, for 8-bit images)
      likelihood=Choice('bernoulli', list(LIKELIHOODS)),
      # logistic_mixture: logistics per sub-pixel (1: a plain discretised logistic)
      num_mixtures=Int(5, min=1, max=100),
      # floor on q(z|x)'s sigma
      min_posterior_scale=Float(1e-4, min=0, min_inclusive=False),
      # floor on the Gaussian decoder's sigma
      min_decoder_scale=Float(1e-2, min=0, min_inclusive=False),

      # Objective.
      # elbo (the paper's SGVB) or iwae (importance-weighted)
      objective=Choice('elbo', OBJECTIVES),
      # posterior samples per example: SGVB's L, or IWAE's K
      num_samples=Int(1, min=1, max=100000),
      # KL below free_bits * ln 2 nats is not penalised
      free_bits=Float(0.0, min=0),
      # final KL weight
      max_beta=Float(1.0, min=0),
      # beta = (1 - beta_rate**step) * max_beta
      beta_rate=Float(0.0, min=0, max=1, max_inclusive=False),

      # Data.
      # global batch size
      batch_size=Int(100, min=1, max=10**7),
      # dynamic binarisation of greyscale images
      binarize=Bool(False),
      # images resized (shorter side) and centre-cropped to image_size^2 (0: native size)
      image_size=Int(0, min=0, max=4096),
      # images converted to 1 (greyscale) or 3 (RGB) channels (0: native)
      channels=Choice(0, [0, 1, 3]),

      # Optimisation.
      # adam or adagrad (the paper used adagrad)
      optimizer=Choice('adam', list(optimization.OPTIMIZERS)),
      # lr = (learning_rate - min_learning_rate) *
      #      decay_rate**step + min_learning_rate
      learning_rate=Float(1e-3, min=0),
      decay_rate=Float(0.9999, min=0, max=1, min_inclusive=False),
      min_learning_rate=Float(1e-5, min=0),
      # global-norm gradient clipping (0 turns it off)
      grad_clip=Float(1e3, min=0),
      # Polyak averaging of the weights used to evaluate (0: off)
      ema_decay=Float(0.0, min=0, max=1, max_inclusive=False),
      # XLA-compile the training step
      jit_compile=Bool(True),
      # none, bfloat16 or float16 (with loss scaling)
      mixed_precision=Choice('none', list(optimization.MIXED_PRECISION)),
      # epochs without a better valid ELBO before stopping (0: off)
      early_stopping_patience=Int(0, min=0),
      checks=[check_hparams],
  )


def check_hparams(hparams):
  """The rules between hparams that their ranges cannot state (HParams runs it after every
  override, parse and from_json): check_objective, and min_learning_rate <= learning_rate."""
  check_objective(hparams)
  if hparams.min_learning_rate > hparams.learning_rate:
    raise HParamsError(
        f"hparam 'min_learning_rate' must be at most learning_rate "
        f'({hparams.learning_rate!r}), got {hparams.min_learning_rate!r}')


def check_objective(hparams):
  """Raises a one-line HParamsError if the objective hparams do not fit together: the
  importance-weighted objectives train their bound itself, without free bits or beta."""
  hp = hparams
  if hp.objective != 'elbo' and (hp.free_bits > 0 or hp.max_beta != 1 or hp.beta_rate != 0):
    raise HParamsError(
        f'objective={hp.objective} trains the importance-weighted bound itself: free bits and '
        f'beta apply to objective=elbo only; got free_bits={hp.free_bits}, max_beta='
        f'{hp.max_beta}, beta_rate={hp.beta_rate}; set free_bits=0,max_beta=1,beta_rate=0 or '
        'use objective=elbo')


class Losses(NamedTuple):
  """The objective's terms; per-example tensors are [B], nats."""
  loss: tf.Tensor        # scalar: mean(r_loss) + beta * mean(kl_cost), or -mean(iwae)
  r_loss: tf.Tensor      # -log p(x|z), averaged over the num_samples samples
  kl_div: tf.Tensor      # KL(q(z|x) || p(z))
  kl_cost: tf.Tensor     # max(kl_div - free_nats, 0)  (kl_div under objective=iwae)
  elbo: tf.Tensor        # -(r_loss + kl_div)
  beta: tf.Tensor        # scalar KL weight at this step (1 under objective=iwae)


class SampleTerms(NamedTuple):
  """Per-sample terms for posterior samples z [K, B, z_size]; each [K, B], nats."""
  log_likelihood: tf.Tensor   # log p(x|z_k)
  log_prior: tf.Tensor        # log p(z_k)
  log_posterior: tf.Tensor    # log q(z_k|x)

  @property
  def log_weights(self):
    """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), [K, B]."""
    return self.log_likelihood + self.log_prior - self.log_posterior


def beta_schedule(step, beta_rate, max_beta):
  """beta = (1 - beta_rate**step) * max_beta: rises from 0 towards max_beta."""
  step = tf.cast(step, tf.float32)
  return (1.0 - tf.pow(tf.cast(beta_rate, tf.float32), step)) * max_beta


def _std_normal_log_prob(x):
  """log N(x; 0, I) summed over the last axis."""
  return -0.5 * tf.reduce_sum(tf.square(x), -1) - 0.5 * x.shape[-1] * math.log(2 * math.pi)


class VAE(keras.layers.Layer):
  """An encoder, a decoder and a standard-normal prior, with the AEVB objective."""

  def __init__(self, encoder, decoder, hparams, **kwargs):
    super().__init__(**kwargs)
    check_objective(hparams)
    self.encoder = encoder
    self.decoder = decoder
    self.hparams = hparams
    self.z_size = hparams.z_size
    self.num_samples = hparams.num_samples
    self.image_shape = encoder.image_shape

  @property
  def prior(self):
    """p(z) = N(0, I) over [z_size]."""
    zeros = tf.zeros([self.z_size])
    return tfd.MultivariateNormalDiag(loc=zeros, scale_diag=tf.ones_like(zeros))

  def noise_shape(self, batch_size):
    """The shape of compute_losses' eps for a batch: [num_samples, batch_size, z_size]."""
    return [self.num_samples, batch_size, self.z_size]

  def build_variables(self):
    """Creates every weight by running the model once on zeros (the decoder first through
    its own call, so that its weights are named under it)."""
    self.decode(tf.zeros([1, self.z_size]))
    self.compute_losses(tf.zeros((1,) + self.image_shape), step=0,
                        eps=tf.zeros(self.noise_shape(1)))

  def encode(self, x):
    """q(z|x) for images x [B, H, W, C]."""
    return self.encoder(x)

  def decode(self, z):
    """p(x|z) for latents z [B, z_size]."""
    return self.decoder(z)

  @staticmethod
  def reparameterize(q, eps):
    """z = mu + sigma * eps [..., B, z], differentiable in q's parameters."""
    return q.mean() + q.stddev() * eps

  def decode_images(self, z):
    """The images [B, H, W, C] pictures show for z [B, z_size]: the likelihood's mean, or an
    autoregressive decoder's mean-field pass (see decoders.BaseDecoder.images)."""
    return self.decoder.images(z)

  def prior_sample(self, n, seed):
    """n latents z ~ p(z) = N(0, I), [n, z_size], drawn from an integer seed: row i depends
    only on (seed, i)."""
    return noise.normal(noise.key(seed, 'prior'), n, 1, self.z_size)[0]

  def sample(self, n, seed=0):
    """decode_images of n latents z ~ p(z), [n, H, W, C]."""
    return self.decode_images(self.prior_sample(n, seed))

  def sample_terms(self, x, q, eps):
    """SampleTerms for images x [B, H, W, C], their posterior q = encode(x) and standard-
    normal noise eps [K, B, z_size]: z_k = mu + sigma * eps_k, log p(x|z_k) from
    decoder.log_prob (x broadcast over the K samples).

    log q(z_k|x) is computed from eps (log N(eps; 0, I) - sum log sigma), which equals
    q.log_prob(z_k) without the cancellation in (z - mu) / sigma.
    """
    log_posterior = (_std_normal_log_prob(eps)
                     - tf.reduce_sum(tf.math.log(q.stddev()), -1))
    return self._terms(x, self.reparameterize(q, eps), log_posterior)

  def _terms(self, x, z, log_posterior):
    """SampleTerms for images x [B, H, W, C], latents z [K, B, z_size] and their
    log q(z_k|x) [K, B]."""
    return SampleTerms(log_likelihood=self.decoder.log_prob(tf.convert_to_tensor(x), z),
                       log_prior=_std_normal_log_prob(z),
                       log_posterior=log_posterior)

  def log_weights(self, x, num_samples, seed):
    """Importance log-weights [K, B] for images x [B, H, W, C]: log p(x|z_k) + log p(z_k)
    - log q(z_k|x) at K = num_samples reparameterised z_k ~ q(z|x), with the evaluation noise
    of an integer seed (row b of x as example b). logmeanexp over K is the IWAE bound,
    <= log p(x)."""
    q = self.encode(x)
    eps = noise.normal(noise.key(seed, 'eval_posterior'), tf.shape(x)[0], num_samples,
                       self.z_size)
    return self.sample_terms(x, q, eps).log_weights

  def _noise(self, eps, batch_size):
    """eps as [num_samples, B, z_size]; [B, z_size] is accepted when num_samples is 1."""
    if eps is None:
      return tf.random.normal(self.noise_shape(batch_size))
    eps = tf.convert_to_tensor(eps)
    if eps.shape.rank == 2:
      eps = eps[tf.newaxis]
    if eps.shape.rank != 3 or eps.shape[0] != self.num_samples:
      raise ValueError(f'eps has shape {eps.shape}; with num_samples={self.num_samples} it '
                       f'must be [num_samples, batch, z_size] = {self.noise_shape(None)}')
    return eps

  def _doubly_reparameterised_terms(self, x, q, eps):
    """(SampleTerms, reweight) for objective=iwae_dreg: the values of sample_terms, but log
    q(z_k|x) is taken with q's parameters held fixed, so that the encoder is reached only
    through z_k = mu + sigma * eps_k, and the gradient along that path is multiplied by the
    [K, B] tensor later passed to reweight (the normalised weights, known only after the
    decoder has run; read when the gradient is taken)."""
    scale = {}

    @tf.custom_gradient
    def reweighted(z):
      return tf.identity(z), lambda dz: dz * scale['v'][..., tf.newaxis]

    z = reweighted(self.reparameterize(q, eps))
    mean, stddev = tf.stop_gradient(q.mean()), tf.stop_gradient(q.stddev())
    log_posterior = (_std_normal_log_prob((z - mean) / stddev)
                     - tf.reduce_sum(tf.math.log(stddev), -1))
    return self._terms(x, z, log_posterior), lambda v: scale.update(v=v)

  def compute_losses(self, x, step, eps=None):
    """The objective's terms for images x [B, H, W, C] at training step `step`.

    eps [num_samples, B, z_size] (or [B, z_size] when num_samples is 1) is the standard-
    normal noise for z = mu + sigma * eps; None draws fresh noise (passing it makes a step
    reproducible across devices and replicas).
    """
    hp = self.hparams
    q = self.encode(x)
    eps = self._noise(eps, tf.shape(x)[0])
    if hp.objective == 'iwae_dreg':
      terms, reweight = self._doubly_reparameterised_terms(x, q, eps)
    else:
      terms = self.sample_terms(x, q, eps)
    r_loss = -tf.reduce_mean(terms.log_likelihood, 0)
    kl_div = tfd.kl_divergence(q, self.prior)
    elbo = -(r_loss + kl_div)
    if hp.objective != 'elbo':
      iwae = (tf.reduce_logsumexp(terms.log_weights, 0)
              - math.log(float(self.num_samples)))
      loss = -tf.reduce_mean(iwae)
      if hp.objective == 'iwae_dreg':
        # The value stays -mean(iwae); the gradient is that of -mean(sum_k v_k log w_k),
        # with the encoder's path through z_k scaled by v_k once more.
        v = tf.stop_gradient(tf.nn.softmax(terms.log_weights, axis=0))
        reweight(v)
        surrogate = -tf.reduce_mean(tf.reduce_sum(v * terms.log_weights, 0))
        loss = tf.stop_gradient(loss) + surrogate - tf.stop_gradient(surrogate)
      return Losses(loss=loss, r_loss=r_loss, kl_div=kl_div, kl_cost=kl_div, elbo=elbo,
                    beta=tf.constant(1.0))
    free_nats = hp.free_bits * math.log(2.0)
    kl_cost = tf.maximum(kl_div - free_nats, 0.0)
    beta = beta_schedule(step, hp.beta_rate, hp.max_beta)
    loss = tf.reduce_mean(r_loss) + beta * tf.reduce_mean(kl_cost)
    return Losses(loss=loss, r_loss=r_loss, kl_div=kl_div, kl_cost=kl_cost,
                  elbo=elbo, beta=beta)
