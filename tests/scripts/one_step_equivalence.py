"""One training step on 1 device and on 2 logical CPU replicas, from the same weights.

`compare(data_dir, work_dir)` needs the CPU split into two logical devices before TensorFlow
started (tests/conftest.py does so for the test session). As a script,

    python tests/scripts/one_step_equivalence.py DATA_DIR WORK_DIR

it splits the CPU itself and prints the comparison as a JSON line: the largest weight
difference, how many weights differ by more than 1e-5 (and the four worst variables), the
largest weight change, and both runs' losses and gradient norms.
"""

import json
import os
import sys

from tfvae import strategies

if __name__ == '__main__':
  strategies.split_cpu(2)

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position
from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfvae import configs  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfvae import hooks  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfvae import sources  # pylint: disable=g-import-not-at-top,wrong-import-position
from tfvae import training  # pylint: disable=g-import-not-at-top,wrong-import-position


def _scalar(folder, tag):
  acc = event_accumulator.EventAccumulator(folder, size_guidance={'tensors': 0})
  acc.Reload()
  return float(tf.make_ndarray(acc.Tensors(tag)[0].tensor_proto))


def compare(data_dir, work_dir):
  """{'replicas', 'max_weight_diff', 'max_weight_change', 'loss_1', 'loss_2', ...} of one step of
  binarized_mnist_fc (or $TFVAE_CONFIG) on data_dir's binarized MNIST, on one device and
  mirrored over the logical CPUs, both from the same initial weights."""
  config = configs.get_config(os.environ.get('TFVAE_CONFIG', 'binarized_mnist_fc'))
  hparams = config.hparams.parse('hidden_sizes=[32],z_size=4,batch_size=20')
  source = sources.make_source(config.dataset, data_dir=data_dir)
  trainers = {}
  for name in ('default', 'mirrored'):
    strategy = strategies.make_strategy(name)
    trainers[name] = training.Trainer(config, hparams, os.path.join(work_dir, name), source,
                                      strategy=strategy, seed=3, steps_per_loop=1)
  initial = trainers['default'].model.get_weights()
  trainers['mirrored'].model.set_weights(initial)
  for trainer in trainers.values():
    trainer.train(1, hooks.standard(trainer, 1, log_every_n_steps=1))
  one, two = (trainers[n].model.get_weights() for n in ('default', 'mirrored'))
  names = [v.path for v in trainers['default'].model.weights]
  diffs = [float(np.max(np.abs(a - b))) for a, b in zip(one, two)]
  changes = [float(np.max(np.abs(a - b))) for a, b in zip(one, initial)]
  return {
      'replicas': trainers['mirrored'].strategy.num_replicas_in_sync,
      'max_weight_diff': max(diffs),
      'max_weight_change': max(changes),
      'elements_over_1e-5': int(sum(np.sum(np.abs(a - b) > 1e-5) for a, b in zip(one, two))),
      'elements': int(sum(a.size for a in one)),
      'worst': {names[i]: [diffs[i], changes[i]] for i in np.argsort(diffs)[-4:]},
      **{f'{tag}_{i}': _scalar(os.path.join(work_dir, name, 'train'), tag)
         for tag in ('loss', 'global_norm') for i, name in ((1, 'default'), (2, 'mirrored'))},
  }


if __name__ == '__main__':
  print(json.dumps(compare(*sys.argv[1:])))
