"""HParams: typed defaults, the override string, and its errors."""

import pytest

from tfvae.hparams import HParams
from tfvae.hparams import HParamsError


def _defaults():
  return HParams(z_size=20, learning_rate=1e-3, binarize=False, activation='tanh',
                 hidden_sizes=[500], scales=[0.5])


def test_parse_overrides_every_type():
  hp = _defaults().parse('z_size=2, learning_rate=0.5,binarize=true,activation=relu,'
                         'hidden_sizes=[300, 200],scales=[1,2.5]')
  assert hp.z_size == 2 and isinstance(hp.z_size, int)
  assert hp.learning_rate == 0.5
  assert hp.binarize is True
  assert hp.activation == 'relu'
  assert hp.hidden_sizes == [300, 200]
  assert hp.scales == [1.0, 2.5] and all(isinstance(s, float) for s in hp.scales)


def test_parse_returns_new_object_and_keeps_defaults():
  base = _defaults()
  changed = base.parse('z_size=3')
  assert base.z_size == 20 and changed.z_size == 3
  assert changed.learning_rate == base.learning_rate
  assert base.parse('') == base


def test_int_is_accepted_for_float_but_not_the_reverse():
  assert _defaults().parse('learning_rate=1').learning_rate == 1.0
  with pytest.raises(HParamsError, match="'z_size' wants a int, got '0.5'"):
    _defaults().parse('z_size=0.5')


@pytest.mark.parametrize('spec, pattern', [
    ('zsize=3', r"unknown hparam 'zsize'; valid hparams: activation, binarize, hidden_sizes"),
    ('binarize=maybe', r"'binarize' wants a bool"),
    ('hidden_sizes=500', r"'hidden_sizes' wants a list of int like \[1,2\]"),
    ('hidden_sizes=[5,x]', r"'hidden_sizes' wants a int, got 'x'"),
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
  assert _defaults().from_json(hp.to_json()) == hp
  with pytest.raises(HParamsError, match="'activation' wants a str"):
    _defaults().override(activation=3)
  with pytest.raises(HParamsError, match='unknown hparam'):
    _defaults().override(bogus=1)


def test_read_only_and_attribute_errors():
  hp = _defaults()
  with pytest.raises(AttributeError, match='read-only'):
    hp.z_size = 3
  with pytest.raises(AttributeError, match="unknown hparam 'nope'"):
    _ = hp.nope
