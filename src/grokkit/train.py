"""The training loop: budgets, the evaluation schedule, thresholds, stop rules, checkpoints, resume.

``train_runs`` trains any number of compatible runs as one population, each into its own run
folder. A single run is a population of one. Members that finish (budget spent, stop rule met,
loss no longer finite) are written out and dropped from the population, so they cost nothing more.
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from tqdm import tqdm

from grokkit import runs
from grokkit.config import RunConfig
from grokkit.loggers import LoggerFactory
from grokkit.model import count_parameters
from grokkit.population import Population

THRESHOLD = 0.99
LOG_POINTS_PER_DECADE = 20
LOG_GRID_SPAN = 8  # the log grid's spacing 10^(1/20) - 1 = 12 % of the step equals eval_every at ~8x


@functools.lru_cache(maxsize=None)
def log_spaced_steps(limit: int) -> frozenset[int]:
    """Roughly 20 steps per decade below ``limit`` (every step while they are that dense)."""
    steps, k = set(), 0
    while (s := round(10 ** (k / LOG_POINTS_PER_DECADE))) < limit:
        steps.add(s)
        k += 1
    return frozenset(steps)


def is_eval_step(step: int, config: RunConfig) -> bool:
    """The schedule: step 0, every ``eval_every`` steps, and ~20 log-spaced steps per decade for
    as long as they are denser than that (up to 8 x ``eval_every``, where the log grid's spacing
    reaches ``eval_every``), so the early, fast part of a curve is resolved on a log step axis."""
    if step == 0 or step % config.eval_every == 0:
        return True
    limit = LOG_GRID_SPAN * config.eval_every
    return step < limit and step in log_spaced_steps(limit)


def needs_evaluation(step: int, config: RunConfig) -> bool:
    """A metrics row is due: a scheduled evaluation, a checkpoint, or the end of the budget."""
    return is_eval_step(step, config) or step >= config.steps or step % config.checkpoint_every == 0


def evaluation_count(config: RunConfig, start_step: int = 0) -> int:
    """How many evaluations a run makes from ``start_step`` to its budget (step 0 included for a
    fresh run): the steps ``needs_evaluation`` selects, counted without walking every step."""
    steps, every, ckpt = config.steps, config.eval_every, config.checkpoint_every

    def multiples(k: int) -> int:  # multiples of k in (start_step, steps]
        return steps // k - start_step // k

    both = every * ckpt // math.gcd(every, ckpt)
    count = multiples(every) + multiples(ckpt) - multiples(both)
    limit = LOG_GRID_SPAN * every
    count += sum(1 for s in log_spaced_steps(limit)
                 if start_step < s <= steps and s % every and s % ckpt)  # fmt: skip
    count += int(steps > start_step and steps % every != 0 and steps % ckpt != 0
                 and not (steps < limit and steps in log_spaced_steps(limit)))  # fmt: skip
    return count + int(start_step == 0)


@dataclass
class Tracker:
    """One run's record: the metric rows and the quantities the summary reports."""

    rows: list[dict] = field(default_factory=list)
    steps_to_train_99: int | None = None
    steps_to_val_99: int | None = None
    best_val_accuracy: float = 0.0
    val_99_since: int | None = None  # first step of the current streak at >= 99 % validation
    wall_before: float = 0.0  # seconds spent in earlier sessions (before a resume)
    last_checkpoint_step: int | None = None

    def record(self, row: dict) -> bool:
        """Add an evaluation's row; False (and nothing changes) if this step already has one, as
        when a run resumes at the step of its last row."""
        step = row["step"]
        if self.rows and self.rows[-1]["step"] == step:
            return False
        self.rows.append(row)
        if self.steps_to_train_99 is None and row["train_accuracy"] >= THRESHOLD:
            self.steps_to_train_99 = step
        if self.steps_to_val_99 is None and row["val_accuracy"] >= THRESHOLD:
            self.steps_to_val_99 = step
        self.best_val_accuracy = max(self.best_val_accuracy, row["val_accuracy"])
        if row["val_accuracy"] >= THRESHOLD:
            self.val_99_since = step if self.val_99_since is None else self.val_99_since
        else:
            self.val_99_since = None
        return True


