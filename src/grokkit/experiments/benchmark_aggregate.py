"""Aggregates over tasks, as the field now reports them (Agarwal et al. 2021, rliable; Dahl et al.
2023, AlgoPerf), with numpy and scipy only.

The input is each (method, task) cell's time-to-target of every seed, in seconds (steps to 95 %
validation x the method's measured ms per step; ``math.inf``: not within the budget).

* **Normalised time**: a run's time over the best method's median time on its task (1: as fast
  as the best cell's median).
* **IQM**: the interquartile mean (``scipy.stats.trim_mean`` cutting 25 % at each end) of a
  method's normalised times pooled over tasks and seeds; ``inf`` when more than a quarter of them
  are censored.
* **Performance profile**: for each tau, the fraction of tasks whose median time is at most
  tau x the best method's median on that task (AlgoPerf's profile); its ``score`` is the mean of
  the profile over ``TAUS`` (the profile's normalised area).
* **Intervals**: stratified bootstrap (resample the seeds of each cell on their own, every
  statistic recomputed, best medians included), percentile 95 %.
"""

from __future__ import annotations

import math

import numpy as np

TAUS = tuple(float(t) for t in np.round(np.geomspace(1.0, 4.0, 9), 4))
SAMPLES = 2000
SEED = 0

Times = dict[tuple[str, tuple], list[float]]  # (method, task) -> each seed's seconds


def _median(values) -> float:
    return float(np.median(np.asarray(values, dtype=float))) if len(values) else math.inf


def best_medians(times: Times) -> dict[tuple, float]:
    """Each task's lowest median time over methods."""
    best: dict[tuple, float] = {}
    for (_, task), values in times.items():
        best[task] = min(best.get(task, math.inf), _median(values))
    return best


def _ratio(value: float, best: float) -> float:
    """A time over the task's best median (inf where the best is censored too)."""
    return math.inf if math.isinf(best) or math.isinf(value) else value / best


def iqm(values) -> float:
    """The interquartile mean; inf when a censored time survives the trimming."""
    a = np.asarray(values, dtype=float)
    return math.nan if a.size == 0 else float(_iqm_rows(a[None, :])[0])


def _iqm_rows(a: np.ndarray) -> np.ndarray:
    """The IQM of each row of ``a`` [rows, n] (one scipy call for every bootstrap sample)."""
    from scipy.stats import trim_mean

    with np.errstate(invalid="ignore"):
        values = trim_mean(np.sort(a, axis=1), 0.25, axis=1)
    return np.where(np.isnan(values), math.inf, values)


def normalised_times(times: Times) -> dict[str, list[float]]:
    """Each method's normalised times, pooled over tasks and seeds (tasks in ``times`` order)."""
    best = best_medians(times)
    pooled: dict[str, list[float]] = {}
    for (method, task), values in times.items():
        pooled.setdefault(method, []).extend(_ratio(v, best[task]) for v in values)
    return pooled


def normalised_iqm(times: Times) -> dict[str, float]:
    """Each method's IQM of its normalised times, pooled over tasks and seeds."""
    return {m: iqm(v) for m, v in normalised_times(times).items()}


def performance_profile(times: Times, taus=TAUS) -> dict[str, list[float]]:
    """Each method's fraction of tasks solved within tau x the best median, for each tau."""
    best = best_medians(times)
    tasks = sorted(best, key=str)
    profile = {}
    for method in dict.fromkeys(m for m, _ in times):
        ratios = [_ratio(_median(times.get((method, t), [])), best[t]) for t in tasks]
        profile[method] = [sum(r <= tau for r in ratios) / len(tasks) for tau in taus]
    return profile


def profile_score(profile: list[float]) -> float:
    return float(np.mean(profile))


def _resample(times: Times, rng) -> Times:
    return {
        key: list(np.asarray(v, dtype=float)[rng.integers(0, len(v), len(v))]) if v else []
        for key, v in times.items()
    }


def bootstrap(times: Times, samples: int = SAMPLES) -> dict[str, dict]:
    """Per method: the IQM and the profile score, each with a stratified bootstrap 95 %
    interval (every cell's seeds resampled on their own)."""
    rng = np.random.default_rng(SEED)
    point_iqm = normalised_iqm(times)
    point_profile = performance_profile(times)
    boot_times: dict[str, list[list[float]]] = {m: [] for m in point_iqm}
    boot_score: dict[str, list[float]] = {m: [] for m in point_iqm}
    for _ in range(samples):
        sample = _resample(times, rng)
        for m, v in normalised_times(sample).items():
            boot_times[m].append(v)
        for m, p in performance_profile(sample).items():
            boot_score[m].append(profile_score(p))
    boot_iqm = {m: list(_iqm_rows(np.asarray(rows, dtype=float))) for m, rows in boot_times.items()}
    return {
        m: {
            "iqm": point_iqm[m],
            "iqm_interval": _interval(boot_iqm[m]),
            "profile": point_profile[m],
            "profile_score": profile_score(point_profile[m]),
            "profile_score_interval": _interval(boot_score[m]),
        }
        for m in point_iqm
    }


def _interval(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return (
        float(np.percentile(a, 2.5, method="lower")),
        float(np.percentile(a, 97.5, method="higher")),
    )
