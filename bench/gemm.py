#!/usr/bin/env python
"""GEMM FLOPs and ceilings: the exact training FLOPs of an MLP arch's GEMMs, TensorFlow's own
GEMM rate timed inside one XLA-compiled loop, and the examples/sec those allow.

FLOPs: for each dense layer on m rows, the forward x W [m, k] @ [k, n], the weight gradient
x^T dy and, but for the first layer (whose input is the data), the input gradient dy W^T,
2 m k n FLOPs each; the encoder runs once per example, the decoder once per posterior sample;
a glu layer computes 2x its width. Ceilings: the rate of a large GEMM (the best of 1024^3 and
2048^3) over the FLOPs per example, and the batch over the summed times of one step's GEMMs at
their own shapes.

The timing runs in a child process, this file run as a script:

    python bench/gemm.py --gemm_times='{"shapes": [[100, 784, 500, false, false]], "big": [1024]}'

prints one JSON line: the ms of each GEMM and the big GEMMs' GFLOP/s (`big`: "auto" is 8192 on
a GPU or TPU, 2048 on a CPU). bench/parts.py uses its loop timing in-process.
"""

import json
import os
import time

from absl import app
from absl import flags

from archs import gemm_flops
from archs import mlp_layers
from archs import step_gemms
import runner
from children import fmt

FLAGS = flags.FLAGS
flags.DEFINE_boolean('ceiling', True, 'Time the GEMM ceilings.')
flags.DEFINE_string('gemm_times', None, 'Run as the timing child: JSON {"shapes": [[m, k, n, '
                    'transpose_a, transpose_b], ...], "dtype": ..., "big": [sizes] or "auto"}; '
                    'prints the ms of each GEMM and the big GEMMs\' GFLOP/s.')


def time_gemms(spec):
  """Runs this script as a child timing TensorFlow's GEMMs (see --gemm_times); its JSON."""
  return runner.child_json([FLAGS.tfvae_python, os.path.abspath(__file__),
                            '--gemm_times=' + json.dumps(spec)], 1800, 'TensorFlow GEMM timing')


def merge_gemm_times(timings):
  """The best of several --gemm_times results (the fastest time of each shape, the highest
  rate of each big GEMM): on a shared machine, the closest to what the hardware can do."""
  timings = [t for t in timings if t]
  if not timings:
    return None
  best = dict(timings[0])
  best['shapes'] = [list(s[:5]) + [min(t['shapes'][i][5] for t in timings)]
                    for i, s in enumerate(timings[0]['shapes'])]
  best['big'] = {k: max(t['big'][k] for t in timings) for k in timings[0]['big']}
  return best


def gemm_spec(arch):
  return {'shapes': sorted(set(step_gemms(arch))), 'dtype': 'float32', 'big': [1024, 2048]}


def timed_ceilings(arch, before):
  """The arch's ceilings from `before` (time_gemms of gemm_spec(arch), or None) and a second
  timing now, the best of both; None without --ceiling."""
  if not FLAGS.ceiling:
    return None
  print('GEMM ceilings', flush=True)
  return tf_ceilings(arch, merge_gemm_times([before, time_gemms(gemm_spec(arch))]))


def first_timing(arch):
  """time_gemms of the arch before the rounds (None without --ceiling)."""
  if not FLAGS.ceiling:
    return None
  print('GEMM rates (timed before and after the rounds; the best of both is used)', flush=True)
  return time_gemms(gemm_spec(arch))


def tf_ceilings(arch, timed):
  """The arch's ceilings (examples/sec) at TF's GEMM rates `timed` (from --gemm_times of
  gemm_spec(arch)), or None."""
  if not timed:
    return None
  gemms = step_gemms(arch)
  ms = {tuple(s[:5]): s[5] for s in timed['shapes']}
  step_ms = sum(ms[g] for g in gemms)
  flops = gemm_flops(gemms) / arch['batch']
  big = max(timed['big'].values())
  return dict(device=timed['device'], big_gemm_gflops=timed['big'],
              flops_per_example=flops, forward_macs_per_example=sum(
                  k * n * rows for k, n, rows, _ in mlp_layers(arch)),
              layer_gemm_ms_per_step=step_ms,
              layer_gemm_gflops=gemm_flops(gemms) / step_ms / 1e6,
              ceiling_big=big * 1e9 / flops,
              ceiling_layers=arch['batch'] / step_ms * 1e3)


def fractions(ceilings, figures):
  """{'<figure>_<big|layers>': figure / ceiling} of figures {figure: examples/sec}."""
  return ceilings and {f'{f}_{c}': runner.ratio(v, ceilings[f'ceiling_{c}'])
                       for f, v in figures.items() for c in ('big', 'layers')}


