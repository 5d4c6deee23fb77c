"""The training loop: budgets, the evaluation schedule, thresholds, stop rules, checkpoints, resume.

``train_runs`` trains any number of compatible runs as one population, each into its own run
folder. A single run is a population of one. Members that finish (budget spent, stop rule met,
loss no longer finite) are written out and dropped from the population, so they cost nothing more.

One call is a ``_TrainingSession``: a ``_Run`` record per run (config, folder, tracker, loggers,
summary) instead of parallel lists, so that nothing is addressed by two indices; the loop body
reads in the order things happen (stop requested? step; snapshot; evaluate and record; stop
rules) and every other duty is a named method. The step count is the optimizer's
(``Population.step_count`` reads it): Adam's bias correction needs it, and one count cannot
disagree with itself.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from tqdm import tqdm

from grokkit import runs
from grokkit.backend import Backend
from grokkit.backend_choice import choose_backend
from grokkit.config import BUDGET_FIELDS, RunConfig, checked_configs
from grokkit.errors import InputError, StorageError
from grokkit.files import ensure_real_folder
from grokkit.interrupts import HeldInterrupt, signal_name
from grokkit.loggers import LoggerFactory, RunLogger
from grokkit.model import count_parameters
from grokkit.population import Member, Population, population_key

THRESHOLD = 0.99
LOG_POINTS_PER_DECADE = 20
# The log grid's spacing, 10^(1/20) - 1 = 12 % of the step, equals eval_every at ~8 x eval_every.
LOG_GRID_SPAN = 8


@functools.cache
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
    count += sum(
        1 for s in log_spaced_steps(limit) if start_step < s <= steps and s % every and s % ckpt
    )
    count += int(
        steps > start_step
        and steps % every != 0
        and steps % ckpt != 0
        and not (steps < limit and steps in log_spaced_steps(limit))
    )
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


def _summary(run: _Run, status: str, message: str, steps_done: int) -> dict:
    """``steps_done``: the step of the checkpoint written with it (an interrupted run's last
    evaluation may lie a few steps before), so that the summary and latest.pt agree."""
    config, tracker, info = run.config, run.tracker, run.info
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
        "modulus": info["modulus"],
        "train_fraction": config.train_fraction,
        "seed": config.seed,
        "outliers": config.outliers,
        "preset": config.preset,
        **{k: info[k] for k in ("n_train", "n_val", "batch_size", "population_size")},
    }


def _summary_info(config: RunConfig, member: Member, pop: Population) -> dict:
    """What a run's summary says of its data and population, as they are when training starts."""
    return {
        "modulus": None if config.operation.startswith("s5") else config.modulus,
        "n_train": member.n_train,
        "n_val": pop.table.n_equations - member.n_train,
        "batch_size": pop.batch_size,
        "population_size": pop.size,
    }


def _write_config(run_dir: Path, config: RunConfig, pop: Population, i: int) -> None:
    n_train = pop.members[i].n_train
    runs.write_json(
        run_dir / "config.json",
        {
            **config.to_dict(),
            "derived": {
                "n_equations": pop.table.n_equations,
                "n_train": n_train,
                "n_val": pop.table.n_equations - n_train,
                "batch_size": pop.batch_size,
                "vocab_size": pop.model_config.vocab_size,
                "parameters": count_parameters(pop.model_config),
                "non_embedding_parameters": count_parameters(pop.model_config, embeddings=False),
                "split_seed": config.effective_split_seed,
                "outlier_seed": config.effective_outlier_seed,
            },
        },
    )


class ProgressWatcher(Protocol):
    """Follows training from outside the loop (a sweep's progress across its workers)."""

    def advanced(self, run_steps: int) -> None:
        """One update of the population: ``run_steps`` runs each took one step."""

    def run_ended(self, run_dir: Path, summary: dict) -> None:
        """A run finished (its summary.json is written)."""

    def checkpointed(self, run_dir: Path, summary: dict) -> None:
        """A run still training wrote a checkpoint (and a summary.json saying where it is)."""

    def evaluated(self, run_dir: Path, val_accuracy: float) -> None:
        """A run recorded an evaluation (a metrics row) with this validation accuracy."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: every run was checkpointed at the step it had completed."""


