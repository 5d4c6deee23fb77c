"""The one error type for bad input: the CLI turns it into a one-line message and exit code 2.

Only checks of what a user asked for raise it (names, sizes, ranges, folders), so a ValueError
from a bug in the middle of training is never mistaken for bad input and keeps its traceback.
"""


class InputError(ValueError):
    """Bad input from a user; the message is one line that names the problem."""


class ConfigError(InputError):
    """A run, model or optimizer setting outside its allowed range."""
