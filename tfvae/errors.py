"""The one exception type of user errors, and what their messages share.

Everything a user can get wrong (an unknown config, hparam or dataset, a value out of range, a
malformed spec, an unreadable file, a run directory that does not fit the command) raises a
`UserError` whose message is one line naming what was wrong and what is allowed. The command-line
tools print it as `error: <message>` and exit with status 1; any other exception is a bug and
keeps its traceback. It subclasses ValueError, so code that catches ValueError still does.
"""

import difflib


class UserError(ValueError):
  """A user error; str(error) is one line saying what was wrong and what is allowed."""


class DataError(UserError):
  """A dataset that cannot be read or prepared as asked; one line naming the dataset, the
  files and a fix."""


def closest(word, choices):
  """The choice most like `word` (difflib's ratio at least 0.6), or None."""
  matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
  return matches[0] if matches else None


def did_you_mean(word, choices):
  """" (did you mean 'x'?)" for the choice x closest to `word`, or '' when none is close."""
  match = closest(word, choices)
  return f' (did you mean {match!r}?)' if match is not None else ''


def describe(exc):
  """An exception as one short line, 'Type: message', for embedding in a user error."""
  text = ' '.join(str(exc).split())
  return f'{type(exc).__name__}: {text[:300]}' if text else type(exc).__name__
