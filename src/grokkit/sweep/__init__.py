"""Sweeps: many runs, grouped into populations, trained by local worker processes or by Ray.

A sweep folder holds one ordinary run folder per run plus an index of all of them::

    OUT/runs/<run_name>/   config.json, metrics.csv, summary.json, checkpoints/latest.pt
    OUT/index.csv          one row per run folder in OUT/runs (from this sweep or any earlier
                           command): name, folder, main and method settings, status, summary numbers
    OUT/index.json         the same rows as a JSON list

Running the same sweep again into the same folder is how it resumes: finished runs are skipped,
interrupted runs continue from their last checkpoint (exactly as if never stopped), and runs that
were killed before their first checkpoint start again. Killing a sweep at any moment therefore
loses at most the work since each run's last checkpoint.

A run's folder name (``run_name``) is derived from its whole configuration, budget included, so
raising ``steps`` makes *new* runs next to the old ones rather than extending them; use
``grokkit train --resume DIR --steps N`` to extend one run in place.

Modules: ``grid`` (what to train, folder names, grouping), ``folder`` (each run folder's state,
the index), ``executors`` (in process, local workers, Ray); this one ties them together.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from grokkit import runs
from grokkit.backend_choice import check_request as check_backend_request, choose_backend
from grokkit.config import RunConfig, checked_configs
from grokkit.devices import resolve_device
from grokkit.errors import InputError
from grokkit.files import ensure_real_folder
from grokkit.loggers import logger_factory
from grokkit.population import Population, population_key
from grokkit.runs import FINISHED
from grokkit.step_flops import run_flops
from grokkit.sweep.executors import (
    core_budget,
    cpu_count,
    import_ray,
    run_in_process,
    run_pool,
    run_ray,
    visible_gpus,
    worker_threads,
)
from grokkit.sweep.folder import (
    INDEX_COLUMNS,
    RunState,
    SweepError,
    SweepIndex,
    adopt_untagged_folders,
    check_out_dir,
    clear_run_dir,
    index_row,
    inspect_run,
    untagged_folder,
    write_index,
)
from grokkit.sweep.grid import (
    balance_workers,
    config_hash,
    expand_grid,
    group,
    plan,
    run_name,
)
from grokkit.sweep.progress import SweepProgress, describe

__all__ = [
    "FINISHED",
    "INDEX_COLUMNS",
    "SweepError",
    "SweepPlan",
    "SweepResult",
    "check_out_dir",
    "config_hash",
    "cpu_count",
    "default_jobs",
    "default_max_population",
    "describe",
    "expand_grid",
    "finished_results",
    "import_ray",
    "plan",
    "plan_sweep",
    "run_name",
    "run_sweep",
    "write_index",
]


@dataclass(frozen=True)
class SweepResult:
    config: RunConfig
    run_dir: Path
    summary: dict  # the run's summary.json


def run_sweep(
    configs: list[RunConfig],
    out_dir: Path,
    executor: str = "local",
    jobs: int | None = None,
    device: str = "cpu",
    max_population: int | None = None,
    progress: bool = True,
    loggers: Sequence[str] = (),
    backend: str = "auto",
) -> list[SweepResult]:
    """Train every config into ``out_dir/runs/<run_name>/``; returns results in ``configs`` order.

    Re-running the same sweep skips finished runs and resumes interrupted ones from their last
    checkpoint (runs resumed together share a population key and a checkpoint step). A run's name
    covers its whole config, ``steps`` included: a larger budget is a different run in a new
    folder. A run folder holding another config raises SweepError (an InputError) before anything
    is written. Identical configs given twice are trained once.

    executor: "local" (``jobs`` worker processes, default one per core of this process's torch
    threads (``core_budget``; set them with torch.set_num_threads) but never more than groups;
    ``jobs=1`` trains in this process, leaving its thread setting alone) or "ray" (one task per
    group on ``ray.init()``, or on the cluster at $RAY_ADDRESS; out_dir must then be on a
    filesystem every node sees). max_population: default 16 on the CPU, 256 elsewhere.
    On CUDA, jobs defaults to one worker per visible GPU (CUDA_VISIBLE_DEVICES), each seeing only
    its own; on another accelerator, to 1 (one process feeding it).
    progress: one bar over every run's steps (across all workers) with an ETA, and a line per run
    as it ends. loggers: viewer names (grokkit.loggers.LOGGER_NAMES); each run logs under its name.
    backend: "auto", "eager" or "compiled" (grokkit.backend_choice), chosen here per population.
    """
    _check_request(executor, jobs, max_population, backend)
    if device == "auto":  # an explicit device is left alone: a Ray head may have no GPU of its own
        device = resolve_device(device)
    if max_population is None:
        max_population = default_max_population(device)
    configs = checked_configs(configs)  # every run is checked before any folder is written
    if not isinstance(out_dir, (str, os.PathLike)):
        raise InputError(f"out_dir must be a folder (a str or Path), got {type(out_dir).__name__}")
    loggers = tuple(dict.fromkeys(loggers))
    for name in loggers:  # unknown or not installed: one line, before any folder is written
        logger_factory(name)
    ray = import_ray() if executor == "ray" else None
    out_dir = _prepared_out_dir(Path(out_dir))
    with runs.folder_lock(out_dir, "sweep folder"):
        return _run_locked(
            configs,
            out_dir,
            executor,
            jobs,
            device,
            max_population,
            progress,
            ray,
            loggers,
            backend,
        )


def _prepared_out_dir(out_dir: Path) -> Path:
    check_out_dir(out_dir)
    return runs.make_out_folder(out_dir, SweepError)


def _check_request(executor: str, jobs, max_population, backend: str) -> None:
    """InputError for a sweep no machine could run as asked, before any folder is written."""
    if executor not in ("local", "ray"):
        raise InputError(f"unknown executor {executor!r}; choose 'local' or 'ray'")
    if jobs is not None and jobs < 1:
        raise InputError(f"jobs must be >= 1, got {jobs}")
    if max_population is not None and max_population < 1:
        raise InputError(f"max population must be >= 1, got {max_population}")
    check_backend_request(backend)


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep into a folder will do: its unique runs (first-seen order), each folder's state,
    and the populations to train (resumed runs first, grouped by key and checkpoint step)."""

    configs: dict[str, RunConfig]  # run name -> config
    states: dict[str, RunState]  # run name -> fresh, resume or done
    groups: list[tuple[list[str], bool]]  # (run names, resume?) per population

    @property
    def todo(self) -> list[str]:
        return [n for g, _ in self.groups for n in g]


