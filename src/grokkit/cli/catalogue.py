"""The commands and their one-line help: what ``grokkit --help`` lists without importing any
command (each imports torch, seconds that ``--help`` and ``--version`` should not wait for), and
the parser that reports a mistake in one line."""

import argparse
import re

from grokkit.errors import InputError, did_you_mean

COMMANDS = {
    "data": "print an operation's whole table as CSV (x,y,result)",
    "train": "train one run into a run folder, or resume one",
    "show": "print a run's summary and write its curves as PNG",
    "compare": "overlay the curves of several runs (or of a sweep's runs) in one figure",
    "export": "write a run's model as a TransformerLens HookedTransformer",
    "analyze": "measure a trained run (fourier: Nanda et al.'s progress measures)",
    "bench": "time a training step of the paper's configuration",
    "sweep": "train the cartesian product of several settings as a sweep",
    "reproduce": "run a paper figure's experiment and write its plot, CSV and REPORT.md",
}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise InputError(message + self._suggestion(message))

    def _suggestion(self, message: str) -> str:
        """ " (did you mean ...?)" for a misspelt flag or choice, from argparse's own message
        (Python 3.11's argparse has no suggest_on_error)."""
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            return did_you_mean(choice[1], re.findall(r"'([^']*)'", choice[2]))
        if message.startswith("unrecognized arguments: "):
            flags = [a.split("=")[0] for a in message.split()[2:] if a.startswith("--")]
            hints = [did_you_mean(f, self._all_flags()) for f in flags]
            return "".join(h for h in hints if h)
        return ""

    def _all_flags(self) -> list[str]:
        """Every long flag of this parser and of its commands' parsers (only the command named
        on the line has its flags: see build_parser)."""
        flags, parsers = [], [self]
        while parsers:
            p = parsers.pop()
            flags += [o for o in p._option_string_actions if o.startswith("--")]
            for action in p._actions:
                if isinstance(action, argparse._SubParsersAction):
                    parsers += list(action.choices.values())
        return flags
