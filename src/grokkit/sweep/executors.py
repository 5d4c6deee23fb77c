"""Where a sweep's populations train: in this process, in local worker processes, or on Ray.

Each executor calls ``finished(group, summaries)`` as groups complete and collects a group's
exception in ``errors`` so that the other groups still finish (the sweep raises it afterwards).
With a ``progress`` (sweep.progress.SweepProgress), workers report every step and each run's end
through a queue that the executor drains while it waits.
Interrupted, an executor stops its workers at once: each checkpoints the step it is on and
exits, and checkpoints are whole files, so a re-run resumes from them.

A worker never outlives its sweep: a watchdog thread in each worker notices when the sweep's
process is gone (killed, even with SIGKILL, which nothing can catch), checkpoints the runs in
training and exits, so no orphan keeps training and holding run folders' locks.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch

from grokkit import runs
from grokkit.backend import Backend
from grokkit.config import RunConfig
from grokkit.devices import cpu_count
from grokkit.errors import InputError, show_warnings_as_one_line
from grokkit.interrupts import STOP_SIGNALS, HeldInterrupt
from grokkit.loggers import logger_factory
from grokkit.sweep.progress import QueueWatcher
from grokkit.train import ProgressWatcher, TrainingInterrupted, train_runs

WAIT_SECONDS = 0.25  # how often a waiting executor drains its workers' progress messages
WATCH_SECONDS = 0.2  # how often a worker's watchdog looks for its sweep's process
STOP_GRACE_SECONDS = 30.0  # an interrupted worker's time to checkpoint before it is terminated
_worker_queue = None  # a pool worker's progress queue (set by _init_worker)
_stop_requested = None  # a pool worker's view of the sweep's stop request (an Event)
_parent_pid = None  # the sweep's process, as a pool worker saw it at start
_busy = threading.Event()  # a pool worker is inside train_group


def train_group(
    config_dicts: list[dict],
    dirs: list[str],
    resume: bool,
    backend: Backend | str,
    device: str,
    loggers: tuple[str, ...] = (),
    threads: int | None = None,
    watcher: ProgressWatcher | None = None,
) -> list[dict]:
    """Train one population (in this process, a pool worker or a Ray task); returns summaries.
    ``backend``: the sweep's choice for this group (its parent measured; workers only receive).
    ``loggers``: viewer names (grokkit.loggers), resolved here since factories do not pickle."""
    if threads is not None:  # a worker process: its warnings (a checkpoint fallback) on one line
        torch.set_num_threads(threads)
        show_warnings_as_one_line()
    if watcher is None and _worker_queue is not None:
        watcher = QueueWatcher(_worker_queue)
    if _stop_requested is not None and _stop_requested.is_set():
        raise TrainingInterrupted("the sweep was interrupted before this population started")
    _busy.set()
    try:
        configs = [RunConfig.from_dict(d) for d in config_dicts]
        states = [runs.load_checkpoint(Path(d)) for d in dirs] if resume else None
        return train_runs(
            configs,
            [Path(d) for d in dirs],
            states=states,
            device=device,
            progress=False,
            loggers=[logger_factory(name) for name in loggers],
            watcher=watcher,
            backend=backend,
        )
    finally:
        _busy.clear()
        if _orphaned():  # the runs are checkpointed; nobody is left to send a result to
            os._exit(EXIT_ORPHANED)


EXIT_ORPHANED = 3  # a worker whose sweep died: it checkpointed its runs and left


def _orphaned() -> bool:
    return _parent_pid is not None and os.getppid() != _parent_pid


def _init_worker(progress_queue, gpu_queue=None, stop_requested=None, parent_pid=None) -> None:
    global _worker_queue, _stop_requested, _parent_pid
    _worker_queue = progress_queue
    _stop_requested, _parent_pid = stop_requested, parent_pid
    if gpu_queue is not None:
        # Before this process first touches CUDA: it then sees one GPU, its own, as cuda:0.
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_queue.get()
    # Started with SIGINT blocked (see run_pool), so a Ctrl-C during the imports printed nothing.
    # From here a Ctrl-C stops training at a step boundary (train's own handler, installed while
    # it trains); anywhere else in the worker it is the sweep's to handle, and ignored here (a
    # Ctrl-C that arrived while blocked is delivered, and ignored, on the unblock).
    # SIGTERM (a scheduler stopping the whole group) the same way, whatever was inherited.
    for s in STOP_SIGNALS:
        signal.signal(s, _interrupt_outside_training)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))
    if parent_pid is not None:
        threading.Thread(target=_watchdog, name="grokkit-watchdog", daemon=True).start()


def _interrupt_outside_training(signum, frame) -> None:
    if _busy.is_set():  # loading checkpoints, before the loop took over: stop there
        raise KeyboardInterrupt


def _watchdog() -> None:
    """Stop this worker when its sweep asks (an Event) or dies (its pid is no longer the parent):
    a population in training is interrupted, which checkpoints it at the current step (train_group
    then exits if orphaned); an idle orphan exits at once."""
    interrupted = False
    while True:
        time.sleep(WATCH_SECONDS)
        orphaned = _orphaned()
        if not orphaned and not _stop_requested.is_set():
            continue
        if _busy.is_set():
            if not interrupted:
                os.kill(os.getpid(), signal.SIGINT)
                interrupted = True
        elif orphaned:
            os._exit(EXIT_ORPHANED)


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (or their indices)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def _ray_train_group(config_dicts, dirs, resume, backend, device, loggers, progress_queue):
    # On a Ray worker: one thread each; progress through a Ray queue actor (None: not wanted).
    watcher = QueueWatcher(progress_queue) if progress_queue is not None else None
    return train_group(
        config_dicts, dirs, resume, backend, device, loggers, threads=1, watcher=watcher
    )


def import_ray():
    """``ray``, or an InputError (one line) saying how to install it."""
    try:
        import ray  # optional dependency (grokkit[ray]), and slow to import
    except ImportError:
        raise InputError("the ray executor needs Ray: pip install 'grokkit[ray]'") from None
    return ray


def core_budget() -> int:
    """The cores a sweep may use on the CPU: this process's torch thread count (the machine's
    cores by default; what ``--threads``, the free cores or OMP_NUM_THREADS made it in a
    command), never more than the cores it may run on."""
    return max(1, min(torch.get_num_threads(), cpu_count()))


def worker_threads(jobs: int) -> int:
    """Torch threads of each of ``jobs`` CPU workers: the core budget / workers, since two
    processes spinning two OpenMP threads each on two cores slow a tiny model down a hundredfold.
    A single worker trains in this process, with this process's own setting."""
    return torch.get_num_threads() if jobs == 1 else max(1, core_budget() // jobs)


def run_in_process(tasks, groups, device, loggers, finished, progress=None) -> None:
    for task, g in zip(tasks, groups):
        finished(g, train_group(*task, device, loggers, watcher=progress))


def _pool(jobs: int, context, stop_requested, progress_queue=None, gpu_queue=None):
    """Worker processes that watch this one (``_init_worker``): they stop when it asks or dies."""
    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=_init_worker,
        initargs=(progress_queue, gpu_queue, stop_requested, os.getpid()),
    )


