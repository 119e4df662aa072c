"""Your own images through the tools: a TFDS dataset, a folder of PNG and JPEG files and
npz/npy arrays trained by bin/train.py (conv_vae), then bin/evaluate.py, bin/sample.py,
bin/export.py and a TrainedModel round trip; the streaming input path (the same weights as in
memory, an exact resume after a stop signal, the same losses on 2 replicas); and bad input,
which ends in one `error:` line.

The fast tier runs the tools' entry points in this process (conftest.run_tool): bad input, one
source through every tool, and the streaming path on a short run. The e2e tier makes the runs
of every source once for the module as bin/<tool>.py subprocesses, a few at a time (each
stage's commands are independent); evaluate and sample on sources other than TFDS run the
tool's own entry point case after case in one process per tool, as a TensorFlow start-up per
case would cost more than the case.
"""

import concurrent.futures
import functools
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorboard.backend.event_processing import event_accumulator

from conftest import run_tool
from conftest import signal_during_training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARALLEL = 3  # subprocesses at once
SMALL = 'hidden_sizes=[16],conv_filters=[4,8],z_size=2,batch_size=8,num_mixtures=2'
TRAIN_FLAGS = ['--config=conv_vae', '--log_every_n_steps=10', '--steps_per_loop=4',
               '--image_every_n_steps=0']
NUM_STEPS = 20          # the runs of each source
STREAM_STEPS = 160      # the streaming comparisons: 8 epochs of 20 steps, blocks of <= 4
STREAM_MEMORY_MB = '0.04'  # below the npy training split (160 images 10x10x3: 46.9 KiB)

tfds.disable_progress_bar()


class TfvaeOwnColours(tfds.core.GeneratorBasedBuilder):
  """40 train and 8 test RGB images 10x12, a colour ramp per example, labels id % 2."""

  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'image': tfds.features.Image(shape=(10, 12, 3)),
        'label': tfds.features.ClassLabel(num_classes=2)}))

  def _split_generators(self, dl_manager):
    return {'train': self._generate_examples(0, 40), 'test': self._generate_examples(40, 8)}

  def _generate_examples(self, first_id, count):
    for i in range(first_id, first_id + count):
      yield i, {'image': _pattern(i, (10, 12, 3)), 'label': i % 2}


class TfvaeOwnNoImages(tfds.core.GeneratorBasedBuilder):
  """3 train examples with a vector feature and no image."""

  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'vector': tfds.features.Tensor(shape=(3,), dtype=np.float32)}))

  def _split_generators(self, dl_manager):
    return {'train': self._generate_examples()}

  def _generate_examples(self):
    for i in range(3):
      yield i, {'vector': np.zeros(3, np.float32)}


def _pattern(i, shape):
  """uint8 [h, w, c]: a diagonal ramp whose slope and colour depend on i, with a little noise."""
  height, width, channels = shape
  rows, cols = np.mgrid[:height, :width]
  ramp = (rows * (1 + i % 3) + cols * (1 + i % 5)) * 255.0 / (height * 3 + width * 5)
  tint = np.array([1.0, 0.6 + 0.1 * (i % 4), 0.3 + 0.2 * (i % 3)])[:channels]
  noise = np.random.RandomState(i).randint(0, 20, shape)
  return np.clip(ramp[..., None] * tint + noise, 0, 255).astype(np.uint8)