def print_ceilings(c, figures):
  """The ceilings and each figure's fraction of them; figures: {label: examples/sec}."""
  print(f'  GEMM FLOPs per example (exact)   {c["flops_per_example"] / 1e6:,.3f} M   (forward '
        f'MACs {c["forward_macs_per_example"]:,})')
  big = ', '.join(f'{s}^3 {g:.1f}' for s, g in c['big_gemm_gflops'].items())
  print(f'  TF GEMM rate, large              {big} GFLOP/s  ({c["device"]})')
  print(f'  TF GEMM rate, the arch\'s shapes  {c["layer_gemm_gflops"]:.1f} GFLOP/s '
        f'({c["layer_gemm_ms_per_step"]:.3f} ms of GEMMs a step)')
  for name, key in (('ceiling at the large-GEMM rate', 'ceiling_big'),
                    ('ceiling at the arch\'s shapes', 'ceiling_layers')):
    parts = ', '.join(f'{label} {fmt(runner.ratio(v, c[key]), ".1%")}'
                      for label, v in figures.items())
    print(f'  {name:<32} {fmt(c[key]):>8} ex/s   {parts}')


# TensorFlow timing (the --gemm_times child, and bench/parts.py in-process)


def xla_loop_ms(body, state, min_seconds=0.2, repeats=5):
  """ms per iteration of `state = body(i, state)` inside one XLA while loop: the best of
  `repeats` runs of n iterations, n doubled until a run lasts min_seconds. body must change
  its inputs each iteration (see `poke`), or XLA hoists the work out of the loop."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  @tf.function(jit_compile=True)
  def loop(state, n):
    return tf.while_loop(lambda i, s: i < n, lambda i, s: (i + 1, body(i, s)),
                         (tf.constant(0), state))[1]

  def seconds(n):
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), loop(state, tf.constant(n)))
    return time.perf_counter() - start

  seconds(1)
  n = 1
  while seconds(n) < min_seconds and n < 2**14:
    n *= 2
  return min(seconds(n) for _ in range(repeats)) / n * 1e3


def poke(tensor, value):
  """tensor with its first element replaced by value: a one-element update XLA does in place,
  so that a loop body's inputs differ every iteration at no cost."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  index = tf.zeros([1, tensor.shape.rank], tf.int32)
  return tf.tensor_scatter_nd_update(tensor, index,
                                     tf.reshape(tf.cast(value, tensor.dtype), [1]))


def first(tensor):
  """The first element of tensor, a scalar."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return tf.reshape(tf.slice(tensor, [0] * tensor.shape.rank, [1] * tensor.shape.rank), [])


def gemm_ms(m, k, n, transpose_a, transpose_b, dtype='float32'):
  """ms of one [m, k] @ [k, n] GEMM (operands stored transposed as flagged) in XLA."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  a = tf.cast(rng.normal(size=(k, m) if transpose_a else (m, k)).astype(np.float32), dtype)
  b = tf.cast(rng.normal(size=(n, k) if transpose_b else (k, n)).astype(np.float32), dtype)

  def body(i, s):
    a, b = s
    y = tf.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
    return poke(a, first(y) * 1e-9), b
  return xla_loop_ms(body, (a, b))


def device_name():
  """The device TensorFlow computes on: the first GPU or TPU, else the CPU."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  for kind in ('GPU', 'TPU'):
    devices = tf.config.list_physical_devices(kind)
    if devices:
      details = tf.config.experimental.get_device_details(devices[0])
      return f'{len(devices)} x {details.get("device_name", kind)}'
  try:
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      model = next((line.split(':', 1)[1].strip() for line in f
                    if line.startswith('model name')), 'CPU')
  except OSError:
    model = 'CPU'
  return f'{model}, {os.cpu_count()} cores (CPU)'


def gemm_times(spec):
  """The --gemm_times child: ms of each shape and the GFLOP/s of the big square GEMMs
  (spec['big']: their sizes, or 'auto': 8192 on a GPU or TPU, 2048 on a CPU)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  dtype = spec.get('dtype', 'float32')
  shapes = [list(s) + [gemm_ms(*s, dtype=dtype)] for s in spec.get('shapes', [])]
  sizes = spec.get('big', [])
  if sizes == 'auto':
    accelerator = any(tf.config.list_physical_devices(kind) for kind in ('GPU', 'TPU'))
    sizes = [8192 if accelerator else 2048]
  big = {str(size): 2 * size**3 / gemm_ms(size, size, size, False, False, dtype) / 1e6
         for size in sizes}
  print(json.dumps(dict(device=device_name(), dtype=dtype, shapes=shapes, big=big,
                        tensorflow=tf.__version__)))


def _main(argv):
  if len(argv) > 1 or not FLAGS.gemm_times:
    raise app.UsageError('bench/gemm.py is the GEMM timing child: pass --gemm_times=JSON')
  gemm_times(json.loads(FLAGS.gemm_times))


if __name__ == '__main__':
  app.run(_main)