def plan_sweep(
    configs: list[RunConfig],
    out_dir: Path | None,
    max_population: int,
    device: str = "cpu",
    jobs: int | None = None,
) -> SweepPlan:
    """The plan ``run_sweep`` follows, computed from the folders as they are (``out_dir`` None:
    a folder not written yet, every run fresh); reads only. On the CPU, populations are split
    until the ``jobs`` workers (default one per core of ``core_budget``) share the work evenly
    (``balance_workers``, by each run's FLOPs); ``jobs=1`` trains in this process and splits
    nothing."""
    unique: dict[str, RunConfig] = {}
    for c in configs:
        unique.setdefault(run_name(c), c)
    run_names = list(unique)
    states = {
        n: RunState("fresh")
        if out_dir is None
        else inspect_run(unique[n], _run_folder(out_dir, n, unique[n]))
        for n in run_names
    }
    todo_fresh = [n for n in run_names if states[n].kind == "fresh"]
    todo_resume = [n for n in run_names if states[n].kind == "resume"]
    groups: list[tuple[list[str], bool]] = []
    keys = [(population_key(unique[n]), states[n].step) for n in todo_resume]
    groups += [([todo_resume[i] for i in g], True) for g in group(keys, max_population)]
    groups += [
        ([todo_fresh[i] for i in g], False)
        for g in plan([unique[n] for n in todo_fresh], max_population)
    ]
    workers = (jobs or core_budget()) if device == "cpu" else 1
    if workers == 1:
        return SweepPlan(unique, states, groups)
    work = {
        n: run_flops(unique[n], states[n].step if states[n].kind == "resume" else 0) for n in unique
    }
    return SweepPlan(unique, states, balance_workers(groups, workers, work))


