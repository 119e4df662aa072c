#!/usr/bin/env python
"""The importance-weighted log-likelihood's speed: tfvae's `bin/evaluate.py` on a run trained
500 steps against the peer's `--iw_k` on a model it trains for one epoch, both with K = --iw_k
(default 5000) over --iw_examples test images (default 10,000, the whole test set; fewer: a
seeded random subset, each tool its own), alternating for --rounds.

    python bench/iw.py --iw_examples=2000 --rounds=1   # about 4 minutes
    python bench/iw.py                                 # the whole test set, about 17 minutes

The figure is the time of the estimate itself (`seconds` in tfvae's JSON line, `iw_s` in the
peer's); it prints both, their ratio and the peak memory, then one JSON line.
"""

import os
import shutil
import tempfile

from absl import app
from absl import flags

import peer
import runner
from children import ROOT
from children import fmt
from children import loadavg
from children import median_or_none
from children import print_json

FLAGS = flags.FLAGS
flags.DEFINE_integer('iw_k', 5000, 'Importance samples per image.', lower_bound=1)
flags.DEFINE_integer('iw_examples', 10000, 'Test images.', lower_bound=1)
for _module in (runner, peer):
  flags.adopt_module_key_flags(_module)


def _json_of(cmd, what):
  """(JSON line, wall seconds, peak RSS) of cmd; RuntimeError with its last lines if it fails."""
  lines, rc, wall, rss = runner.run(cmd, timeout=7200)
  out = runner.last_json(lines)
  if rc or not out:
    raise RuntimeError(f'{what} failed:\n' + runner.tail(lines))
  return out, wall, rss


def iw_speed():
  arch = runner.ARCHS['paper']
  peer_python = peer.python()
  run_dir = tempfile.mkdtemp(prefix='tfvae_bench_iw_')
  load_before = loadavg()
  print(f'IW log-likelihood, K={FLAGS.iw_k}, {FLAGS.iw_examples} test images, paper arch; '
        f'{FLAGS.rounds} rounds; load average {load_before}', flush=True)
  per_round = {'tfvae': [], 'peer': []}
  rows = []
  peer_cmd = peer.command(peer_python, arch, '--epochs', '1', '--iw_k', str(FLAGS.iw_k),
                          *(['--iw_n', str(FLAGS.iw_examples)] if FLAGS.iw_examples < 10000
                            else []))
  try:
    lines, rc, _, _ = runner.run(
        [FLAGS.tfvae_python, os.path.join(ROOT, 'bin', 'train.py'),
         '--config=binarized_mnist_fc', f'--data_dir={FLAGS.data_dir}', f'--run_dir={run_dir}',
         '--num_steps=500'], timeout=600)
    if rc:
      raise RuntimeError('tfvae training failed:\n' + runner.tail(lines))
    for r in range(1, FLAGS.rounds + 1):
      print(f'round {r}/{FLAGS.rounds}: tfvae', flush=True)
      out, wall, rss = _json_of(
          [FLAGS.tfvae_python, os.path.join(ROOT, 'bin', 'evaluate.py'), f'--run_dir={run_dir}',
           f'--data_dir={FLAGS.data_dir}', f'--num_importance_samples={FLAGS.iw_k}',
           f'--num_examples={FLAGS.iw_examples}'], 'bin/evaluate.py')
      per_round['tfvae'].append(out['seconds'])
      rows.append((r, 'tfvae', out['seconds'], wall, rss, f'log p(x) {out["log_likelihood"]:.3f}'))
      print(f'round {r}/{FLAGS.rounds}: peer', flush=True)
      out, wall, rss = _json_of(peer_cmd, 'the peer')
      if 'iw_s' not in out:
        raise RuntimeError(f'the peer printed no iw_s: {out}')
      per_round['peer'].append(out['iw_s'])
      rows.append((r, 'peer', out['iw_s'], wall, rss, f'NLL {out["test_nll"]:.3f}'))
  finally:
    shutil.rmtree(run_dir, ignore_errors=True)
  load_after = loadavg()
  print(f'\n{"round":>5}  {"run":<8}{"IW seconds":>12}{"wall s":>9}{"peak GiB":>10}  detail')
  for r, name, secs, wall, rss, detail in rows:
    print(f'{r:>5}  {name:<8}{secs:>12.1f}{wall:>9.1f}{rss / runner.GIB:>10.2f}  {detail}')
  tfvae_s, peer_s = median_or_none(per_round['tfvae']), median_or_none(per_round['peer'])
  print(f'\nmedian seconds: tfvae {fmt(tfvae_s, ".1f")}, peer {fmt(peer_s, ".1f")}; '
        f'tfvae / peer time {fmt(runner.ratio(tfvae_s, peer_s), ".3f")}; load average '
        f'before/after {load_before} / {load_after}')
  print_json({
      'bench': 'iw', 'iw_k': FLAGS.iw_k, 'iw_examples': FLAGS.iw_examples,
      'rounds': FLAGS.rounds, 'seconds': {'tfvae': tfvae_s, 'peer': peer_s},
      'per_round': per_round, 'tfvae_over_peer_time': runner.ratio(tfvae_s, peer_s),
      'peak_rss_gib': {name: max(r[4] for r in rows if r[1] == name) / runner.GIB
                       for name in ('tfvae', 'peer')},
      'load_average': [load_before, load_after]})


if __name__ == '__main__':
  app.run(runner.main(iw_speed))
