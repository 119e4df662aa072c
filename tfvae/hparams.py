"""Typed hyperparameters with a one-string override syntax.

`HParams` holds named values whose types are fixed by their defaults (bool, int,
float, str, or a list of one of those). `parse("a=1,b=0.5,sizes=[500,500],act=tanh")`
overrides them; anything that does not fit raises `HParamsError` whose message names
the offending key and lists the valid ones.
"""

import json
import re


class HParamsError(ValueError):
  """A bad hparams override: unknown name, wrong type or malformed string."""


_SCALAR_TYPES = (bool, int, float, str)
_TRUE = ('true', 't', 'yes', '1')
_FALSE = ('false', 'f', 'no', '0')
_ASSIGNMENT = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\[[^\]]*\]|[^,\[\]]*)\s*(,|$)')


def _type_name(value):
  if isinstance(value, list):
    return f'list of {_type_name(value[0]) if value else "values"}'
  return type(value).__name__


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
    raise HParamsError(
        f'hparam {name!r} wants a {kind.__name__}, got {text!r}') from None


class HParams:
  """Named, typed hyperparameters; `hp.name` reads one, `hp.parse(...)` overrides."""

  def __init__(self, **defaults):
    for name, value in defaults.items():
      self._check_supported(name, value)
    object.__setattr__(self, '_values', dict(defaults))

  @staticmethod
  def _check_supported(name, value):
    if isinstance(value, list):
      if not value or not isinstance(value[0], _SCALAR_TYPES):
        raise TypeError(f'hparam {name!r}: lists need a typed first element')
    elif not isinstance(value, _SCALAR_TYPES):
      raise TypeError(f'hparam {name!r}: unsupported type {type(value).__name__}')

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
    return f'unknown hparam {name!r}; valid hparams: {", ".join(sorted(self._values))}'

  def values(self):
    """A copy of the values as a plain dict."""
    return {k: list(v) if isinstance(v, list) else v for k, v in self._values.items()}

  def override(self, **changes):
    """A new HParams with `changes` applied; each value must fit its default's type."""
    values = self.values()
    for name, value in changes.items():
      if name not in values:
        raise HParamsError(self._unknown_message(name))
      values[name] = self._coerce(name, values[name], value)
    return HParams(**values)

  def _coerce(self, name, default, value):
    """`value` converted to the type of `default`, or HParamsError."""
    if isinstance(default, list):
      if not isinstance(value, (list, tuple)):
        raise HParamsError(f'hparam {name!r} wants a {_type_name(default)}, got {value!r}')
      return [self._coerce(name, default[0], v) for v in value]
    kind = type(default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
      return float(value)
    if type(value) is not kind:
      raise HParamsError(
          f'hparam {name!r} wants a {kind.__name__}, got {value!r} ({type(value).__name__})')
    return value

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
      changes[name] = self._parse_value(name, self._values[name], text)
      pos = match.end()
    return self.override(**changes)

  def _parse_value(self, name, default, text):
    """Parses the text of one value into the type of `default`."""
    text = text.strip()
    if isinstance(default, list):
      if not (text.startswith('[') and text.endswith(']')):
        raise HParamsError(
            f'hparam {name!r} wants a {_type_name(default)} like [1,2], got {text!r}')
      items = [t for t in text[1:-1].split(',') if t.strip()]
      if not items:
        raise HParamsError(f'hparam {name!r} wants a non-empty list, got {text!r}')
      return [_convert_scalar(name, type(default[0]), t) for t in items]
    if not text:
      raise HParamsError(f'hparam {name!r} has no value')
    return _convert_scalar(name, type(default), text)

  def to_json(self):
    return json.dumps(self._values, indent=2, sort_keys=True)

  def from_json(self, text):
    """A new HParams with the values saved by `to_json` over these defaults."""
    return self.override(**json.loads(text))
