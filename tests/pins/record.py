"""Records what every config of the single-latent-group VAE computes, to pin it across changes.

Run once, at commit 2cb909e (before the hierarchy), from the project root:

    python tests/pins/record.py

For each config in CONFIG_MAP it builds a small model (the config's hparams with smaller layers,
on small images), saves its freshly initialised weights as a checkpoint in tests/pins/<config>/
and records, in tests/pins/pins.json, the losses, importance log-weights, decoded images, prior
samples and importance-weighted log-likelihood of fixed inputs and noise. tests/test_pins.py
restores each checkpoint into today's code and checks that it computes the same numbers: old
runs stay readable, and the one-group case of the model computes what it always did.
Re-running this script on later code would pin that code instead; do so only on purpose.
"""

import json
import os
import shutil
import sys

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.pins import cases  # pylint: disable=wrong-import-position

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
  pins = {}
  for name in cases.CONFIG_NAMES:
    model = cases.build(name, seed=0)
    folder = os.path.join(HERE, name)
    shutil.rmtree(folder, ignore_errors=True)
    tf.train.Checkpoint(model=model).write(os.path.join(folder, 'ckpt'))
    pins[name] = {k: np.asarray(v).tolist() for k, v in cases.compute(name, model).items()}
    print(name, {k: np.round(np.ravel(v)[:3], 4).tolist() for k, v in pins[name].items()})
  with open(os.path.join(HERE, 'pins.json'), 'w', encoding='utf-8') as f:
    json.dump(pins, f, indent=0, sort_keys=True)


if __name__ == '__main__':
  main()
