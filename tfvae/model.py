"""The VAE and its objective: the one place where the loss is defined.

The latents come in L >= 1 groups z = (z_0, ..., z_L-1), z_0 the top one (tfvae.top_down): the
encoder's bottom-up pass gives features h_l of x and the top posterior q(z_0|x); a top-down pass
gives each lower group a prior p(z_l | z_>l) and a posterior q(z_l | x, z_>l), all
MultivariateNormalDiag; p(z_0) is the prior of tfvae.priors (N(0, I) by default). With one group
this is the paper's VAE. For a batch x [B, H, W, C], drawing K = num_samples samples:

    z_lk      = mu_l + sigma_l * eps_lk,  eps ~ N(0, I)  (reparameterisation, top-down, [K, B, z])
    log w_k   = log p(x|z_k) + sum_l [log p(z_lk | z_>l,k) - log q(z_lk | x, z_>l,k)]      ([K, B])
    r_loss    = -(1/K) sum_k log p(x|z_k)                                            (nats, [B])
    kl_l      = KL(q_l || p_l) via tfd.kl_divergence at the sampled z_>l, averaged over k;
                for a learned top prior (no closed form) the estimate log q(z_0k|x) - log p(z_0k)
    kl_div    = sum_l kl_l
    elbo      = -(r_loss + kl_div)                           (the SGVB estimate of the bound, [B])

objective=elbo (the paper's SGVB estimator, K = 1 by default):

    free_nats = free_bits * ln 2
    kl_cost   = sum_l max(kl_l - free_nats, 0)               (free bits per group, [B])
    beta      = (1 - beta_rate**step) * max_beta             (max_beta throughout if beta_rate = 0)
    loss      = mean(r_loss) + beta * mean(kl_cost)          (what training minimises)

objective=iwae (Burda et al. 2015; no free bits, beta = 1):

    iwae      = log (1/K) sum_k w_k  =  logsumexp_k(log w_k) - log K     ([B], <= log p(x))
    loss      = -mean(iwae)

objective=iwae_dreg: the same loss, differentiated with the doubly reparameterised estimator
(Tucker et al. 2018): with normalised weights v_k = w_k / sum_j w_j, a weight's gradient is
sum_k v_k (d log w_k / d weight)|_z + sum_k v_k^2 (d log w_k / d z_k)(d z_k / d weight), with
every weight held fixed inside log q: no score-function term, so its variance does not grow
with K. (With lower groups, log q is recomputed at the sampled z with the weights frozen.)

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
from tfvae import priors as priors_lib
from tfvae import top_down as top_down_lib
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
      # PixelCNN decoder and head: side of its causal window (odd)
      autoregressive_window=Int(7, min=3, odd=True),
      # factorised decoders of 8-bit images: masked convolutions of a local autoregressive
      # head over the pixels (tfvae.pixel_head; 0: none, pixels independent given z);
      # PixelCNNDecoder: the masked layers of its z-free features (0 and 1: one)
      autoregressive_layers=Int(0, min=0, max=16),
      # p(x|z): bernoulli, gaussian or logistic_mixture (discretised, for 8-bit images)
      likelihood=Choice('bernoulli', list(LIKELIHOODS)),
      # logistic_mixture: logistics per sub-pixel (1: a plain discretised logistic)
      num_mixtures=Int(5, min=1, max=100),
      # logistic_mixture: one mixture per pixel, each channel's mean linear in the channels
      # before it (PixelCNN++); false: every sub-pixel on its own
      channel_coupling=Bool(False),
      # floor on q(z|x)'s sigma
      min_posterior_scale=Float(1e-4, min=0, min_inclusive=False),
      # floor on the Gaussian decoder's sigma
      min_decoder_scale=Float(1e-2, min=0, min_inclusive=False),
      # latent groups, inferred top-down (tfvae.top_down); 1: the paper's single group
      num_groups=Int(1, min=1, max=8),
      # p(z) of the top group: standard_normal, vampprior or mixture (tfvae.priors)
      prior=Choice('standard_normal', list(priors_lib.PRIORS)),
      # vampprior: pseudo-inputs; mixture: Gaussian components
      prior_components=Int(500, min=1, max=10000),
      # convolutional hierarchy (tfvae.conv_hierarchy): latent groups at each resolution,
      # coarsest first (conv_filters gives the resolutions and their widths)
      groups_per_level=IntList([1], min=0, max_length=8),
      # ... channels of each latent map
      latent_channels=Int(8, min=1, max=1024),
      # ... residual blocks per resolution, bottom-up and top-down
      res_blocks=Int(1, min=0, max=16),

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
      # skip updates whose gradient norm is above this (0: only non-finite ones are skipped)
      grad_skip_threshold=Float(0.0, min=0),
      # Polyak averaging of the weights used to evaluate (0: off)
      ema_decay=Float(0.0, min=0, max=1, max_inclusive=False),
      # decoupled weight decay: w <- w - lr * weight_decay * w at every update (0: off)
      weight_decay=Float(0.0, min=0),
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
  override and parse): check_objective, and min_learning_rate <= learning_rate."""
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
  kl_div: tf.Tensor      # KL(q(z|x) || p(z)), summed over the groups
  kl_cost: tf.Tensor     # sum over groups of max(kl_l - free_nats, 0)  (kl_div under iwae)
  elbo: tf.Tensor        # -(r_loss + kl_div)
  beta: tf.Tensor        # scalar KL weight at this step (1 under objective=iwae)
  group_kl: tf.Tensor    # [B, L]: kl_l of each group, top first


