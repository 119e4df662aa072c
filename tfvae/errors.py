"""The one exception type of user errors.

Everything a user can get wrong (an unknown config, hparam or dataset, a value out of range, a
malformed spec, an unreadable file, a run directory that does not fit the command) raises a
`UserError` whose message is one line naming what was wrong and what is allowed. The command-line
tools print it as `error: <message>` and exit with status 1; any other exception is a bug and
keeps its traceback. It subclasses ValueError, so code that catches ValueError still does.
"""


class UserError(ValueError):
  """A user error; str(error) is one line saying what was wrong and what is allowed."""