def finished_results(configs: list[RunConfig], out_dir: Path) -> list[SweepResult] | None:
    """The results ``run_sweep`` would return for ``configs`` without training, when every one
    of them has finished in ``out_dir``; None when any has not (or the folder does not exist).
    Reads only."""
    if not Path(out_dir).is_dir():
        return None
    results = []
    for c in configs:
        folder = _run_folder(out_dir, run_name(c), c)
        state = inspect_run(c, folder)
        if state.kind != "done":
            return None
        results.append(SweepResult(c, folder, state.summary))
    return results


def _run_folder(out_dir: Path, name: str, config: RunConfig) -> Path:
    """Where run ``name`` is: its folder, or the folder of the same run named before method
    settings were in run names (``run_sweep`` renames that one before training)."""
    runs_dir = Path(out_dir) / "runs"
    return (
        untagged_folder(runs_dir, name, run_name(config, method_tags=False), config)
        or runs_dir / name
    )


def default_max_population(device: str) -> int:
    return 16 if device == "cpu" else 256


def default_jobs(device: str, n_groups: int, jobs: int | None) -> int:
    """Worker processes: one per core of the budget on the CPU (``core_budget``: this process's
    torch threads), one per visible GPU on CUDA (each worker
    sees only its own), one process feeding any other accelerator; never more than there are
    populations, nor more CUDA workers than GPUs."""
    if device == "cuda":
        gpus = max(1, len(visible_gpus()))
        jobs = gpus if jobs is None else min(jobs, gpus)
    elif jobs is None:
        jobs = core_budget() if device == "cpu" else 1
    return max(1, min(jobs, n_groups))


def _run_locked(
    configs, out_dir, executor, jobs, device, max_population, progress, ray, loggers, backend
) -> list[SweepResult]:
    sweep_plan = plan_sweep(configs, out_dir, max_population, device, jobs)
    groups = sweep_plan.groups
    book = _IndexBook(out_dir, sweep_plan)
    book.prepare_folders([n for g, resume in groups if not resume for n in g])
    book.write()
    started = time.perf_counter()
    keys = {n: str(book.dirs[n].resolve()) for n in book.names}  # how workers name a run
    todo = sweep_plan.todo
    watcher = SweepProgress(
        {keys[n]: (n, sweep_plan.states[n].step, book.configs[n].steps) for n in todo},
        on_run_ended=book.record,
        description=f"sweep {out_dir.name}",
        enabled=progress,
        runs_done=len(book.names) - len(todo),
        runs_total=len(book.names),
        on_checkpoint=book.checkpointed,
        stops_early={keys[n] for n in todo if book.configs[n].stop_after_val_99},
    )

    def finished(group_names: list[str], results: list[dict]) -> None:
        for n, s in zip(group_names, results):  # runs already reported as they ended are skipped
            watcher.run_ended(keys[n], s)

    tasks = _tasks(groups, book, keys, backend, device, executor, jobs)
    group_names = [g for g, _ in groups]
    errors: list[BaseException] = []
    try:  # without a bar the watcher still keeps the index current as runs checkpoint and end
        if groups:
            _execute(
                executor, ray, tasks, group_names, jobs, device, loggers, finished, errors, watcher
            )
    finally:
        watcher.close()
        book.write()
    if errors:
        raise errors[0]
    if progress and groups:
        print(
            f"sweep: {len(todo)} runs trained in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    return [
        SweepResult(config=c, run_dir=book.dirs[n], summary=book.summary(n))
        for n, c in ((run_name(c), c) for c in configs)
    ]


def _tasks(groups, book, keys, backend, device, executor, jobs) -> list[tuple]:
    """(configs, run folders, resume?, Backend) per population. The backend of each is chosen
    here, once, so that workers never measure (nor measure each other, running side by side)."""
    workers = 1 if executor == "ray" else default_jobs(device, len(groups), jobs)
    threads = 1 if executor == "ray" else worker_threads(workers)
    tasks = [
        (
            [book.configs[n].to_dict() for n in g],
            [keys[n] for n in g],
            resume,
            choose_backend(backend, device, [book.configs[n] for n in g], threads),
        )
        for g, resume in groups
    ]
    if executor == "local" and workers > 1:
        _compile_once(tasks, device, threads)
    return tasks


