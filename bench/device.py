#!/usr/bin/env python
"""Examples/sec of `bin/train.py` on the device TensorFlow sees (a GPU, a TPU or the CPU), per
model and precision, and the fraction of the device's own measured GEMM peak they reach.

    python bench/device.py --rounds=1     # CPU: about 10 minutes (bfloat16 convolutions are slow)
    python bench/device.py --train_flags="--strategy=tpu --tpu=NAME"

Models (--device_models): paper (784-500-20 tanh, batch 100), wide (784-512-512-32 relu, batch
1024) and conv (conv_vae on 6,000 synthetic 32x32x3 images); precisions (--precisions): none
and bfloat16. The peak is a large GEMM (8192^3 on a GPU or TPU, 2048^3 on a CPU; gemm.py) in
float32 and bfloat16, before and after the runs, the best kept. A run's GFLOP/s is its span rate
times its exact GEMM/convolution FLOPs per example. Figures only: a table, then one JSON line.
"""

import functools
import os
import shutil
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np

import gemm
import runner
from children import alternate
from children import fmt
from children import loadavg
from children import print_json

FLAGS = flags.FLAGS
flags.DEFINE_list('device_models', ['paper', 'wide', 'conv'], 'Models to run.')
flags.DEFINE_list('precisions', ['none', 'bfloat16'], 'mixed_precision values.')
flags.DEFINE_string('train_flags', '', 'Extra bin/train.py flags, space-separated '
                    '(e.g. "--strategy=tpu --tpu=NAME").')
flags.adopt_module_key_flags(runner)

CONV = dict(config='conv_vae', image=(32, 32, 3), filters=[32, 64, 128], hidden=512, z=64,
            kernel=3, params=15, batch=64, rough_rate=800)  # logistic mixture: 3 x 5 params
DEVICE_MODELS = {
    'paper': dict(runner.ARCHS['paper'], label='paper 784-500-20 tanh, batch 100'),
    'wide': dict(runner.ARCHS['wide'], label='wide 784-512-512-32 relu, batch 1024'),
    'conv': dict(CONV, hparams='', label='conv_vae 32x32x3 (synthetic), batch 64'),
}


