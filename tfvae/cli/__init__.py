"""The command-line tools (tfvae-train, tfvae-evaluate, tfvae-sample, tfvae-export, and the
bin/*.py scripts that call them): what they share.

- `run(module)`: absl.app.run of the tool's `main`, with its flags and the list of configs in
  --help, TensorFlow's C++ start-up chatter kept out of the terminal, and every user error
  (a bad flag value, config, hparam, dataset or checkpoint) printed as one `error: ...` line
  with exit code 1, never a traceback.
- The flags that choose data, defined the same way for every tool.
"""

import contextlib
import logging as std_logging
import os
import re
import sys
import tempfile
import textwrap
import traceback

# Before TensorFlow is imported: its C++ INFO and WARNING lines are not for the user.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# Lines TensorFlow's C++ runtime writes at start-up on machines without a GPU driver, or
# about CPU instructions it could use: not the user's business.
_STARTUP_NOISE = re.compile(
    r'All log messages before absl::InitializeLog|cudart_stub|cuda_platform.cc|'
    r'Could not find cuda drivers|failed call to cuInit|cpu_feature_guard|'
    r'To enable the following instructions|rebuild TensorFlow with the appropriate compiler')


@contextlib.contextmanager
def _quiet_stderr():
  """Captures what is written to file descriptor 2 inside the block (C++ code included) and
  writes back only the lines that are not known start-up noise."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode='w+b') as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      for line in captured.read().decode('utf-8', 'replace').splitlines():
        if not _STARTUP_NOISE.search(line):
          print(line, file=sys.stderr)


def start_tensorflow():
  """Imports TensorFlow and initialises its devices with the start-up chatter filtered."""
  if os.environ.get('TF_CPP_MIN_LOG_LEVEL') != '2':  # the user asked to see it
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf
  with _quiet_stderr():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    tf.config.list_physical_devices()
  return tf


start_tensorflow()

from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position
from absl import logging  # pylint: disable=wrong-import-position

from tfvae import configs  # pylint: disable=wrong-import-position
from tfvae.checkpoints import CheckpointError  # pylint: disable=wrong-import-position
from tfvae.data import DataError  # pylint: disable=wrong-import-position
from tfvae.hparams import HParamsError  # pylint: disable=wrong-import-position
from tfvae.run_dir import RunDirError  # pylint: disable=wrong-import-position
from tfvae.strategies import StrategyError  # pylint: disable=wrong-import-position
from tfvae.training import NonFiniteLossError  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS

# ValueError covers configs.ConfigError and the one-line checks in models and trainers.
USER_ERRORS = (DataError, HParamsError, RunDirError, StrategyError, NonFiniteLossError,
               CheckpointError, ValueError)


def _not_library_info(record):
  """False for INFO lines that TensorFlow's and Keras's own modules log through absl (e.g.
  about checkpoint sharding): they are not the tool's progress."""
  library = f'{os.sep}tensorflow{os.sep}' in record.pathname or (
      f'{os.sep}keras{os.sep}' in record.pathname)
  return record.levelno >= std_logging.WARNING or not library


def define_data_flags():
  """--dataset, --data_dir and --cache_dir, as every tool has them."""
  flags.DEFINE_string('dataset', None, 'Dataset spec overriding the config\'s (or the run\'s): '
                      'a built-in (mnist, fashion_mnist, binarized_mnist, frey_face), '
                      'tfds:NAME[/CONFIG][:VERSION], folder:PATH, npz:PATH or npy:PATH.')
  flags.DEFINE_string('data_dir', None, 'Built-ins: the folder holding the raw dataset files '
                      '(e.g. ../shared/data); tfds: the TFDS data dir. Default: download '
                      'through TFDS.')
  flags.DEFINE_string('cache_dir', None, 'Where prepared datasets are kept (default '
                      '$TFVAE_CACHE_DIR or ~/.cache/tfvae).')


def configs_help():
  """The named configs and what each is, for --help."""
  width = max(map(len, configs.CONFIG_MAP)) + 4
  lines = [textwrap.fill(config.description, 100, initial_indent=f'  {name:<{width - 2}}',
                         subsequent_indent=' ' * width)
           for name, config in sorted(configs.CONFIG_MAP.items())]
  return 'configs:\n' + '\n'.join(lines) + '\n'


def _one_line(exc):
  return ' '.join(str(exc).split()) or type(exc).__name__


def run(module):
  """absl.app.run(module.main): --help shows module's docstring, its flags and the configs;
  a user error prints `error: <message>` and exits 1; Ctrl-C outside training exits 130."""
  main_module = sys.modules['__main__']
  main_module.__doc__ = (module.__doc__ or '') + '\n' + configs_help()
  for flag in FLAGS.flags_by_module_dict().get(module.__name__, []):
    FLAGS.register_key_flag_for_module(sys.argv[0], flag)

  def guarded(argv):
    if len(argv) > 1:
      print(f'error: unexpected arguments {argv[1:]}; flags look like --name=value',
            file=sys.stderr)
      sys.exit(1)
    try:
      return module.main()
    except USER_ERRORS as e:
      logging.debug('%s', traceback.format_exc())
      print(f'error: {_one_line(e)}', file=sys.stderr)
      sys.exit(1)
    except KeyboardInterrupt:
      print('error: interrupted', file=sys.stderr)
      sys.exit(130)

  logging.get_absl_handler().addFilter(_not_library_info)
  app.run(guarded)
