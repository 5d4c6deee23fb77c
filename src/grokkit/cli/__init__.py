"""The ``grokkit`` command: data | train | show | compare | export | analyze | bench | sweep |
reproduce.

The only package that knows argparse; the library never imports it. One module per command, each
with ``register(sub)`` and ``run(args)``. Bad input never shows a traceback: the library raises
``grokkit.errors.InputError`` before any work starts, and ``main`` turns it into one line on
stderr and exit code 2, with nothing written or overwritten.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from grokkit import __version__
from grokkit.cli.exit_codes import EXIT_BAD_INPUT, EXIT_FAILED


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; of the commands, only the one ``argv`` names is imported and given its flags
    (the others are listed with their help), so ``grokkit --help`` and ``grokkit data`` do not
    wait seconds for torch. Without ``argv``, every command is complete."""
    from importlib import import_module

    from grokkit.cli.catalogue import COMMANDS, Parser

    named = [a for a in argv if a in COMMANDS][:1] if argv is not None else list(COMMANDS)
    p = Parser(prog="grokkit", description="Grokking (Power et al., 2022), reproduced.")
    p.add_argument("--version", action="version", version=f"grokkit {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, help_text in COMMANDS.items():
        if name in named:
            import_module(f"grokkit.cli.{name}").register(sub)
        else:
            sub.add_parser(name, help=help_text)
    return p


def main(argv: list[str] | None = None) -> int:
    from grokkit.interrupts import exit_status, stop_signals_handled

    # SIGINT and SIGTERM stop grokkit the same way, whatever this process inherited.
    with stop_signals_handled():
        try:
            from grokkit.errors import GrokkitWarning, show_warnings_as_one_line
        except KeyboardInterrupt:
            print("grokkit: interrupted before starting; nothing was written", file=sys.stderr)
            return exit_status()
        # grokkit's own warnings (a checkpoint fallback, a slow table size) are part of the
        # output: always shown, one line each, whatever the interpreter's warning filters say.
        with warnings.catch_warnings():
            warnings.simplefilter("always", GrokkitWarning)
            show_warnings_as_one_line()
            return _main(argv)


def _main(argv: list[str] | None) -> int:
    from grokkit.errors import InputError, StorageError, printable

    args = None
    try:
        argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
        # The command's module is imported here, not at the top, and a Ctrl-C in the seconds that
        # torch takes to import is held until it is done: raised inside an import, it can be
        # swallowed by a library's bare `except:` and the command would carry on regardless.
        from grokkit.interrupts import HeldInterrupt

        with HeldInterrupt() as held:
            args = build_parser(argv).parse_args(argv)
        if held.requested:
            args = None  # nothing started: no checkpoint, no resume hint
            raise KeyboardInterrupt
        return args.func(args)
    except InputError as e:
        print(f"grokkit: error: {printable(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StorageError as e:
        print(f"grokkit: error: {printable(e.strerror)}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # `grokkit data ... | head`: the reader has all it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's final flush is silent
        return 0
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: 130 or 143 (interrupts.exit_status)
        from grokkit.interrupts import exit_status

        if args is None:
            print("grokkit: interrupted before starting; nothing was written", file=sys.stderr)
            return exit_status()
        hint = getattr(args, "resume_hint", None)
        said = str(e) or "interrupted; the last checkpoint is kept"
        print(f"grokkit: {said}" + (f"; {hint(args)}" if hint else ""), file=sys.stderr)
        return exit_status()
