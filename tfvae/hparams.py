"""Typed hyperparameters, the values each may take, and a one-string override syntax.

`HParams` holds named values. A default is either a plain value (bool, int, float, str, or a
non-empty list of ints), which fixes the hparam's type, or a spec that also says which values
are allowed:

    HParams(z_size=Int(20, min=1), learning_rate=Float(1e-3, min=0, min_inclusive=False),
            likelihood=Choice('bernoulli', ['bernoulli', 'gaussian']),
            hidden_sizes=IntList([500], min=1, max_length=8), checks=[check_learning_rates])

`parse("a=1,b=0.5,sizes=[500,500],act=tanh")` and `override(a=1)` return new HParams, and every
HParams is checked when it is built: each value against its spec (floats must be finite), then
each function in `checks` against the whole set (the rules between hparams). Anything that does
not fit raises a one-line `HParamsError` naming the hparam, the value and what is allowed (with
a "did you mean" for a misspelt name); `describe_range(name)` says in words what is allowed.
Equality, `values()` and `to_json()` hold the values only, never the specs.
"""

import json
import math
import re

from tfvae.errors import UserError
from tfvae.errors import did_you_mean


class HParamsError(UserError):
  """A bad hparams value or override: unknown name, wrong type, out of range, malformed."""


_TRUE = ('true', 't', 'yes', '1')
_FALSE = ('false', 'f', 'no', '0')
_ASSIGNMENT = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\[[^\]]*\]|[^,\[\]]*)\s*(,|$)')
_MAX_SHOWN = 80  # characters of a bad value quoted in an error message
_NOUNS = {bool: 'true or false', int: 'an integer', float: 'a float', str: 'a string'}


def _show(value):
  """repr(value) for an error message, cut to _MAX_SHOWN characters."""
  text = repr(value)
  return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN - 3] + '...'


def _number(x):
  return f'{x:g}' if isinstance(x, float) else str(x)


def _convert_scalar(name, kind, text):
  """Turns `text` into a value of `kind` (bool, int, float or str) or raises."""
  text = text.strip()
  try:
    if kind is bool:
      if text.lower() in _TRUE:
        return True
      if text.lower() in _FALSE:
        return False
      raise ValueError(text)
    if kind is str:
      return text.strip('\'"')
    return kind(text)
  except ValueError:
    raise HParamsError(f'hparam {name!r} wants {_NOUNS[kind]}, got {_show(text)}') from None


class Spec:
  """One hparam's default and the values it may take: a subclass sets `kind` (the Python type
  of a value) and says which values are allowed (`allows`) and how that reads (`describe`)."""

  kind = None

  def __init__(self, default):
    self.default = default   # None only for the element spec of a list

  def describe(self):
    """The allowed values in words, e.g. 'an integer >= 1'."""
    return _NOUNS[self.kind]

  def allows(self, value):
    """Whether `value` (already of `kind`) is allowed."""
    del value
    return True

  def check(self, name, value):
    """Raises a one-line HParamsError if `value` is not allowed."""
    if not self.allows(value):
      raise HParamsError(f'hparam {name!r} must be {self.describe()}, got {_show(value)}')

  def coerce(self, name, value):
    """`value` (from Python or JSON) as a `kind`, or HParamsError."""
    if type(value) is not self.kind:
      raise HParamsError(f'hparam {name!r} wants {_NOUNS[self.kind]}, got {_show(value)} '
                         f'({type(value).__name__})')
    return value

  def parse(self, name, text):
    """The value written as `text` in an hparams string, or HParamsError."""
    return _convert_scalar(name, self.kind, text)


class Bool(Spec):
  """true or false."""

  kind = bool


class Str(Spec):
  """Any string, or those that `check` (value -> raises a one-line UserError) accepts; then
  `description` says which they are."""

  kind = str

  def __init__(self, default, check=None, description='a string'):
    super().__init__(default)
    self._check_value = check
    self._description = description

  def describe(self):
    return self._description

  def check(self, name, value):
    if self._check_value:
      _checked(self._check_value, value)


class Choice(Spec):
  """One of a fixed list of values, e.g. Choice('adam', ['adam', 'adagrad'])."""

  def __init__(self, default, choices):
    super().__init__(default)
    self.choices = tuple(choices)
    self.kind = type(self.choices[0])

  def _valid(self):
    return ', '.join(str(c) for c in self.choices)

  def describe(self):
    return f'one of {self._valid()}'

  def allows(self, value):
    return value in self.choices

  def check(self, name, value):
    if not self.allows(value):
      hint = did_you_mean(value, self.choices) if isinstance(value, str) else ''
      raise HParamsError(f'unknown {name} {_show(value)}{hint}; valid: {self._valid()}')