def _summary(config: RunConfig, tracker: Tracker, pop_info: dict, status: str, message: str,
             steps_done: int) -> dict:
    """``steps_done``: the step of the checkpoint written with it (an interrupted run's last
    evaluation may lie a few steps before), so that the summary and latest.pt agree."""
    last = tracker.rows[-1] if tracker.rows else {}
    return {
        "status": status,
        "message": message,
        "steps_done": steps_done,
        "train_loss": last.get("train_loss"),
        "train_accuracy": last.get("train_accuracy"),
        "val_loss": last.get("val_loss"),
        "val_accuracy": last.get("val_accuracy"),
        "best_val_accuracy": tracker.best_val_accuracy,
        "steps_to_train_99": tracker.steps_to_train_99,
        "steps_to_val_99": tracker.steps_to_val_99,
        "wall_seconds": last.get("wall_seconds"),
        "operation": config.operation,
        "modulus": pop_info["modulus"],
        "train_fraction": config.train_fraction,
        "seed": config.seed,
        "outliers": config.outliers,
        "preset": config.preset,
        **{k: pop_info[k] for k in ("n_train", "n_val", "batch_size", "population_size")},
    }


def _write_config(run_dir: Path, config: RunConfig, pop: Population, i: int) -> None:
    n_train = pop.members[i].n_train
    runs.write_json(run_dir / "config.json", {
        **config.to_dict(),
        "derived": {
            "n_equations": pop.table.n_equations, "n_train": n_train,
            "n_val": pop.table.n_equations - n_train, "batch_size": pop.batch_size,
            "vocab_size": pop.model_config.vocab_size,
            "parameters": count_parameters(pop.model_config),
            "non_embedding_parameters": count_parameters(pop.model_config, embeddings=False),
            "split_seed": config.effective_split_seed,
            "outlier_seed": config.effective_outlier_seed,
        },
    })  # fmt: skip


class ProgressWatcher(Protocol):
    """Follows training from outside the loop (a sweep's progress across its workers)."""

    def advanced(self, run_steps: int) -> None:
        """One update of the population: ``run_steps`` runs each took one step."""

    def run_ended(self, run_dir: Path, summary: dict) -> None:
        """A run finished (its summary.json is written)."""

    def checkpointed(self, run_dir: Path, summary: dict) -> None:
        """A run still training wrote a checkpoint (and a summary.json saying where it is)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: every run was checkpointed at the step it had completed."""