def run_pool(tasks, groups, jobs, device, loggers, finished, errors, progress=None) -> None:
    threads = worker_threads(jobs)
    _quiet_resource_tracker()
    context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue() if progress is not None else None
    stop_requested = context.Event()
    gpu_queue = None
    if device == "cuda":  # one GPU per worker (jobs <= the visible GPUs; see run_sweep)
        gpu_queue = context.Queue()
        for gpu in visible_gpus()[:jobs]:
            gpu_queue.put(gpu)
    pool = _pool(jobs, context, stop_requested, progress_queue, gpu_queue)
    completed = False
    try:
        # The workers start here (in submit). A Ctrl-C waits until they have: one arriving while
        # a worker is half spawned leaves it reading a truncated start message (a traceback).
        with HeldInterrupt(block_children=True) as held, _main_module_hidden():
            pending = {
                pool.submit(train_group, *task, device, loggers, threads): g
                for task, g in zip(tasks, groups)
            }
        if held.requested:
            raise KeyboardInterrupt
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
        if completed:
            pool.shutdown(wait=True)
        else:
            with HeldInterrupt():  # a second Ctrl-C must not cut the workers' checkpoints short
                _stop_workers(pool, stop_requested)
                if progress is not None:  # the interrupted runs' last checkpoints, for the index
                    progress.drain(progress_queue)


