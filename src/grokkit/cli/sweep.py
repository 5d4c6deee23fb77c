"""``grokkit sweep``: train the cartesian product of several settings (see grokkit.sweep)."""

from __future__ import annotations

import argparse
from pathlib import Path

from grokkit.backend_choice import check_request
from grokkit.cli.catalogue import COMMANDS
from grokkit.cli.common import (
    add_backend_flag,
    add_device_flag,
    add_log_flag,
    add_threads_flag,
    apply_threads,
    fmt_steps,
    log_names,
    require_at_least,
)
from grokkit.cli.run_flags import GRID_FLAGS, SINGLE_FLAGS, add_run_flags, check_method_flags
from grokkit.cli.run_plan import (
    add_plan_flags,
    check_plan_flags,
    planned_backend,
    print_run_plan,
)
from grokkit.config import RunConfig, validate_run
from grokkit.devices import resolve_device
from grokkit.errors import InputError
from grokkit.sweep import check_out_dir, expand_grid, run_sweep


def register(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help=COMMANDS["sweep"],
        description="Train every combination of the given values (flags marked [grid] take one or "
        "more values). Runs that can share a population train together. Re-running "
        "the same command with the same --out skips finished runs and resumes "
        "interrupted ones from their checkpoints. OUT/index.csv lists every run. --plan "
        "prints every run and the projected wall time on this machine first, training nothing.",
    )
    g = p.add_argument_group("sweep")
    g.add_argument(
        "--out",
        help="sweep folder (new, empty, or an earlier sweep's to resume it); --plan "
        "reads it, if given, to tell finished and resumable runs",
    )
    add_plan_flags(g)
    g.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local worker processes (default) or Ray ($RAY_ADDRESS or a local instance)",
    )
    g.add_argument(
        "--jobs", type=int, help="parallel groups (default: CPU cores, never more than groups)"
    )
    g.add_argument(
        "--max-population",
        type=int,
        metavar="E",
        help="most runs trained as one population (default 16 on CPU, 256 on GPU)",
    )
    add_device_flag(g)
    add_log_flag(g)
    g.add_argument("--quiet", action="store_true", help="no progress bar, no per-run lines")
    add_threads_flag(g, "cores the sweep uses: its workers share them")
    add_backend_flag(g)
    add_run_flags(p, grid=True)
    p.set_defaults(
        func=run, resume_hint=lambda args: "run the same grokkit sweep command again to resume"
    )


def _plan(args: argparse.Namespace) -> int:
    """``sweep --plan``: every run, its state in --out (if given) and the projected wall time;
    reads only."""
    from grokkit.sweep.planning import plan_runs
    from grokkit.sweep.projection import CostMeter

    configs = configs_from_args(args)
    for config in configs:
        validate_run(config)
    out = Path(args.out) if args.out else None
    if out is not None:
        check_out_dir(out)
    device = resolve_device(args.device)
    apply_threads(args)  # measured with the threads the workers will share
    meter = CostMeter(device, remeasure=args.remeasure)
    plan = plan_runs(
        configs,
        out if out is not None and out.exists() else None,
        jobs=args.jobs,
        device=device,
        meter=meter,
        max_population=args.max_population,
    )
    plan["backend"] = planned_backend(args.backend, device, configs)
    print_run_plan(plan, args.json)
    return 0


def configs_from_args(args: argparse.Namespace) -> list[RunConfig]:
    """The sweep's configs: defaults, then the single-valued flags, then the grid."""
    check_method_flags(args)
    base = RunConfig()
    single = {f: getattr(args, a) for a, f in SINGLE_FLAGS.items() if getattr(args, a) is not None}
    if single:
        base = base.with_changes(**single)
    grid = {f: getattr(args, a) for a, f in GRID_FLAGS.items() if getattr(args, a) is not None}
    return expand_grid(base, grid)


def run(args: argparse.Namespace) -> int:
    require_at_least("--steps", args.steps, 0)
    require_at_least("--jobs", args.jobs, 1)
    require_at_least("--max-population", args.max_population, 1)
    require_at_least("--threads", args.threads, 1)
    check_request(args.backend)
    check_plan_flags(args)
    if args.plan:
        return _plan(args)
    if not args.out:
        raise InputError("sweep needs --out DIR (or --plan)")
    out = Path(args.out)
    apply_threads(args)
    # run_sweep checks every run, the executor and the folder before it writes anything.
    results = run_sweep(
        configs_from_args(args),
        out,
        executor=args.executor,
        jobs=args.jobs,
        device=resolve_device(args.device),
        max_population=args.max_population,
        progress=not args.quiet,
        loggers=log_names(args),
        backend=args.backend,
    )
    seen, rows = set(), []
    for r in results:
        if r.run_dir.name not in seen:
            seen.add(r.run_dir.name)
            s = r.summary
            best = (
                "" if s.get("best_val_accuracy") is None else f"{100 * s['best_val_accuracy']:.1f}%"
            )
            rows.append((r.run_dir.name, s["status"], best, fmt_steps(s.get("steps_to_val_99"))))
    header = ("run", "status", "best val", "val 99% at step")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    for row in (header, *rows):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    print(f"index: {out / 'index.csv'}")
    return 0
