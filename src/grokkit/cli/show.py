"""``grokkit show``: print a run's summary and write its curves."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from grokkit import runs
from grokkit.cli.catalogue import COMMANDS
from grokkit.cli.common import plot_curves
from grokkit.errors import InputError, printable


def register(sub) -> None:
    s = sub.add_parser("show", help=COMMANDS["show"])
    s.add_argument("run", help="run folder")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    if not os.path.lexists(run_dir / "summary.json"):  # anything else there: read_summary says what
        raise InputError(f"{run_dir} is not a grokkit run folder with a summary.json")
    summary = runs.read_summary(run_dir)
    width = max(len(k) for k in summary)
    for k, v in summary.items():  # a step never reached is null in summary.json: said in words
        v = "not reached" if v is None and k.startswith("steps_to_") else v
        print(printable(f"{k:<{width}}  {v}"))  # a folder from elsewhere cannot drive the terminal
    with runs.folder_lock(run_dir, "run folder"):  # not while a training process writes it
        plot_curves(run_dir, summary)
    return 0
