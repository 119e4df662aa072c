#!/usr/bin/env python
"""An MLP config's examples/sec through `bin/train.py` and their fraction of the arch's own
GEMM ceiling: binarized_mnist_gated (gated 300-300, z 40, IWAE K = 20 with DReG, EMA,
validation every epoch) or, with --arch=hvae, binarized_mnist_hvae (the same MLPs, two latent
groups of 40 inferred top-down, IWAE K = 10 with hierarchical DReG).

    python bench/gated.py --rounds=3
    python bench/gated.py --arch=hvae --rounds=3

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

flags.DEFINE_enum('arch', 'gated', ['gated', 'hvae'], 'binarized_mnist_gated or '
                  'binarized_mnist_hvae.')


def gated():
  arch = runner.ARCHS[FLAGS.arch]
  name = f'tfvae {FLAGS.arch}'
  num_steps = runner.tfvae_steps(arch)
  load_before = loadavg()
  shape = '-'.join(map(str, arch['hidden']))
  print(f'arch {FLAGS.arch}: {arch["config"]} ({arch["act"]} {shape}, z {arch["z"]} x '
        f'{arch.get("groups", 1)} groups, K = {arch["samples"]} decoder passes), batch '
        f'{arch["batch"]}; {num_steps} steps; {FLAGS.rounds} rounds; load average '
        f'{load_before}', flush=True)
  gemms_before = gemm.first_timing(arch)
  per_round = alternate({name: lambda: runner.run_tfvae(
      arch['config'], arch['hparams'], arch['batch'], num_steps)[0]}, FLAGS.rounds)
  ceilings = gemm.timed_ceilings(arch, gemms_before)
  load_after = loadavg()
  runner.print_rounds([name], per_round)
  medians = runner.medians_of([name], per_round)
  runner.print_medians(medians, [])
  figures = {f: medians[name][f] for f in ('window', 'span')}
  if ceilings:
    gemm.print_ceilings(ceilings, {f'tfvae {f}': v for f, v in figures.items()})
  print(f'  load average before/after        {load_before} / {load_after}')
  print_json(dict(
      bench='gated', arch=FLAGS.arch, batch=arch['batch'], rounds=FLAGS.rounds,
      tfvae_num_steps=num_steps, examples_per_sec=medians[name],
      per_round=runner.per_round_figures([name], per_round)[name],
      ceilings=ceilings, fraction_of_ceiling=gemm.fractions(ceilings, figures),
      load_average=[load_before, load_after]))


if __name__ == '__main__':
  app.run(runner.main(gated))
