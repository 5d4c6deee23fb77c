"""The benchmark's tuning: which method and trial a run is, each trial's score on the tuning
seeds, the winner, whether it lies on the edge of its space, and what the tuning cost.

A trial's score is the Kaplan-Meier median of its tuning seeds' steps to 95 % validation
(censored at the tuning budget); ties (say, every trial censored) go to the higher mean best
validation accuracy, then to the earlier trial. Only runs on tuning seeds count: a reported
seed's run never changes a choice (``benchmark_spaces``: the seed ranges cannot meet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from grokkit.analysis.grokking_time import censored_times
from grokkit.config import RunConfig
from grokkit.experiments import benchmark_design as design, benchmark_spaces as spaces


def rows_of(result) -> list[dict]:
    """A run's metrics rows (read here: ``reproduce --list`` imports the benchmark)."""
    from grokkit.runs import read_metrics

    return read_metrics(result.run_dir)


def task_of(c: RunConfig) -> tuple:
    return (c.operation, c.modulus, c.train_fraction)


def method_of(c: RunConfig) -> str:
    """The benchmark method a run belongs to, from its settings."""
    if c.optimizer.muon:
        return "muon"
    if c.fixed_norm:
        return "fixed-norm"
    if c.grad_filter != "none":
        return f"grokfast-{c.grad_filter}"
    if c.orthogonal_grad:
        return "orthograd"
    if c.loss == "stablemax":
        return "stablemax"
    return "adamw" if c.optimizer.weight_decay > 0 else "adam"


def point_of(c: RunConfig, method: str) -> dict:
    """The values of the method's search-space axes in a run."""
    out = {}
    for axis in spaces.SPACES.get(method, (spaces.Axis("lr", 1e-3, 1e-3),)):
        f = axis.field
        if f == "grad_filter_lambda":
            out[f] = c.effective_grad_filter_lambda
        elif hasattr(c.optimizer, f):
            out[f] = getattr(c.optimizer, f)
        else:
            out[f] = getattr(c, f)
    return out


def is_tuning(c: RunConfig) -> bool:
    return c.seed >= spaces.TUNING_BASE


@dataclass(frozen=True)
class Tuning:
    """One method's tuning on one task: its trials, each one's score, the winner."""

    task: tuple
    method: str
    trials: list[dict]
    scores: list[tuple[float, float]]  # (KM median steps to 95 %, - mean best val accuracy)
    winner: int
    steps_trained: int  # every tuning run's steps, summed (its cost in steps)

    @property
    def point(self) -> dict:
        return self.trials[self.winner]

    @property
    def on_edge(self) -> bool:
        return spaces.on_edge(self.method, self.point)


def _score(rows_of_runs: list[list[dict]], budget: int) -> tuple[float, float]:
    from grokkit.analysis.statistics import km_median

    if not rows_of_runs:
        return (math.inf, 0.0)
    median = km_median(censored_times(rows_of_runs, [budget] * len(rows_of_runs), 0.95)).median
    best = [max((r["val_accuracy"] or 0.0) for r in rows) if rows else 0.0 for rows in rows_of_runs]
    return (median, -sum(best) / len(best))


def tunings(results, scale: str) -> dict[tuple, Tuning]:
    """(tuning task, method) -> its Tuning, from the tuning seeds' runs among ``results``."""
    s = design.SCALES[scale]
    by_trial: dict[tuple, dict[int, list]] = {}
    for r in results:
        if not is_tuning(r.config):
            continue
        m = method_of(r.config)
        trials = spaces.trials(m, s["trials"])
        index = trials.index(point_of(r.config, m))
        key = (task_of(r.config), m)
        by_trial.setdefault(key, {}).setdefault(index, []).append(rows_of(r))
    out = {}
    for (task, m), runs in by_trial.items():
        trials = spaces.trials(m, s["trials"])
        scores = [_score(runs.get(i, []), s["tuning_steps"]) for i in range(len(trials))]
        winner = min(range(len(trials)), key=lambda i: (*scores[i], i))
        steps = sum(rows[-1]["step"] for rs in runs.values() for rows in rs if rows)
        out[(task, m)] = Tuning(task, m, trials, scores, winner, steps)
    return out


def chosen_points(results, scale: str) -> dict[tuple, dict]:
    """(tuning task, method) -> the winning trial's point."""
    return {key: t.point for key, t in tunings(results, scale).items()}


def followup_runs(results, scale: str, seeds: int | None = None) -> list[RunConfig]:
    """The second stage: every tuned row at its method's chosen point."""
    chosen = chosen_points(results, scale)
    return [
        c
        for spec in design.cells(scale)
        if spec.variant != "published"
        for c in design.cell_runs(scale, spec, design.cell_point(scale, spec, chosen), seeds)
    ]
