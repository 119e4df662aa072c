#!/usr/bin/env python
"""The price of dynamic binarisation: `bin/train.py --config=mnist_fc` (x ~ Bernoulli(intensity)
drawn afresh every step, 78,400 uniforms from tfvae.noise inside the compiled step) against the
same model on the same 50,000 MNIST images as static intensities (--hparams=binarize=false),
alternating.

    python bench/binarize.py --rounds=3

Figures only: the runs, both medians and dynamic / static, then one JSON line.
"""

from absl import app
from absl import flags

import runner
from children import alternate
from children import loadavg
from children import print_json

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(runner)

RUNS = {'mnist_fc dynamic': '', 'mnist_fc binarize=false': 'binarize=false'}


def binarize():
  arch = runner.ARCHS['binarize']
  num_steps = runner.tfvae_steps(arch)
  load_before = loadavg()
  print(f'arch binarize: mnist_fc (784-500-20 tanh, batch 100) with dynamic binarisation '
        f'against binarize=false; {num_steps} steps; {FLAGS.rounds} rounds; load average '
        f'{load_before}', flush=True)
  per_round = alternate({name: (lambda hparams=hparams, name=name: runner.run_tfvae(
      arch['config'], hparams, arch['batch'], num_steps, label=name)[0])
                         for name, hparams in RUNS.items()}, FLAGS.rounds)
  load_after = loadavg()
  names = list(RUNS)
  runner.print_rounds(names, per_round)
  medians = runner.medians_of(names, per_round)
  pairs = [('dynamic / static', names[0], names[1])]
  runner.print_medians(medians, pairs)
  print(f'  load average before/after        {load_before} / {load_after}')
  print_json(dict(
      bench='binarize', arch='binarize', batch=arch['batch'], rounds=FLAGS.rounds,
      tfvae_num_steps=num_steps, examples_per_sec=medians,
      ratios=runner.ratios_json(medians, pairs),
      per_round=runner.per_round_figures(names, per_round),
      load_average=[load_before, load_after]))


if __name__ == '__main__':
  app.run(runner.main(binarize))
