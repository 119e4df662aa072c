"""The command-line tools (tfvae-train, tfvae-evaluate, tfvae-sample, tfvae-export, and the
bin/*.py scripts that call them): what they share.

Each tool is a module with its own absl FlagValues `FLAGS` (so the four import side by side,
e.g. in one test process) and a `main()` that reads them; importing a tool imports no
TensorFlow, so --help answers at once. `run(module)`:

- --help (or -h, --helpfull) prints the tool's docstring, every flag it takes and, for the
  trainer, the named configs; exit status 0;
- parses the flags (a bad flag is one `error:` line, status 1) and calls `main()`;
- logs plainly: progress lines as they are, warnings as `warning: ...`, without absl's
  prefixes and without TensorFlow's and other libraries' INFO lines;
- a user error (tfvae.errors.UserError) is one `error: ...` line, status 1; Ctrl-C outside
  training is status 130; anything else is a bug: its traceback and status 2.
"""

import logging as std_logging
import os
import sys
import textwrap
import traceback

from absl import flags
from absl import logging

from tfvae import configs
from tfvae import quiet
from tfvae.errors import UserError

USER_ERROR, BUG, INTERRUPTED = 1, 2, 130  # exit statuses
HELP_ARGS = ('--help', '-help', '-h', '-?', '--helpshort', '--helpfull')
WIDTH = 100  # of the help text

# Packages whose INFO lines are not the tool's progress (a path component of their files).
_LIBRARIES = {'tensorflow', 'keras', 'tf_keras', 'tensorflow_datasets', 'tensorflow_probability',
              'absl'}


def define_data_flags(flag_values):
  """--dataset, --data_dir and --cache_dir, as every tool has them, in `flag_values`."""
  flags.DEFINE_string('dataset', None, 'Dataset spec overriding the config\'s (or the run\'s): '
                      'a built-in (mnist, fashion_mnist, binarized_mnist, frey_face), '
                      'tfds:NAME[/CONFIG][:VERSION], folder:PATH, npz:PATH or npy:PATH.',
                      flag_values=flag_values)
  flags.DEFINE_string('data_dir', None, 'Built-ins: the folder holding the raw dataset files '
                      '(e.g. ../shared/data); tfds: the TFDS data dir. Default: the one the '
                      'run was trained with, else download through TFDS.',
                      flag_values=flag_values)
  flags.DEFINE_string('cache_dir', None, 'Where prepared datasets are kept. Default: the one '
                      'the run was trained with, else $TFVAE_CACHE_DIR or ~/.cache/tfvae.',
                      flag_values=flag_values)


def _flag_help(flag):
  """One flag for --help: its name and default, then its help indented below."""
  head = f'  --[no]{flag.name}' if flag.boolean else f'  --{flag.name}'
  default = flag.default
  if isinstance(default, bool):
    head += f' (default {str(default).lower()})'
  elif isinstance(default, str):
    head += f' (default {default!r})'
  elif default not in (None, []):
    head += f' (default {default:g})' if isinstance(default, float) else f' (default {default})'
  return head + '\n' + textwrap.fill(' '.join(flag.help.split()), WIDTH,
                                     initial_indent=' ' * 6, subsequent_indent=' ' * 6)


def configs_help():
  """The named configs and what each is, for --help."""
  width = max(map(len, configs.CONFIG_MAP)) + 4
  lines = [textwrap.fill(config.description, WIDTH, initial_indent=f'  {name:<{width - 2}}',
                         subsequent_indent=' ' * width)
           for name, config in sorted(configs.CONFIG_MAP.items())]
  return 'configs:\n' + '\n'.join(lines)


def usage(module):
  """A tool's --help: its docstring, its flags in the order defined, and (for a tool with a
  --config flag) the named configs."""
  flag_values = module.FLAGS
  names = [name for name in flag_values  # absl's own (logging, help) when FLAGS is absl's
           if not flag_values.find_module_defining_flag(name, '').startswith('absl.')]
  parts = [(module.__doc__ or '').strip(),
           'flags:\n' + '\n'.join(_flag_help(flag_values[name]) for name in names)]
  if 'config' in flag_values:
    parts.append(configs_help())
  return '\n\n'.join(parts) + '\n'


class _Plain(std_logging.Formatter):
  """INFO lines as they are, warnings and errors with their level: 'warning: ...'."""

  def format(self, record):
    message = super().format(record)
    if record.levelno >= std_logging.WARNING:
      return f'{record.levelname.lower()}: {message}'
    return message


class _StderrHandler(std_logging.StreamHandler):
  """Writes to whatever sys.stderr is when a record comes (a test or a notebook may swap it)."""

  def __init__(self):
    super().__init__(sys.stderr)

  @property
  def stream(self):
    return sys.stderr

  @stream.setter
  def stream(self, value):
    del value


def _not_library_info(record):
  """False for INFO lines that TensorFlow, Keras, TFDS and co. log (e.g. about checkpoint
  sharding or dataset folders): they are not the tool's progress."""
  library = _LIBRARIES & set(os.path.normpath(record.pathname).split(os.sep))
  return record.levelno >= std_logging.WARNING or not library


def _log_plainly():
  """One handler on the root logger writing _Plain lines to stderr, for absl's logger (at
  INFO) and TensorFlow's (whose own handler, added when it was imported before, goes).
  Done once per process."""
  root = std_logging.getLogger()
  if not any(isinstance(h.formatter, _Plain) for h in root.handlers):
    handler = _StderrHandler()
    handler.setFormatter(_Plain())
    handler.addFilter(_not_library_info)
    handler.addFilter(quiet.TFDS_FILTER)
    root.addHandler(handler)
  tensorflow = std_logging.getLogger('tensorflow')
  for handler in list(tensorflow.handlers):
    tensorflow.removeHandler(handler)
  logging.set_verbosity(logging.INFO)


def _one_line(exc):
  return ' '.join(str(exc).split()) or type(exc).__name__


def _exit(status, message=None):
  if message:
    print(message, file=sys.stderr, flush=True)
  sys.exit(status)


def run(module, argv=None):
  """Runs a tool: `module.FLAGS` parsed from argv (default sys.argv), then `module.main()`;
  see the module docstring for --help, logging and the exit statuses."""
  argv = list(sys.argv if argv is None else argv)
  if any(arg in HELP_ARGS for arg in argv[1:]):
    print(usage(module), end='', flush=True)
    sys.exit(0)
  _log_plainly()
  if module.FLAGS.is_parsed():  # a tool run again in one process starts from its defaults
    module.FLAGS.unparse_flags()
  try:
    rest = module.FLAGS(argv)
  except flags.Error as e:
    _exit(USER_ERROR, f'error: {_one_line(e)}; see --help')
  if len(rest) > 1:
    _exit(USER_ERROR, f'error: unexpected arguments {rest[1:]}; flags look like --name=value')
  try:
    module.main()
  except UserError as e:
    _exit(USER_ERROR, f'error: {_one_line(e)}')
  except KeyboardInterrupt:
    _exit(INTERRUPTED, 'error: interrupted')
  except Exception:  # pylint: disable=broad-except
    traceback.print_exc()
    _exit(BUG, 'error: the above is a bug in tfvae (or in a library it uses), not something '
          'you did wrong; please report it with the command you ran')
