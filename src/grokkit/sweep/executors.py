"""Where a sweep's populations train: in this process, in local worker processes, or on Ray.

Each executor calls ``finished(group, summaries)`` as groups complete and collects a group's
exception in ``errors`` so that the other groups still finish (the sweep raises it afterwards).
With a ``progress`` (sweep.progress.SweepProgress), workers report every step and each run's end
through a queue that the executor drains while it waits.
Interrupted, an executor stops its workers at once: checkpoints are whole files, so a re-run
resumes from them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch

from grokkit import runs
from grokkit.config import RunConfig
from grokkit.devices import cpu_count
from grokkit.errors import InputError, show_warnings_as_one_line
from grokkit.loggers import logger_factory
from grokkit.sweep.progress import QueueWatcher
from grokkit.train import ProgressWatcher, train_runs

WAIT_SECONDS = 0.25  # how often a waiting executor drains its workers' progress messages
_worker_queue = None  # a pool worker's progress queue (set by _init_worker)


def train_group(config_dicts: list[dict], dirs: list[str], resume: bool, device: str,
                loggers: tuple[str, ...] = (), threads: int | None = None,
                watcher: ProgressWatcher | None = None) -> list[dict]:
    """Train one population (in this process, a pool worker or a Ray task); returns summaries.
    ``loggers``: viewer names (grokkit.loggers), resolved here since factories do not pickle."""
    if threads is not None:  # a worker process: its warnings (a checkpoint fallback) on one line
        torch.set_num_threads(threads)
        show_warnings_as_one_line()
    if watcher is None and _worker_queue is not None:
        watcher = QueueWatcher(_worker_queue)
    configs = [RunConfig.from_dict(d) for d in config_dicts]
    states = [runs.load_checkpoint(Path(d)) for d in dirs] if resume else None
    return train_runs(configs, [Path(d) for d in dirs], states=states, device=device, progress=False,
                      loggers=[logger_factory(name) for name in loggers], watcher=watcher)  # fmt: skip


def _init_worker(progress_queue, gpu_queue=None) -> None:
    global _worker_queue
    _worker_queue = progress_queue
    if gpu_queue is not None:
        # Before this process first touches CUDA: it then sees one GPU, its own, as cuda:0.
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_queue.get()


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (or their indices)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def _ray_train_group(config_dicts, dirs, resume, device, loggers, progress_queue):
    # On a Ray worker: one thread each; progress through a Ray queue actor (None: not wanted).
    watcher = QueueWatcher(progress_queue) if progress_queue is not None else None
    return train_group(config_dicts, dirs, resume, device, loggers, threads=1, watcher=watcher)


def import_ray():
    """``ray``, or an InputError (one line) saying how to install it."""
    try:
        import ray  # optional dependency (grokkit[ray]), and slow to import
    except ImportError:
        raise InputError("the ray executor needs Ray: pip install 'grokkit[ray]'") from None
    return ray


def worker_threads(jobs: int) -> int:
    """Torch threads of each of ``jobs`` CPU workers: cores / workers, since two processes spinning
    two OpenMP threads each on two cores slow a tiny model down a hundredfold. A single worker
    trains in this process, with this process's own setting."""
    return torch.get_num_threads() if jobs == 1 else max(1, cpu_count() // jobs)


def run_in_process(tasks, groups, device, loggers, finished, progress=None) -> None:
    for task, g in zip(tasks, groups):
        finished(g, train_group(*task, device, loggers, watcher=progress))


def run_pool(tasks, groups, jobs, device, loggers, finished, errors, progress=None) -> None:
    threads = worker_threads(jobs)
    context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue() if progress is not None else None
    gpu_queue = None
    if device == "cuda":  # one GPU per worker (jobs <= the visible GPUs; see run_sweep)
        gpu_queue = context.Queue()
        for gpu in visible_gpus()[:jobs]:
            gpu_queue.put(gpu)
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker,
                               initargs=(progress_queue, gpu_queue))  # fmt: skip
    completed = False
    try:
        pending = {pool.submit(train_group, *task, device, loggers, threads): g
                   for task, g in zip(tasks, groups)}  # fmt: skip
        while pending:
            done, _ = wait(pending, timeout=WAIT_SECONDS, return_when=FIRST_COMPLETED)
            if progress is not None:
                progress.drain(progress_queue)
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
        if not completed:
            _stop_workers(list((getattr(pool, "_processes", None) or {}).values()))
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(processes, grace_seconds: float = 60.0) -> None:
    """Interrupted: ask each worker to checkpoint at its current step and stop (SIGINT, which a
    training worker turns into a final checkpoint); terminate those still running after the
    grace period (their last checkpoints are whole files, so nothing is damaged)."""
    for proc in processes:
        if proc.is_alive():
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + grace_seconds
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.terminate()


def run_ray(ray, tasks, groups, jobs, device, loggers, finished, errors, progress=None) -> None:
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
        progress_queue = None
        if progress is not None:
            # Imported here: part of the optional Ray install.
            from ray.util.queue import Queue

            progress_queue = Queue()
        pending = {remote.remote(*task, device, loggers, progress_queue): g for task, g in zip(tasks, groups)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
                if progress is not None:
                    progress.drain(progress_queue)
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
