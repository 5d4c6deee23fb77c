"""What ``grokkit reproduce FIGURE`` does once its flags are read: check every run, then print the
plan (``--plan``) or train the figures and write their plots, CSVs and REPORT.md. Apart from
``grokkit.cli.reproduce`` so that ``reproduce --list`` starts without PyTorch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grokkit import experiments
from grokkit.cli.common import apply_threads, log_names
from grokkit.config import validate_run
from grokkit.devices import resolve_device
from grokkit.errors import InputError
from grokkit.experiments.reproduce import (
    REPORT,
    figure_module,
    format_seconds,
    plan_figures,
    planned_runs,
    reproduce_figure,
    spread,
)
from grokkit.sweep import check_out_dir, cpu_count
from grokkit.sweep.projection import CAVEAT, CostMeter


def _setting(r: dict) -> str:
    """A plan row's optimizer preset, its architecture and its method settings when not the
    defaults (``RunConfig.method_tags``, as in the run's name)."""
    arch = "" if r.get("arch", "grokkit") == "grokkit" else f" {r['arch']}"
    methods = r.get("methods") or []
    return r["preset"] + arch + (f" {','.join(methods)}" if methods else "")


def _values(values: list, fmt: str = "{}") -> str:
    """Distinct values compactly: ``0.3``, ``0.3,0.5``, ``0-7`` (consecutive integers), or
    ``0.1..0.9 (9)``."""
    values = sorted(set(values))
    if (
        len(values) > 2
        and all(isinstance(v, int) for v in values)
        and values[-1] - values[0] == len(values) - 1
    ):
        return f"{values[0]}-{values[-1]}"
    if len(values) > 3:
        return f"{fmt.format(values[0])}..{fmt.format(values[-1])} ({len(values)})"
    return ",".join(fmt.format(v) for v in values)


def print_plan(plan: dict, compact: bool = False, file=None) -> None:
    """Every run of the plan (``compact``: one line per figure and setting, its fractions and
    seeds gathered), then the projected wall time per figure and in all."""
    out = file or sys.stdout
    (_print_groups if compact else _print_rows)(plan["runs"], out)
    print(file=out)
    _print_totals(plan, out)


def _optimizer(r: dict) -> tuple[str, str]:
    lr, wd = r.get("lr"), r.get("weight_decay")
    return ("-" if lr is None else _lr(lr), "-" if wd is None else f"{wd:g}")


def _lr(lr: float) -> str:
    """``1e-03`` for a round learning rate, three digits for a tuned one (``0.00112``)."""
    short = f"{lr:.0e}"
    return short if float(short) == lr else f"{lr:.3g}"


def _print_groups(runs: list[dict], out) -> None:
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        key = (r["figure"], r["operation"], r["modulus"], r.get("outliers", 0), *_optimizer(r))
        groups.setdefault(key + (_setting(r), r["steps"]), []).append(r)
    print(
        f"{'figure':<17} {'operation':<12} {'modulus':>7} {'fractions':>14} {'seeds':>6} "
        f"{'k':>3} {'lr':>7} {'wd':>5} {'steps':>8} {'runs':>5}  {'status':<16} {'est.':>7}  "
        "setting",
        file=out,
    )
    for (figure, op, modulus, k, lr, wd, setting, steps), rows in groups.items():
        counts = {st: sum(r["status"] == st for r in rows) for st in ("new", "resume", "done")}
        counts["shared"] = sum(r["status"] == "shared" for r in rows)
        status = ", ".join(f"{n} {st}" for st, n in counts.items() if n)
        est = format_seconds(sum(r["estimated_seconds"] for r in rows))
        print(
            f"{figure:<17} {op:<12} {'-' if modulus is None else modulus:>7} "
            f"{_values([r['train_fraction'] for r in rows], '{:g}'):>14} "
            f"{_values([r['seed'] for r in rows]):>6} {k:>3} {lr:>7} {wd:>5} {steps:>8} "
            f"{len(rows):>5}  "
            f"{status:<16} {est:>7}  {setting}",
            file=out,
        )


def _print_rows(runs: list[dict], out) -> None:
    print(
        f"{'figure':<17} {'operation':<12} {'modulus':>7} {'fraction':>8} {'seed':>4} {'k':>3} "
        f"{'lr':>7} {'wd':>5} {'steps':>9} {'status':<7} {'est.':>7}  setting",
        file=out,
    )
    for r in runs:
        modulus = "-" if r["modulus"] is None else r["modulus"]
        steps = f"{r['start_step']}->{r['steps']}" if r["start_step"] else str(r["steps"])
        lr, wd = _optimizer(r)
        print(
            f"{r['figure']:<17} {r['operation']:<12} {modulus:>7} "
            f"{r['train_fraction']:>8.3f} {r['seed']:>4} "
            f"{r.get('outliers', 0):>3} {lr:>7} {wd:>5} {steps:>9} {r['status']:<7} "
            f"{format_seconds(r['estimated_seconds']):>7}  {_setting(r)}",
            file=out,
        )


def _print_totals(plan: dict, out) -> None:
    for name, f in plan["figures"].items():
        print(
            f"{name}: {format_seconds(f['estimated_seconds'])} ({spread(f)}; "
            f"{f['jobs']} worker(s) x {f['threads']} thread(s))",
            file=out,
        )
        _print_power(f.get("power"), out)
    n_train = sum(r["status"] in ("new", "resume") for r in plan["runs"])
    print(
        f"projected training time {format_seconds(plan['estimated_seconds'])} "
        f"({plan['estimated_seconds']:.0f} s; from the spread of the measured step costs "
        f"{spread(plan)}) for {n_train} runs to train of {len(plan['runs'])}, "
        f"scale {plan['scale']}, on {plan['device']} ({plan['hardware']}), "
        f"every run using its whole budget: runs that stop once they generalised take less. "
        f"{CAVEAT}",
        file=out,
    )
    load, cores = plan.get("load_average"), cpu_count()
    if plan["device"] == "cpu" and load is not None and load > 0.5 * cores:
        print(
            f"note: the machine was busy while the costs were measured (load average {load:g} on "
            f"{cores} cores): the projection is pessimistic; run --plan again on a quiet machine.",
            file=out,
        )


def _print_power(power: list[dict] | None, out) -> None:
    """Each claim's power at the planned seeds against the paper's effect."""
    if not power:
        print("  power: computed from the runs (each claim's record in <figure>.json)", file=out)
        return
    for p in power:
        value = "n/a" if p["power"] is None else f"{p['power']:.2f}"
        print(f"  power {value}: {p['id']} (effect: {p['effect']})", file=out)


# Each option a figure module may declare (its OPTIONS) -> the reproduce flag that gives it (its
# attribute on the parsed arguments). Which figures take an option is each figure's declaration.
FIGURE_FLAGS = {"operation": "op", "arch": "arch", "seeds": "seeds"}


def run(args: argparse.Namespace) -> int:
    names = list(experiments.ALL_FIGURES) if args.figure == "all" else [args.figure]
    options = {option: getattr(args, dest) for option, dest in FIGURE_FLAGS.items()}
    _check_runs(names, args, options)
    if args.plan or args.out:  # the projection measures with the threads the training will have
        apply_threads(args)
    if args.plan:
        out = Path(args.out) if args.out else None
        if out is not None:
            check_out_dir(out)
        device = resolve_device(args.device)
        meter = CostMeter(device, remeasure=args.remeasure)
        plan = plan_figures(
            names, args.scale, out, jobs=args.jobs, device=device, meter=meter, **options
        )
        if args.json:
            print(json.dumps(plan))
        else:
            print_plan(plan)
        return 0
    if not args.out:
        raise InputError("reproduce needs --out DIR")
    if getattr(args, "resume", False):
        _check_resumable(Path(args.out))
    _train(names, args, options)
    return 0


def _check_resumable(out: Path) -> None:
    """``--resume`` continues a call that started: its folder must hold its runs."""
    if not (out / "runs").is_dir():
        raise InputError(f"--resume: {out} holds no runs to continue; start it without --resume")


def _check_runs(names: list[str], args: argparse.Namespace, options: dict) -> None:
    """Every run of every figure is checked before any training starts."""
    for option, value in options.items():  # a flag no figure asked for takes: refused
        if value is not None and not any(option in figure_module(n).OPTIONS for n in names):
            takers = [n for n, m in experiments.FIGURES.items() if option in m.OPTIONS]
            raise InputError(
                f"--{FIGURE_FLAGS[option]} applies to {', '.join(takers)}, not {', '.join(names)}"
            )
    for name in names:  # an unknown figure or scale, or an unknown --op: one line
        for config in planned_runs(name, args.scale, **options):
            validate_run(config)


def _train(names: list[str], args: argparse.Namespace, options: dict) -> None:
    out = Path(args.out)
    check_out_dir(out)
    device = resolve_device(args.device)
    loggers = log_names(args)
    meter = CostMeter(device, remeasure=args.remeasure)  # figures of one call share them
    if not args.quiet:  # the plan first, as --plan prints it but one line per figure and setting
        plan = plan_figures(
            names, args.scale, out, jobs=args.jobs, device=device, meter=meter, **options
        )
        print_plan(plan, compact=True, file=sys.stderr)
    for name in names:
        meta = reproduce_figure(
            name,
            args.scale,
            out,
            executor=args.executor,
            jobs=args.jobs,
            device=device,
            progress=not args.quiet,
            loggers=loggers,
            meter=meter,
            backend=args.backend,
            **options,
        )
        print(f"{name}: {meta['verdict']} ({meta['wall_seconds']:.1f} s)")
        if not args.quiet:
            print(
                f"{name}: training took {meta['train_wall_seconds']:.0f} s, projected "
                f"{meta['projected_train_seconds']:.0f} s; "
                f"analysis {meta['analysis_wall_seconds']:.0f} s",
                file=sys.stderr,
            )
    print(f"report: {out / REPORT}", file=sys.stderr if args.quiet else sys.stdout)
