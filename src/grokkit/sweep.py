"""Sweeps: many runs, grouped into populations, trained by local worker processes or by Ray.

A sweep folder holds one ordinary run folder per run plus an index of all of them::

    OUT/runs/<run_name>/   config.json, metrics.csv, summary.json, checkpoints/latest.pt
    OUT/index.csv          one row per run: name, folder, main settings, status, summary numbers
    OUT/index.json         the same rows as a JSON list

Running the same sweep again into the same folder is how it resumes: finished runs are skipped,
interrupted runs continue from their last checkpoint (exactly as if never stopped), and runs that
were killed before their first checkpoint start again. Killing a sweep at any moment therefore
loses at most the work since each run's last checkpoint.

A run's folder name (``run_name``) is derived from its whole configuration, budget included, so
raising ``steps`` makes *new* runs next to the old ones rather than extending them; use
``grokkit train --resume DIR --steps N`` to extend one run in place.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

from grokkit import runs
from grokkit.config import RunConfig
from grokkit.optim import OptimizerConfig

FINISHED = ("completed", "stopped_early", "diverged")
INDEX_CONFIG_FIELDS = (
    "operation", "modulus", "train_fraction", "seed", "split_seed", "preset", "outliers",
    "outlier_seed", "steps", "lr", "weight_decay", "decay_target", "beta1", "beta2",
    "warmup_steps", "batch_size", "update_noise", "weight_noise", "dropout", "n_layers",
    "d_model", "n_heads", "d_mlp", "norm", "activation", "eval_every", "checkpoint_every",
    "stop_after_val_99",
)  # fmt: skip
INDEX_SUMMARY_FIELDS = (
    "status", "steps_done", "best_val_accuracy", "steps_to_train_99", "steps_to_val_99",
    "val_accuracy", "train_accuracy", "val_loss", "train_loss", "wall_seconds",
)  # fmt: skip
INDEX_COLUMNS = ("run_name", "folder", *INDEX_CONFIG_FIELDS, *INDEX_SUMMARY_FIELDS)
# The files train_runs writes into a run folder (what a restart may clear; nothing else).
_RUN_FILES = ("config.json", "metrics.csv", "summary.json", "curves.png", "curves.pdf")

_RUN_FIELDS = {f.name for f in fields(RunConfig)}
_OPT_FIELDS = {f.name for f in fields(OptimizerConfig)}


class SweepError(runs.RunFolderError):
    """A sweep folder that cannot be used as asked; one line (the CLI shows it, exit code 2)."""


@dataclass(frozen=True)
class SweepResult:
    config: RunConfig
    run_dir: Path
    summary: dict  # the run's summary.json


# ---------------------------------------------------------------- building the list of runs


def expand_grid(base: RunConfig, grid: dict[str, Sequence]) -> list[RunConfig]:
    """Every combination of the grid's values applied to ``base`` (the cartesian product).

    Keys are RunConfig field names or OptimizerConfig field names (lr, weight_decay, dropout, ...),
    plus ``"preset"``: a name from ``grokkit.optim.PRESETS`` that replaces the whole optimizer
    config (and sets ``RunConfig.preset``) before the other optimizer keys are applied. The order
    is that of ``itertools.product`` over the keys in the dict's order (the last key varies
    fastest), so the same grid always gives the same list. Values that are not sequences are
    taken as a single value.
    """
    from grokkit.optim import preset as preset_config

    keys = list(grid)
    for k in keys:
        if k != "preset" and k not in _RUN_FIELDS and k not in _OPT_FIELDS:
            raise ValueError(f"unknown sweep key {k!r}; use RunConfig or OptimizerConfig field names or 'preset'")
    values = []
    for k in keys:
        v = grid[k]
        v = list(v) if isinstance(v, (list, tuple, range)) else [v]
        if not v:
            raise ValueError(f"sweep key {k!r} has no values")
        values.append(v)
    configs = []
    for combo in itertools.product(*values):
        changes = dict(zip(keys, combo))
        cfg = base
        if "preset" in changes:
            name = changes.pop("preset")
            cfg = replace(cfg, optimizer=preset_config(name), preset=name)
        configs.append(cfg.with_changes(**changes) if changes else cfg)
    return configs


def config_hash(config: RunConfig) -> str:
    """Eight hex digits of a SHA-256 of the full configuration (canonical JSON)."""
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _safe_operation(op: str) -> str:
    op = op.replace("^-1", "_inv").replace("^", "").replace("/", "_div_")
    return "".join(ch if ch.isalnum() or ch in "+-_." else "_" for ch in op)


def run_name(config: RunConfig) -> str:
    """A readable, filesystem-safe folder name, unique per configuration and stable across
    versions of Python: e.g. ``x_div_y-p97-f0.300-adamw-k0-s2-1a2b3c4d`` (operation, modulus,
    train fraction, preset, outliers, seed, then a hash of the whole config). In the operation,
    ``/`` becomes ``_div_``, ``^-1`` becomes ``_inv`` and other ``^`` are dropped (``x2+y2``)."""
    parts = [_safe_operation(config.operation)]
    if not config.operation.startswith("s5"):
        parts.append(f"p{config.modulus}")
    parts += [
        f"f{config.train_fraction:.3f}", config.preset or "custom", f"k{config.outliers}",
        f"s{config.seed}", config_hash(config),
    ]  # fmt: skip
    return "-".join(parts)


def _balanced_chunks(items: list[int], limit: int) -> list[list[int]]:
    """At most ``limit`` items per chunk, as few chunks as that allows, sizes differing by <= 1."""
    n_chunks = math.ceil(len(items) / limit)
    size, extra = divmod(len(items), n_chunks)
    out, start = [], 0
    for c in range(n_chunks):
        stop = start + size + (c < extra)
        out.append(items[start:stop])
        start = stop
    return out


def _group(keys: list, max_population: int) -> list[list[int]]:
    if max_population < 1:
        raise ValueError(f"max population must be >= 1, got {max_population}")
    by_key: dict = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)
    return [chunk for members in by_key.values() for chunk in _balanced_chunks(members, max_population)]


def plan(configs: list[RunConfig], max_population: int) -> list[list[int]]:
    """Groups of indices into ``configs`` that can train as one population: equal
    ``population_key``, at most ``max_population`` each (a key's runs are split into as few
    chunks as possible, of equal sizes to within one). Groups come in order of their first run."""
    from grokkit.population import population_key

    return _group([population_key(c) for c in configs], max_population)


# ---------------------------------------------------------------- the sweep folder


def check_out_dir(out_dir: Path) -> None:
    """Refuse a path that is a file, or a non-empty folder that is not a sweep folder."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise SweepError(f"--out {out_dir} exists and is not a folder; choose a new path")
    if any(out_dir.iterdir()) and not ((out_dir / "index.csv").is_file() or (out_dir / "runs").is_dir()):
        raise SweepError(f"--out {out_dir} is a non-empty folder that is not a sweep folder; nothing was touched")


