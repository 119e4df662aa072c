"""TensorFlow's start-up chatter kept out of the terminal, for the tools and for `import tfvae`.

TensorFlow's C++ runtime writes lines at start-up that are not the user's business: absl's
"All log messages before absl::InitializeLog() ...", oneDNN's notice, CUDA probing on machines
without a GPU (cudart_stub, cuInit), CPU-instruction notices. TF_CPP_MIN_LOG_LEVEL does not
reach the ones written before absl's log is initialised, so `install()` (run first thing by
`import tfvae`) also wraps the first import of tensorflow: while it runs, and while TensorFlow
first lists its devices, what is written to file descriptor 2 is captured and written back
without those lines. TensorFlow Datasets' warnings about its own cache folders ("Variant folder
... has no dataset_info.json") are filtered from the handlers that print absl's log.
TF_CPP_MIN_LOG_LEVEL=0 in the environment shows everything.
"""

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile

from absl import logging as absl_logging

# What TensorFlow's C++ runtime writes at start-up that is noise to the user.
STARTUP_NOISE = re.compile(
    r'All log messages before absl::InitializeLog|oneDNN custom operations are on|'
    r'cudart_stub|cuda_platform.cc|Could not find cuda drivers|failed call to cuInit|'
    r'cpu_feature_guard|To enable the following instructions|'
    r'rebuild TensorFlow with the appropriate compiler')

# absl log messages of TensorFlow Datasets about folders it merely looked into.
TFDS_NOISE = re.compile(r'Variant folder .* has (no |invalid version)')


def wanted():
  """Whether the chatter is to be filtered: unless the user set TF_CPP_MIN_LOG_LEVEL=0."""
  return os.environ.get('TF_CPP_MIN_LOG_LEVEL') != '0'


@contextlib.contextmanager
def filtered_stderr(noise=STARTUP_NOISE):
  """Captures what is written to file descriptor 2 inside the block (C++ code included) and
  writes back the lines that `noise` does not match."""
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
      kept = [line for line in captured.read().decode('utf-8', 'replace').splitlines()
              if not noise.search(line)]
      if kept:
        print('\n'.join(kept), file=sys.stderr, flush=True)


class _QuietLoader(importlib.abc.Loader):
  """Runs tensorflow's own loader inside filtered_stderr, then lists its devices (which probes
  CUDA) there too; hands the module its own loader back."""

  def __init__(self, loader):
    self._loader = loader

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    module.__loader__ = module.__spec__.loader = self._loader
    with filtered_stderr():
      self._loader.exec_module(module)
      module.config.list_physical_devices()


class _QuietImport(importlib.abc.MetaPathFinder):
  """Finds tensorflow as the other finders do, the first time only, with _QuietLoader."""

  def find_spec(self, name, path=None, target=None):
    del path, target
    if name != 'tensorflow':
      return None
    sys.meta_path.remove(self)
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.loader is not None:
      spec.loader = _QuietLoader(spec.loader)
    return spec


_installed = False


class _DropMatching(logging.Filter):
  """Drops log records whose message `pattern` matches."""

  def __init__(self, pattern):
    super().__init__()
    self._pattern = pattern

  def filter(self, record):
    return not self._pattern.search(record.getMessage())


TFDS_FILTER = _DropMatching(TFDS_NOISE)


def install():
  """Sets TF_CPP_MIN_LOG_LEVEL=2 (C++ errors only) unless the user set it, filters
  TensorFlow's start-up lines when it is first imported (if it is not yet), and TFDS's
  folder warnings; does nothing more when called again."""
  global _installed
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  if _installed or not wanted():
    return
  _installed = True
  if 'tensorflow' not in sys.modules:
    sys.meta_path.insert(0, _QuietImport())
  # On the handlers that print absl's records when no other is set up (a filter on absl's
  # logger itself would make it report its own file as every record's caller).
  for handler in (logging.lastResort, absl_logging.get_absl_handler()):
    handler.addFilter(TFDS_FILTER)
