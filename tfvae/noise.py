"""Counter-based randomness: every random number tfvae draws is a pure function of a key and
a counter, the same on every device and for any batching or replica count.

    words(key, counter) = Philox4x32-10(counter, key)      (Salmon et al. 2011: four uint32
                                                            words per 128-bit counter)
    key                 = Philox4x32-10((seed_lo, seed_hi, stream, 0), KEY_OF_KEYS)[:2]

The counter of a number says what it is for: (row, sample, block, step), with `row` an
example's index (in its split for evaluation, in the global batch for training), `sample` the
index k of a posterior sample, `block` which four values of the row (z_size or the pixels) and
`step` the training step. Each use draws from its own named stream (`STREAMS`), so no two
uses ever share numbers. From the top bits of a word:

    uniform   u   = (t24 + 1/2) * 2^-24                   in (0, 1), t24 = word >> 8
    normal    eps = sqrt(2) * erfinv((2 t23 + 1) * 2^-23 - 1)          |eps| <= 5.3
    bernoulli x   = [u < p]                                P(x = 1) = p to within 2^-25

These replace TensorFlow's stateless ops, whose default algorithm depends on the device and
whose XLA:CPU version costs about 300 ns a number (here: a few ns).
"""

import math

import tensorflow as tf

# Random123's constants for Philox4x32-10.
_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
_WEYL = (0x9E3779B9, 0xBB67AE85)
_ROUNDS = 10
_ROUNDS_PER_ITERATION = 2  # the fastest on XLA:CPU (1: more iterations; 5: redundant work)
_LOOP_MIN_COUNTERS = 4096  # the rounds in a loop from this many counters on (see philox4x32)
# The key under which (seed, stream) is hashed into a key; any fixed value would do.
_KEY_OF_KEYS = (0x7466_7661, 0x6E6F_6973)

STREAMS = {name: i + 1 for i, name in enumerate((
    'train_posterior',   # eps of z = mu + sigma * eps in training steps
    'train_binarize',    # dynamic binarisation in training steps
    'eval_posterior',    # eps in evaluation and validation, and of the export's z
    'eval_binarize',     # the one-off binarisation of evaluation images
    'prior',             # z ~ p(z) for samples
    'prior_component',   # the mixture component of a learned prior's samples
    'decoder_sample',    # x ~ p(x|z) of an autoregressive decoder, pixel by pixel
))}


def _mulhilo(a, m):
  """(high, low) 32-bit halves of the 64-bit product of uint32 a and the constant m."""
  product = tf.cast(a, tf.uint64) * tf.constant(m, tf.uint64)
  high = tf.bitwise.right_shift(product, tf.constant(32, tf.uint64))
  return tf.cast(high, tf.uint32), tf.cast(product, tf.uint32)


def philox4x32(counter, key):
  """Philox4x32-10: four uint32 counter words (of one shape) and two uint32 key words
  (scalars) -> four uint32 tensors of random bits of the counters' shape.

  Written out as one expression, XLA fuses all ten rounds into the consumer of the four
  words, which then evaluates the whole chain once for each word it writes, four times per
  counter. For `_LOOP_MIN_COUNTERS` counters or more (or an unknown number) the rounds run in
  a while loop instead, `_ROUNDS_PER_ITERATION` an iteration (the first ones before it, where
  they fuse with the counters, often broadcasts that XLA would otherwise copy into the loop's
  buffers): the loop keeps each iteration's state in memory, so every round is computed once,
  3-5x faster for 78,400 uniforms on XLA:CPU; for fewer counters its extra ops cost more than
  they save. The words are the same either way."""
  xor = tf.bitwise.bitwise_xor
  weyl = [tf.constant(w, tf.uint32) for w in _WEYL]

  def rounds(c0, c1, c2, c3, k0, k1):
    for _ in range(_ROUNDS_PER_ITERATION):
      hi0, lo0 = _mulhilo(c0, _MULTIPLIERS[0])
      hi1, lo1 = _mulhilo(c2, _MULTIPLIERS[1])
      c0, c1, c2, c3 = xor(xor(hi1, c1), k0), lo1, xor(xor(hi0, c3), k1), lo0
      k0, k1 = k0 + weyl[0], k1 + weyl[1]
    return c0, c1, c2, c3, k0, k1

  iterations = _ROUNDS // _ROUNDS_PER_ITERATION
  state = rounds(*counter, *key)
  size = state[0].shape.num_elements()
  if size is not None and size < _LOOP_MIN_COUNTERS:
    for _ in range(iterations - 1):
      state = rounds(*state)
    return state[:4]
  state = tf.while_loop(lambda i, *_: i < iterations - 1,
                        lambda i, *state: (i + 1,) + rounds(*state),
                        (tf.constant(0),) + state)
  return state[1:5]