class SampleTerms(NamedTuple):
  """Per-sample terms for K posterior samples of a batch of B images."""
  log_likelihood: tf.Tensor   # log p(x|z_k)                              [K, B]
  log_prior: tf.Tensor        # sum_l log p(z_lk | z_>l,k)                [K, B]
  log_posterior: tf.Tensor    # sum_l log q(z_lk | x, z_>l,k)             [K, B]
  group_kl: tuple             # kl_l per group: [B] (closed form at the top) or [K, B]
  means: tf.Tensor            # posterior means of every group at z_>l,k  [K, B, z]

  @property
  def log_weights(self):
    """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), [K, B]."""
    return self.log_likelihood + self.log_prior - self.log_posterior


class Inference(NamedTuple):
  """The bottom-up pass over images x [B, H, W, C]."""
  posterior: object       # q(z_0|x), the top group's MultivariateNormalDiag, batch [B]
  features: list          # the encoder's features h_l for each group, top first, [B, ...]


class Path(NamedTuple):
  """One top-down pass: for each group (top first) its z [K, B, D_l], posterior q_l and prior
  p_l (MultivariateNormalDiag, or None where not computed; the top's prior is the model's),
  and the decoder's input [K, B, D]."""
  zs: list
  posteriors: list
  priors: list
  decoder_input: tf.Tensor


def beta_schedule(step, beta_rate, max_beta):
  """beta = (1 - beta_rate**step) * max_beta: rises from 0 towards max_beta; beta_rate = 0 is
  no warm-up, max_beta from step 0 on (0**0 taken as 0)."""
  if not beta_rate:
    return tf.constant(max_beta, tf.float32)
  step = tf.cast(step, tf.float32)
  return (1.0 - tf.pow(tf.cast(beta_rate, tf.float32), step)) * max_beta


def _log_posterior(eps, stddev):
  """log q(z) of z = mu + stddev * eps under N(mu, diag stddev^2): log N(eps; 0, I) -
  sum log stddev, [...] for eps [..., D] (no cancellation in (z - mu) / stddev)."""
  return priors_lib.std_normal_log_prob(eps) - tf.reduce_sum(tf.math.log(stddev), -1)


def _sample_mean(t):
  """t [B] as it is, or [K, B] averaged over its K samples."""
  return t if t.shape.rank == 1 else tf.reduce_mean(t, 0)


