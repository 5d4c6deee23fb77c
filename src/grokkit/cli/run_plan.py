"""``--plan`` of ``grokkit train`` and ``grokkit sweep``: every run and the projected wall time on
this machine, from the cost model of ``reproduce --plan`` (grokkit.sweep.planning); nothing is
trained or written."""

from __future__ import annotations

import argparse
import json
import sys


def add_plan_flags(p) -> None:
    p.add_argument(
        "--plan",
        action="store_true",
        help="train nothing, write nothing: print every run and the projected wall time on "
        "this machine (measured: a few steps and one evaluation per model size, then cached)",
    )
    p.add_argument("--json", action="store_true", help="with --plan: print one JSON object")
    p.add_argument(
        "--remeasure",
        action="store_true",
        help="with --plan: time each kind of run again instead of using this machine's cached "
        "costs",
    )


def check_plan_flags(args: argparse.Namespace) -> None:
    from grokkit.errors import InputError

    for flag in ("json", "remeasure"):
        if getattr(args, flag) and not args.plan:
            raise InputError(f"--{flag} goes with --plan")


def print_run_plan(plan: dict, as_json: bool = False, file=None) -> None:
    from grokkit.experiments.reproduce import format_seconds
    from grokkit.sweep import cpu_count

    out = file or sys.stdout
    if as_json:
        print(json.dumps(plan), file=out)
        return
    print(
        f"{'operation':<12} {'modulus':>7} {'fraction':>8} {'seed':>4} {'k':>3} {'lr':>7} "
        f"{'wd':>5} {'steps':>13} {'status':<7} {'est.':>7}  setting",
        file=out,
    )
    for r in plan["runs"]:
        steps = f"{r['start_step']}->{r['steps']}" if r["start_step"] else str(r["steps"])
        setting = r["preset"] + ("" if r["arch"] == "grokkit" else f" {r['arch']}")
        setting += f" {','.join(r['methods'])}" if r["methods"] else ""
        print(
            f"{r['operation']:<12} {'-' if r['modulus'] is None else r['modulus']:>7} "
            f"{r['train_fraction']:>8.3f} {r['seed']:>4} {r['outliers']:>3} {r['lr']:>7.0e} "
            f"{r['weight_decay']:>5g} {steps:>13} {r['status']:<7} "
            f"{format_seconds(r['estimated_seconds']):>7}  {setting}",
            file=out,
        )
    print(file=out)
    if plan.get("backend"):
        print(f"backend: {plan['backend']['why']}", file=out)
    print(totals_line(plan), file=out)
    load, cores = plan.get("load_average"), cpu_count()
    if plan["device"] == "cpu" and load is not None and load > 0.5 * cores:
        print(
            f"note: the machine was busy while the costs were measured (load average {load:g} on "
            f"{cores} cores): the projection is pessimistic; run --plan --remeasure again on a "
            "quiet machine.",
            file=out,
        )


def planned_backend(request: str, device: str, configs) -> dict:
    """The backend the runs would get (for the longest run: a sweep chooses per population),
    without paying for a compile measurement."""
    from grokkit.backend_choice import choose_backend

    return choose_backend(request, device, configs, measure_compile=False).as_dict()


def totals_line(plan: dict) -> str:
    from grokkit.experiments.reproduce import format_seconds, spread
    from grokkit.sweep.projection import CAVEAT

    n_train = sum(r["status"] in ("new", "resume") for r in plan["runs"])
    bound = (
        "at most: a run with --stop-after-val-99 ends once it has generalised, which no "
        "projection can foresee"
        if plan["stops_early"]
        else "every run using its whole budget"
    )
    return (
        f"projected training time {format_seconds(plan['estimated_seconds'])} "
        f"({spread(plan)}) for {n_train} of {len(plan['runs'])} runs, {plan['jobs']} worker(s) x "
        f"{plan['threads']} thread(s) on {plan['device']} ({plan['hardware']}); {bound}."
        + (f" {CAVEAT}" if plan["jobs"] > 1 else "")  # the caveat is about workers sharing a CPU
    )