class _InterruptRequest:
    """While active (main thread only), Ctrl-C asks the loop to stop after the current step
    instead of raising in the middle of an update; further Ctrl-Cs are ignored until it does."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def __enter__(self) -> "_InterruptRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _finished_summary(run_dir: Path, state: dict, config: RunConfig) -> dict | None:
    """The summary of a run that is already over (runs.is_finished) at this very checkpoint,
    else None. A checkpoint behind the summary (a fallback to previous.pt, a diverged run's last
    good one) trains on: that repairs the folder, or retries."""
    try:
        summary = runs.read_summary(run_dir)
    except runs.RunFolderError:
        return None  # no usable summary: train (or evaluate once more) and write it
    if runs.is_finished(summary, config.steps) and state["step"] >= summary["steps_done"]:
        return summary
    return None


def train_runs(
    configs: list[RunConfig],
    run_dirs: list[Path],
    states: list[dict] | None = None,
    device: str = "cpu",
    progress: bool = True,
    description: str | None = None,
    loggers: Sequence[LoggerFactory] = (),
    watcher: ProgressWatcher | None = None,
) -> list[dict]:
    """Train runs in lockstep as one population; returns their summaries (also in summary.json).

    ``states``: checkpoints to resume from (all at the same step); None starts fresh, writing each
    run's config.json into its (already prepared) folder. ``loggers``: factories of viewers that
    get every metrics row as it is recorded (see grokkit.loggers). ``watcher``: told of every
    update and of each run as it ends (sweeps show progress across workers with it).

    Each run folder is locked while it trains (FolderLockedError if another process holds it).
    A resumed run that is already over (runs.is_finished) is left exactly as it is.
    Ctrl-C stops after the step in progress, checkpoints every run there and raises
    TrainingInterrupted.
    """
    run_dirs = [Path(d) for d in run_dirs]
    with contextlib.ExitStack() as locks:
        for d in run_dirs:
            d.mkdir(parents=True, exist_ok=True)
            locks.enter_context(runs.folder_lock(d, "run folder"))
        if states is None:
            return _train(configs, run_dirs, None, device, progress, description, loggers, watcher)
        results: list[dict | None] = [_finished_summary(d, s, c) for d, s, c in zip(run_dirs, states, configs)]
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            trained = _train([configs[i] for i in todo], [run_dirs[i] for i in todo],
                             [states[i] for i in todo], device, progress, description, loggers,
                             watcher)  # fmt: skip
            for i, summary in zip(todo, trained):
                results[i] = summary
        return results  # type: ignore[return-value]


def _train(configs, run_dirs, states, device, progress, description, loggers, watcher) -> list[dict]:
    if states is None:
        pop = Population(configs, device)
        trackers = [Tracker() for _ in configs]
        for i, (c, d) in enumerate(zip(configs, run_dirs)):
            _write_config(d, c, pop, i)
    else:
        pop = Population.from_member_states(states, configs, device)
        trackers = [Tracker(**s["tracker"]) for s in states]

    n_eq = pop.table.n_equations
    info = [{
        "modulus": None if c.operation.startswith("s5") else c.modulus,
        "n_train": m.n_train, "n_val": n_eq - m.n_train, "batch_size": pop.batch_size,
        "population_size": pop.size,
    } for c, m in zip(configs, pop.members)]  # fmt: skip
    index = list(range(pop.size))  # position in the caller's lists of each member still training
    summaries: list[dict | None] = [None] * pop.size
    run_loggers = [[make(d, c) for make in loggers] for c, d in zip(configs, run_dirs)]
    start_wall = time.perf_counter()
    start_step = pop.step_count
    nonfinite = torch.zeros(pop.size, dtype=torch.bool, device=pop.device)

    def wall(i: int) -> float:
        return trackers[i].wall_before + time.perf_counter() - start_wall

    def write_out(slot: int, i: int, status: str = "running", message: str = "") -> dict:
        """Checkpoint (unless the run diverged: its last good one stays), metrics and summary."""
        if status != "diverged":
            trackers[i].last_checkpoint_step = pop.step_count
            state = pop.member_state(slot)
            state["tracker"] = {**asdict(trackers[i]), "wall_before": wall(i)}
            runs.save_checkpoint(run_dirs[i], state)
        runs.write_metrics(run_dirs[i], trackers[i].rows)
        summary = _summary(configs[i], trackers[i], info[i], status, message, pop.step_count)
        runs.write_json(run_dirs[i] / "summary.json", summary)
        if watcher is not None and status in ("running", "interrupted"):
            watcher.checkpointed(run_dirs[i], summary)
        return summary

    def finish(slot: int, i: int, status: str, message: str = "") -> None:
        summaries[i] = write_out(slot, i, status, message)
        for logger in run_loggers[i]:
            logger.close(summaries[i])
        if watcher is not None:
            watcher.run_ended(run_dirs[i], summaries[i])

    snapshotting = any(c.snapshot_every for c in configs)  # else nothing to look at per step

    def keep_snapshots() -> None:
        if not snapshotting:
            return
        step = pop.step_count
        for slot, i in enumerate(index):
            every = configs[i].snapshot_every
            if every and step % every == 0:
                weights = pop.flat[slot].detach().cpu().clone()
                if bool(torch.isfinite(weights).all()):  # a diverged run keeps no unusable snapshot
                    runs.save_snapshot(run_dirs[i], step, weights)

    def record(i: int, row: dict) -> None:
        if trackers[i].record(row):
            for logger in run_loggers[i]:
                logger.log_row(row)

    def evaluate_and_record(force: bool) -> None:
        nonlocal nonfinite
        step = pop.step_count
        metrics = pop.evaluate()
        bad = nonfinite.cpu()
        lr = [float(v) for v in pop.optimizer.scheduled_lr(max(step, 1)).view(-1)]
        finished = []
        for slot, i in enumerate(index):
            c, t = configs[i], trackers[i]
            values = {k: float(v[slot]) for k, v in metrics.items()}
            row = {"step": step, **values, "lr": lr[slot] if step else 0.0, "wall_seconds": wall(i)}
            if bad[slot] or not all(math.isfinite(v) for v in values.values()):
                done_at = t.last_checkpoint_step
                message = (
                    f"loss became non-finite before step {step}; the run stopped"
                    + (f"; its last good checkpoint (step {done_at}) is kept" if done_at else "")
                )
                record(i, row)
                finish(slot, i, "diverged", message)
                finished.append(slot)
                continue
            if force or needs_evaluation(step, c):
                record(i, row)
            if step >= c.steps:
                finish(slot, i, "completed")
                finished.append(slot)
            elif c.stop_after_val_99 and t.val_99_since is not None and \
                    step - t.val_99_since >= c.stop_after_val_99:  # fmt: skip
                finish(slot, i, "stopped_early",
                       f"validation accuracy stayed >= 99 % for {c.stop_after_val_99} steps")
                finished.append(slot)
            elif step % c.checkpoint_every == 0 and step > start_step:
                write_out(slot, i)
        if finished:
            keep = [s for s in range(len(index)) if s not in finished]
            index[:] = [index[s] for s in keep]
            if keep:
                pop.keep(keep)
                nonfinite = nonfinite[torch.tensor(keep, device=nonfinite.device)]

    if states is None:
        keep_snapshots()  # step 0: the initial weights
        evaluate_and_record(force=True)  # step 0: the untrained model
    elif any(pop.step_count >= configs[i].steps for i in index):
        evaluate_and_record(force=False)  # a budget already met: write the final state again

    total = max(c.steps for c in configs)
    bar = tqdm(total=total, initial=pop.step_count, disable=not progress, unit="step",
               desc=description, file=sys.stderr, dynamic_ncols=True, mininterval=0.5)  # fmt: skip
    interrupt = _InterruptRequest()
    with interrupt, contextlib.closing(bar):
        while index:
            if interrupt.requested:
                for slot, i in enumerate(index):
                    write_out(slot, i, "interrupted", f"interrupted at step {pop.step_count}")
                raise TrainingInterrupted(f"interrupted at step {pop.step_count}; every run was checkpointed there")
            losses = pop.step()
            nonfinite |= ~torch.isfinite(losses)
            bar.update(1)
            if watcher is not None:
                watcher.advanced(len(index))
            step = pop.step_count
            keep_snapshots()
            due = any(needs_evaluation(step, configs[i]) for i in index)
            # On the CPU a check per step is free; on a GPU it would sync, so wait for a due step.
            if due or (pop.device.type == "cpu" and bool(nonfinite.any())):
                evaluate_and_record(force=False)
                if progress:
                    bar.set_postfix_str(_progress_text(trackers, index, summaries), refresh=False)
    return summaries  # type: ignore[return-value]


def _progress_text(trackers: list[Tracker], index: list[int], summaries: list) -> str:
    if len(trackers) == 1:
        row = trackers[0].rows[-1]
        return f"train {100 * row['train_accuracy']:.1f}% val {100 * row['val_accuracy']:.1f}%"
    done = sum(s is not None for s in summaries)
    grokked = sum(t.steps_to_val_99 is not None for t in trackers)
    return f"finished {done}/{len(trackers)} val>=99% {grokked}/{len(trackers)}"