def _stored_config(path: Path) -> RunConfig | None:
    if not path.is_file():
        return None
    d = runs.read_json(path)
    d.pop("derived", None)
    return RunConfig.from_dict(d)


def _differences(a: RunConfig, b: RunConfig) -> list[str]:
    da, db = a.to_dict(), b.to_dict()
    diff = [k for k in da if k != "optimizer" and da[k] != db.get(k)]
    diff += [k for k in da["optimizer"] if da["optimizer"][k] != db["optimizer"].get(k)]
    return diff


@dataclass
class _RunState:
    kind: str  # "done", "resume" or "fresh"
    step: int = 0  # checkpoint step of a run to resume
    summary: dict | None = None
    clear: bool = False  # a fresh run whose folder holds files of an earlier, unfinished start


def _inspect(config: RunConfig, run_dir: Path) -> _RunState:
    """What to do with one run, given its folder; raises SweepError when the folder holds
    another run. Reads only."""
    if not run_dir.exists():
        return _RunState("fresh")
    if not run_dir.is_dir():
        raise SweepError(f"{run_dir} exists and is not a folder; move it away")
    stored = _stored_config(run_dir / "config.json")
    if stored is not None and stored != config:
        raise SweepError(
            f"{run_dir}/config.json differs from the sweep's run ({', '.join(_differences(config, stored))}); "
            "move that folder away or use another --out"
        )
    summary_path = run_dir / "summary.json"
    summary = runs.read_json(summary_path) if summary_path.is_file() else None
    if summary and summary.get("status") in FINISHED and (
        summary.get("steps_done", 0) >= config.steps or summary["status"] != "completed"
    ):
        return _RunState("done", summary=summary)
    if (run_dir / runs.CHECKPOINT).is_file():
        state = runs.load_checkpoint(run_dir)
        ckpt_config = RunConfig.from_dict(state["config"])
        if ckpt_config != config:
            raise SweepError(
                f"{run_dir}/{runs.CHECKPOINT} belongs to another run "
                f"({', '.join(_differences(config, ckpt_config))}); move that folder away or use another --out"
            )
        return _RunState("resume", step=int(state["step"]), summary=summary)
    return _RunState("fresh", clear=True)