def _finished_summary(run_dir: Path, state: dict, config: RunConfig) -> dict | None:
    """The summary of a run that is already over (runs.is_finished) at this very checkpoint,
    else None. A checkpoint behind the summary (a fallback to previous.pt, a diverged run's last
    good one) trains on: that repairs the folder, or retries."""
    try:
        summary = runs.read_summary(run_dir)
    except runs.RunFolderError:
        return None  # no usable summary: train (or evaluate once more) and write it
    if summary["status"] == "stopped_early" and (
        state["config"].get("stop_after_val_99") != config.stop_after_val_99
    ):
        return None  # resumed under another stop rule (train --resume --stop-after-val-99)
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
    backend: str | Backend = "auto",
) -> list[dict]:
    """Train runs in lockstep as one population; returns their summaries (also in summary.json).

    ``states``: checkpoints to resume from (all at the same step); None starts fresh, writing each
    run's config.json into its (already prepared) folder. ``loggers``: factories of viewers that
    get every metrics row as it is recorded (see grokkit.loggers). ``watcher``: told of every
    update and of each run as it ends (sweeps show progress across workers with it).
    ``backend``: "auto" (the machine's fastest, grokkit.backend_choice), "eager", "compiled", or a
    Backend already chosen (a sweep's workers receive their parent's).

    Each run folder is locked while it trains (FolderLockedError if another process holds it).
    A resumed run that is already over (runs.is_finished) is left exactly as it is.
    Ctrl-C (or SIGTERM) stops after the step in progress, checkpoints every run there and raises
    TrainingInterrupted.
    """
    run_dirs = check_request(configs, run_dirs, states)  # before any folder is touched
    backend = choose_backend(backend, device, configs)  # so is a backend that cannot be had
    with contextlib.ExitStack() as locks, _allocation_failures_said():
        for d in run_dirs:
            ensure_real_folder(d)  # inside a locked sweep folder: never through a link
            locks.enter_context(runs.folder_lock(d, "run folder"))
        _check_folders(configs, run_dirs, states)  # again, holding the locks: nobody wrote since
        if states is None:
            session = _TrainingSession(configs, run_dirs, None, device, loggers, watcher, backend)
            return session.train(progress, description)
        results = [_finished_summary(d, s, c) for d, s, c in zip(run_dirs, states, configs)]
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            session = _TrainingSession(
                [configs[i] for i in todo],
                [run_dirs[i] for i in todo],
                [states[i] for i in todo],
                device,
                loggers,
                watcher,
                backend,
            )
            for i, summary in zip(todo, session.train(progress, description)):
                results[i] = summary
        return results  # type: ignore[return-value]


@contextlib.contextmanager
def _allocation_failures_said():
    """An allocation the machine refuses (the model's estimate in ``validate_run`` was passed,
    but the memory is taken by others): one InputError line instead of a traceback. Every
    checkpoint written before stays."""
    try:
        yield
    except (MemoryError, torch.OutOfMemoryError):
        raise InputError(_OUT_OF_MEMORY) from None
    except RuntimeError as e:
        if "can't allocate memory" not in str(e) and "not enough memory" not in str(e):
            raise
        raise InputError(_OUT_OF_MEMORY) from None


_OUT_OF_MEMORY = (
    "training ran out of memory (the machine, or this process's limit, refused an allocation); "
    "checkpoints already written are kept; choose a smaller model or batch, or free memory"
)


def check_request(configs, run_dirs, states) -> list[Path]:
    """The folders of a ``train_runs`` call, once everything the call asks for is checked: a list
    of valid RunConfigs that can share a population, as many distinct folders, and for each a
    folder a new run may start in (``runs.check_new_run_dir``) or, resuming, a checkpoint of the
    run its folder holds. InputError (one line) otherwise, before anything is written: the library
    keeps the command line's promises (notebooks and scripts call it directly)."""
    configs = checked_configs(configs)
    run_dirs = [Path(d) for d in _listed(run_dirs, "run_dirs", (str, os.PathLike))]
    if not configs:
        raise InputError("train_runs needs at least one config")
    if len(run_dirs) != len(configs):
        raise InputError(
            f"{len(configs)} config(s) and {len(run_dirs)} run folder(s): give one folder per run"
        )
    seen: dict[str, Path] = {}
    for d in run_dirs:
        key = os.path.realpath(d)
        if key in seen:
            raise InputError(f"the run folder {d} is given twice: each run needs its own folder")
        seen[key] = d
    if len({population_key(c) for c in configs}) > 1:
        raise InputError(
            "these runs cannot train as one population (they differ in operation, model shape, "
            "batch size, evaluation interval, dropout or methods): train them in separate calls"
        )
    if states is not None:
        states = _listed(states, "states", dict)
        if len(states) != len(configs):
            raise InputError(f"{len(configs)} config(s) and {len(states)} checkpoint state(s)")
    _check_folders(configs, run_dirs, states)
    return run_dirs