class _Bounded(Spec):
  """A number in an interval; a bound left as None is open-ended."""

  def __init__(self, default, min=None, max=None, min_inclusive=True, max_inclusive=True):
    super().__init__(default)
    self.min, self.max = min, max
    self.min_inclusive, self.max_inclusive = min_inclusive, max_inclusive

  def allows(self, value):
    if self.min is not None and not (
        value >= self.min if self.min_inclusive else value > self.min):
      return False
    return self.max is None or (value <= self.max if self.max_inclusive else value < self.max)

  def _range(self):
    """' >= 1', ' in [0, 1)', ... or '' when unbounded."""
    low, high = self.min, self.max
    if low is not None and high is not None:
      return (f' in {"[" if self.min_inclusive else "("}{_number(low)}, '
              f'{_number(high)}{"]" if self.max_inclusive else ")"}')
    if low is not None:
      return f' {">=" if self.min_inclusive else ">"} {_number(low)}'
    if high is not None:
      return f' {"<=" if self.max_inclusive else "<"} {_number(high)}'
    return ''


class Int(_Bounded):
  """An integer in [min, max]; odd=True allows odd ones only."""

  kind = int

  def __init__(self, default, min=None, max=None, odd=False):
    super().__init__(default, min, max)
    self.odd = odd

  def allows(self, value):
    return super().allows(value) and (not self.odd or value % 2 == 1)

  def describe(self, plural=False):
    """'an integer >= 1', or with plural=True 'integers >= 1' (a list's elements)."""
    noun = ('odd ' if self.odd else '') + ('integers' if plural else 'integer')
    article = '' if plural else ('an ' if noun[0] in 'aeiou' else 'a ')
    return article + noun + self._range()