def _clear_run_dir(run_dir: Path) -> None:
    """Remove what grokkit wrote into a run folder (and leftover temporaries); nothing else."""
    def ours(folder: Path, names: tuple[str, ...]) -> None:
        if not folder.is_dir():
            return
        for p in folder.iterdir():
            if p.is_file() and (p.name in names or any(
                p.name.startswith(f".{n}.") and p.name.endswith(".tmp") for n in names
            )):  # fmt: skip
                p.unlink()

    ours(run_dir, _RUN_FILES)
    ckpt_dir = run_dir / runs.CHECKPOINT.parent
    ours(ckpt_dir, (runs.CHECKPOINT.name,))
    if ckpt_dir.is_dir() and not any(ckpt_dir.iterdir()):
        ckpt_dir.rmdir()


def _index_row(name: str, config: RunConfig, summary: dict | None) -> dict:
    flat = {**config.to_dict(), **config.optimizer.to_dict()}
    row = {"run_name": name, "folder": f"runs/{name}"}
    row.update({k: flat[k] for k in INDEX_CONFIG_FIELDS})
    summary = summary or {"status": "pending"}
    row.update({k: summary.get(k) for k in INDEX_SUMMARY_FIELDS})
    return row


def write_index(out_dir: Path, rows: list[dict]) -> None:
    """index.csv and index.json, each replaced atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=INDEX_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row[k] is None else (repr(row[k]) if isinstance(row[k], float) else row[k])
                         for k in INDEX_COLUMNS})  # fmt: skip
    runs.atomic_write_text(Path(out_dir) / "index.csv", buf.getvalue())
    runs.write_json(Path(out_dir) / "index.json", rows)


# ---------------------------------------------------------------- training one group


def _train_group(config_dicts: list[dict], dirs: list[str], resume: bool, device: str,
                 threads: int | None = None) -> list[dict]:
    """Train one population (in this process, a pool worker or a Ray task); returns summaries."""
    import torch

    from grokkit.train import train_runs

    if threads is not None:
        torch.set_num_threads(threads)
    configs = [RunConfig.from_dict(d) for d in config_dicts]
    states = [runs.load_checkpoint(Path(d)) for d in dirs] if resume else None
    return train_runs(configs, [Path(d) for d in dirs], states=states, device=device, progress=False)


def _ray_train_group(config_dicts, dirs, resume, device):  # runs on a Ray worker
    import grokkit.sweep

    return grokkit.sweep._train_group(config_dicts, dirs, resume, device, threads=1)


def import_ray():
    """``ray``, or a one-line ImportError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError("the ray executor needs Ray: pip install 'grokkit[ray]'") from None
    return ray


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ---------------------------------------------------------------- the sweep


