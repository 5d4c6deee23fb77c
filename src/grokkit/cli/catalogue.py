"""The commands and their one-line help: what ``grokkit --help`` lists without importing any
command (each imports torch, seconds that ``--help`` and ``--version`` should not wait for), and
the parser that reports a mistake in one line."""

import argparse

from grokkit.errors import InputError

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
        raise InputError(message)