def _listed(values, name: str, kind) -> list:
    if not isinstance(values, (list, tuple)):
        raise InputError(f"{name} must be a list, got {type(values).__name__}")
    for i, v in enumerate(values):
        if not isinstance(v, kind):
            expected = kind.__name__ if isinstance(kind, type) else "a path"
            raise InputError(f"{name}[{i}] is a {type(v).__name__}, not {expected}")
    return list(values)


def _check_folders(configs: list[RunConfig], run_dirs: list[Path], states) -> None:
    """A new run's folder is new (or holds only leftovers of its own start); a resumed run's
    folder holds the run its checkpoint state belongs to, at a step within the budget."""
    for i, (c, d) in enumerate(zip(configs, run_dirs)):
        if states is None:
            runs.check_new_run_dir(d, c, "run folder", others_allowed=True)
            continue
        state = states[i]
        stored = runs.config_from_dict(state.get("config"), d / runs.CHECKPOINT)
        # the budget and the stop rule are the settings a resume may change
        if stored.with_changes(**{k: getattr(c, k) for k in BUDGET_FIELDS}) != c:
            raise InputError(f"states[{i}] is a checkpoint of another run than configs[{i}]")
        on_disk = runs.read_config(d)
        if on_disk.with_changes(steps=c.steps) != c:
            raise InputError(f"{d} holds another run than configs[{i}]; nothing was changed")
        step = state.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= c.steps:
            raise InputError(f"states[{i}]'s step {step!r} is not within 0..{c.steps}")


@dataclass
class _Run:
    """One run of a training session: what it keeps besides its member's slice of the population."""

    config: RunConfig
    folder: Path
    tracker: Tracker
    loggers: list[RunLogger]
    info: dict  # the summary's data and population sizes, fixed when the session starts
    summary: dict | None = None  # set once the run has ended

    def record(self, row: dict) -> None:
        if self.tracker.record(row):
            for logger in self.loggers:
                logger.log_row(row)

    def stop_reason(self, step: int, diverged: bool) -> tuple[str, str] | None:
        """(status, message) if the run ends at ``step``: its loss is no longer finite, its budget
        is spent, or validation accuracy stayed >= 99 % for ``stop_after_val_99`` steps."""
        config, tracker = self.config, self.tracker
        if diverged:
            kept = tracker.last_checkpoint_step
            return "diverged", (
                f"loss became non-finite before step {step}; the run stopped"
                + (f"; its last good checkpoint (step {kept}) is kept" if kept else "")
            )
        if step >= config.steps:
            return "completed", ""
        streak = config.stop_after_val_99
        if streak and tracker.val_99_since is not None and step - tracker.val_99_since >= streak:
            return "stopped_early", f"validation accuracy stayed >= 99 % for {streak} steps"
        return None


