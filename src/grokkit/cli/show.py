"""``grokkit show``: print a run's summary and write its curves."""

from __future__ import annotations

import argparse
from pathlib import Path

from grokkit import runs
from grokkit.cli.common import plot_curves
from grokkit.errors import InputError


def register(sub) -> None:
    s = sub.add_parser("show", help="print a run's summary and write its curves as PNG")
    s.add_argument("run", help="run folder")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    if not (run_dir / "summary.json").is_file():
        raise InputError(f"{run_dir} is not a grokkit run folder with a summary.json")
    summary = runs.read_summary(run_dir)
    width = max(len(k) for k in summary)
    for k, v in summary.items():
        print(f"{k:<{width}}  {v}")
    plot_curves(run_dir, summary)
    return 0
