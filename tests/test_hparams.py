"""HParams: typed and range-checked defaults, the override string, and its errors."""

import json

import pytest

from tfvae.hparams import Bool
from tfvae.hparams import Choice
from tfvae.hparams import Float
from tfvae.hparams import HParams
from tfvae.hparams import HParamsError
from tfvae.hparams import Int
from tfvae.hparams import IntList
from tfvae.hparams import Str
from tfvae.errors import UserError
from tfvae.model import default_hparams


def _defaults():
  return HParams(z_size=20, learning_rate=1e-3, binarize=False, activation='tanh',
                 hidden_sizes=[500])


def test_parse_overrides_every_type():
  hp = _defaults().parse('z_size=2, learning_rate=0.5,binarize=true,activation=relu,'
                         'hidden_sizes=[300, 200]')
  assert hp.z_size == 2 and isinstance(hp.z_size, int)
  assert hp.learning_rate == 0.5
  assert hp.binarize is True
  assert hp.activation == 'relu'
  assert hp.hidden_sizes == [300, 200]


def test_parse_returns_new_object_and_keeps_defaults():
  base = _defaults()
  changed = base.parse('z_size=3')
  assert base.z_size == 20 and changed.z_size == 3
  assert changed.learning_rate == base.learning_rate
  assert base.parse('') == base


def test_int_is_accepted_for_float_but_not_the_reverse():
  assert _defaults().parse('learning_rate=1').learning_rate == 1.0
  with pytest.raises(HParamsError, match="'z_size' wants an integer, got '0.5'"):
    _defaults().parse('z_size=0.5')


@pytest.mark.parametrize('spec, pattern', [
    ('zsize=3', r"unknown hparam 'zsize' \(did you mean 'z_size'\?\); valid hparams: "
                r"activation, binarize, hidden_sizes"),
    ('binarise=true', r"unknown hparam 'binarise' \(did you mean 'binarize'\?\)"),
    ('qqq=1', r"unknown hparam 'qqq'; valid hparams"),
    ('binarize=maybe', r"'binarize' wants true or false, got 'maybe'"),
    ('learning_rate=fast', r"'learning_rate' wants a float, got 'fast'"),
    ('hidden_sizes=500', r"'hidden_sizes' wants a list of integers like \[1,2\]"),
    ('hidden_sizes=[5,x]', r"'hidden_sizes' wants an integer, got 'x'"),
    ('hidden_sizes=[]', r"non-empty list"),
    ('z_size', r"malformed hparams 'z_size'"),
    ('z_size=3,,', r"malformed hparams"),
    ('z_size=', r"'z_size' has no value"),
    ('z_size=1,z_size=2', r"given twice"),
])
def test_parse_errors_name_the_key(spec, pattern):
  with pytest.raises(HParamsError, match=pattern):
    _defaults().parse(spec)


def test_errors_are_one_line():
  with pytest.raises(HParamsError) as info:
    _defaults().parse('nope=1')
  assert '\n' not in str(info.value)


def test_override_checks_types_and_json_round_trip():
  hp = _defaults().override(z_size=7, hidden_sizes=[10, 10])
  assert _defaults().override(**json.loads(hp.to_json())) == hp
  with pytest.raises(HParamsError, match="'activation' wants a string, got 3"):
    _defaults().override(activation=3)
  with pytest.raises(HParamsError, match='unknown hparam'):
    _defaults().override(bogus=1)


def test_read_only_and_attribute_errors():
  hp = _defaults()
  with pytest.raises(AttributeError, match='read-only'):
    hp.z_size = 3
  with pytest.raises(AttributeError, match="unknown hparam 'nope'"):
    _ = hp.nope


def _ranged(**checks):
  return HParams(
      z_size=Int(20, min=1), batch_size=Int(100, min=1, max=10**7),
      window=Int(7, min=3, odd=True), learning_rate=Float(1e-3, min=0, min_inclusive=False),
      ema_decay=Float(0.0, min=0, max=1, max_inclusive=False),
      decay_rate=Float(0.9999, min=0, max=1, min_inclusive=False),
      scale=Float(1.0, max=10), binarize=Bool(False),
      likelihood=Choice('bernoulli', ['bernoulli', 'gaussian']),
      activation=Str('tanh', check=_activation, description='tanh or relu'),
      hidden_sizes=IntList([500], min=1), conv_filters=IntList([32, 64], min=1, max_length=8),
      sizes=IntList([1], min=0, max=9, min_length=0), **checks)


def _activation(name):
  if name not in ('tanh', 'relu'):
    raise UserError(f'unknown activation {name!r}; use tanh or relu')


