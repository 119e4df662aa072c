#!/usr/bin/env python
"""The cost of the trainer's default logging, summary, image and checkpoint rates: the paper
arch (tfvae only) twice a round, with the defaults (--log_every_n_steps=100
--checkpoint_every_secs=60 --image_every_n_steps=1000) and with them as rare as possible, over
the same steps (num_steps/4 to num_steps) of both.

    python bench/overhead.py --rounds=5 --seconds=120

Runs under 60 s write no periodic checkpoint, so use --seconds of 120 or more to include one.
Figures only: (rare - default) / rare examples/sec, then one JSON line.
"""

from absl import app
from absl import flags

import runner
from children import alternate
from children import fmt
from children import loadavg
from children import median_or_none
from children import print_json

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(runner)

DEFAULT_RATES = ['--log_every_n_steps=100', '--checkpoint_every_secs=60',
                 '--image_every_n_steps=1000']


def overhead():
  arch = runner.ARCHS['paper']
  num_steps = runner.tfvae_steps(arch)
  num_steps = max(int(round(num_steps / (4 * runner.LOG_EVERY))) * 4 * runner.LOG_EVERY,
                  4 * runner.LOG_EVERY)
  quarter = num_steps // 4
  modes = {
      'default rates': DEFAULT_RATES,
      'rare': [f'--log_every_n_steps={quarter}', '--checkpoint_every_secs=100000',
               '--image_every_n_steps=0'],
  }

  def measure(extra):
    result, rows = runner.run_tfvae(arch['config'], arch['hparams'], arch['batch'], num_steps,
                                    extra)
    return dict(result, span=runner.span_rate(rows, quarter, arch['batch']))

  load_before = loadavg()
  print(f'overhead: paper arch, {num_steps} steps per run, {FLAGS.rounds} rounds; rate over '
        f'steps {quarter}-{num_steps}; load average {load_before}', flush=True)
  per_round = alternate({name: (lambda extra=extra: measure(extra))
                         for name, extra in modes.items()}, FLAGS.rounds)
  load_after = loadavg()
  names = list(modes)
  runner.print_rounds(names, per_round)
  span = {n: median_or_none(r[n]['span'] for r in per_round) for n in names}
  window = {n: median_or_none(r[n]['window'] for r in per_round) for n in names}

  def cost(rates):
    rare, default = rates['rare'], rates['default rates']
    return None if rare is None or default is None else (rare - default) / rare

  print('\nmedian over rounds (examples/sec):')
  print(f'  {"":<16} {"span":>10} {"window median":>14}')
  for n in names:
    print(f'  {n:<16} {fmt(span[n]):>10} {fmt(window[n]):>14}')
  print(f'  relative cost of the default rates, (rare - default) / rare: '
        f'{fmt(cost(span), ".1%")} (span), {fmt(cost(window), ".1%")} (window medians)')
  print(f'  load average before/after {load_before} / {load_after}')
  if num_steps * arch['batch'] / arch['rough_rate'] < 60:
    print('  note: runs shorter than 60 s write no periodic checkpoint (only the final one, '
          'after the measured span); use --seconds >= 120 to include one.')
  print_json(dict(
      bench='overhead', arch='paper', batch=arch['batch'], rounds=FLAGS.rounds,
      tfvae_num_steps=num_steps, measured_steps=[quarter, num_steps],
      flags={n: modes[n] for n in names},
      examples_per_sec_span=span, examples_per_sec_window_median=window,
      per_round_span={n: [r[n]['span'] for r in per_round] for n in names},
      relative_cost_span=cost(span), relative_cost_window=cost(window),
      peak_rss_gib={n: max(r[n]['peak_rss_gib'] for r in per_round) for n in names},
      load_average=[load_before, load_after]))


if __name__ == '__main__':
  app.run(runner.main(overhead))
