#!/usr/bin/env python
"""binarized_mnist_gated (gated 300-300, z 40, IWAE K = 20 with DReG, EMA, validation every
epoch): examples/sec of `bin/train.py` and their fraction of the arch's own GEMM ceiling.

    python bench/gated.py --rounds=3

The figure to watch is the fraction of the ceiling at the arch's shapes (gemm.py): the
decoder's GEMMs are on 2,000 rows (K x batch), large enough to run near the large-GEMM rate,
so it shows how much of a step is not GEMM. Figures only: tables, then one JSON line.
"""

from absl import app
from absl import flags

import gemm
import runner
from children import alternate
from children import loadavg
from children import print_json

FLAGS = flags.FLAGS
for _module in (runner, gemm):
  flags.adopt_module_key_flags(_module)

NAME = 'tfvae gated'


def gated():
  arch = runner.ARCHS['gated']
  num_steps = runner.tfvae_steps(arch)
  load_before = loadavg()
  print(f'arch gated: binarized_mnist_gated (gated 300-300, z 40, K = 20 decoder passes), '
        f'batch 100; {num_steps} steps; {FLAGS.rounds} rounds; load average {load_before}',
        flush=True)
  gemms_before = gemm.first_timing(arch)
  per_round = alternate({NAME: lambda: runner.run_tfvae(
      arch['config'], arch['hparams'], arch['batch'], num_steps)[0]}, FLAGS.rounds)
  ceilings = gemm.timed_ceilings(arch, gemms_before)
  load_after = loadavg()
  runner.print_rounds([NAME], per_round)
  medians = runner.medians_of([NAME], per_round)
  runner.print_medians(medians, [])
  figures = {f: medians[NAME][f] for f in ('window', 'span')}
  if ceilings:
    gemm.print_ceilings(ceilings, {f'tfvae {f}': v for f, v in figures.items()})
  print(f'  load average before/after        {load_before} / {load_after}')
  print_json(dict(
      bench='gated', arch='gated', batch=arch['batch'], rounds=FLAGS.rounds,
      tfvae_num_steps=num_steps, examples_per_sec=medians[NAME],
      per_round=runner.per_round_figures([NAME], per_round)[NAME],
      ceilings=ceilings, fraction_of_ceiling=gemm.fractions(ceilings, figures),
      load_average=[load_before, load_after]))


if __name__ == '__main__':
  app.run(runner.main(gated))
