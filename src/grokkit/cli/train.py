"""``grokkit train``: train one run into a run folder, or resume one."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from grokkit import runs
from grokkit.cli.catalogue import COMMANDS
from grokkit.cli.common import (
    add_device_flag,
    add_log_flag,
    add_threads_flag,
    apply_threads,
    log_names,
    plot_curves,
    require_at_least,
)
from grokkit.cli.run_flags import add_run_flags, config_from_args, given_run_flags
from grokkit.config import RunConfig, validate_run
from grokkit.devices import resolve_device
from grokkit.errors import InputError
from grokkit.loggers import logger_factory
from grokkit.train import train_runs


def register(sub) -> None:
    t = sub.add_parser("train", help=COMMANDS["train"])
    t.add_argument("--out", help="new run folder")
    t.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint")
    add_device_flag(t)
    add_log_flag(t)
    add_threads_flag(t)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--no-plot", action="store_true", help="do not write curves.png")
    add_run_flags(t)
    t.set_defaults(func=run, resume_hint=resume_hint)


def run(args: argparse.Namespace) -> int:
    require_at_least("--steps", args.steps, 0)
    require_at_least("--threads", args.threads, 1)
    device = resolve_device(args.device)
    loggers = [logger_factory(name) for name in log_names(args)]  # checked before any work
    if args.resume:
        given = given_run_flags(args) + (["--out"] if args.out else [])
        if given:
            raise InputError(
                f"--resume continues a run as it was configured; drop {', '.join(given)}"
            )
        run_dir = runs.require_resumable(Path(args.resume))
        over = _already_over(run_dir, args.steps)
        if over is not None:  # read only: not even the lock file or the curves are rewritten
            print(summary_line(over, run_dir) + "; the run was already over, nothing was changed")
            return 1 if over["status"] == "diverged" else 0
        with runs.folder_lock(run_dir, "run folder"):  # before reading: another writer may be ahead
            cfg = runs.read_config(run_dir)
            if runs.started_without_checkpoint(run_dir):  # stopped before its first checkpoint
                cfg = cfg if args.steps is None else cfg.with_changes(steps=args.steps)
                summary = _train(cfg, run_dir, None, device, loggers, args)  # from step 0
                return _report(summary, run_dir, args)
            state = runs.load_checkpoint(run_dir)
            stored = runs.config_from_dict(state["config"], run_dir / runs.CHECKPOINT)
            if stored != cfg.with_changes(steps=stored.steps):  # only the budget may differ
                raise InputError(
                    f"{run_dir}: config.json and the checkpoint describe different runs"
                )
            if args.steps is not None:
                if args.steps < state["step"]:
                    raise InputError(
                        f"--steps {args.steps} is before the checkpoint (step {state['step']})"
                    )
                cfg = cfg.with_changes(steps=args.steps)
            summary = _train(cfg, run_dir, [state], device, loggers, args)
    else:
        if not args.out:
            raise InputError("train needs --out DIR (or --resume DIR)")
        cfg = config_from_args(args)
        validate_run(cfg)
        run_dir = runs.prepare_new_run_dir(Path(args.out), cfg)
        summary = _train(cfg, run_dir, None, device, loggers, args)
    return _report(summary, run_dir, args)


def _report(summary: dict, run_dir: Path, args: argparse.Namespace) -> int:
    """The curves and the summary line of a run that has trained; its exit code."""
    if not args.no_plot:
        plot_curves(run_dir, summary)
    print(summary_line(summary, run_dir))
    if summary["status"] == "diverged":
        print(f"grokkit: error: {summary['message']}", file=sys.stderr)
        return 1
    return 0


def _already_over(run_dir: Path, steps: int | None) -> dict | None:
    """The summary of a run that has nothing left to do up to ``steps`` (default: its own budget)
    and whose checkpoint is where its summary says, else None (then the locked path below reads
    the folder again, and reports whatever is wrong with it)."""
    try:
        summary = runs.read_summary(run_dir)
        if steps is not None and steps < summary["steps_done"]:
            return None  # refused on the locked path, with the reason
        # Without --steps the budget is the run's own: a run that completed one has met it.
        if not runs.is_finished(summary, 0 if steps is None else steps):
            return None
        with (
            warnings.catch_warnings()
        ):  # a fallback to previous.pt is said once, by the locked path
            warnings.simplefilter("ignore")
            step = runs.load_checkpoint(run_dir)["step"]
    except runs.RunFolderError:
        return None
    return summary if step >= summary["steps_done"] else None


def resume_hint(args: argparse.Namespace) -> str:
    return f"resume with: grokkit train --resume {args.resume or args.out}"


def _train(
    cfg: RunConfig, run_dir: Path, states, device: str, loggers, args: argparse.Namespace
) -> dict:
    apply_threads(args)
    return train_runs(
        [cfg],
        [run_dir],
        states=states,
        device=device,
        progress=not args.quiet,
        description=str(run_dir),
        loggers=loggers,
    )[0]


def summary_line(s: dict, run_dir: Path) -> str:
    return (
        f"{run_dir}: {s['status']} at step {s['steps_done']}: "
        f"train {100 * s['train_accuracy']:.1f}% "
        f"val {100 * s['val_accuracy']:.1f}% (best {100 * s['best_val_accuracy']:.1f}%); "
        f"99% train {_reached(s['steps_to_train_99'])}, 99% val {_reached(s['steps_to_val_99'])}; "
        f"{s['wall_seconds']:.1f} s"
    )


def _reached(step: int | None) -> str:
    return "not reached" if step is None else f"at step {step}"