@pytest.mark.parametrize('spec, message', [
    ('z_size=0', "hparam 'z_size' must be an integer >= 1, got 0"),
    ('z_size=-1', "hparam 'z_size' must be an integer >= 1, got -1"),
    ('batch_size=0', "hparam 'batch_size' must be an integer in [1, 10000000], got 0"),
    ('batch_size=10000001',
     "hparam 'batch_size' must be an integer in [1, 10000000], got 10000001"),
    ('window=4', "hparam 'window' must be an odd integer >= 3, got 4"),
    ('window=1', "hparam 'window' must be an odd integer >= 3, got 1"),
    ('learning_rate=-1', "hparam 'learning_rate' must be a finite float > 0, got -1.0"),
    ('learning_rate=0', "hparam 'learning_rate' must be a finite float > 0, got 0.0"),
    ('ema_decay=1.5', "hparam 'ema_decay' must be a float in [0, 1), got 1.5"),
    ('ema_decay=1', "hparam 'ema_decay' must be a float in [0, 1), got 1.0"),
    ('decay_rate=0', "hparam 'decay_rate' must be a float in (0, 1], got 0.0"),
    ('scale=11', "hparam 'scale' must be a finite float <= 10, got 11.0"),
    ('likelihood=foo', "unknown likelihood 'foo'; valid: bernoulli, gaussian"),
    ('likelihood=gausian', "unknown likelihood 'gausian' (did you mean 'gaussian'?); valid:"),
    ('activation=tanhh', "unknown activation 'tanhh'; use tanh or relu"),
    ('hidden_sizes=[]', "hparam 'hidden_sizes' must be a non-empty list of integers >= 1, got []"),
    ('hidden_sizes=[500,0]',
     "hparam 'hidden_sizes' must be a non-empty list of integers >= 1, got [500, 0]"),
    ('conv_filters=[1,1,1,1,1,1,1,1,1]',
     "hparam 'conv_filters' must be a list of 1 to 8 integers >= 1, got [1, 1, 1, 1, 1, 1, 1,"),
    ('sizes=[5,10]', "hparam 'sizes' must be a list of integers in [0, 9], got [5, 10]"),
])
def test_out_of_range_values_are_one_line_errors_naming_hparam_value_and_range(spec, message):
  with pytest.raises(HParamsError) as info:
    _ranged().parse(spec)
  assert str(info.value).startswith(message) and '\n' not in str(info.value)


@pytest.mark.parametrize('value', ['nan', 'inf', '-inf', '1e400'])
def test_non_finite_floats_are_rejected(value):
  with pytest.raises(HParamsError, match="'learning_rate' must be a finite float > 0, got"):
    _ranged().parse(f'learning_rate={value}')
  with pytest.raises(HParamsError, match="hparam 'learning_rate' must be a finite float, got"):
    _defaults().parse(f'learning_rate={value}')     # a plain float: any finite value
  with pytest.raises(HParamsError, match="hparam 'scale' must be a finite float <= 10, got"):
    _ranged().parse(f'scale={value}')


def test_bounds_are_inclusive_unless_told_and_values_in_range_pass():
  hp = _ranged().parse('z_size=1,batch_size=10000000,window=3,learning_rate=1e-9,'
                       'ema_decay=0,decay_rate=1,scale=-1e300,hidden_sizes=[1],sizes=[9],'
                       'conv_filters=[1,2,3,4,5,6,7,8],likelihood=gaussian,activation=relu')
  assert (hp.z_size, hp.batch_size, hp.window, hp.decay_rate) == (1, 10**7, 3, 1.0)
  assert hp.scale == -1e300 and hp.sizes == [9] and len(hp.conv_filters) == 8


def test_describe_range_says_what_each_hparam_allows():
  hp = _ranged()
  assert {name: hp.describe_range(name) for name in hp.values()} == {
      'z_size': 'an integer >= 1',
      'batch_size': 'an integer in [1, 10000000]',
      'window': 'an odd integer >= 3',
      'learning_rate': 'a finite float > 0',
      'ema_decay': 'a float in [0, 1)',
      'decay_rate': 'a float in (0, 1]',
      'scale': 'a finite float <= 10',
      'binarize': 'true or false',
      'likelihood': 'one of bernoulli, gaussian',
      'activation': 'tanh or relu',
      'hidden_sizes': 'a non-empty list of integers >= 1',
      'conv_filters': 'a list of 1 to 8 integers >= 1',
      'sizes': 'a list of integers in [0, 9]',
  }
  assert _defaults().describe_range('hidden_sizes') == 'a non-empty list of integers'
  assert _defaults().describe_range('learning_rate') == 'a finite float'
  with pytest.raises(HParamsError, match="unknown hparam 'nope'"):
    hp.describe_range('nope')


