"""What the bin/ scripts share: user errors end in one line, not a traceback."""

import os
import sys
import traceback

# Keep TensorFlow's C++ start-up chatter out of the user's terminal (override to see it).
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app
from absl import logging

from tfvae.data import DataError
from tfvae.hparams import HParamsError
from tfvae.run_dir import RunDirError
from tfvae.strategies import StrategyError
from tfvae.training import NonFiniteLossError

# ValueError covers configs.ConfigError and the one-line checks in models and trainers.
USER_ERRORS = (DataError, HParamsError, RunDirError, StrategyError, NonFiniteLossError,
               ValueError)


def run(main):
  """absl.app.run(main), printing `error: <message>` and exiting 1 on a user error."""

  def guarded(argv):
    try:
      return main(argv)
    except USER_ERRORS as e:
      logging.debug('%s', traceback.format_exc())
      message = ' '.join(str(e).split()) or type(e).__name__
      print(f'error: {message}', file=sys.stderr)
      sys.exit(1)

  app.run(guarded)
