"""``grokkit show``: print a run's summary and write its curves."""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from grokkit import runs
from grokkit.cli.catalogue import COMMANDS
from grokkit.cli.common import plot_curves
from grokkit.errors import InputError, printable


def register(sub) -> None:
    s = sub.add_parser("show", help=COMMANDS["show"])
    s.add_argument("run", help="run folder (one of a sweep's: SWEEP/runs/NAME)")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    _require_summary(run_dir)
    # Read without the writer's lock: every file is replaced whole by a rename, so a run being
    # trained reads as it was at its last checkpoint.
    summary = runs.read_summary(run_dir)
    width = max(len(k) for k in summary)
    for k, v in summary.items():  # a folder from elsewhere cannot drive the terminal
        print(printable(f"{k:<{width}}  {shown(k, v)}"))
    with contextlib.ExitStack() as held:
        try:  # curves.png is the trainer's to write while it trains
            held.enter_context(runs.folder_lock(run_dir, "run folder"))
        except runs.FolderLockedError:
            print(
                printable(
                    f"curves: not written: another grokkit process is training {run_dir} (it "
                    f"writes curves.png when it ends); to see them now: grokkit compare "
                    f"{run_dir} --out FILE.png"
                )
            )
            return 0
        plot_curves(run_dir, summary)
    return 0


def _require_summary(run_dir: Path) -> None:
    """A folder that is not a run with a summary: one line saying what it is and what to run."""
    if os.path.lexists(run_dir / "summary.json"):  # anything there: read_summary says what
        return
    if (run_dir / "index.csv").is_file():
        raise InputError(
            f"{run_dir} is a sweep folder, not a run folder: grokkit compare {run_dir} overlays "
            f"its runs' curves, grokkit show {run_dir / 'runs'}/NAME shows one run, and "
            f"grokkit.load_sweep({str(run_dir)!r}) reads its index in Python"
        )
    if runs.is_run_dir(run_dir):
        raise InputError(
            f"{run_dir} is a run folder without a summary.json yet: its training has not reached "
            "its first checkpoint (every --checkpoint-every steps); show it again then"
        )
    raise InputError(f"{run_dir} is not a grokkit run folder (no summary.json)")


def shown(key: str, value) -> str:
    """A summary value as a person reads it: accuracies in percent (as every other grokkit
    output), losses to four digits, seconds to a tenth, a step never reached in words."""
    if value is None:
        return "not reached" if key.startswith("steps_to_") else "none"
    if isinstance(value, float) and key.endswith("accuracy"):
        return f"{100 * value:.2f}%"
    if isinstance(value, float) and key.endswith("loss"):
        return f"{value:.4g}"
    if isinstance(value, float) and key == "wall_seconds":
        return f"{value:.1f} s"
    return str(value)