class Float(_Bounded):
  """A finite float between min and max (each inclusive unless min_inclusive/max_inclusive
  is False)."""

  kind = float

  def allows(self, value):
    return math.isfinite(value) and super().allows(value)

  def coerce(self, name, value):
    """Ints are accepted for floats: override(learning_rate=1) is 1.0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      try:
        return float(value)
      except OverflowError:
        raise HParamsError(f'hparam {name!r} wants a float, got an integer too large for one: '
                           f'{_show(value)}') from None
    return super().coerce(name, value)

  def describe(self):
    # Two bounds exclude inf themselves; otherwise say that the float must be finite.
    finite = 'finite ' if self.min is None or self.max is None else ''
    return f'a {finite}float{self._range()}'


class IntList(Spec):
  """A list of min_length to max_length (None: any number) integers, each in [min, max]:
  IntList([32, 64], min=1, max_length=8)."""

  kind = list

  def __init__(self, default, min=None, max=None, min_length=1, max_length=None):
    super().__init__(default)
    self.element = Int(None, min, max)
    self.min_length, self.max_length = min_length, max_length

  def _length(self):
    """'a non-empty list of', 'a list of 1 to 8', ...: the words before the elements."""
    low, high = self.min_length, self.max_length
    if high is None:
      return {0: 'a list of', 1: 'a non-empty list of'}.get(low, f'a list of at least {low}')
    if low == high:
      return f'a list of {low}'
    return f'a list of at most {high}' if low == 0 else f'a list of {low} to {high}'

  def describe(self):
    return f'{self._length()} {self.element.describe(plural=True)}'

  def allows(self, value):
    if len(value) < self.min_length or (
        self.max_length is not None and len(value) > self.max_length):
      return False
    return all(self.element.allows(v) for v in value)

  def coerce(self, name, value):
    if not isinstance(value, (list, tuple)):
      raise HParamsError(f'hparam {name!r} wants a list of integers, got {_show(value)}')
    return [self.element.coerce(name, v) for v in value]

  def parse(self, name, text):
    text = text.strip()
    if not (text.startswith('[') and text.endswith(']')):
      raise HParamsError(
          f'hparam {name!r} wants a list of integers like [1,2], got {_show(text)}')
    return [self.element.parse(name, t) for t in text[1:-1].split(',') if t.strip()]


def _checked(check, *args):
  """check(*args), with a UserError it raises turned into an HParamsError of its message."""
  try:
    check(*args)
  except HParamsError:
    raise
  except UserError as e:
    raise HParamsError(' '.join(str(e).split())) from None


_PLAIN_SPECS = ((bool, Bool), (int, Int), (float, Float), (str, Str))


def _as_spec(name, default):
  """The Spec of a default given to HParams: itself, or that of a plain value (any value of
  its type; floats finite; a list of ints: a non-empty one)."""
  if isinstance(default, Spec):
    if default.default is None:
      raise TypeError(f'hparam {name!r}: its {type(default).__name__} spec has no default')
    return default
  if isinstance(default, list) and default and all(
      type(v) is int for v in default):  # pylint: disable=unidiomatic-typecheck
    return IntList(default)
  for kind, spec in _PLAIN_SPECS:
    if type(default) is kind:  # pylint: disable=unidiomatic-typecheck
      return spec(default)
  raise TypeError(f'hparam {name!r}: unsupported default {_show(default)}; give a bool, int, '
                  'float, str, non-empty list of ints, or a Spec')


class HParams:
  """Named, typed, range-checked hyperparameters; `hp.name` reads one, `hp.parse(...)`
  overrides.

  HParams(checks=(fn, ...), **defaults): each default a plain value or a Spec (Int, Float,
  Bool, Str, Choice, IntList); each fn(hparams) raises a one-line UserError (HParamsError)
  when hparams do not fit together. `checks` is therefore not an hparam name.
  """

  def __init__(self, *, checks=(), **defaults):
    specs = {name: _as_spec(name, default) for name, default in defaults.items()}
    self._build({name: spec.coerce(name, spec.default) for name, spec in specs.items()},
                specs, tuple(checks))

  def _build(self, values, specs, checks):
    """Sets the fields and checks them: each value against its spec, then the checks."""
    object.__setattr__(self, '_values', values)
    object.__setattr__(self, '_specs', specs)
    object.__setattr__(self, '_checks', checks)
    for name, spec in specs.items():
      spec.check(name, values[name])
    for check in checks:
      _checked(check, self)

  def _with_values(self, values):
    """A new HParams with these specs and checks and `values`."""
    hparams = object.__new__(HParams)
    hparams._build(values, self._specs, self._checks)
    return hparams

  def __getattr__(self, name):
    values = object.__getattribute__(self, '_values')
    if name in values:
      return values[name]
    raise AttributeError(self._unknown_message(name))

  def __setattr__(self, name, value):
    raise AttributeError('HParams are read-only: use parse() or override()')

  def __contains__(self, name):
    return name in self._values

  def __eq__(self, other):
    return isinstance(other, HParams) and self._values == other._values

  def __repr__(self):
    return f'HParams({", ".join(f"{k}={v!r}" for k, v in self._values.items())})'

  def _unknown_message(self, name):
    return (f'unknown hparam {name!r}{did_you_mean(name, self._values)}; valid hparams: '
            f'{", ".join(sorted(self._values))}')

  def values(self):
    """A copy of the values as a plain dict."""
    return {k: list(v) if isinstance(v, list) else v for k, v in self._values.items()}

  def describe_range(self, name):
    """The values hparam `name` may take, in one line, e.g. 'an integer >= 1'."""
    if name not in self._specs:
      raise HParamsError(self._unknown_message(name))
    return self._specs[name].describe()

  def override(self, **changes):
    """A new HParams with `changes` applied; each value must fit its hparam's type and range."""
    values = self.values()
    for name, value in changes.items():
      if name not in values:
        raise HParamsError(self._unknown_message(name))
      values[name] = self._specs[name].coerce(name, value)
    return self._with_values(values)

  def parse(self, spec):
    """A new HParams with the overrides in `spec`, e.g. "a=1,b=0.5,sizes=[500,500],act=tanh"."""
    spec = (spec or '').strip()
    changes, pos = {}, 0
    while pos < len(spec):
      match = _ASSIGNMENT.match(spec, pos)
      if not match or match.end() == pos:
        raise HParamsError(
            f'malformed hparams {spec!r} near {spec[pos:]!r}: expected '
            f'name=value[,name=value...]; valid hparams: {", ".join(sorted(self._values))}')
      name, text = match.group(1), match.group(2)
      if name not in self._values:
        raise HParamsError(self._unknown_message(name))
      if name in changes:
        raise HParamsError(f'hparam {name!r} is given twice in {spec!r}')
      if not text.strip():
        raise HParamsError(f'hparam {name!r} has no value')
      changes[name] = self._specs[name].parse(name, text)
      pos = match.end()
    return self.override(**changes)

  def to_json(self):
    """The values as a JSON object (what override(**json.loads(...)) takes back)."""
    return json.dumps(self._values, indent=2, sort_keys=True)