def _write_image(path, array):
  """Writes uint8 [h, w, c] as a PNG, or a JPEG when path ends in .jpg/.jpeg."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  encode = tf.io.encode_jpeg if path.lower().endswith(('.jpg', '.jpeg')) else tf.io.encode_png
  tf.io.write_file(path, encode(tf.constant(array)))


def _tool(name, *args):
  return [sys.executable, os.path.join(ROOT, 'bin', f'{name}.py'), *args]


def _run(command, timeout=300):
  """(returncode, stdout + stderr) of a command run from the repository root."""
  result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
  return result.returncode, result.stdout + result.stderr


def _run_all(jobs):
  """{name: its result}, the jobs (functions of no arguments, or commands for _run) run
  PARALLEL at a time."""
  with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
    futures = {name: pool.submit(job) if callable(job) else pool.submit(_run, job)
               for name, job in jobs.items()}
    return {name: future.result() for name, future in futures.items()}


def _stopped_by_sigterm(command, after='step 10/'):
  """Runs a training command, sends SIGTERM once its log has `after`; (returncode, output)."""
  proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
  lines = []
  try:
    for line in proc.stdout:
      lines.append(line)
      if after in line:
        proc.send_signal(signal.SIGTERM)
        break
    lines.append(proc.communicate(timeout=120)[0])
  finally:
    proc.kill()
  return proc.returncode, ''.join(lines)


def _last_json(out):
  """The last line of `out` that is a JSON object, parsed."""
  return json.loads(next(line for line in reversed(out.splitlines()) if line.startswith('{')))


def _losses(run_dir):
  """{step: loss} of the TensorBoard `loss` scalars under run_dir/train."""
  acc = event_accumulator.EventAccumulator(os.path.join(run_dir, 'train'),
                                           size_guidance={'tensors': 0})
  acc.Reload()
  return {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors('loss')}


def _variables(checkpoint_prefix):
  reader = tf.train.load_checkpoint(checkpoint_prefix)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
          if name != '_CHECKPOINTABLE_OBJECT_GRAPH' and not name.startswith('save_counter')}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
  """{name: path}: a TFDS data dir, image folders and arrays, and the cache folder."""
  root = tmp_path_factory.mktemp('own_images')
  paths = {'tfds': str(root / 'tfds'), 'cache': str(root / 'cache')}
  for builder_class in (TfvaeOwnColours, TfvaeOwnNoImages):
    builder_class(data_dir=paths['tfds']).download_and_prepare()
  # 36 images in two class folders: PNG and JPEG, greyscale and RGB, four odd sizes.
  paths['folder'] = str(root / 'folder')
  sizes = [(11, 13), (13, 11), (15, 17), (12, 10)]
  for i in range(36):
    name = f'{["rings", "stripes"][i % 2]}/{i:02d}.{"jpg" if i % 3 == 0 else "png"}'
    shape = sizes[i % 4] + ((1,) if i % 5 == 0 else (3,))
    _write_image(os.path.join(paths['folder'], name), _pattern(i, shape))
  paths['corrupt'] = str(root / 'corrupt')
  for i in range(3):
    _write_image(os.path.join(paths['corrupt'], f'{i}.png'), _pattern(i, (8, 8, 3)))
  with open(os.path.join(paths['corrupt'], 'broken.png'), 'wb') as f:
    f.write(b'\x89PNG\r\n\x1a\n not an image')
  os.makedirs(root / 'empty' / 'sub')
  (root / 'empty' / 'sub' / 'notes.txt').write_text('no images here')
  paths['empty'] = str(root / 'empty')
  # npz: greyscale [N, 12, 10] splits with labels; npy: RGB [200, 12, 10, 3], carved.
  grey = np.stack([_pattern(i, (12, 10, 1))[..., 0] for i in range(44)])
  paths['npz'] = str(root / 'grey.npz')
  np.savez(paths['npz'], train=grey[:32], train_labels=np.arange(32) % 4, valid=grey[32:38],
           valid_labels=np.arange(6) % 4, test=grey[38:], test_labels=np.arange(6) % 4)
  paths['npy'] = str(root / 'colour.npy')
  np.save(paths['npy'], np.stack([_pattern(i, (12, 10, 3)) for i in range(200)]))
  for name, array in (('wrong_rank', np.zeros((6, 120), np.uint8)),
                      ('floats', np.zeros((6, 12, 10), np.float32))):
    paths[name] = str(root / f'{name}.npy')
    np.save(paths[name], array)
  paths['runs'] = str(root / 'runs')
  return paths


# name: (dataset spec, extra hparams, uses --data_dir, image shape the model takes). The npy
# run, trained in memory for STREAM_STEPS, is also the reference of the streaming runs.
SOURCES = {
    'tfds': ('tfds:tfvae_own_colours', 'image_size=8', True, (8, 8, 3)),
    'folder_rgb': ('folder:{folder}', 'image_size=9,channels=3', False, (9, 9, 3)),
    'folder_grey': ('folder:{folder}', 'image_size=9,channels=1,likelihood=bernoulli,'
                    'binarize=true', False, (9, 9, 1)),
    'npz': ('npz:{npz}', 'image_size=8', False, (8, 8, 1)),
    'npy': ('npy:{npy}', 'image_size=10', False, (10, 10, 3)),
}
STEPS = dict({name: NUM_STEPS for name in SOURCES}, npy=STREAM_STEPS)
STREAM = ('--data_memory_mb=' + STREAM_MEMORY_MB,)
TWO_REPLICAS = ('--strategy=mirrored', '--num_cpu_devices=2')
# case: (bin/train.py flags, texts its error line must hold), formatted with the data paths.
BAD_INPUT = {
    'empty folder': (['--dataset=folder:{empty}'], ['{empty}', '.png']),
    'corrupt png': (['--dataset=folder:{corrupt}'], ['{corrupt}/broken.png', 'cannot decode']),
    'mixed sizes': (['--dataset=folder:{folder}', '--hparams=channels=3'],
                    ['image_size=N', '{folder}/rings/00.jpg is 11x13x1']),
    'unknown tfds name': (['--dataset=tfds:tfvae_no_such_dataset', '--data_dir={tfds}'],
                          ["'tfvae_no_such_dataset'", '{tfds}']),
    'tfds without images': (['--dataset=tfds:tfvae_own_no_images', '--data_dir={tfds}'],
                            ['no image feature', 'vector']),
    'npy of the wrong rank': (['--dataset=npy:{wrong_rank}'], ['{wrong_rank}', '(6, 120)']),
    'npy of floats': (['--dataset=npy:{floats}'], ['{floats}', 'float32']),
    'conv_vae without a dataset': ([], ['--dataset=folder:PATH']),
    'binarize on RGB': (['--dataset=npy:{npy}', '--hparams=binarize=true'],
                        ['binarize', '3 channels', 'npy:{npy}']),
    'malformed spec': (['--dataset=bogus:x'], ["'bogus:x'", 'folder:PATH']),
}
SUBPROCESS_CASE = 'malformed spec'  # e2e: run as bin/train.py (the fast tier runs them all)

# Runs a tool's entry point (tfvae.cli.<tool>.run, what bin/<tool>.py runs) once per case in
# one process (a TensorFlow start-up per case costs more than the case): prints {case: [exit
# code, what it printed]}, the exit code 'raised' (and a traceback printed) if the tool raised.
TOOL_DRIVER = """
import contextlib, importlib, io, json, sys, traceback
name, cases = sys.argv[1], json.loads(sys.argv[2])
tool = importlib.import_module('tfvae.cli.' + name)
results = {}
for case, argv in cases.items():
  sys.argv = [f'bin/{name}.py'] + argv
  tool.FLAGS.unparse_flags()
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
    try:
      tool.run()
      code = 0
    except SystemExit as exit_:
      code = exit_.code or 0
    except BaseException:
      traceback.print_exc()
      code = 'raised'
  results[case] = [code, printed.getvalue()]