def run_sweep(
    configs: list[RunConfig],
    out_dir: Path,
    executor: str = "local",
    jobs: int | None = None,
    device: str = "cpu",
    max_population: int | None = None,
    progress: bool = True,
) -> list[SweepResult]:
    """Train every config into ``out_dir/runs/<run_name>/``; returns results in ``configs`` order.

    Re-running the same sweep skips finished runs and resumes interrupted ones from their last
    checkpoint (runs resumed together share a population key and a checkpoint step). A run's name
    covers its whole config, ``steps`` included: a larger budget is a different run in a new
    folder. A run folder holding another config raises SweepError (a ValueError) before anything
    is written. Identical configs given twice are trained once.

    executor: "local" (``jobs`` worker processes, default one per CPU core but never more than
    groups; ``jobs=1`` trains in this process, leaving its thread setting alone) or "ray"
    (one task per group on ``ray.init()``, or on the cluster at $RAY_ADDRESS; out_dir must then be
    on a filesystem every node sees). max_population: default 16 on the CPU, 256 elsewhere.
    Off the CPU, jobs defaults to 1 (one process feeding the accelerator).
    """
    from grokkit.population import population_key

    if executor not in ("local", "ray"):
        raise ValueError(f"unknown executor {executor!r}; choose 'local' or 'ray'")
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if device == "auto":
        from grokkit.cli import resolve_device

        device = resolve_device(device)
    if max_population is None:
        max_population = 16 if device == "cpu" else 256
    if max_population < 1:
        raise ValueError(f"max population must be >= 1, got {max_population}")
    if executor == "ray":
        ray = import_ray()
    out_dir = Path(out_dir)
    check_out_dir(out_dir)

    # Unique runs, in order of first appearance; inspect every folder before writing anything.
    names = [run_name(c) for c in configs]
    unique: dict[str, RunConfig] = {}
    for n, c in zip(names, configs):
        unique.setdefault(n, c)
    run_names = list(unique)
    dirs = {n: out_dir / "runs" / n for n in run_names}
    plans = {n: _inspect(unique[n], dirs[n]) for n in run_names}
    summaries: dict[str, dict | None] = {n: plans[n].summary for n in run_names}

    todo_fresh = [n for n in run_names if plans[n].kind == "fresh"]
    todo_resume = [n for n in run_names if plans[n].kind == "resume"]
    groups: list[tuple[list[str], bool]] = []
    keys = [(population_key(unique[n]), plans[n].step) for n in todo_resume]
    groups += [([todo_resume[i] for i in g], True) for g in _group(keys, max_population)]
    keys = [population_key(unique[n]) for n in todo_fresh]
    groups += [([todo_fresh[i] for i in g], False) for g in _group(keys, max_population)]

    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    for n in todo_fresh:
        if plans[n].clear:
            _clear_run_dir(dirs[n])
        dirs[n].mkdir(parents=True, exist_ok=True)

    def index() -> None:
        # Runs not finished yet: what their folders say now ("running" once they checkpointed).
        for n in run_names:
            s = summaries[n]
            if (s is None or s.get("status") not in FINISHED) and (dirs[n] / "summary.json").is_file():
                summaries[n] = runs.read_json(dirs[n] / "summary.json")
        write_index(out_dir, [_index_row(n, unique[n], summaries[n]) for n in run_names])

    index()
    from tqdm import tqdm

    bar = tqdm(total=len(run_names), initial=len(run_names) - sum(len(g) for g, _ in groups),
               desc=f"sweep {out_dir.name}", unit="run", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)  # fmt: skip
    started = time.perf_counter()

    def finished(group: list[str], results: list[dict]) -> None:
        for n, s in zip(group, results):
            summaries[n] = s
            if progress:
                tqdm.write(f"done {n}: {_describe(s)}", file=sys.stderr)
        bar.update(len(group))
        index()

    tasks = [([unique[n].to_dict() for n in g], [str(dirs[n].resolve()) for n in g], resume)
             for g, resume in groups]  # fmt: skip
    errors: list[BaseException] = []
    try:
        if not groups:
            pass
        elif executor == "ray":
            _run_ray(ray, tasks, [g for g, _ in groups], jobs, device, finished, errors)
        else:
            if jobs is None:
                jobs = _cpu_count() if device == "cpu" else 1
            jobs = min(jobs, len(groups))
            if jobs == 1:
                for (g, _), task in zip(groups, tasks):
                    finished(g, _train_group(*task, device))
            else:
                _run_pool(tasks, [g for g, _ in groups], jobs, device, finished, errors)
    finally:
        bar.close()
        index()
    if errors:
        raise errors[0]
    if progress and groups:
        print(f"sweep: {sum(len(g) for g, _ in groups)} runs trained in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr)  # fmt: skip

    results = []
    for n, c in zip(names, configs):
        s = summaries[n]
        if s is None:  # cannot happen unless a run folder was changed behind our back
            s = runs.read_json(dirs[n] / "summary.json")
        results.append(SweepResult(config=c, run_dir=dirs[n], summary=s))
    return results


def _describe(s: dict) -> str:
    val = s.get("val_accuracy")
    val = "n/a" if val is None else f"{100 * val:.1f}%"
    at = s.get("steps_to_val_99")
    at = "never" if at is None else f"at step {at}"
    wall = s.get("wall_seconds")
    wall = "" if wall is None else f", {wall:.1f} s"
    return f"{s['status']}, val {val} (99% {at}){wall}"


def _run_pool(tasks, groups, jobs, device, finished, errors) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    threads = max(1, _cpu_count() // jobs)
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    completed = False
    try:
        pending = {pool.submit(_train_group, *task, device, threads): g for task, g in zip(tasks, groups)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                g = pending.pop(f)
                try:
                    result = f.result()
                except Exception as e:  # let the other groups finish; raise afterwards
                    errors.append(e)
                    continue
                finished(g, result)
        completed = True
    finally:
        if not completed:  # interrupted: stop the workers now (their checkpoints are whole files)
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def _run_ray(ray, tasks, groups, jobs, device, finished, errors) -> None:
    started_here = False
    if not ray.is_initialized():
        common = {"log_to_driver": False, "ignore_reinit_error": True}
        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"], **common)
        else:
            ray.init(num_cpus=jobs, include_dashboard=False, **common)
            started_here = True
    try:
        resources = {"num_gpus": 1} if device == "cuda" else {"num_cpus": 1}
        remote = ray.remote(**resources)(_ray_train_group)
        pending = {remote.remote(*task, device): g for task, g in zip(tasks, groups)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    g = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as e:  # let the other groups finish; raise afterwards
                        errors.append(e)
                        continue
                    finished(g, result)
        finally:
            for ref in pending:  # interrupted: stop what still runs (checkpoints are kept)
                ray.cancel(ref, force=True)
    finally:
        if started_here:
            ray.shutdown()


# ---------------------------------------------------------------- grokkit sweep

# Grid-able flags: flag dest -> RunConfig / OptimizerConfig field (preset first, see expand_grid).
def _flag_fields() -> tuple[dict[str, str], dict[str, str]]:
    """(grid flags, single-valued flags) -> RunConfig field, from the CLI's one list of run flags."""
    from grokkit.cli import _RUN_FLAGS, SCHEDULE_FLAGS

    grid = {"optimizer": "preset", **{a: f for a, f in _RUN_FLAGS.items() if a not in SCHEDULE_FLAGS}}
    single = {"steps": "steps", **{a: _RUN_FLAGS[a] for a in SCHEDULE_FLAGS}}
    return grid, single


def add_sweep_command(sub) -> None:
    """Register ``grokkit sweep`` on the CLI's sub-parsers."""
    from grokkit.cli import add_run_flags

    p = sub.add_parser(
        "sweep", help="train the cartesian product of several settings as a sweep",
        description="Train every combination of the given values (flags marked [grid] take one or "
                    "more values). Runs that can share a population train together. Re-running "
                    "the same command with the same --out skips finished runs and resumes "
                    "interrupted ones from their checkpoints. OUT/index.csv lists every run.",
    )  # fmt: skip
    g = p.add_argument_group("sweep")
    g.add_argument("--out", required=True, help="sweep folder (new, empty, or an earlier sweep's to resume it)")
    g.add_argument("--steps", type=int, help="budget of updates of every run (default 100000)")
    g.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local worker processes (default) or Ray ($RAY_ADDRESS or a local instance)")
    g.add_argument("--jobs", type=int, help="parallel groups (default: CPU cores, never more than groups)")
    g.add_argument("--max-population", type=int, metavar="E",
                   help="most runs trained as one population (default 16 on CPU, 256 on GPU)")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    g.add_argument("--quiet", action="store_true", help="no progress bar, no per-run lines")
    add_run_flags(p, grid=True)
    p.set_defaults(func=cmd_sweep)


def configs_from_args(args) -> list[RunConfig]:
    """The sweep's configs: defaults, then the single-valued flags, then the grid."""
    grid_flags, single_flags = _flag_fields()
    base = RunConfig()
    single = {f: getattr(args, a) for a, f in single_flags.items() if getattr(args, a) is not None}
    if single:
        base = base.with_changes(**single)
    grid = {f: getattr(args, a) for a, f in grid_flags.items() if getattr(args, a) is not None}
    return expand_grid(base, grid)


def cmd_sweep(args) -> int:
    from grokkit.cli import UsageError, resolve_device, validate_run

    if args.steps is not None and args.steps < 0:
        raise UsageError(f"--steps must be >= 0, got {args.steps}")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    if args.max_population is not None and args.max_population < 1:
        raise UsageError(f"--max-population must be >= 1, got {args.max_population}")
    try:
        configs = configs_from_args(args)
        for cfg in configs:
            validate_run(cfg)
    except ValueError as e:
        raise UsageError(str(e)) from None
    device = resolve_device(args.device)
    if args.executor == "ray":
        try:
            import_ray()
        except ImportError as e:
            raise UsageError(str(e)) from None
    out = Path(args.out)
    check_out_dir(out)
    results = run_sweep(configs, out, executor=args.executor, jobs=args.jobs, device=device,
                        max_population=args.max_population, progress=not args.quiet)  # fmt: skip
    seen, rows = set(), []
    for r in results:
        if r.run_dir.name not in seen:
            seen.add(r.run_dir.name)
            s = r.summary
            best = "" if s.get("best_val_accuracy") is None else f"{100 * s['best_val_accuracy']:.1f}%"
            rows.append((r.run_dir.name, s["status"], best, _steps(s.get("steps_to_val_99"))))
    header = ("run", "status", "best val", "val 99% at step")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    for row in (header, *rows):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    print(f"index: {out / 'index.csv'}")
    return 0


def _steps(v) -> str:
    return "never" if v is None else str(v)