class VAE(keras.layers.Layer):
  """An encoder (bottom-up), latent groups inferred top-down, a prior on the top group and a
  decoder, with the AEVB objective."""

  def __init__(self, encoder, decoder, hparams, top_down=None, prior=None, **kwargs):
    super().__init__(**kwargs)
    check_objective(hparams)
    self.encoder = encoder
    self.decoder = decoder
    self.top_down = top_down or top_down_lib.DenseLadder(hparams, name='top_down')
    self.hparams = hparams
    self.image_shape = encoder.image_shape
    top_shape = getattr(encoder, 'top_shape', (hparams.z_size,))
    self.groups = (top_down_lib.LatentGroup(self.top_down.top_name, top_shape),
                   ) + tuple(self.top_down.groups)
    self.sizes = [group.size for group in self.groups]
    self.z_size = sum(self.sizes)
    self.num_samples = hparams.num_samples
    self.prior = prior or priors_lib.make_prior(hparams, self.sizes[0], encoder,
                                                self.image_shape)

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
    """q(z_0|x), the top group's posterior, for images x [B, H, W, C]."""
    return self.encoder(x)

  def infer(self, x):
    """The bottom-up pass (Inference) over images x [B, H, W, C]. An encoder without a
    bottom_up pass (any layer x -> q(z|x)) serves a single group."""
    if not hasattr(self.encoder, 'bottom_up'):
      return Inference(self.encoder(x), [None])
    features = self.encoder.bottom_up(x)
    return Inference(self.encoder.posterior(features[0]), features)

  @staticmethod
  def reparameterize(q, eps):
    """z = mu + sigma * eps [..., B, z], differentiable in q's parameters."""
    return q.mean() + q.stddev() * eps

  def split(self, z):
    """z [..., z_size] -> its groups [..., D_l], top first."""
    return tf.split(z, self.sizes, -1) if len(self.sizes) > 1 else [z]

  def descend(self, inference=None, eps=None, num_posterior=None, temperature=1.0, z=None,
              u=None, with_priors=True):
    """The top-down pass (Path) for K samples of B images or latents.

    Group l takes the given z (z [K, B, z_size]: every group given), else a posterior sample
    mu_q + sigma_q * eps_l when l < num_posterior (default: all groups; needs `inference`),
    else a prior sample at `temperature` (mu_p + temperature * sigma_p * eps_l; the top group
    through the prior, u [K, B] choosing a mixture's component). eps [K, B, z_size].
    with_priors=False leaves out the lower groups' priors where no prior sample needs them.
    """
    num_groups = len(self.groups)
    num_posterior = num_groups if num_posterior is None else num_posterior
    given = None if z is None else self.split(z)
    noise_parts = None if eps is None else self.split(eps)
    # A tensor num_posterior is chosen at run time: both samples are drawn, one is kept.
    chosen_at_run_time = tf.is_tensor(num_posterior)

    def draw(l, posterior, prior_sample):
      """(z_l, q_l): a posterior sample for l < num_posterior, else prior_sample()."""
      if given is not None:
        return given[l], None
      if not chosen_at_run_time and l >= num_posterior:
        return prior_sample(), None
      q = posterior()
      z_q = self.reparameterize(q, noise_parts[l])
      if not chosen_at_run_time:
        return z_q, q
      return tf.where(l < num_posterior, z_q, prior_sample()), q

    z_top, q_top = draw(0, lambda: inference.posterior,
                        lambda: self.prior.sample(noise_parts[0], u, temperature))
    zs, posteriors, priors = [z_top], [q_top], [None]
    state = self.top_down.start(z_top)
    for l in range(1, num_groups):
      may_sample_prior = given is None and (chosen_at_run_time or l >= num_posterior)
      p = self.top_down.prior(l, state) if with_priors or may_sample_prior else None
      z_l, q = draw(l, lambda: self.top_down.posterior(l, state, inference.features[l]),
                    lambda: p.mean() + temperature * p.stddev() * noise_parts[l])
      state = self.top_down.merge(l, state, z_l)
      zs.append(z_l)
      posteriors.append(q)
      priors.append(p)
    return Path(zs, posteriors, priors, self.top_down.output(state, zs))

  def _group_kl(self, path, eps_parts):
    """kl_l per group (SampleTerms.group_kl) of a posterior path."""
    q_top = path.posteriors[0]
    if self.prior.analytic:
      top = tfd.kl_divergence(q_top, self.prior.distribution())
    else:
      top = (_log_posterior(eps_parts[0], q_top.stddev())
             - self.prior.log_prob(path.zs[0]))
    return (top,) + tuple(tfd.kl_divergence(q, p)
                          for q, p in zip(path.posteriors[1:], path.priors[1:]))

  def sample_terms(self, x, inference, eps):
    """SampleTerms for images x [B, H, W, C], their Inference and standard-normal noise eps
    [K, B, z_size]: z_k drawn top-down, log p(x|z_k) from decoder.log_prob (x broadcast over
    the K samples). log q(z_k|x) is computed from eps, which equals q.log_prob(z_k) without
    the cancellation in (z - mu) / sigma."""
    path = self.descend(inference, eps)
    eps_parts = self.split(eps)
    log_posterior = tf.add_n([_log_posterior(e, q.stddev())
                              for e, q in zip(eps_parts, path.posteriors)])
    return self._terms(x, path, log_posterior, self._group_kl(path, eps_parts))

  def _terms(self, x, path, log_posterior, group_kl):
    """SampleTerms of a path, given its log q(z_k|x) [K, B] and KLs."""
    log_prior = tf.add_n([self.prior.log_prob(path.zs[0])] + [
        p.log_prob(z) for z, p in zip(path.zs[1:], path.priors[1:])])
    shape = tf.shape(path.zs[0])[:2]
    means = tf.concat([tf.broadcast_to(q.mean(), tf.concat([shape, [size]], 0))
                       for q, size in zip(path.posteriors, self.sizes)], -1)
    return SampleTerms(
        log_likelihood=self.decoder.log_prob(tf.convert_to_tensor(x), path.decoder_input),
        log_prior=log_prior, log_posterior=log_posterior, group_kl=group_kl, means=means)

  def log_weights(self, x, num_samples, seed):
    """Importance log-weights [K, B] for images x [B, H, W, C]: log p(x|z_k) + log p(z_k)
    - log q(z_k|x) at K = num_samples reparameterised z_k ~ q(z|x), with the evaluation noise
    of an integer seed (row b of x as example b). logmeanexp over K is the IWAE bound,
    <= log p(x)."""
    eps = noise.normal(noise.key(seed, 'eval_posterior'), tf.shape(x)[0], num_samples,
                       self.z_size)
    return self.sample_terms(x, self.infer(x), eps).log_weights

  def decode(self, z):
    """p(x|z) for latents z [B, z_size] (every group)."""
    return self.decoder(self.descend(z=z[tf.newaxis]).decoder_input[0])

  def decode_images(self, z):
    """The images [B, H, W, C] pictures show for z [B, z_size]: the likelihood's mean, or an
    autoregressive decoder's mean-field pass (see decoders.BaseDecoder.images)."""
    return self.decoder.images(self.descend(z=z[tf.newaxis]).decoder_input[0])

  def _prior_path(self, n, seed, temperature):
    """The top-down pass of n prior samples at `temperature`, drawn from an integer seed:
    row i depends only on (seed, i)."""
    eps = noise.normal(noise.key(seed, 'prior'), n, 1, self.z_size)
    u = noise.uniform(noise.key(seed, 'prior_component'), n, 1, 1)[..., 0]
    return self.descend(eps=eps, num_posterior=0, temperature=temperature, u=u)

  def prior_sample(self, n, seed, temperature=1.0):
    """n latents z ~ p(z) [n, z_size] with every group's scale times `temperature` (1: the
    prior itself): row i depends only on (seed, i)."""
    return tf.concat(self._prior_path(n, seed, temperature).zs, -1)[0]

  def sample(self, n, seed=0, temperature=1.0):
    """decode_images of n latents z ~ p(z) at `temperature`, [n, H, W, C]."""
    return self.decoder.images(self._prior_path(n, seed, temperature).decoder_input[0])

  def posterior_sample(self, x, eps, num_posterior=None, temperature=1.0, u=None):
    """z [B, z_size] for images x [B, H, W, C] and noise eps [B, z_size]: the top
    num_posterior groups (default: all; an int or an int tensor) from their posteriors, the
    rest from their priors at `temperature` (what each level encodes: keep the top k,
    resample the rest); u [B] chooses a mixture prior's component when the top is
    resampled."""
    path = self.descend(self.infer(x), eps[tf.newaxis], num_posterior, temperature,
                        u=None if u is None else u[tf.newaxis])
    return tf.concat(path.zs, -1)[0]

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

  def _doubly_reparameterised_terms(self, x, inference, eps):
    """(SampleTerms, reweight) for objective=iwae_dreg: the values of sample_terms, but log
    q(z_k|x) is taken with every weight held fixed, so that the weights reach it only
    through z_k, and the gradient along each z_k is multiplied by the [K, B] tensor later
    passed to reweight (the normalised weights, known only after the decoder has run; read
    when the gradient is taken).

    z is drawn top-down as usual; log w is then computed at reweighted copies of the z's
    (the generative pass and the decoder see the copies, so each path to a weight is
    reweighted once). With lower groups, their posteriors are recomputed at the copies with
    the weights frozen (keras.StatelessScope); the top's needs only its parameters stopped.
    """
    scale = {}

    @tf.custom_gradient
    def reweighted(z):
      return tf.identity(z), lambda dz: dz * scale['v'][..., tf.newaxis]

    # The lower groups' priors are taken from the second pass (the same values).
    sampled = self.descend(inference, eps, with_priors=False)
    zs = [reweighted(z) for z in sampled.zs]
    path = self.descend(z=tf.concat(zs, -1)) if len(zs) > 1 else Path(
        zs, sampled.posteriors, sampled.priors, self.top_down.output(zs[0], zs))
    q_top = sampled.posteriors[0]
    mean, stddev = tf.stop_gradient(q_top.mean()), tf.stop_gradient(q_top.stddev())
    log_posterior = [_log_posterior((zs[0] - mean) / stddev, stddev)]
    if len(zs) > 1:
      frozen = [(v, tf.stop_gradient(v.value)) for v in self.trainable_variables]
      features = [tf.stop_gradient(h) for h in inference.features]
      with keras.StatelessScope(state_mapping=frozen):
        state = self.top_down.start(zs[0])
        for l in range(1, len(zs)):
          q = self.top_down.posterior(l, state, features[l])
          log_posterior.append(_log_posterior((zs[l] - q.mean()) / q.stddev(), q.stddev()))
          state = self.top_down.merge(l, state, zs[l])
    path = path._replace(posteriors=sampled.posteriors)
    terms = self._terms(x, path, tf.add_n(log_posterior), self._group_kl(path, self.split(eps)))
    return terms, lambda v: scale.update(v=v)

  def compute_losses(self, x, step, eps=None):
    """The objective's terms for images x [B, H, W, C] at training step `step`.

    eps [num_samples, B, z_size] (or [B, z_size] when num_samples is 1) is the standard-
    normal noise for z = mu + sigma * eps; None draws fresh noise (passing it makes a step
    reproducible across devices and replicas).
    """
    hp = self.hparams
    inference = self.infer(x)
    eps = self._noise(eps, tf.shape(x)[0])
    if hp.objective == 'iwae_dreg':
      terms, reweight = self._doubly_reparameterised_terms(x, inference, eps)
    else:
      terms = self.sample_terms(x, inference, eps)
    r_loss = -tf.reduce_mean(terms.log_likelihood, 0)
    group_kl = [_sample_mean(kl) for kl in terms.group_kl]
    kl_div = tf.add_n(group_kl)
    elbo = -(r_loss + kl_div)
    if hp.objective != 'elbo':
      iwae = (tf.reduce_logsumexp(terms.log_weights, 0)
              - math.log(float(self.num_samples)))
      loss = -tf.reduce_mean(iwae)
      if hp.objective == 'iwae_dreg':
        # The value stays -mean(iwae); the gradient is that of -mean(sum_k v_k log w_k),
        # with the path through each z_k scaled by v_k once more.
        v = tf.stop_gradient(tf.nn.softmax(terms.log_weights, axis=0))
        reweight(v)
        surrogate = -tf.reduce_mean(tf.reduce_sum(v * terms.log_weights, 0))
        loss = tf.stop_gradient(loss) + surrogate - tf.stop_gradient(surrogate)
      return Losses(loss=loss, r_loss=r_loss, kl_div=kl_div, kl_cost=kl_div, elbo=elbo,
                    beta=tf.constant(1.0), group_kl=tf.stack(group_kl, -1))
    free_nats = hp.free_bits * math.log(2.0)
    kl_cost = tf.add_n([tf.maximum(kl - free_nats, 0.0) for kl in group_kl])
    beta = beta_schedule(step, hp.beta_rate, hp.max_beta)
    loss = tf.reduce_mean(r_loss) + beta * tf.reduce_mean(kl_cost)
    return Losses(loss=loss, r_loss=r_loss, kl_div=kl_div, kl_cost=kl_cost,
                  elbo=elbo, beta=beta, group_kl=tf.stack(group_kl, -1))
