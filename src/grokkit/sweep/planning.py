"""What ``grokkit train --plan`` and ``grokkit sweep --plan`` print: every run, its status and its
projected wall time on this machine (``projection``: the cost model of ``reproduce --plan``),
trained nothing and written nothing (only the machine's measured costs are cached)."""

from __future__ import annotations

from pathlib import Path

from grokkit.config import RunConfig
from grokkit.devices import device_name, load_average
from grokkit.sweep import default_jobs, default_max_population, plan_sweep, run_name
from grokkit.sweep.folder import RunState
from grokkit.sweep.projection import CostMeter, project


def plan_runs(
    configs: list[RunConfig],
    out_dir: Path | None,
    jobs: int | None = None,
    device: str = "cpu",
    meter: CostMeter | None = None,
    max_population: int | None = None,
) -> dict:
    """The plan of ``run_sweep(configs, out_dir, ...)``: {"runs": one row per run, "jobs",
    "threads", "estimated_seconds" (and its ``_low``, ``_high`` spread), "device", "hardware",
    "load_average", "stops_early"} (``stops_early``: some run has a stop rule, so the projection,
    every run using its whole budget, is an upper bound)."""
    max_population = max_population or default_max_population(device)
    plan = plan_sweep(configs, out_dir, max_population, device, jobs)
    return _plan(plan.configs, plan.states, plan.groups, jobs, device, meter)


def plan_resume(
    config: RunConfig,
    start_step: int | None,
    device: str = "cpu",
    meter: CostMeter | None = None,
    done: bool = False,
) -> dict:
    """The plan of ``grokkit train``: one run, fresh (``start_step`` None), resumed from its
    checkpoint at ``start_step``, or ``done`` (a resume with nothing left to train)."""
    name = run_name(config)
    if done:
        state = RunState("done", start_step or 0)
    else:
        state = RunState("fresh") if start_step is None else RunState("resume", start_step)
    groups = [] if done else [([name], state.kind == "resume")]
    return _plan({name: config}, {name: state}, groups, 1, device, meter)


def _plan(configs, states, groups, jobs, device, meter) -> dict:
    meter = meter or CostMeter(device)
    jobs = default_jobs(device, len(groups), jobs)
    projection = project(configs, groups, {n: s.step for n, s in states.items()}, jobs, meter)
    seconds = projection.run_seconds
    rows = [plan_row(n, c, states[n], seconds.get(n, 0.0)) for n, c in configs.items()]
    return {
        "runs": rows,
        "jobs": projection.jobs,
        "threads": projection.threads,
        "estimated_seconds": projection.seconds,
        "estimated_seconds_low": projection.low,
        "estimated_seconds_high": projection.high,
        "device": device,
        "hardware": device_name(device),
        "load_average": load_average() if meter.measured else None,
        "stops_early": any(r["stop_after_val_99"] and r["status"] != "done" for r in rows),
    }


def plan_row(name: str, c: RunConfig, state: RunState, seconds: float) -> dict:
    """One run: what defines it (the optimizer's learning rate and weight decay included, so that
    runs of one preset read apart), its status and its projected seconds."""
    return {
        "run_name": name,
        "operation": c.operation,
        "modulus": None if c.operation.startswith("s5") else c.modulus,
        "train_fraction": c.train_fraction,
        "seed": c.seed,
        "outliers": c.outliers,
        "preset": c.preset or "custom",
        "lr": c.optimizer.lr,
        "weight_decay": c.optimizer.weight_decay,
        "arch": c.arch,
        "methods": c.method_tags(),
        "steps": c.steps,
        "stop_after_val_99": c.stop_after_val_99,
        "start_step": state.step if state.kind == "resume" else 0,
        "status": {"fresh": "new", "resume": "resume", "done": "done"}[state.kind],
        "estimated_seconds": round(seconds, 1),
    }