class _TrainingSession:
    """One call of ``train_runs`` on runs that share a population, from their first (or resumed)
    step until each has ended. ``all_runs`` keeps the caller's order, for the summaries returned;
    ``training`` holds the runs still training, in the order of the population's members."""

    def __init__(
        self,
        configs: list[RunConfig],
        run_dirs: list[Path],
        states: list[dict] | None,
        device: str,
        loggers: Sequence[LoggerFactory],
        watcher: ProgressWatcher | None,
        backend: Backend,
    ) -> None:
        self.fresh = states is None
        if self.fresh:
            pop = Population(configs, device, backend)
            trackers = [Tracker() for _ in configs]
            for i, (c, d) in enumerate(zip(configs, run_dirs)):
                _write_config(d, c, pop, i)
        else:
            pop = Population.from_member_states(states, configs, device, backend)
            trackers = [Tracker(**s["tracker"]) for s in states]
        self.all_runs = [
            _Run(c, d, t, [make(d, c) for make in loggers], _summary_info(c, m, pop))
            for c, d, t, m in zip(configs, run_dirs, trackers, pop.members)
        ]
        self.training = list(self.all_runs)
        self.population = pop
        self.watcher = watcher
        self.start_wall = time.perf_counter()
        self.start_step = pop.step_count
        # Losses stay on the device until an evaluation reads them: no sync per step on a GPU.
        self.nonfinite = torch.zeros(pop.size, dtype=torch.bool, device=pop.device)
        self.snapshotting = any(c.snapshot_every for c in configs)

    @property
    def step(self) -> int:
        return self.population.step_count

    def train(self, progress: bool, description: str | None) -> list[dict]:
        """Train until every run has ended; their summaries, in the order of the configs."""
        self.begin()
        total, upper_bound = expected_end(self.training or self.all_runs)
        bar = _progress_bar(progress, description, total, self.step, upper_bound)
        interrupt = HeldInterrupt()  # a Ctrl-C ends the loop between two steps
        with interrupt, contextlib.closing(bar):
            while self.training:
                # Stop requested? Ctrl-C waits for a whole step, so checkpoints hold no half update.
                if interrupt.requested:
                    raise self.interrupted(interrupt.signum)

                # Step.
                losses = self.population.step()
                self.nonfinite |= ~torch.isfinite(losses)
                bar.update(1)
                if self.watcher is not None:
                    self.watcher.advanced(len(self.training))

                # Snapshot.
                self.keep_snapshots()

                # Evaluate and record; stop rules.
                if self.evaluation_due():
                    diverged = self.evaluate_and_record(force=False)
                    self.apply_stop_rules(diverged)
                    if progress and self.training:
                        bar.set_postfix_str(self.progress_text(), refresh=False)
                        _aim_bar(bar, *expected_end(self.training))
            if progress and bar.n < bar.total:  # ended early: the bar ends full, where it stopped
                _aim_bar(bar, bar.n, False)
        return [run.summary for run in self.all_runs]  # type: ignore[misc]

    def begin(self) -> None:
        """Step 0 of a fresh session: its snapshot and its row, the untrained model's. A resumed
        run whose budget is already met (a finished run resumed with the same or a lower budget)
        has its final state written again."""
        if self.fresh:
            self.keep_snapshots()
            self.apply_stop_rules(self.evaluate_and_record(force=True))
        elif any(self.step >= run.config.steps for run in self.training):
            self.apply_stop_rules(self.evaluate_and_record(force=False))

    def evaluation_due(self) -> bool:
        step = self.step
        if any(needs_evaluation(step, run.config) for run in self.training):
            return True
        # A diverged run stops at once where checking costs nothing: on a GPU reading the flags
        # would wait for the device every step, so there it stops at the next due step.
        return self.population.device.type == "cpu" and bool(self.nonfinite.any())

    def evaluate_and_record(self, force: bool) -> list[bool]:
        """Evaluate every run still training and record its row where one is due (``force``: in
        any case). Returns, per run, whether its loss has stopped being finite."""
        step = self.step
        metrics = self.population.evaluate()
        nonfinite = self.nonfinite.cpu()
        lr = [float(v) for v in self.population.optimizer.scheduled_lr(max(step, 1)).view(-1)]
        diverged = []
        for member, run in enumerate(self.training):
            values = {k: float(v[member]) for k, v in metrics.items()}
            lr_now = lr[member] if step else 0.0
            row = {"step": step, **values, "lr": lr_now, "wall_seconds": self.wall(run)}
            bad = bool(nonfinite[member]) or not all(math.isfinite(v) for v in values.values())
            # A diverged run's last row is recorded whatever the schedule: it says where it broke.
            if bad or force or needs_evaluation(step, run.config):
                run.record(row)
                if self.watcher is not None:
                    self.watcher.evaluated(run.folder, row["val_accuracy"])
            diverged.append(bad)
        return diverged

    def apply_stop_rules(self, diverged: list[bool]) -> None:
        """End the runs whose stop rule is met, dropping them from the population so that they
        cost nothing more; checkpoint the others where a checkpoint is due."""
        step, ended = self.step, []
        for member, run in enumerate(self.training):
            reason = run.stop_reason(step, diverged[member])
            if reason is not None:
                self.finish(member, run, *reason)
                ended.append(member)
            elif step % run.config.checkpoint_every == 0 and step > self.start_step:
                self.write_out(member, run)
        if ended:
            self.drop(ended)

    def drop(self, members: list[int]) -> None:
        keep = [m for m in range(len(self.training)) if m not in members]
        self.training = [self.training[m] for m in keep]
        if keep:
            self.population.keep(keep)
            self.nonfinite = self.nonfinite[torch.tensor(keep, device=self.nonfinite.device)]

    def keep_snapshots(self) -> None:
        if not self.snapshotting:
            return
        step = self.step
        for member, run in enumerate(self.training):
            every = run.config.snapshot_every
            if every and step % every == 0:
                weights = self.population.flat[member].detach().cpu().clone()
                if bool(torch.isfinite(weights).all()):  # a diverged run keeps no unusable snapshot
                    runs.save_snapshot(run.folder, step, weights)

    def write_out(self, member: int, run: _Run, status: str = "running", message: str = "") -> dict:
        """Checkpoint (unless the run diverged: its last good one stays), metrics and summary. A
        write the machine refuses says, besides the file, what the run folder holds now."""
        try:
            return self._write_out(member, run, status, message)
        except StorageError as e:
            kept = (
                "the run keeps its last checkpoint"
                if runs.has_checkpoint(run.folder)
                else "the run has no checkpoint yet: the same command starts it again"
            )
            raise StorageError(e.errno, f"{e.strerror}; {kept}") from None

    def _write_out(self, member: int, run: _Run, status: str, message: str) -> dict:
        if status != "diverged":
            run.tracker.last_checkpoint_step = self.step
            state = self.population.member_state(member)
            state["tracker"] = {**asdict(run.tracker), "wall_before": self.wall(run)}
            runs.save_checkpoint(run.folder, state)
        runs.write_metrics(run.folder, run.tracker.rows)
        summary = _summary(run, status, message, self.step)
        runs.write_json(run.folder / "summary.json", summary)
        if self.watcher is not None and status in ("running", "interrupted"):
            self.watcher.checkpointed(run.folder, summary)
        return summary

    def finish(self, member: int, run: _Run, status: str, message: str = "") -> None:
        run.summary = self.write_out(member, run, status, message)
        for logger in run.loggers:
            logger.close(run.summary)
        if self.watcher is not None:
            self.watcher.run_ended(run.folder, run.summary)

    def interrupted(self, signum: int | None = None) -> TrainingInterrupted:
        """Checkpoint every run still training at the current step; the error to raise.
        ``signum``: the signal that asked (SIGTERM is named; a Ctrl-C is the usual case)."""
        said = f"interrupted{signal_name(signum)} at step {self.step}"
        for member, run in enumerate(self.training):
            self.write_out(member, run, "interrupted", said)
        return TrainingInterrupted(f"{said}; every run was checkpointed there")

    def wall(self, run: _Run) -> float:
        return run.tracker.wall_before + time.perf_counter() - self.start_wall

    def progress_text(self) -> str:
        if len(self.all_runs) == 1:
            row = self.all_runs[0].tracker.rows[-1]
            return f"train {100 * row['train_accuracy']:.1f}% val {100 * row['val_accuracy']:.1f}%"
        done = sum(run.summary is not None for run in self.all_runs)
        grokked = sum(run.tracker.steps_to_val_99 is not None for run in self.all_runs)
        return f"finished {done}/{len(self.all_runs)} val>=99% {grokked}/{len(self.all_runs)}"


