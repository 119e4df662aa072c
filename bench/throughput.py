#!/usr/bin/env python
"""Training speed of tfvae's real trainer against the plain PyTorch peer and the GEMM ceiling.

    python bench/throughput.py                        # paper arch against the peer, 3 rounds
    python bench/throughput.py --arch=wide --rounds=5 # 784-512-512-32 relu, batch 1024

Alternates, round by round, a `bin/train.py` run (runner.py: window, span and process figures),
the peer's plain run and its faster variant (peer.py), each training as many examples as tfvae
(--peer_epochs=0), and reports the medians, the ratios and the fractions of the GEMM ceilings
(gemm.py: TensorFlow's rate, timed before and after the rounds; and the peer's
matmul_ceiling.py). The other benchmarks: gated.py, binarize.py, overhead.py, iw.py, parts.py,
device.py, streaming.py (bench/README.md). Figures only: tables, then one JSON line.
"""

from absl import app
from absl import flags

import gemm
import peer
import runner
from children import alternate
from children import fmt
from children import loadavg
from children import print_json

FLAGS = flags.FLAGS
flags.DEFINE_enum('arch', 'paper', ['paper', 'wide'], 'What to train: paper (784-500-20 tanh, '
                  'batch 100) or wide (784-512-512-32 relu, batch 1024), both against the peer.')
for _module in (runner, gemm, peer):
  flags.adopt_module_key_flags(_module)


def throughput():
  """tfvae against the peer (plain and its faster variant), alternating."""
  arch = runner.ARCHS[FLAGS.arch]
  peer_python = peer.python()
  num_steps = runner.tfvae_steps(arch)
  epochs = FLAGS.peer_epochs or max(2, round(num_steps * arch['batch'] / runner.TRAIN_EXAMPLES))
  variant_name, variant_flags = arch['variant']
  runs = {'tfvae': lambda: runner.run_tfvae(arch['config'], arch['hparams'], arch['batch'],
                                            num_steps)[0],
          'peer plain': lambda: peer.run(peer_python, arch, epochs)}
  if FLAGS.peer_variant:
    runs[f'peer {variant_name}'] = lambda: peer.run(peer_python, arch, epochs, variant_flags)
  names = list(runs)
  load_before = loadavg()
  print(f'arch {FLAGS.arch}: '
        f'{"-".join(map(str, [runner.PIXELS] + arch["hidden"] + [arch["z"]]))} '
        f'{arch["act"]}, batch {arch["batch"]}; tfvae {num_steps} steps ('
        f'{num_steps * arch["batch"]:,} examples), peer {epochs} epochs '
        f'({epochs * runner.TRAIN_EXAMPLES:,}); {FLAGS.rounds} rounds; load average {load_before}'
        + (f'; tfvae hparams {FLAGS.tfvae_hparams}' if FLAGS.tfvae_hparams else ''), flush=True)
  gemms_before = gemm.first_timing(arch)
  per_round = alternate(runs, FLAGS.rounds)
  ceilings = gemm.timed_ceilings(arch, gemms_before)
  torch_ceiling = peer.ceiling(arch, peer_python) if FLAGS.ceiling else None
  load_after = loadavg()

  runner.print_rounds(names, per_round)
  medians = runner.medians_of(names, per_round)
  best = max(names[1:], key=lambda n: medians[n]['span'] or 0)
  pairs = [('tfvae / peer plain', 'tfvae', 'peer plain')]
  if best != 'peer plain':  # the faster variant
    pairs.append((f'tfvae / {best}', 'tfvae', best))
  runner.print_medians(medians, pairs)
  tf_figures = {f: medians['tfvae'][f] for f in ('window', 'span')}
  if ceilings:
    gemm.print_ceilings(ceilings, {f'tfvae {f}': v for f, v in tf_figures.items()})
  if torch_ceiling:
    big = torch_ceiling['ceiling_examples_per_sec_big_gemm']
    print(f'  torch ceiling (1024^3 GEMM, 3x)  {fmt(big):>8} ex/s   tfvae window '
          f'{fmt(runner.ratio(tf_figures["window"], big), ".1%")}   (torch 1024^3 '
          f'{torch_ceiling["gflops"].get("1024x1024 @ 1024x1024")} GFLOP/s)')
  print(f'  load average before/after        {load_before} / {load_after}')
  print_json(dict(
      bench='throughput', arch=FLAGS.arch, batch=arch['batch'], rounds=FLAGS.rounds,
      tfvae_hparams=FLAGS.tfvae_hparams, tfvae_num_steps=num_steps, peer_epochs=epochs,
      threads=FLAGS.threads, examples_per_sec=medians,
      ratios=runner.ratios_json(medians, pairs),
      per_round=runner.per_round_figures(names, per_round),
      ceilings=ceilings, torch_ceiling=torch_ceiling and {
          k: torch_ceiling[k] for k in ('gflops', 'ceiling_examples_per_sec_big_gemm',
                                        'ceiling_examples_per_sec_layer_gemm')},
      fraction_of_ceiling=gemm.fractions(ceilings, tf_figures),
      peak_rss_gib={n: max(r[n]['peak_rss_gib'] for r in per_round) for n in names},
      torch=next((r['peer plain'].get('torch') for r in per_round), None),
      load_average=[load_before, load_after]))


if __name__ == '__main__':
  app.run(runner.main(throughput))
