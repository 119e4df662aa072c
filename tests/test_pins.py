"""Every config computes today what it computed before the hierarchy: its checkpoint (written by
the code of commit 2cb909e, tests/pins/record.py) restores into today's model, and the losses,
log-weights, decoded images, prior samples and log-likelihood of fixed inputs are the recorded
ones."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.pins import cases

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pins')

with open(os.path.join(HERE, 'pins.json'), encoding='utf-8') as _f:
  PINS = json.load(_f)


def test_every_config_of_the_time_is_pinned_and_still_exists():
  assert len(PINS) == 13 and set(PINS) <= set(cases.CONFIG_NAMES)


@pytest.mark.parametrize('name', sorted(PINS))
def test_config_computes_what_it_did(name):
  model = cases.build(name, seed=123)  # other initial weights: the checkpoint must replace them
  status = tf.train.Checkpoint(model=model).read(os.path.join(HERE, name, 'ckpt'))
  status.assert_existing_objects_matched()
  got = cases.compute(name, model)
  for quantity, expected in PINS[name].items():
    np.testing.assert_allclose(got[quantity], np.asarray(expected), rtol=2e-5, atol=2e-5,
                               err_msg=f'{name}: {quantity}')
