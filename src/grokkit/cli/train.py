"""``grokkit train``: train one run into a run folder, or resume one."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from grokkit import runs
from grokkit.backend_choice import check_request, choose_backend
from grokkit.cli.catalogue import COMMANDS
from grokkit.cli.common import (
    add_backend_flag,
    add_device_flag,
    add_log_flag,
    add_threads_flag,
    apply_threads,
    log_names,
    plot_curves,
    require_at_least,
)
from grokkit.cli.run_flags import add_run_flags, config_from_args, given_run_flags
from grokkit.cli.run_plan import (
    add_plan_flags,
    check_plan_flags,
    planned_backend,
    print_run_plan,
)
from grokkit.config import RunConfig, validate_run
from grokkit.devices import resolve_device
from grokkit.errors import InputError
from grokkit.loggers import logger_factory
from grokkit.train import train_runs


def register(sub) -> None:
    t = sub.add_parser("train", help=COMMANDS["train"])
    t.add_argument("--out", help="new run folder")
    t.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR from its checkpoint; --steps N sets a larger budget, "
        "--stop-after-val-99 N a new stop rule (0: never stop early)",
    )
    add_device_flag(t)
    add_log_flag(t)
    add_threads_flag(t)
    add_backend_flag(t)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--no-plot", action="store_true", help="do not write curves.png")
    add_plan_flags(t)
    add_run_flags(t)
    t.set_defaults(func=run, resume_hint=resume_hint)


def run(args: argparse.Namespace) -> int:
    require_at_least("--steps", args.steps, 0)
    require_at_least("--threads", args.threads, 1)
    check_request(args.backend)
    device = resolve_device(args.device)
    loggers = [logger_factory(name) for name in log_names(args)]  # checked before any work
    check_plan_flags(args)
    if args.resume:
        # The budget and the stop rule may change on a resume; nothing else may.
        given = [f for f in given_run_flags(args) if f != STOP_FLAG]
        given += ["--out"] if args.out else []
        if given:
            raise InputError(
                f"--resume continues a run as it was configured; drop {', '.join(given)}"
            )
    if args.plan:
        return _plan(args, device)
    if args.resume:
        run_dir = runs.require_resumable(Path(args.resume))
        over = _already_over(run_dir, args.steps, args.stop_after_val_99)
        if over is not None:  # read only: not even the lock file or the curves are rewritten
            print(summary_line(over, run_dir) + "; " + over_message(over, run_dir))
            return 1 if over["status"] == "diverged" else 0
        summary = _resume(run_dir, args, device, loggers)
    else:
        if not args.out:
            raise InputError("train needs --out DIR (or --resume DIR)")
        cfg = config_from_args(args)
        validate_run(cfg)
        # Chosen before any folder is made: a backend that cannot be had is refused in one line.
        args.chosen_backend = choose_backend(args.backend, device, [cfg])
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


STOP_FLAG = "--stop-after-val-99"


def _resume(run_dir: Path, args: argparse.Namespace, device: str, loggers) -> dict:
    """Train a run on from its checkpoint, to ``--steps`` and under ``--stop-after-val-99`` if
    given; its summary."""
    with runs.folder_lock(run_dir, "run folder"):  # before reading: another writer may be ahead
        cfg = runs.read_config(run_dir)
        if runs.started_without_checkpoint(run_dir):  # stopped before its first checkpoint
            if args.steps is not None:
                cfg = cfg.with_changes(steps=args.steps)
            if args.stop_after_val_99 is not None:
                cfg = _change_stop_rule(run_dir, cfg, args.stop_after_val_99)
            return _train(cfg, run_dir, None, device, loggers, args)  # from step 0
        state = runs.load_checkpoint(run_dir)
        stored = runs.config_from_dict(state["config"], run_dir / runs.CHECKPOINT)
        # Only the budget and the stop rule may differ (a resume may change both).
        if stored != cfg.with_changes(
            steps=stored.steps, stop_after_val_99=stored.stop_after_val_99
        ):
            raise InputError(f"{run_dir}: config.json and the checkpoint describe different runs")
        if args.steps is not None:
            if args.steps < state["step"]:
                raise InputError(
                    f"--steps {args.steps} is before the checkpoint (step {state['step']})"
                )
            cfg = cfg.with_changes(steps=args.steps)
        if args.stop_after_val_99 is not None:
            cfg = _change_stop_rule(run_dir, cfg, args.stop_after_val_99)
        return _train(cfg, run_dir, [state], device, loggers, args)


def _already_over(run_dir: Path, steps: int | None, stop: int | None) -> dict | None:
    """The summary of a run that has nothing left to do up to ``steps`` (default: its own budget)
    under its stop rule (``stop``: a new one, given on the resume) and whose checkpoint is where
    its summary says, else None (then the locked path below reads the folder again, and reports
    whatever is wrong with it)."""
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
            state = runs.load_checkpoint(run_dir)
    except runs.RunFolderError:
        return None
    old_stop = state["config"].get("stop_after_val_99")
    if summary["status"] == "stopped_early" and stop is not None and stop != old_stop:
        return None  # a new stop rule: the run trains on under it
    return summary if state["step"] >= summary["steps_done"] else None


def over_message(summary: dict, run_dir: Path) -> str:
    """Why a resumed run had nothing to do, and the command that would train it on."""
    status, done = summary["status"], summary["steps_done"]
    if status == "stopped_early":
        return (
            f"the run had stopped early ({summary.get('message') or 'its stop rule'}); nothing "
            f"was changed. To train on past the stop rule: grokkit train --resume {run_dir} "
            f"--steps N {STOP_FLAG} 0 (0: never stop early)"
        )
    if status == "completed":
        return (
            f"the run had already completed its budget of {done} steps; nothing was changed. "
            f"To train longer: grokkit train --resume {run_dir} --steps N (N > {done})"
        )
    return f"the run had already ended ({status}); nothing was changed"


def _change_stop_rule(run_dir: Path, cfg: RunConfig, stop: int) -> RunConfig:
    """The run's config under a new stop rule, recorded in its config.json (which holds every
    setting of the run but its budget, as its checkpoint does)."""
    cfg = cfg.with_changes(stop_after_val_99=stop)
    validate_run(cfg)
    stored = runs.read_json(run_dir / "config.json")
    runs.write_json(run_dir / "config.json", {**stored, "stop_after_val_99": stop})
    return cfg


def _plan(args: argparse.Namespace, device: str) -> int:
    """``train --plan``: the run and its projected wall time; reads only (a resumed run from its
    checkpoint's step, without the lock: a run being trained is planned as of its checkpoint)."""
    from grokkit.sweep.planning import plan_resume
    from grokkit.sweep.projection import CostMeter

    done = False
    if args.resume:
        run_dir = runs.require_resumable(Path(args.resume))
        done = _already_over(run_dir, args.steps, args.stop_after_val_99) is not None
        state = runs.load_checkpoint(run_dir)
        cfg = runs.config_from_dict(state["config"], run_dir / runs.CHECKPOINT)
        cfg = cfg.with_changes(steps=max(args.steps or cfg.steps, state["step"]))
        if args.stop_after_val_99 is not None:
            cfg = cfg.with_changes(stop_after_val_99=args.stop_after_val_99)
        start = state["step"]
    else:
        cfg = config_from_args(args)
        start = None
        if args.out:  # what the command itself would refuse, refused now
            runs.check_new_run_dir(Path(args.out), cfg)
    validate_run(cfg)
    apply_threads(args)  # measured with the threads the training will have
    meter = CostMeter(device, remeasure=args.remeasure)
    plan = plan_resume(cfg, start, device, meter, done=done)
    plan["backend"] = planned_backend(args.backend, device, [cfg])
    print_run_plan(plan, args.json)
    return 0


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
        backend=getattr(args, "chosen_backend", args.backend),
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
