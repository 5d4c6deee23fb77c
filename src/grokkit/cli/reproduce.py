"""``grokkit reproduce``: a paper figure's experiment, its plot, CSV and REPORT.md."""

from __future__ import annotations

import argparse

from grokkit import experiments
from grokkit.cli.catalogue import COMMANDS
from grokkit.cli.common import (
    add_backend_flag,
    add_device_flag,
    add_log_flag,
    add_threads_flag,
    require_at_least,
)
from grokkit.errors import InputError, unknown
from grokkit.experiments import SCALES
from grokkit.experiments.common import planned_runs


def register(sub) -> None:
    r = sub.add_parser("reproduce", help=COMMANDS["reproduce"])
    r.add_argument("figure", nargs="?", help="figure name (see --list) or 'all'")
    r.add_argument(
        "--list", action="store_true", help="list the figures with their run counts per scale"
    )
    r.add_argument(
        "--plan",
        action="store_true",
        help="train nothing: print every run and the projected wall time on this machine "
        "(measured: a few steps and one evaluation per model size)",
    )
    r.add_argument("--json", action="store_true", help="with --plan: print one JSON object")
    r.add_argument(
        "--scale",
        default="laptop",
        choices=list(SCALES),
        help="smoke (seconds: the code path only), laptop (default; minutes to hours on a CPU: "
        "see --plan) or paper (the paper's settings: a GPU or a cluster)",
    )
    r.add_argument("--out", help="output folder (shared by figures: DIR/runs/ is one sweep)")
    r.add_argument(
        "--executor",
        default="local",
        choices=["local", "ray"],
        help="local worker processes (default) or Ray ($RAY_ADDRESS or a local instance)",
    )
    r.add_argument("--jobs", type=int, help="worker processes (default: one per core of --threads)")
    add_threads_flag(r, "cores the figures' sweeps use, shared by their workers")
    add_backend_flag(r)
    add_device_flag(r)
    add_log_flag(r)
    _add_figure_options(r)
    r.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted call in --out: finished runs are kept as they are, "
        "interrupted ones continue from their last checkpoint (running the same command again "
        "does the same; --resume also refuses a folder that holds no runs yet)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress output")
    r.add_argument(
        "--remeasure",
        action="store_true",
        help="time each kind of run again instead of using this machine's cached costs",
    )
    r.set_defaults(
        func=run,
        resume_hint=lambda args: (
            "run the same grokkit reproduce command again (or with --resume) to resume"
        ),
    )


def _add_figure_options(r) -> None:
    """The options some figures take (each figure's OPTIONS says which)."""
    r.add_argument("--op", help="operation for fig6 (default x/y)")
    r.add_argument(
        "--arch",
        choices=["grokkit", "openai-grok", "both"],
        help="fig3 and fig7: the model trained, grokkit's or the authors' (openai-grok), "
        "or both side by side (their default)",
    )
    r.add_argument(
        "--seeds",
        type=int,
        metavar="N",
        help="seeds per point of every figure that trains seeds (default: the scale's; --plan "
        "states each claim's power at N)",
    )


def print_list() -> None:
    width = max(len("target"), *map(len, experiments.FIGURES))
    print(f"{'target':<{width}} {'runs: smoke':>11} {'laptop':>7} {'paper':>6}  description")
    for name, module in experiments.FIGURES.items():
        # a figure that counts its runs without building them (the benchmark: its trials need
        # scipy) says how many; the others are counted from their run lists
        count = getattr(module, "run_count", None)
        counts = [count(s) if count else len(planned_runs(module, s)) for s in SCALES]
        print(
            f"{name:<{width}} {counts[0]:>11} {counts[1]:>7} {counts[2]:>6}  {module.DESCRIPTION}"
        )


def run(args: argparse.Namespace) -> int:
    if args.list:
        print_list()
        return 0
    if args.json and not args.plan:
        raise InputError("--json goes with --plan")
    if not args.figure:
        raise InputError("reproduce needs a FIGURE (or 'all'), or --list")
    if args.figure != "all" and args.figure not in experiments.FIGURES:
        raise InputError(unknown("figure", args.figure, [*experiments.FIGURES, "all"]))
    require_at_least("--jobs", args.jobs, 1)
    require_at_least("--threads", args.threads, 1)
    # Planning and training import PyTorch and the sweep machinery; the listing above does not.
    from grokkit.backend_choice import check_request

    check_request(args.backend)
    from grokkit.cli import reproduce_figures

    return reproduce_figures.run(args)