def _compile_once(tasks, device: str, threads: int) -> None:
    """Workers starting side by side would each compile the same graph cold. One step of a
    throwaway population of each compiled kind, here, fills PyTorch's on-disk cache first, so
    the sweep pays one cold compile per kind and its workers load the graph."""
    warmed = set()
    for config_dicts, _, _, backend in tasks:
        configs = [RunConfig.from_dict(d) for d in config_dicts]
        kind = (population_key(configs[0]), len(configs) > 1)  # one graph for E >= 2, one for 1
        if not backend.compiled or kind in warmed:
            continue
        warmed.add(kind)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            Population(configs[: 2 if kind[1] else 1], device, backend).step()
        finally:
            torch.set_num_threads(previous)


def _execute(executor, ray, tasks, group_names, jobs, device, loggers, finished, errors, watcher):
    """Train the groups on Ray, in this process (one job) or on a pool of worker processes."""
    if executor == "ray":
        run_ray(ray, tasks, group_names, jobs, device, loggers, finished, errors, watcher)
        return
    jobs = default_jobs(device, len(tasks), jobs)
    if jobs == 1:
        run_in_process(tasks, group_names, device, loggers, finished, watcher)
    else:
        run_pool(tasks, group_names, jobs, device, loggers, finished, errors, watcher)


class _IndexBook:
    """The sweep's runs, their folders and latest summaries, and the folder's index written from
    them: every run folder in out_dir/runs is indexed, not only this command's (earlier sweeps
    with other settings, other figures of a reproduce folder)."""

    def __init__(self, out_dir: Path, sweep_plan: SweepPlan):
        self.configs = sweep_plan.configs
        self.names = list(self.configs)
        self.dirs = {n: out_dir / "runs" / n for n in self.names}
        self.plan = sweep_plan
        self.summaries: dict[str, dict | None] = {
            n: sweep_plan.states[n].summary for n in self.names
        }
        self.out_dir = out_dir

    def prepare_folders(self, fresh: list[str]) -> None:
        """Every folder was checked by the plan: a run trained before method settings were in
        run names (planned from its old folder) now takes its name; fresh runs get a clean one."""
        runs_dir = self.out_dir / "runs"
        adopt_untagged_folders(
            runs_dir, [(n, run_name(c, method_tags=False), c) for n, c in self.configs.items()]
        )
        # Real folders, never through a link (the sweep folder is locked, so guarded: a link
        # planted at runs/ or at a run's name is replaced, as one at a file's name would be).
        ensure_real_folder(runs_dir)
        for n in fresh:
            if self.plan.states[n].clear:
                clear_run_dir(self.dirs[n])
            ensure_real_folder(self.dirs[n])
        self.index = SweepIndex(self.out_dir, self.names)

    def write(self) -> None:
        """The index, with unfinished runs read again from their folders ("running" once they
        have checkpointed)."""
        for n in self.names:
            s = self.summaries[n]
            unfinished = s is None or s.get("status") not in FINISHED
            if unfinished and (self.dirs[n] / "summary.json").is_file():
                self.summaries[n] = runs.read_summary(self.dirs[n])
        self.index.write([index_row(n, self.configs[n], self.summaries[n]) for n in self.names])

    def record(self, n: str, summary: dict) -> None:
        self.summaries[n] = summary
        self.write()

    def checkpointed(self, n: str, summary: dict) -> None:
        # At once, so that a sweep killed outright (SIGKILL) leaves an index that knows which
        # runs have a checkpoint to resume from.
        if n in self.summaries:
            self.record(n, summary)

    def summary(self, n: str) -> dict:
        # None only if a run folder was changed behind the sweep's back
        return self.summaries[n] or runs.read_summary(self.dirs[n])
