"""What every command shares: the parser that reports one line, exit codes, small flag helpers."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from grokkit.cli.exit_codes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED  # noqa: F401  (shared)
from grokkit.devices import (
    BACKEND_REQUESTS,
    DEVICE_CHOICES,
    THREADS_PER_CORE_LIMIT,
    cpu_count,
    default_threads,
    max_threads,
)
from grokkit.errors import InputError
from grokkit.loggers import LOGGER_NAMES, logger_factory

if TYPE_CHECKING:
    from grokkit.config import RunConfig


def add_device_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        choices=list(DEVICE_CHOICES),
        help="auto (default: the GPU where there is one), cpu, cuda or mps",
    )


def add_log_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log",
        action="append",
        choices=list(LOGGER_NAMES),
        metavar="VIEWER",
        help="also log every metrics row to tensorboard (event files in each run "
        "folder) or wandb (offline unless W&B is configured); repeatable",
    )


def add_threads_flag(p: argparse.ArgumentParser, what: str = "torch threads") -> None:
    p.add_argument(
        "--threads",
        type=_thread_count,
        metavar="N",
        help=f"{what}, 1 to {THREADS_PER_CORE_LIMIT} per core (default: the cores no other "
        "process is busy on when the work starts, or OMP_NUM_THREADS if set)",
    )


def add_backend_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=BACKEND_REQUESTS,
        default="auto",
        help="how steps are computed: auto (default) measures this machine once and compiles "
        "with torch.compile when the run is long enough to repay it; eager or compiled force it",
    )


def _thread_count(text: str) -> int:
    """--threads: a whole number up to ``max_threads()`` (refused in one line otherwise)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n > max_threads():  # below 1: require_at_least says so, in each command
        raise argparse.ArgumentTypeError(
            f"{n} is more than {THREADS_PER_CORE_LIMIT} per core of the {cpu_count()} this "
            f"process may use (at most {max_threads()}): more threads only wait for each other"
        )
    return n


def chosen_threads(args: argparse.Namespace) -> int | None:
    """The --threads value (checked), else None when OMP_NUM_THREADS already chose (torch read it
    at import), else the free cores now, saying in one line on stderr when those are fewer than
    the cores. Call it when the work is about to start: it samples the machine's load."""
    if getattr(args, "threads", None) is not None:
        require_at_least("--threads", args.threads, 1)
        return args.threads
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    threads, note = default_threads()
    if note:
        print(f"grokkit: {note}", file=sys.stderr)
    return threads


def apply_threads(args: argparse.Namespace) -> None:
    """``chosen_threads`` applied to this process's torch."""
    import torch

    threads = chosen_threads(args)
    if threads is not None:
        torch.set_num_threads(threads)


def log_names(args: argparse.Namespace) -> list[str]:
    """The --log viewers, each once, checked to be installed (one line if not) before any work."""
    names = list(dict.fromkeys(getattr(args, "log", None) or []))
    for name in names:
        logger_factory(name)
    return names


def require_at_least(flag: str, value: int | None, least: int) -> None:
    if value is not None and value < least:
        raise InputError(f"{flag} must be >= {least}, got {value}")


def fmt_steps(value) -> str:
    """A step count, or "not reached" where the summary holds None."""
    return "not reached" if value is None else str(value)


def run_title(summary: dict, config: RunConfig | None = None) -> str:
    """A run's curve title: its task, data, optimizer preset and seed, then (from its config) the
    architecture and every method setting that differs from the defaults, in words."""
    mod = f" mod {summary['modulus']}" if summary.get("modulus") else ""
    title = (
        f"{summary['operation']}{mod}, {100 * summary['train_fraction']:.0f}% data, "
        f"{summary.get('preset') or 'custom'}, seed {summary['seed']}"
    )
    if config is not None:
        extra = [
            f"{config.outliers} outliers" if config.outliers else "",
            f"arch {config.arch}" if config.arch != "grokkit" else "",
            config.method_description(),
        ]
        extra = ", ".join(e for e in extra if e)
        if extra:  # on a second line when one would run past the figure's width
            title += f"\n{extra}" if len(title) + len(extra) > 90 else f", {extra}"
    return title


def plot_curves(run_dir: Path, summary: dict) -> None:
    """curves.png and curves.pdf of a run folder; says where, or why not."""
    # Imported here: matplotlib costs ~0.4 s, which `grokkit data` and `bench` should not pay.
    from grokkit.plots import plot_run_curves

    if not summary.get("steps_done"):
        print("curves: skipped (the run has no steps yet)")
        return
    from grokkit.runs import read_config, read_metrics

    # The config names the run's methods in the title; rows read through runs: a damaged
    # metrics.csv or config.json is one line naming it.
    title = run_title(
        summary, read_config(run_dir) if (run_dir / "config.json").is_file() else None
    )
    png = plot_run_curves(read_metrics(run_dir), run_dir / "curves.png", title=title)
    print(f"curves: {png}")