print(json.dumps(results))
"""


def _in_one_process(tool, argvs):
  """{case: (exit code, what it printed)} of bin/<tool>.py's entry point run with each argv
  of {case: argv} in one process (TOOL_DRIVER)."""
  result = subprocess.run([sys.executable, '-c', TOOL_DRIVER, tool, json.dumps(argvs)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert result.returncode == 0, result.stdout + result.stderr
  return {case: tuple(printed) for case, printed in _last_json(result.stdout).items()}


def _train_command(data, name, run_name=None, num_steps=None, extra=()):
  spec, hparams, uses_data_dir, _ = SOURCES[name]
  return _tool('train', *TRAIN_FLAGS, f'--dataset={spec.format(**data)}',
               f'--hparams={SMALL},{hparams}', f'--cache_dir={data["cache"]}',
               f'--run_dir={os.path.join(data["runs"], run_name or name)}',
               f'--num_steps={num_steps or STEPS[name]}', *extra,
               *([f'--data_dir={data["tfds"]}'] if uses_data_dir else []))


def _bad_input_args(data, case):
  run_dir = os.path.join(data['runs'], 'bad', case.replace(' ', '_'))
  return ['--config=conv_vae', f'--cache_dir={data["cache"]}', f'--run_dir={run_dir}',
          '--num_steps=1'] + [arg.format(**data) for arg in BAD_INPUT[case][0]]


@pytest.fixture(scope='module')
def runs(data):
  """{name: (returncode, output)}: each source's training run (exported, but for tfds, which
  bin/export.py exports); the npy source streamed for STREAM_STEPS on 1 and 2 replicas, and
  streamed with a stop by SIGTERM ('stopped'); and ('bad', SUBPROCESS_CASE)."""
  jobs = {name: _train_command(
      data, name, extra=() if name == 'tfds' else
      (f'--export_dir={os.path.join(data["runs"], name, "export")}',)) for name in SOURCES}
  jobs.update({
      'streamed': _train_command(data, 'npy', 'streamed', extra=STREAM),
      'two_replicas': _train_command(data, 'npy', 'two_replicas', extra=STREAM + TWO_REPLICAS),
      'stopped': lambda: _stopped_by_sigterm(
          _train_command(data, 'npy', 'stopped', 10**8, STREAM)),
      ('bad', SUBPROCESS_CASE): _tool('train', *_bad_input_args(data, SUBPROCESS_CASE))})
  return _run_all(jobs)


@pytest.fixture(scope='module')
def tools(data, runs):
  """{(source, tool): (exit code, output)} of evaluate and sample on each source's run and
  export on tfds's (for tfds as bin/<tool>.py subprocesses, for the others one process a tool,
  TOOL_DRIVER), and 'resumed': the 'stopped' run resumed to STREAM_STEPS."""
  argvs = {'evaluate': {}, 'sample': {}}
  for name, (_, _, uses_data_dir, _) in SOURCES.items():
    if runs[name][0]:
      continue  # test_train reports it
    run_dir = os.path.join(data['runs'], name)
    data_flags = [f'--cache_dir={data["cache"]}'] + (
        [f'--data_dir={data["tfds"]}'] if uses_data_dir else [])
    argvs['evaluate'][name] = [f'--run_dir={run_dir}', '--num_importance_samples=3',
                               *data_flags]
    argvs['sample'][name] = [f'--run_dir={run_dir}', '--kind=prior', '--kind=reconstruction',
                             '--num=4', f'--output_dir={run_dir}/pictures', *data_flags]
  argvs['export'] = {'tfds': [f'--run_dir={os.path.join(data["runs"], "tfds")}',
                              f'--export_dir={os.path.join(data["runs"], "tfds", "export")}']}
  jobs = {'resumed': _train_command(data, 'npy', 'stopped', extra=STREAM)}
  for tool, by_source in argvs.items():
    if 'tfds' in by_source:
      jobs['tfds', tool] = _tool(tool, *by_source.pop('tfds'))
    if by_source:
      jobs[tool] = functools.partial(_in_one_process, tool, by_source)
  results = _run_all(jobs)
  for tool in argvs:
    results.update({(name, tool): result for name, result in results.pop(tool, {}).items()})
  return results


# Each source end to end.


@pytest.mark.e2e
@pytest.mark.parametrize('name', SOURCES)
def test_train(data, runs, name):
  rc, out = runs[name]
  assert rc == 0, out
  steps = STEPS[name]
  assert f'step {steps}/{steps}' in out and 'streaming' not in out, out
  with open(os.path.join(data['runs'], name, 'config.json'), encoding='utf-8') as f:
    saved = json.load(f)
  assert saved['config'] == 'conv_vae' and tuple(saved['image_shape']) == SOURCES[name][3]
  assert saved['dataset'] == SOURCES[name][0].format(**data)
  expected_likelihood = 'bernoulli' if name == 'folder_grey' else 'logistic_mixture'
  assert saved['hparams']['likelihood'] == expected_likelihood
  losses = _losses(os.path.join(data['runs'], name))
  assert sorted(losses) == list(range(10, steps + 1, 10))
  assert all(map(math.isfinite, losses.values()))


@pytest.mark.e2e
@pytest.mark.parametrize('name', SOURCES)
def test_evaluate(tools, name):
  rc, out = tools[name, 'evaluate']
  assert rc == 0, out
  assert 'bits per dim' in out
  results = _last_json(out)
  assert results['step'] == STEPS[name] and results['num_importance_samples'] == 3
  assert results['num_examples'] > 0 and math.isfinite(results['bits_per_dim'])
  assert results['bits_per_dim'] > 0 and math.isfinite(results['log_likelihood'])


@pytest.mark.e2e
@pytest.mark.parametrize('name', SOURCES)
def test_sample(data, tools, name):
  rc, out = tools[name, 'sample']
  assert rc == 0, out
  channels = SOURCES[name][3][2]
  for kind in ('prior', 'reconstruction'):
    path = os.path.join(data['runs'], name, 'pictures', f'{kind}.png')
    assert f'wrote {path}' in out
    picture = tf.io.decode_png(tf.io.read_file(path)).numpy()
    assert picture.shape[-1] == channels, (kind, picture.shape)
    assert picture.shape[0] > SOURCES[name][3][0]  # a grid of several images
    assert picture.std() > 0


@pytest.mark.e2e
@pytest.mark.parametrize('name', SOURCES)
def test_export_and_trained_model_round_trip(data, runs, tools, name):
  if name == 'tfds':
    rc, out = tools[name, 'export']
    assert rc == 0 and 'wrote ' in out and 'signatures: encode, decode' in out, out
  else:
    assert 'Exported a SavedModel to' in runs[name][1], runs[name][1]
  run_dir = os.path.join(data['runs'], name)
  _check_round_trip(data, name, run_dir, os.path.join(run_dir, 'export'), STEPS[name])


def _check_round_trip(data, name, run_dir, export_dir, steps):
  """The SavedModel in export_dir and the run's checkpoint, loaded as TrainedModels, agree
  on the source's test images."""
  import tfvae  # pylint: disable=import-outside-toplevel
  from tfvae import sources  # pylint: disable=import-outside-toplevel
  exported = tfvae.TrainedModel(saved_model_dir=export_dir)
  restored = tfvae.TrainedModel(run_dir=run_dir)
  shape = SOURCES[name][3]
  assert exported.image_shape == restored.image_shape == shape
  assert exported.step == restored.step == steps
  assert exported.dataset == SOURCES[name][0].format(**data)
  source = sources.for_trained(exported, data_dir=data['tfds'] if SOURCES[name][2] else None,
                               cache_dir=data['cache'])
  batch = np.asarray(source.split('test').images[:3])
  assert batch.dtype == np.uint8 and batch.shape == (3,) + shape
  mean, stddev, z = exported.encode(batch, seed=3)
  assert mean.shape == stddev.shape == z.shape == (3, 2) and np.isfinite(z).all()
  for got, want in zip(restored.encode(batch, seed=3), (mean, stddev, z)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  reconstruction = exported.reconstruct(batch, seed=3)
  np.testing.assert_allclose(restored.reconstruct(batch, seed=3), reconstruction, atol=1e-5)
  assert reconstruction.shape == batch.shape
  assert reconstruction.min() >= 0 and reconstruction.max() <= 1
  assert exported.sample(3, seed=1).shape == (3,) + shape


# The streaming path: the npy source's training split, 160 images, over a 0.04 MB budget.


@pytest.mark.e2e
def test_streaming_says_so_and_matches_the_in_memory_losses(data, runs):
  for name in ('npy', 'streamed'):
    assert runs[name][0] == 0, runs[name][1]
  assert 'streaming it from' not in runs['npy'][1]
  out = runs['streamed'][1]
  assert f'exceeds --data_memory_mb={STREAM_MEMORY_MB}: streaming it from' in out
  assert os.path.join(data['cache'], 'npy-colour.npy-') in out and 'train.npy' in out
  in_memory = _losses(os.path.join(data['runs'], 'npy'))
  streamed = _losses(os.path.join(data['runs'], 'streamed'))
  assert sorted(streamed) == sorted(in_memory) == list(range(10, STREAM_STEPS + 1, 10))
  # The same batches and noise, so the same training: equal weights after 8 epochs. The
  # logged means of a window may differ by an ulp: they are summed over other call lengths
  # (streamed blocks are aligned at multiples of their size).
  steps = sorted(in_memory)
  np.testing.assert_allclose([streamed[s] for s in steps], [in_memory[s] for s in steps],
                             rtol=1e-6, atol=0)
  assert in_memory[STREAM_STEPS] < in_memory[10] - 100  # it learned: a real comparison
  expected = _variables(os.path.join(data['runs'], 'npy', 'train', f'ckpt-{STREAM_STEPS}'))
  got = _variables(os.path.join(data['runs'], 'streamed', 'train', f'ckpt-{STREAM_STEPS}'))
  assert expected.keys() == got.keys()
  for name, value in expected.items():
    np.testing.assert_array_equal(got[name], value, err_msg=name)


@pytest.mark.e2e
def test_streaming_resumes_exactly_after_sigterm(data, runs, tools):
  rc, out = runs['stopped']
  assert rc == 0, out
  assert 'streaming it from' in out and 'Stopped by signal at step' in out
  stop = int(out.split('Stopped by signal at step ')[1].split(';')[0])
  assert 10 <= stop < STREAM_STEPS, f'stopped at step {stop}: not mid-way'
  rc, out = tools['resumed']
  assert rc == 0, out
  assert f'at step {stop}.' in out and 'streaming it from' in out
  expected = _variables(os.path.join(data['runs'], 'streamed', 'train', f'ckpt-{STREAM_STEPS}'))
  got = _variables(os.path.join(data['runs'], 'stopped', 'train', f'ckpt-{STREAM_STEPS}'))
  assert expected.keys() == got.keys() and any('optimizer' in k for k in got)
  for name, value in expected.items():
    np.testing.assert_array_equal(got[name], value, err_msg=name)


@pytest.mark.e2e
def test_streaming_on_two_replicas_has_the_losses_of_one(data, runs):
  rc, out = runs['two_replicas']
  assert rc == 0, out
  assert 'MirroredStrategy with 2 replicas' in out and 'streaming it from' in out
  one = _losses(os.path.join(data['runs'], 'streamed'))
  two = _losses(os.path.join(data['runs'], 'two_replicas'))
  assert sorted(two) == sorted(one)
  # Per-replica means summed in another order: float32 rounding, growing slowly with the steps.
  steps = sorted(one)
  np.testing.assert_allclose([two[s] for s in steps], [one[s] for s in steps], rtol=1e-5)


# Bad input: one `error:` line naming what is wrong, no traceback.


def _check_one_error_line(data, case, rc, out):
  assert rc == 1, out
  assert 'Traceback' not in out, out
  errors = [line for line in out.splitlines() if line.startswith('error: ')]
  assert len(errors) == 1 and out.strip().splitlines()[-1] == errors[0], out
  for text in BAD_INPUT[case][1]:
    assert text.format(**data) in errors[0], (text, errors[0])


@pytest.mark.parametrize('case', BAD_INPUT)
def test_bad_input_is_one_error_line(data, case):
  _check_one_error_line(data, case, *run_tool('train', *_bad_input_args(data, case)))


@pytest.mark.e2e
def test_bad_input_is_one_error_line_from_bin_train(data, runs):
  _check_one_error_line(data, SUBPROCESS_CASE, *runs['bad', SUBPROCESS_CASE])


# In this process (the fast tier): one source through every tool, and the streaming path.

IN_PROCESS_SOURCE = 'folder_grey'  # greyscale PNG and JPEG files, binarised, Bernoulli
SHORT_STEPS = 40                   # the in-process streaming runs: 2 epochs of 20 steps


def _train_args(data, name, run_name, num_steps, extra=()):
  """bin/train.py's arguments of _train_command."""
  return _train_command(data, name, run_name, num_steps, extra)[2:]


def test_a_source_through_every_tool_in_process(data, tmp_path):
  name = IN_PROCESS_SOURCE
  run_dir = os.path.join(data['runs'], 'in_process', name)
  rc, out = run_tool('train', *_train_args(data, name, f'in_process/{name}', NUM_STEPS))
  assert rc == 0, out
  assert f'step {NUM_STEPS}/{NUM_STEPS}' in out and 'streaming' not in out, out
  with open(os.path.join(run_dir, 'config.json'), encoding='utf-8') as f:
    saved = json.load(f)
  assert tuple(saved['image_shape']) == SOURCES[name][3]
  assert saved['dataset'] == SOURCES[name][0].format(**data)
  assert saved['hparams']['likelihood'] == 'bernoulli' and saved['hparams']['binarize']
  assert sorted(_losses(run_dir)) == [10, 20]
  rc, out = run_tool('evaluate', f'--run_dir={run_dir}', '--num_importance_samples=3',
                     f'--cache_dir={data["cache"]}')
  assert rc == 0, out
  results = _last_json(out)
  assert results['step'] == NUM_STEPS and results['num_examples'] > 0
  assert math.isfinite(results['bits_per_dim']) and results['bits_per_dim'] > 0
  pictures = tmp_path / 'pictures'
  rc, out = run_tool('sample', f'--run_dir={run_dir}', '--kind=prior', '--kind=reconstruction',
                     '--num=4', f'--output_dir={pictures}', f'--cache_dir={data["cache"]}')
  assert rc == 0, out
  for kind in ('prior', 'reconstruction'):
    picture = tf.io.decode_png(tf.io.read_file(str(pictures / f'{kind}.png'))).numpy()
    assert picture.shape[-1] == 1 and picture.shape[0] > 9 and picture.std() > 0
  export_dir = str(tmp_path / 'export')
  rc, out = run_tool('export', f'--run_dir={run_dir}', f'--export_dir={export_dir}')
  assert rc == 0 and 'signatures: encode, decode' in out, out
  _check_round_trip(data, name, run_dir, export_dir, NUM_STEPS)


def test_streaming_in_process_resumes_to_the_in_memory_weights_and_on_two_replicas(
    data, monkeypatch):
  """The npy source for SHORT_STEPS: in memory; streamed, stopped by a signal at step 10 and
  resumed, to exactly the in-memory weights; and streamed on two replicas (the session's two
  logical CPUs) with the in-memory losses."""
  def train(run_name, *extra, num_steps=SHORT_STEPS):
    rc, out = run_tool('train', *_train_args(data, 'npy', f'in_process/{run_name}', num_steps,
                                             extra))
    assert rc == 0, out
    return out, os.path.join(data['runs'], 'in_process', run_name)

  out, in_memory = train('in_memory')
  assert 'streaming it from' not in out
  sender = signal_during_training(monkeypatch, 10)
  out, streamed = train('streamed', *STREAM, num_steps=10**8)
  assert f'exceeds --data_memory_mb={STREAM_MEMORY_MB}: streaming it from' in out
  stop = int(out.split('Stopped by signal at step ')[1].split(';')[0])
  assert stop == sender.sent_at and 10 <= stop < SHORT_STEPS, out
  monkeypatch.undo()
  out, _ = train('streamed', *STREAM)
  assert f'at step {stop}.' in out and 'streaming it from' in out
  final = f'ckpt-{SHORT_STEPS}'
  expected = _variables(os.path.join(in_memory, 'train', final))
  got = _variables(os.path.join(streamed, 'train', final))
  assert expected.keys() == got.keys() and any('optimizer' in k for k in got)
  for name, value in expected.items():
    np.testing.assert_array_equal(got[name], value, err_msg=name)

  out, two_replicas = train('two_replicas', *STREAM, *TWO_REPLICAS)
  assert 'MirroredStrategy with 2 replicas' in out and 'streaming it from' in out
  one, two = _losses(in_memory), _losses(two_replicas)
  assert sorted(two) == sorted(one) == list(range(10, SHORT_STEPS + 1, 10))
  np.testing.assert_allclose([two[s] for s in sorted(one)], [one[s] for s in sorted(one)],
                             rtol=1e-5)
