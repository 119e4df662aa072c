"""The command line as a new user meets it, in process: --help (every flag, exit 0), one-line
user errors (exit 1) against bugs with their traceback (exit 2), "did you mean", plain log
lines, progress without compilation in its rate, beta with beta_rate = 0, the run directory
remembering where its data is, and TensorFlow's start-up chatter filtered."""

import io
import json
import logging as std_logging
import math
import os
import subprocess
import sys
import types

from absl import flags
import pytest
import tensorflow as tf

from tfvae import cli
from tfvae import configs
from tfvae import hooks
from tfvae import images
from tfvae import quiet
from tfvae import strategies
from tfvae import trained_model
from tfvae import training
from tfvae.cli import evaluate
from tfvae.cli import export
from tfvae.cli import sample
from tfvae.cli import train
from tfvae.errors import UserError
from tfvae.model import beta_schedule
from tfvae.run_dir import Run
from tfvae.run_dir import RunDir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = {'train': train, 'evaluate': evaluate, 'sample': sample, 'export': export}
DATA_FLAGS = ('--dataset', '--data_dir', '--cache_dir')
# Flags a user needs from each tool's --help, beyond the data flags of the first three.
NEEDED = {'train': ('--config', '--hparams', '--run_dir', '--num_steps', '--mode',
                    '--strategy', '--export_dir', '--max_train_minutes'),
          'evaluate': ('--run_dir', '--saved_model', '--num_importance_samples', '--split'),
          'sample': ('--run_dir', '--output_dir', '--kind', '--num', '--title'),
          'export': ('--run_dir', '--export_dir', '--[no]tflite', '--checkpoint')}


def _run(module, *args):
  """(exit status, stdout, stderr) of cli.run(module) with args, in this process."""
  out, err = io.StringIO(), io.StringIO()
  saved = sys.stdout, sys.stderr
  sys.stdout, sys.stderr = out, err
  try:
    cli.run(module, [f'bin/{module.__name__}.py', *args])
    status = 0
  except SystemExit as e:
    status = e.code or 0
  finally:
    sys.stdout, sys.stderr = saved
  return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize('name', sorted(TOOLS))
def test_help_lists_every_flag_a_user_needs_and_exits_0(name):
  status, out, err = _run(TOOLS[name], '--help')
  assert status == 0 and not err
  for flag in NEEDED[name] + (DATA_FLAGS if name != 'export' else ()):
    assert f'\n  {flag}' in out, flag
  assert ('configs:' in out) == (name == 'train')
  if name == 'train':
    assert all(config in out for config in configs.CONFIG_MAP)
  assert '--verbosity' not in out and '--helpfull' not in out  # absl's own are no tool's
  assert _run(TOOLS[name], '-h')[:2] == (0, out)


def test_flag_choices_written_out_for_a_quick_help_are_the_library_s():
  assert train.STRATEGIES == strategies.STRATEGIES
  assert train.DEFAULT_DATA_MEMORY_MB == training.DEFAULT_DATA_MEMORY_MB
  assert sample.KINDS == images.KINDS
  assert sample.INTERPOLATION_METHODS == trained_model.INTERPOLATION_METHODS


def test_the_four_tools_live_side_by_side_in_one_process():
  names = [set(module.FLAGS) for module in TOOLS.values()]
  assert set.intersection(*names) >= {'run_dir'}  # the same name in each, no clash
  assert all(module.FLAGS is not flags.FLAGS for module in TOOLS.values())


def _tool(main):
  """A tool module whose main is `main`."""
  module = types.ModuleType('fake_tool', 'A fake tool.')
  module.FLAGS = flags.FlagValues()
  flags.DEFINE_integer('n', 1, 'A number.', flag_values=module.FLAGS)
  module.main = main
  return module


def test_a_user_error_is_one_line_with_status_1_and_a_bug_its_traceback_with_status_2():
  def user_error():
    raise UserError('n is wrong; give a better n')

  def bug():
    raise ValueError('shapes (2,) and (3,) not aligned')

  status, out, err = _run(_tool(user_error), '--n=2')
  assert (status, out, err) == (cli.USER_ERROR, '', 'error: n is wrong; give a better n\n')
  status, _, err = _run(_tool(bug))
  assert status == cli.BUG == 2
  assert 'Traceback (most recent call last)' in err and 'not aligned' in err
  assert err.strip().splitlines()[-1].startswith('error: the above is a bug')


@pytest.mark.parametrize('args, message', [
    (['--n=x'], "error: flag --n=x: invalid literal for int() with base 10: 'x'; see --help"),
    (['--m=1'], "error: Unknown command line flag 'm'"),
    (['stray'], "error: unexpected arguments ['stray']; flags look like --name=value"),
])
def test_bad_flags_and_stray_arguments_are_user_errors(args, message):
  status, _, err = _run(_tool(lambda: None), *args)
  assert status == cli.USER_ERROR and err.startswith(message) and err.count('\n') == 1


def test_did_you_mean_for_configs_and_hparams(tmp_path):
  status, _, err = _run(train, '--config=mnist_cf', f'--run_dir={tmp_path / "run"}')
  assert status == 1
  assert err.startswith("error: unknown config 'mnist_cf' (did you mean 'mnist_fc'?); valid")
  status, _, err = _run(train, '--config=mnist_fc', '--hparams=zsize=2',
                        f'--run_dir={tmp_path / "run"}')
  assert status == 1 and "unknown hparam 'zsize' (did you mean 'z_size'?)" in err
  status, _, err = _run(train, '--config=mnist_fc', '--hparams=z_size=2.5',
                        f'--run_dir={tmp_path / "run"}')
  assert status == 1 and "hparam 'z_size' wants an integer, got '2.5'" in err
  assert not os.path.exists(tmp_path / 'run')  # nothing written