def conv_flops_per_example(c):
  """Exact training GEMM/convolution FLOPs per example of conv_vae on c['image']: stride-2
  'same' 3x3 convolutions (MACs = output pixels x k^2 x C_in x C_out), the dense layers, and
  stride-2 transposed convolutions (MACs = input pixels x k^2 x C_in x C_out); backward 2x the
  forward, but no input gradient for the first convolution."""
  height, width, channels = c['image']
  k2, macs, inputs = c['kernel'] ** 2, [], channels
  for f in c['filters']:
    height, width = -(-height // 2), -(-width // 2)
    macs.append(height * width * k2 * inputs * f)
    inputs = f
  macs += [height * width * inputs * c['hidden'], 2 * c['hidden'] * c['z'],
           c['z'] * c['hidden'], c['hidden'] * height * width * inputs]
  for f in list(reversed(c['filters'][:-1])) + [channels * c['params']]:
    macs.append(height * width * k2 * inputs * f)
    height, width, inputs = 2 * height, 2 * width, f
  return 6 * sum(macs) - 2 * macs[0]


def device():
  """Examples/sec of bin/train.py on the device TensorFlow sees, per model and precision, and
  the fraction of the device's own measured GEMM peak (float32 or bfloat16) they reach."""
  unknown = [m for m in FLAGS.device_models if m not in DEVICE_MODELS]
  if unknown:
    sys.exit(f'error: unknown --device_models {",".join(unknown)}; valid: '
             f'{",".join(DEVICE_MODELS)}')
  load_before = loadavg()
  scratch = tempfile.mkdtemp(prefix='tfvae_bench_device_')
  try:
    if 'conv' in FLAGS.device_models:
      images = np.random.default_rng(0).integers(0, 256, (6000,) + CONV['image'], np.uint8)
      np.save(os.path.join(scratch, 'images.npy'), images)
    dtypes = sorted({'float32' if p == 'none' else p for p in FLAGS.precisions})

    def measure_peaks():
      print(f'peak: a large GEMM in {", ".join(dtypes)}', flush=True)
      return {d: gemm.time_gemms({'dtype': d, 'big': 'auto'}) for d in dtypes}
    peaks_before = measure_peaks()
    device_label = next((p['device'] for p in peaks_before.values() if p), '?')
    print(f'device: {device_label}; models {",".join(FLAGS.device_models)}; precisions '
          f'{",".join(FLAGS.precisions)}; {FLAGS.rounds} rounds; load average {load_before}',
          flush=True)
    runs = [(m, p) for m in FLAGS.device_models for p in FLAGS.precisions]

    def train(model, precision):
      spec = DEVICE_MODELS[model]
      hparams = ','.join(h for h in (spec['hparams'], f'mixed_precision={precision}') if h)
      extra = FLAGS.train_flags.split()
      if model == 'conv':
        extra += [f'--dataset=npy:{os.path.join(scratch, "images.npy")}',
                  f'--cache_dir={os.path.join(scratch, "cache")}']
      return runner.run_tfvae(spec['config'], hparams, spec['batch'], runner.tfvae_steps(spec),
                              extra, label=f'{model} {precision}')[0]

    per_round = alternate({f'{m} {p}': functools.partial(train, m, p) for m, p in runs},
                          FLAGS.rounds)
    peaks_after = measure_peaks()
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  peaks = {d: gemm.merge_gemm_times([peaks_before[d], peaks_after[d]]) for d in dtypes}
  load_after = loadavg()
  names = [f'{m} {p}' for m, p in runs]
  runner.print_rounds(names, per_round)
  medians = runner.medians_of(names, per_round)
  print(f'\n{"model":<40} {"precision":<9} {"window":>8} {"span":>8} {"MFLOP/ex":>9} '
        f'{"GFLOP/s":>8} {"peak":>8} {"of peak":>8}')
  table = {}
  for model, precision in runs:
    spec, name = DEVICE_MODELS[model], f'{model} {precision}'
    flops = (conv_flops_per_example(spec) if model == 'conv'
             else gemm.gemm_flops(gemm.step_gemms(spec)) / spec['batch'])
    peak = peaks.get('float32' if precision == 'none' else precision)
    peak_gflops = max(peak['big'].values()) if peak else None
    rate = medians[name]['span']
    achieved = rate and rate * flops / 1e9
    table[name] = dict(medians[name], flops_per_example=flops, gflops=achieved,
                       peak_gflops=peak_gflops,
                       fraction_of_peak=runner.ratio(achieved, peak_gflops))
    print(f'{spec["label"]:<40} {precision:<9} {fmt(medians[name]["window"]):>8} '
          f'{fmt(rate):>8} {flops / 1e6:>9.2f} {fmt(achieved, ".1f"):>8} '
          f'{fmt(peak_gflops, ".1f"):>8} {fmt(runner.ratio(achieved, peak_gflops), ".1%"):>8}')
  for dtype, peak in peaks.items():
    if peak:
      sizes = ', '.join(f'{s}^3 {g:.1f} GFLOP/s' for s, g in peak['big'].items())
      print(f'  peak {dtype}: {sizes} ({peak["device"]}, TF {peak["tensorflow"]})')
  print('  GFLOP/s and "of peak" use the span rate and the exact GEMM/convolution FLOPs')
  if '--strategy=tpu' in FLAGS.train_flags:
    print('  note: the peak was measured on the device this process sees, not the TPU')
  print(f'  load average before/after {load_before} / {load_after}')
  print_json(dict(bench='device', device=device_label, rounds=FLAGS.rounds,
                  train_flags=FLAGS.train_flags, models=table,
                  peaks={d: p and p['big'] for d, p in peaks.items()},
                  per_round=runner.per_round_figures(names, per_round),
                  load_average=[load_before, load_after]))


if __name__ == '__main__':
  app.run(runner.main(device))