def _words(value):
  """(low, high) uint32 words of an integer (Python int or integer tensor)."""
  value = tf.cast(value, tf.int64)
  return (tf.cast(tf.bitwise.bitwise_and(value, 0xFFFFFFFF), tf.uint32),
          tf.cast(tf.bitwise.right_shift(value, 32), tf.uint32))


def key(seed, stream):
  """The key (two uint32 scalars) of `stream` (a name in STREAMS) for an integer seed."""
  if stream not in STREAMS:
    raise ValueError(f'unknown noise stream {stream!r}; valid: {", ".join(STREAMS)}')
  low, high = _words(seed)
  words = philox4x32((low, high, tf.constant(STREAMS[stream], tf.uint32),
                      tf.constant(0, tf.uint32)),
                     tuple(tf.constant(k, tf.uint32) for k in _KEY_OF_KEYS))
  return words[0], words[1]


def _bits(key_words, rows, samples, size, step):
  """uint32 words [K, B, size]: entry (k, b, j) from counter (rows[b], samples[k], j // 4,
  step), word j % 4. rows [B] and samples [K] are integer tensors; step an integer."""
  blocks = -(-size // 4)
  shape = tf.stack([tf.size(samples), tf.size(rows), blocks])
  counter = (tf.broadcast_to(tf.cast(rows, tf.uint32)[tf.newaxis, :, tf.newaxis], shape),
             tf.broadcast_to(tf.cast(samples, tf.uint32)[:, tf.newaxis, tf.newaxis], shape),
             tf.broadcast_to(tf.cast(tf.range(blocks), tf.uint32), shape),
             tf.broadcast_to(_words(step)[0], shape))
  words = tf.stack(philox4x32(counter, key_words), -1)              # [K, B, blocks, 4]
  words = tf.reshape(words, tf.stack([shape[0], shape[1], 4 * blocks]))[..., :size]
  return tf.ensure_shape(words, [samples.shape[0], rows.shape[0], size])


def _ids(ids_or_count):
  """An integer tensor of ids: itself, or range(n) for an integer n."""
  ids = tf.convert_to_tensor(ids_or_count)
  return tf.range(ids) if ids.shape.rank == 0 else ids


def uniform(key_words, rows, samples, size, step=0):
  """Uniforms in (0, 1), float32 [K, B, size]: entry (k, b, j) depends only on the key,
  rows[b], samples[k], j and step. rows, samples: id tensors [B], [K] or counts B, K."""
  bits = _bits(key_words, _ids(rows), _ids(samples), size, step)
  top = tf.cast(tf.bitwise.right_shift(bits, tf.constant(8, tf.uint32)), tf.float32)
  return (top + 0.5) * 2.0**-24


def normal(key_words, rows, samples, size, step=0):
  """Standard normals, float32 [K, B, size], indexed like `uniform`."""
  bits = _bits(key_words, _ids(rows), _ids(samples), size, step)
  # The top 23 bits as the odd multiples of 2^-23 in (-1, 1): exact in float32, symmetric
  # about 0, and inside erfinv's finite range.
  top = tf.cast(tf.bitwise.right_shift(bits, tf.constant(9, tf.uint32)), tf.int32)
  v = tf.cast(2 * top + 1 - 2**23, tf.float32) * 2.0**-23
  return math.sqrt(2.0) * tf.math.erfinv(v)


def bernoulli(probs, key_words, rows, step=0):
  """x ~ Bernoulli(probs) as float32 0/1 of probs' shape [B, ...]; the draws of row b depend
  only on the key, rows[b] (ids [B] or the count B) and step."""
  probs = tf.convert_to_tensor(probs, tf.float32)
  shape = tf.shape(probs)
  flat = tf.reshape(probs, tf.stack([shape[0], -1]))
  u = uniform(key_words, rows, 1, flat.shape[-1], step)[0]
  return tf.reshape(tf.cast(u < flat, tf.float32), shape)