def test_log_lines_are_plain_and_library_info_is_left_out():
  cli._log_plainly()  # pylint: disable=protected-access
  handler = next(h for h in std_logging.getLogger().handlers
                 if isinstance(h.formatter, cli._Plain))  # pylint: disable=protected-access

  def shown(level, message, pathname):
    record = std_logging.LogRecord('absl', level, pathname, 1, message, (), None)
    return handler.formatter.format(record) if handler.filter(record) else None

  ours = os.path.join(ROOT, 'tfvae', 'hooks.py')
  theirs = os.path.join('site-packages', 'tensorflow', 'python', 'checkpoint', 'x.py')
  tfds = os.path.join('site-packages', 'tensorflow_datasets', 'core', 'utils', 'file_utils.py')
  assert shown(std_logging.INFO, 'step 5/10  loss 1.000', ours) == 'step 5/10  loss 1.000'
  assert shown(std_logging.WARNING, 'cannot read x', ours) == 'warning: cannot read x'
  assert shown(std_logging.INFO, 'Sharding callback', theirs) is None
  assert shown(std_logging.WARNING, 'deprecated', theirs) == 'warning: deprecated'
  assert shown(std_logging.WARNING, 'Variant folder /d/mnist/3.0.1 has no dataset_info.json',
               tfds) is None


def test_start_up_noise_is_filtered_from_file_descriptor_2(capfd):
  with quiet.filtered_stderr():
    os.write(2, b'I0000 00:00:1 1 port.cc:153] oneDNN custom operations are on. You may...\n'
                b'E0000 00:00:1 1 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n'
                b'something the user must see\n')
  assert capfd.readouterr().err == 'something the user must see\n'


class _Trainer:
  """What Progress reads of a Trainer."""

  def __init__(self):
    self.step = 0
    self.hparams = types.SimpleNamespace(batch_size=10, grad_skip_threshold=1000.0)


def _metrics(beta, skipped=0.0):
  return {'loss': 1.0, 'elbo': -1.0, 'losses/kl_bits': 2.0, 'losses/kl_beta': beta,
          'skipped_updates': skipped}


def test_progress_rate_leaves_out_the_compiling_call(caplog):
  progress = hooks.Progress(tf.summary.create_noop_writer(), every_n_steps=1, num_steps=4)
  trainer = _Trainer()
  with caplog.at_level(std_logging.INFO):
    for steps in (1, 1, 2):  # the first call compiles
      trainer.step += steps
      progress.after_steps(trainer, steps, _metrics(1.0))
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith('step')]
  assert lines[0] == 'step 1/4  loss 1.000  elbo -1.000  kl 2.00 bits  beta 1.000'
  assert all('examples/sec' in line and line.endswith(' left') for line in lines[1:])
  assert len(lines) == 3


def test_progress_says_how_many_updates_were_skipped(caplog):
  progress = hooks.Progress(tf.summary.create_noop_writer(), every_n_steps=5, num_steps=10)
  trainer = _Trainer()
  with caplog.at_level(std_logging.INFO):
    for skipped in (2.0, 0.0):
      trainer.step += 5
      progress.after_steps(trainer, 5, _metrics(1.0, skipped))
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith('step')]
  assert '  2 of 5 updates skipped (gradient norm not finite or above ' \
         'grad_skip_threshold=1000)' in lines[0]
  assert 'skipped' not in lines[1]


def test_beta_is_max_beta_at_every_step_without_warm_up():
  assert [float(beta_schedule(step, 0.0, 2.0)) for step in (0, 1, 100)] == [2.0, 2.0, 2.0]
  assert float(beta_schedule(0, 0.5, 1.0)) == 0.0  # a warm-up still starts at 0
  assert math.isclose(float(beta_schedule(2, 0.5, 1.0)), 0.75)


def test_a_run_directory_remembers_its_data_dir_and_cache_dir(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  run_dir = RunDir('run')
  assert run_dir.data_location(None, None) == (None, None)  # a new run: the defaults
  config = configs.get_config('binarized_mnist_fc')
  run_dir.save(Run(config, config.hparams, (28, 28, 1), data_dir='data', cache_dir='cache'))
  record = json.load(open(tmp_path / 'run' / 'config.json'))
  assert (record['data_dir'], record['cache_dir']) == (str(tmp_path / 'data'),
                                                      str(tmp_path / 'cache'))
  assert run_dir.data_location(None, None) == (str(tmp_path / 'data'), str(tmp_path / 'cache'))
  assert run_dir.data_location('/elsewhere', None) == ('/elsewhere', str(tmp_path / 'cache'))
  assert run_dir.load().data_dir == str(tmp_path / 'data')


@pytest.mark.e2e
def test_help_imports_no_tensorflow_and_import_tfvae_is_quiet():
  code = ('import sys\nfrom tfvae.cli import train\nfrom tfvae import cli\n'
          'try:\n  cli.run(train, ["train", "--help"])\nexcept SystemExit as e:\n'
          '  assert e.code == 0\nassert "tensorflow" not in sys.modules, "imported"\n')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
  assert result.returncode == 0 and '--data_dir' in result.stdout, result.stderr
  code = 'import tfvae.trained_model\nimport tensorflow as tf\ntf.zeros(1).numpy()\n'
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env=env)
  assert result.returncode == 0 and result.stderr == '', result.stderr
