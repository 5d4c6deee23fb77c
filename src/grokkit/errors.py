"""Error types a user sees as one line, and the one-line form of grokkit's warnings.

``InputError``: bad input from a user (names, sizes, ranges, folders, damaged files); the CLI
shows its message on one line and exits with code 2. Only checks of what a user asked for or
handed over raise it, so a ValueError from a bug in the middle of training is never mistaken for
bad input and keeps its traceback. ``StorageError``: a write that the machine refused (a full
disk, a folder that became read-only); the CLI shows one line and exits with code 1, and the
previous version of the file is still in place.
"""

from __future__ import annotations

import difflib
import sys
import warnings
from collections.abc import Iterable

# C0 controls but tab, DEL, and the C1 controls: ESC and CSI start the sequences that move the
# cursor, retitle the window or rewrite what is on the screen.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0))}


def printable(text) -> str:
    """``text`` safe to print on a terminal: every control character (ESC above all) written as
    ``\\xNN``, so bytes from a run folder someone else made cannot drive the terminal. Newlines
    too: a message stays on its one line."""
    return str(text).translate(_CONTROL)


class InputError(ValueError):
    """Bad input from a user; the message is one line that names the problem."""


class ConfigError(InputError):
    """A run, model or optimizer setting outside its allowed range."""


class StorageError(OSError):
    """A file could not be written; the message names it, the reason, and what was kept."""


class GrokkitWarning(UserWarning):
    """Something the user should know that does not stop the work (a fallback, a slow size)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x/y'?)`` for the choice closest to a misspelt ``word``, or "" when none
    is close: appended to a message that refuses ``word``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown(what: str, word: str, choices: Iterable[str]) -> str:
    """The one line refusing an unknown name: the closest choice first, then every choice."""
    choices = [str(c) for c in choices]
    return (
        f"unknown {what} {word!r}{did_you_mean(word, choices)}; choose one of: {', '.join(choices)}"
    )


def warn(message: str) -> None:
    warnings.warn(message, GrokkitWarning, stacklevel=2)


def _one_line(message, category, filename, lineno, file=None, line=None) -> None:
    prefix = (
        "grokkit: warning:" if issubclass(category, GrokkitWarning) else f"{category.__name__}:"
    )
    print(f"{prefix} {printable(message)}", file=file or sys.stderr)


def show_warnings_as_one_line() -> None:
    """Warnings print as ``grokkit: warning: ...`` (the CLI and sweep workers call this)."""
    warnings.showwarning = _one_line