def expected_end(training: Sequence[_Run]) -> tuple[int, bool]:
    """(the step by which every run still training will have ended, whether that is only an upper
    bound). A run ends at its budget, or, under a stop rule whose streak of >= 99 % validation
    accuracy is under way, once the streak is long enough (if it holds); a run with a stop rule
    and no streak yet may end any time before its budget, which nobody can foresee."""
    ends, unknown = [], False
    for run in training:
        c, since = run.config, run.tracker.val_99_since
        if c.stop_after_val_99 and since is not None:
            ends.append(min(c.steps, since + c.stop_after_val_99))
        else:
            ends.append(c.steps)
            unknown |= bool(c.stop_after_val_99)
    return max(ends), unknown


# The bar's ETA; "at most" where a stop rule may end the runs sooner (expected_end).
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<%s{remaining}, {rate_fmt}{postfix}]"


def _aim_bar(bar: tqdm, end: int, upper_bound: bool) -> None:
    """Point the bar at the step the runs are expected to end at, so its ETA follows."""
    bar.bar_format = BAR_FORMAT % ("at most " if upper_bound else "")
    if end != bar.total:
        bar.total = max(end, bar.n)
        bar.refresh()


def _progress_bar(
    progress: bool, description: str | None, total: int, initial: int, upper_bound: bool
) -> tqdm:
    return tqdm(
        total=total,
        initial=initial,
        disable=not progress,
        unit="step",
        desc=description,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
        bar_format=BAR_FORMAT % ("at most " if upper_bound else ""),
    )
