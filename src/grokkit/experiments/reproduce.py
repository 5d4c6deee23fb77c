"""``grokkit reproduce``: train a figure's runs, plot them, and write DIR/REPORT.md.

All figures of one output folder share DIR/runs/ (a sweep folder), so a configuration two figures
need (Figure 1 left and Figure 4) is trained once. Each figure also leaves DIR/<figure>.json with
its scale, wall time, claim and verdict; REPORT.md is rebuilt from every such file in DIR.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPORT = "REPORT.md"


def figure_module(name: str):
    from grokkit.experiments import FIGURES

    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; choose one of: {', '.join(FIGURES)}, all")
    return FIGURES[name]


def figure_runs(name: str, scale: str, **options):
    from grokkit.experiments.common import check_scale

    check_scale(scale)
    module = figure_module(name)
    return module.runs(scale, **{k: v for k, v in options.items() if k in module.OPTIONS and v is not None})


def reproduce_figure(name: str, scale: str, out_dir: Path, executor: str = "local", jobs: int | None = None,
                     device: str = "cpu", progress: bool = True, **options) -> dict:
    """Train (or reuse) the figure's runs in out_dir/runs, write its files; returns its metadata."""
    from grokkit.experiments.common import gpu_hours
    from grokkit.runs import write_json
    from grokkit.sweep import run_sweep

    module = figure_module(name)
    options = {k: v for k, v in options.items() if k in module.OPTIONS and v is not None}
    configs = figure_runs(name, scale, **options)
    out_dir = Path(out_dir)
    started = time.perf_counter()
    results = run_sweep(configs, out_dir, executor=executor, jobs=jobs, device=device, progress=progress)
    trained = time.perf_counter()
    files = module.plot(results, out_dir, scale, **options)
    text = module.verdict(results)
    finished = time.perf_counter()
    meta = {
        "figure": name, "description": module.DESCRIPTION, "scale": scale, "options": options,
        "n_runs": len(configs), "wall_seconds": finished - started,
        "train_wall_seconds": trained - started, "analysis_wall_seconds": finished - trained,
        "run_wall_seconds_sum": sum(r.summary.get("wall_seconds") or 0.0 for r in results),
        "claim": module.CLAIM, "verdict": text, "reductions": module.REDUCTIONS[scale],
        "paper_gpu_hours_estimate": gpu_hours(module.runs("paper", **options)),
        "files": [p.name for p in files], "device": device,
    }  # fmt: skip
    write_json(out_dir / f"{name}.json", meta)
    write_report(out_dir)
    return meta


def write_report(out_dir: Path) -> Path:
    """REPORT.md from every DIR/<figure>.json present: claim, verdict, scale, wall time."""
    from grokkit.experiments import FIGURES
    from grokkit.experiments.common import GPU_MEMBER_STEPS_PER_SECOND
    from grokkit.runs import atomic_write_text, read_json

    out_dir = Path(out_dir)
    metas = [read_json(out_dir / f"{n}.json") for n in FIGURES if (out_dir / f"{n}.json").is_file()]
    lines = ["# grokkit reproduction report", "",
             "Each section: the paper's claim the figure tests, and what our numbers say. Numbers "
             "come from the runs in `runs/`; every plotted number is in the figure's CSV.", ""]  # fmt: skip
    for m in metas:
        opts = ", ".join(f"{k}={v}" for k, v in m["options"].items())
        lines += [
            f"## {m['figure']}: {m['description']}", "",
            f"![{m['figure']}]({m['figure']}.png)", "",
            f"- **Paper's claim:** {m['claim']}",
            f"- **Our numbers:** {m['verdict']}",
            f"- **Scale:** `{m['scale']}`{f' ({opts})' if opts else ''}: {m['reductions']}",
            f"- **Wall time:** {m['wall_seconds']:.1f} s ({m['train_wall_seconds']:.1f} s training "
            f"incl. reused runs, {m['analysis_wall_seconds']:.1f} s analysis and plotting) for "
            f"{m['n_runs']} runs on {m['device']}",
            f"- **Paper scale estimate:** {m['paper_gpu_hours_estimate']:.1f} GPU-hours "
            f"(assumes {GPU_MEMBER_STEPS_PER_SECOND:.0f} member-steps/s on one H100, every run using its whole budget)",
            f"- **Files:** {', '.join(f'`{f}`' for f in m['files'])}", "",
        ]  # fmt: skip
    path = out_dir / REPORT
    atomic_write_text(path, "\n".join(lines))
    return path


# ---------------------------------------------------------------- the command


def add_reproduce_command(sub) -> None:
    r = sub.add_parser("reproduce", help="run a paper figure's experiment and write its plot, CSV and REPORT.md")
    r.add_argument("figure", nargs="?", help="figure name (see --list) or 'all'")
    r.add_argument("--list", action="store_true", help="list the figures with their run counts per scale")
    r.add_argument("--scale", default="laptop", help="smoke | laptop | paper (default laptop)")
    r.add_argument("--out", help="output folder (shared by figures: DIR/runs/ is one sweep)")
    r.add_argument("--executor", default="local", choices=["local", "ray"])
    r.add_argument("--jobs", type=int, help="worker processes (default: one per CPU core)")
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    r.add_argument("--op", help="operation for fig6 (default x/y)")
    r.add_argument("--quiet", action="store_true", help="no progress output")
    r.set_defaults(func=cmd_reproduce)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from grokkit.cli import UsageError, resolve_device
    from grokkit.experiments import FIGURES, SCALES

    if args.list:
        print(f"{'figure':<12} {'smoke':>6} {'laptop':>7} {'paper':>6}  description")
        for name, module in FIGURES.items():
            counts = [len(module.runs(s)) for s in SCALES]
            print(f"{name:<12} {counts[0]:>6} {counts[1]:>7} {counts[2]:>6}  {module.DESCRIPTION}")
        return 0
    if not args.figure:
        raise UsageError("reproduce needs a FIGURE (or 'all'), or --list")
    if args.figure != "all" and args.figure not in FIGURES:
        raise UsageError(f"unknown figure {args.figure!r}; choose one of: {', '.join(FIGURES)}, all")
    if args.scale not in SCALES:
        raise UsageError(f"unknown scale {args.scale!r}; choose one of: {', '.join(SCALES)}")
    if not args.out:
        raise UsageError("reproduce needs --out DIR")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    names = list(FIGURES) if args.figure == "all" else [args.figure]
    options = {"operation": args.op}
    if args.op is not None:
        from grokkit.data import make_table

        make_table(args.op, 97)  # an unknown operation fails here, before any work
        if "fig6" not in names:
            raise UsageError("--op applies to fig6 only")
    for name in names:  # every figure's runs are built before any training starts
        figure_runs(name, args.scale, **options)
    from grokkit.sweep import check_out_dir

    check_out_dir(Path(args.out))
    device = resolve_device(args.device)
    for name in names:
        meta = reproduce_figure(name, args.scale, Path(args.out), executor=args.executor, jobs=args.jobs,
                                device=device, progress=not args.quiet, **options)  # fmt: skip
        print(f"{name}: {meta['verdict']} ({meta['wall_seconds']:.1f} s)")
    print(f"report: {Path(args.out) / REPORT}", file=sys.stderr if args.quiet else sys.stdout)
    return 0