def map_in_workers(fn, items: list, jobs: int) -> list:
    """``[fn(item) for item in items]``, in order, computed by ``jobs`` spawned worker processes
    with the core budget shared among them (in this process when one would do). ``fn`` must be a
    module-level function. Workers stop as a sweep's do: on a Ctrl-C or an error here, and on
    their own when this process dies (the watchdog)."""
    jobs = min(jobs, len(items))
    if jobs <= 1:
        return [fn(item) for item in items]
    threads = worker_threads(jobs)
    _quiet_resource_tracker()
    context = multiprocessing.get_context("spawn")
    stop_requested = context.Event()
    pool = _pool(jobs, context, stop_requested)
    completed = False
    try:
        with HeldInterrupt(block_children=True) as held, _main_module_hidden():
            futures = [pool.submit(_with_threads, fn, threads, item) for item in items]
        if held.requested:
            raise KeyboardInterrupt
        results = [f.result() for f in futures]
        completed = True
        return results
    finally:
        if completed:
            pool.shutdown(wait=True)
        else:
            with HeldInterrupt():
                _stop_workers(pool, stop_requested)


def _with_threads(fn, threads: int, item):
    torch.set_num_threads(threads)
    return fn(item)


def _stop_workers(
    pool: ProcessPoolExecutor, stop_requested, grace_seconds: float = STOP_GRACE_SECONDS
) -> None:
    """Interrupted: each worker checkpoints its population at the step it is on and exits; a
    population not started yet never starts. Workers still alive after the grace period are
    killed (their last checkpoints are whole files, so nothing is damaged)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    stop_requested.set()
    for proc in processes:
        if proc.is_alive():
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGINT)
    pool.shutdown(wait=False, cancel_futures=True)  # idle workers get their exit message now
    deadline = time.monotonic() + grace_seconds
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()  # not SIGTERM: a worker takes that as one more request to checkpoint
            proc.join(5.0)


def _quiet_resource_tracker() -> None:
    """multiprocessing's resource tracker (a process of its own, started with this interpreter's
    -W options) warns about "leaked semaphores" when a sweep is killed outright, then removes them
    itself: the warning is noise to the user, and would be the only line such a kill prints."""
    option = "ignore::UserWarning:multiprocessing.resource_tracker"
    if option not in sys.warnoptions:
        sys.warnoptions.append(option)


@contextlib.contextmanager
def _main_module_hidden():
    """Start workers without the caller's main module. A spawned worker otherwise imports the
    script that called run_sweep, and a script without an ``if __name__ == "__main__":`` guard
    then calls run_sweep again in every worker (which finds the folder locked, and the pool
    breaks). The workers need nothing from it: their tasks are grokkit functions and plain data."""
    main = sys.modules.get("__main__")
    hidden = {
        k: getattr(main, k)
        for k in ("__file__", "__spec__")
        if main is not None and hasattr(main, k)
    }
    try:
        for k in hidden:
            if k == "__file__":
                delattr(main, k)
            else:
                setattr(main, k, None)
        yield
    finally:
        for k, v in hidden.items():
            setattr(main, k, v)


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
        pending = {
            remote.remote(*task, device, loggers, progress_queue): g
            for task, g in zip(tasks, groups)
        }
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