def test_checks_run_wherever_hparams_are_built():
  def lr_at_most_one(hp):
    if hp.learning_rate > 1:
      raise UserError(f'learning_rate must be at most 1 here, got {hp.learning_rate}')

  hp = _ranged(checks=[lr_at_most_one])
  assert hp.parse('learning_rate=0.5').learning_rate == 0.5
  too_big = 'learning_rate must be at most 1 here, got 2.0'
  with pytest.raises(HParamsError, match=too_big):
    hp.parse('learning_rate=2')
  with pytest.raises(HParamsError, match=too_big):
    hp.override(learning_rate=2.0)
  with pytest.raises(HParamsError, match=too_big):  # the checks carry over to derived HParams
    hp.parse('z_size=3').parse('learning_rate=2')
  with pytest.raises(HParamsError, match=too_big):  # and the defaults are checked too
    _ranged(checks=[lr_at_most_one]).parse('learning_rate=2').override()


def test_defaults_are_checked_when_hparams_are_made():
  with pytest.raises(HParamsError, match="hparam 'z_size' must be an integer >= 1, got 0"):
    HParams(z_size=Int(0, min=1))
  with pytest.raises(TypeError, match="hparam 'sizes': its IntList spec has no default"):
    HParams(sizes=IntList(None))
  with pytest.raises(TypeError, match="hparam 'scales': unsupported default"):
    HParams(scales=[0.5])


def test_range_checks_apply_to_override():
  with pytest.raises(HParamsError, match="'batch_size' must be an integer in"):
    _ranged().override(batch_size=0)
  with pytest.raises(HParamsError, match="'hidden_sizes' must be a non-empty list"):
    _ranged().override(hidden_sizes=[])
  with pytest.raises(HParamsError, match="'learning_rate' must be a finite float > 0, got nan"):
    _ranged().override(**json.loads('{"learning_rate": NaN}'))
  with pytest.raises(HParamsError, match="'learning_rate' wants a float, got an integer too"):
    _ranged().override(learning_rate=10**400)
  with pytest.raises(HParamsError, match=r"'hidden_sizes' wants a list of integers, got 5"):
    _ranged().override(hidden_sizes=5)


def test_specs_are_not_part_of_values_equality_or_json():
  ranged = _ranged()
  plain = HParams(**ranged.values())
  assert ranged == plain and ranged.to_json() == plain.to_json()
  assert ranged.values()['hidden_sizes'] == [500] and ranged.learning_rate == 1e-3
  assert repr(ranged).startswith('HParams(z_size=20, batch_size=100, window=7,')
  assert ranged.override(**json.loads(ranged.parse('z_size=3').to_json())).z_size == 3


@pytest.mark.parametrize('spec, message', [
    ('batch_size=0', "hparam 'batch_size' must be an integer in [1, 10000000], got 0"),
    ('learning_rate=-1', "hparam 'learning_rate' must be a finite float >= 0, got -1.0"),
    ('z_size=-1', "hparam 'z_size' must be an integer >= 1, got -1"),
    ('ema_decay=1.5', "hparam 'ema_decay' must be a float in [0, 1), got 1.5"),
    ('conv_filters=[8,8,8,8,8,8,8,8,8]', "hparam 'conv_filters' must be a list of 1 to 8 "),
    ('autoregressive_window=4', "hparam 'autoregressive_window' must be an odd integer >= 3"),
    ('likelihood=foo', "unknown likelihood 'foo'; valid: bernoulli, gaussian"),
    ('mixed_precision=int8', "unknown mixed_precision 'int8'; valid: none, bfloat16, float16"),
    ('activation=tanhh', "unknown activation 'tanhh'; use a Keras activation such as tanh"),
    ('learning_rate=1e-6',
     "hparam 'min_learning_rate' must be at most learning_rate (1e-06), got 1e-05"),
    ('objective=iwae,max_beta=2', 'objective=iwae trains the importance-weighted bound itself'),
])
def test_default_hparams_reject_bad_values_at_parse_time(spec, message):
  with pytest.raises(HParamsError) as info:
    default_hparams().parse(spec)
  assert str(info.value).startswith(message) and '\n' not in str(info.value)
  assert default_hparams().parse('learning_rate=0,min_learning_rate=0').learning_rate == 0
