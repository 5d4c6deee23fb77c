"""Reproduce a paper figure: train its runs (through the sweep), plot them, write DIR/REPORT.md.

All figures of one output folder share DIR/runs/ (a sweep folder), so a configuration two figures
need (Figure 1 left and Figure 4) is trained once. Each figure also leaves DIR/<figure>.json with
its scale, wall time (projected and actual), claim and verdict; REPORT.md is rebuilt from every
such file in DIR.

``plan_figures`` says what a call would train and how long it would take, before anything trains
(``grokkit reproduce --plan``); ``reproduce_figure`` computes the same projection first.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from grokkit import experiments
from grokkit.devices import device_name, load_average
from grokkit.errors import InputError
from grokkit.experiments import claims
from grokkit.experiments.common import (
    check_scale,
    member_steps,
    op_label,
    planned_runs as planned_runs_of,
)
from grokkit.runs import atomic_write_text, read_json, write_json
from grokkit.sweep import (
    default_jobs,
    default_max_population,
    finished_results,
    plan_sweep,
    run_sweep,
)
from grokkit.sweep.projection import CostMeter, project

REPORT = "REPORT.md"


def figure_module(name: str):
    # experiments.FIGURES imports the figure modules on first use (matplotlib, scipy, sklearn).
    FIGURES = experiments.FIGURES
    if name not in FIGURES:
        raise InputError(f"unknown figure {name!r}; choose one of: {', '.join(FIGURES)}, all")
    return FIGURES[name]


def own_options(module, options: dict) -> dict:
    """The options a figure module takes (its ``OPTIONS``), those left unset dropped."""
    return {k: v for k, v in options.items() if k in module.OPTIONS and v is not None}


def figure_runs(name: str, scale: str, **options):
    check_scale(scale)
    module = figure_module(name)
    return module.runs(scale, **own_options(module, options))


def planned_runs(name: str, scale: str, **options) -> list:
    """Every run a figure would train (``common.planned_runs``)."""
    check_scale(scale)
    module = figure_module(name)
    options = own_options(module, options)
    return planned_runs_of(module, scale, **options)


def _planned_in(name: str, scale: str, out_dir: Path | None, **options) -> list:
    """``planned_runs``, except that a figure choosing further runs from its first ones' results
    (the benchmark's tuned rows) whose first runs have all finished in ``out_dir`` gets the runs
    it will really train next, not stand-ins: a resumed benchmark's plan counts what is left."""
    module = figure_module(name)
    if out_dir is None or not hasattr(module, "followup_runs"):
        return planned_runs(name, scale, **options)
    options = own_options(module, options)
    first = module.runs(scale, **options)
    results = finished_results(first, out_dir)
    if results is None:
        return planned_runs(name, scale, **options)
    return first + module.followup_runs(results, scale, **options)


def plan_figure(
    name: str,
    scale: str,
    out_dir: Path | None,
    jobs: int | None = None,
    device: str = "cpu",
    meter: CostMeter | None = None,
    planned_before: frozenset[str] = frozenset(),
    **options,
) -> dict:
    """What ``reproduce_figure`` would train and its projected wall time; trains nothing.

    Returns {"figure", "runs": [one dict per run], "estimated_seconds", "jobs", "threads"}. A run's
    status is "new", "resume" (from its checkpoint), "done" (finished in ``out_dir``) or "shared"
    (trained by a figure planned before this one: ``planned_before`` holds their run names)."""
    out_dir = Path(out_dir) if out_dir is not None else None
    configs = _planned_in(name, scale, out_dir, **options)
    max_population = default_max_population(device)
    plan = plan_sweep(configs, out_dir, max_population, device, jobs)
    to_train = [plan.configs[n] for n in plan.todo if n not in planned_before]
    if len(to_train) < len(plan.todo):  # another figure trains these first: regroup the rest
        plan_rest = plan_sweep(to_train, out_dir, max_population, device, jobs)
    else:
        plan_rest = plan
    jobs = default_jobs(device, len(plan_rest.groups), jobs)
    projection = project(
        plan_rest.configs,
        plan_rest.groups,
        {n: st.step for n, st in plan_rest.states.items()},
        jobs,
        meter or CostMeter(device),
    )
    rows = [
        _plan_row(name, n, c, plan.states[n], n in planned_before, projection.run_seconds)
        for n, c in plan.configs.items()
    ]
    module = figure_module(name)
    planned_power = getattr(module, "planned_power", None)
    known = own_options(module, options)
    return {
        "figure": name,
        "scale": scale,
        "runs": rows,
        # each claim's power at the planned seeds against the paper's effect (declared designs)
        "power": planned_power(scale, **known) if planned_power else None,
        "estimated_seconds": projection.seconds,
        "estimated_seconds_low": projection.low,
        "estimated_seconds_high": projection.high,
        "jobs": projection.jobs,
        "threads": projection.threads,
    }


def _plan_row(name: str, n: str, c, state, shared: bool, seconds: dict) -> dict:
    """One run of a figure's plan: the figure, then the run as every plan lists it
    (``planning.plan_row``: its settings, lr and weight decay included), shared when a figure
    planned before this one trains it."""
    from grokkit.sweep.planning import plan_row

    row = {"figure": name, **plan_row(n, c, state, seconds.get(n, 0.0))}
    if shared and state.kind != "done":
        row["status"] = "shared"
    return row


def plan_figures(
    names: Sequence[str],
    scale: str,
    out_dir: Path | None,
    jobs: int | None = None,
    device: str = "cpu",
    meter: CostMeter | None = None,
    **options,
) -> dict:
    """The plan of several figures run one after another into one folder (``reproduce all``):
    {"runs", "estimated_seconds", "figures": {name: seconds}, "device", "hardware", "scale"}.
    Pass the ``meter`` the training will use, so each model size is measured once."""
    meter = meter or CostMeter(device)
    planned: set[str] = set()
    figures, rows = {}, []
    for name in names:
        p = plan_figure(name, scale, out_dir, jobs, device, meter, frozenset(planned), **options)
        figures[name] = {
            "estimated_seconds": p["estimated_seconds"],
            "estimated_seconds_low": p["estimated_seconds_low"],
            "estimated_seconds_high": p["estimated_seconds_high"],
            "jobs": p["jobs"],
            "threads": p["threads"],
            "power": p["power"],
        }
        rows += p["runs"]
        planned.update(r["run_name"] for r in p["runs"])
    return {
        "scale": scale,
        "device": device,
        "hardware": device_name(device),
        "runs": rows,
        **{
            k: sum(f[k] for f in figures.values())
            for k in ("estimated_seconds", "estimated_seconds_low", "estimated_seconds_high")
        },
        "figures": figures,
        # the machine's load while costs were measured (None: every cost came from the cache)
        "load_average": load_average() if meter.measured else None,
    }


def projection_line(plan: dict) -> str:
    """One line: what a figure's call trains and its projected wall time."""
    n_new = sum(r["status"] in ("new", "resume") for r in plan["runs"])
    return (
        f"{plan['figure']}: {len(plan['runs'])} runs, {n_new} to train; projected training time "
        f"{format_seconds(plan['estimated_seconds'])} ({spread(plan)}; {plan['jobs']} worker(s) x "
        f"{plan['threads']} thread(s), every run using its whole budget)"
    )


def spread(plan: dict) -> str:
    """The projection's range from its measured costs' spread, e.g. "2.0-2.4 h"."""
    seconds = plan["estimated_seconds"]
    low = plan.get("estimated_seconds_low", seconds)
    high = plan.get("estimated_seconds_high", seconds)
    a, b = format_seconds(low), format_seconds(high)
    if a.split()[-1] == b.split()[-1]:
        a = a.rsplit(" ", 1)[0]
    return f"{a}-{b}"


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def reproduce_figure(
    name: str,
    scale: str,
    out_dir: Path,
    executor: str = "local",
    jobs: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    loggers: Sequence[str] = (),
    meter: CostMeter | None = None,
    backend: str = "auto",
    **options,
) -> dict:
    """Train (or reuse) the figure's runs in out_dir/runs, write its files; returns its metadata.
    ``backend``: grokkit.backend_choice's request for every population ("auto" by default).
    Before training it projects the wall time (``plan_figure``), printed with ``progress``; pass
    one ``meter`` to figures run one after another, so each model size is measured once."""
    module = figure_module(name)
    options = own_options(module, options)
    configs = figure_runs(name, scale, **options)
    out_dir = Path(out_dir)
    plan = plan_figure(name, scale, out_dir, jobs, device, meter, **options)
    if progress:
        print(projection_line(plan), file=sys.stderr)
    started = time.perf_counter()
    sweep = dict(executor=executor, jobs=jobs, device=device, progress=progress, backend=backend)
    results = _train(module, configs, scale, out_dir, options, loggers=loggers, **sweep)
    trained = time.perf_counter()
    # The figure's numbers, computed once; the plot and the sentences are made from them.
    measured = module.measure(results, scale, **options)
    files = module.plot(measured, out_dir)
    meta = _metadata(module, name, scale, options, results, measured, files, device)
    meta["train_wall_seconds"] = trained - started
    meta["analysis_wall_seconds"] = time.perf_counter() - trained
    meta["projected_train_seconds"] = plan["estimated_seconds"]
    meta["wall_seconds"] = meta["train_wall_seconds"] + meta["analysis_wall_seconds"]
    if hasattr(module, "json_data"):  # a figure's own numbers beside its metadata
        meta.update(module.json_data(measured))
    write_json(out_dir / f"{name}.json", meta)
    write_report(out_dir)
    return meta


def _metadata(module, name, scale, options, results, measured, files, device) -> dict:
    """What a figure's JSON says of it besides its timings: its runs, findings and files."""
    return {
        "figure": name,
        "description": module.DESCRIPTION,
        "scale": scale,
        "options": options,
        "n_runs": len(results),
        **_findings(module, measured, scale),
        "run_wall_seconds_sum": sum(r.summary.get("wall_seconds") or 0.0 for r in results),
        "reductions": module.REDUCTIONS[scale],
        # the paper scale's work in member-steps; its time on a GPU is --plan's, measured there
        "paper_member_steps": member_steps(planned_runs(name, "paper", **options)),
        "files": [p.name for p in files],
        "device": device,
        "hardware": device_name(device),
        "tasks": sorted({op_label(r.config) for r in results}),
        "presets": sorted({r.config.preset or "custom" for r in results}),
    }


def _train(module, configs: list, scale: str, out_dir: Path, options: dict, **sweep) -> list:
    """The figure's runs through the sweep, then, for a figure that chooses further runs from the
    first ones' results (the benchmark's tuned runs), those; each run once."""
    results = run_sweep(configs, out_dir, **sweep)
    if hasattr(module, "followup_runs"):
        later = module.followup_runs(results, scale, **options)
        results = _unique(results + run_sweep(later, out_dir, **sweep))
    return results


def _findings(module, measured, scale: str) -> dict:
    """What the figure says about its paper's claims: one record per claim (``claims.decide``:
    a declared test, Holm-corrected over the figure's family), the verdict sentence made from
    those records, the figure's numbers in words (``describe``), which tested hypothesis explains
    a disagreement (figures that have one) and the benchmark's findings."""
    records = claims.decide(module.claims(measured), scale)
    return {
        "claim": module.CLAIM,
        "claims": records,
        "verdict": claims.prose(records),
        "numbers": module.describe(measured),
        # at smoke scale nothing is decided, so there is no disagreement to explain
        "disagreement": (
            module.disagreement(measured)
            if hasattr(module, "disagreement") and scale != "smoke"
            else None
        ),
        "findings": module.findings(measured) if hasattr(module, "findings") else [],
    }


def _unique(results: list) -> list:
    """Results once each (a second stage may hand back runs of the first)."""
    return list({r.run_dir: r for r in results}.values())


def write_report(out_dir: Path) -> Path:
    """REPORT.md from every DIR/<figure>.json present: claim, verdict, scale, wall time."""
    out_dir = Path(out_dir)
    metas = [
        read_json(out_dir / f"{n}.json")
        for n in experiments.FIGURES
        if (out_dir / f"{n}.json").is_file()
    ]
    lines = [
        "# grokkit reproduction report",
        "",
        (
            "Each section: the paper's claim the figure tests, and what our numbers say. Numbers "
            "come from the runs in `runs/`; every plotted number is in the figure's CSV."
        ),
        "",
    ]
    for m in metas:
        lines += _report_section(m)
    path = out_dir / REPORT
    atomic_write_text(path, "\n".join(lines))
    return path


def _report_section(m: dict) -> list[str]:
    """One figure's section of REPORT.md, from its metadata."""
    opts = ", ".join(f"{k}={v}" for k, v in m["options"].items())
    return [
        f"## {m['figure']}: {m['description']}",
        "",
        f"![{m['figure']}]({m['figure']}.png)",
        "",
        f"- **Paper's claim:** {m['claim']}",
        f"- **Our numbers:** {m.get('numbers', '')}",
        f"- **Verdicts:** {m['verdict']}",
        *[f"  - {claims.line(r)}" for r in m.get("claims", [])],
        *(
            [
                (
                    "- **Where we disagree with the paper, and why:** "
                    f"{m['disagreement']} (the hypotheses and runs: docs/figures.md)"
                )
            ]
            if m.get("disagreement")
            else []
        ),
        *[f"- **Claim checked:** {f}" for f in m.get("findings", [])],
        f"- **Scale:** `{m['scale']}`{f' ({opts})' if opts else ''}: {m['reductions']}",
        (f"- **Trained:** {', '.join(m.get('tasks', []))} with {', '.join(m.get('presets', []))}"),
        f"- **Wall time:** {m['wall_seconds']:.1f} s ({m['train_wall_seconds']:.1f} s training "
        f"incl. reused runs, {m['analysis_wall_seconds']:.1f} s analysis and plotting) for "
        f"{m['n_runs']} runs on {m['device']} ({m.get('hardware', 'hardware not recorded')})"
        + (
            f"; projected training time {m['projected_train_seconds']:.0f} s"
            if m.get("projected_train_seconds") is not None
            else ""
        ),
        (
            f"- **Paper scale:** {m['paper_member_steps']:,} member-steps (every run at its "
            "whole budget); `reproduce --scale paper --plan` on the machine measures their time"
            if m.get("paper_member_steps") is not None
            else "- **Paper scale:** not recorded"
        ),
        f"- **Files:** {', '.join(f'`{f}`' for f in m['files'])}",
        "",
    ]
