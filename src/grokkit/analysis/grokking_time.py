"""One definition of grokking time, and its statistics over seeds.

Papers disagree on when a run has grokked (99 % validation accuracy in Power et al., 95 % in
Grokfast and in the Muon study, 90 % elsewhere), so ``grokking_times`` reports both thresholds
and says what each number is:

* steps to 95 % and to 99 % validation accuracy: the first *evaluated* step at or above the
  threshold (an evaluation every ``eval_every`` steps after a log-spaced start, so a time is
  known to within one interval); a run that never got there within its budget is *censored*,
  ``None``, never a number;
* the same in wall seconds, as the run's metrics.csv recorded them;
* steps to 99 % training accuracy, and the delay from it to 99 % validation accuracy.

Statistics over seeds treat a censored time as later than every observed one (right-censored at
the budget): the median and its interval are exact as long as they fall on observed times, and
are reported as "> budget" otherwise. Intervals are percentile bootstraps (resampling seeds with
replacement) with a fixed seed, so the same numbers always give the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

THRESHOLDS = (0.95, 0.99)
BOOTSTRAP_SAMPLES = 10_000
BOOTSTRAP_SEED = 0


def first_step_at(rows: Sequence[dict], key: str, threshold: float) -> dict | None:
    """The first row (evaluated step) whose ``key`` is at or above ``threshold``; None: never."""
    return next((r for r in rows if r[key] is not None and r[key] >= threshold), None)


@dataclass(frozen=True)
class GrokkingTime:
    """When one run reached each threshold (None: not within its budget of ``budget`` steps)."""

    steps_95: int | None
    steps_99: int | None
    seconds_95: float | None
    seconds_99: float | None
    train_steps_99: int | None
    budget: int

    @property
    def delay_99(self) -> int | None:
        """Steps from 99 % training to 99 % validation accuracy (None: either never came)."""
        if self.steps_99 is None or self.train_steps_99 is None:
            return None
        return self.steps_99 - self.train_steps_99

    def steps(self, threshold: float) -> int | None:
        return {0.95: self.steps_95, 0.99: self.steps_99}[threshold]


def grokking_time(rows: Sequence[dict], budget: int) -> GrokkingTime:
    """Grokking time of one run from its metrics.csv rows (``budget``: its step budget)."""
    at_95 = first_step_at(rows, "val_accuracy", 0.95)
    at_99 = first_step_at(rows, "val_accuracy", 0.99)
    train_99 = first_step_at(rows, "train_accuracy", 0.99)
    return GrokkingTime(
        steps_95=None if at_95 is None else at_95["step"],
        steps_99=None if at_99 is None else at_99["step"],
        seconds_95=None if at_95 is None else at_95.get("wall_seconds"),
        seconds_99=None if at_99 is None else at_99.get("wall_seconds"),
        train_steps_99=None if train_99 is None else train_99["step"],
        budget=budget,
    )


def _censored_array(values: Sequence[float | None]) -> np.ndarray:
    return np.array([math.inf if v is None else float(v) for v in values], dtype=float)


def _median(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """The median with censored (infinite) times later than every observed one: the middle time,
    or the mean of the two middle ones for an even count, censored when the later of those is
    (never half of a censored time)."""
    ordered = np.sort(a, axis=axis)
    n = a.shape[axis]
    low = np.take(ordered, (n - 1) // 2, axis=axis)
    high = np.take(ordered, n // 2, axis=axis)
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(high), high, 0.5 * (low + high))


def median(values: Sequence[float | None]) -> float:
    """The median of times where ``None`` (or inf) means "not reached within the budget": inf
    when the median is censored, nan for no values. Exact as long as at most half are censored."""
    a = _censored_array(values)
    return float(_median(a)) if a.size else math.nan


@dataclass(frozen=True)
class Summary:
    """Times over seeds: how many there were, how many reached the threshold, the median with
    its interquartile range and a bootstrap 95 % interval; ``math.inf`` means "beyond the
    budget" (censored)."""

    seeds: int
    reached: int
    median: float
    q25: float
    q75: float
    ci_low: float
    ci_high: float


def summarize(values: Sequence[float | None], level: float = 0.95) -> Summary:
    """Median, quartiles and a percentile-bootstrap interval of the median of censored times."""
    a = _censored_array(values)
    if a.size == 0:
        nan = math.nan
        return Summary(0, 0, nan, nan, nan, nan, nan)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    samples = a[rng.integers(0, a.size, size=(BOOTSTRAP_SAMPLES, a.size))]
    medians = _median(samples)
    tail = 100 * (1 - level) / 2
    # "lower"/"higher": interval ends are resampled medians (observed times or inf), never a
    # blend of a time with infinity.
    low = float(np.percentile(medians, tail, method="lower"))
    high = float(np.percentile(medians, 100 - tail, method="higher"))
    q25, q75 = (float(np.percentile(a, q, method="nearest")) for q in (25, 75))
    return Summary(a.size, int(np.isfinite(a).sum()), float(_median(a)), q25, q75, low, high)


@dataclass(frozen=True)
class Ratio:
    """How many times longer ``a`` took than ``b`` (ratio of medians) with a bootstrap interval;
    inf or nan where a median is censored."""

    ratio: float
    ci_low: float
    ci_high: float


def ratio_of_medians(
    a: Sequence[float | None], b: Sequence[float | None], level: float = 0.95
) -> Ratio:
    """median(a) / median(b), seeds of a and b resampled independently."""
    x, y = _censored_array(a), _censored_array(b)
    if x.size == 0 or y.size == 0:
        return Ratio(math.nan, math.nan, math.nan)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    mx = _median(x[rng.integers(0, x.size, size=(BOOTSTRAP_SAMPLES, x.size))])
    my = _median(y[rng.integers(0, y.size, size=(BOOTSTRAP_SAMPLES, y.size))])
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = mx / my  # inf / inf is nan: both censored, nothing known
        point = float(_median(x) / _median(y))
    tail = 100 * (1 - level) / 2
    known = ratios[~np.isnan(ratios)]
    if known.size < 0.5 * ratios.size:
        return Ratio(point, math.nan, math.nan)
    low = float(np.percentile(known, tail, method="lower"))
    high = float(np.percentile(known, 100 - tail, method="higher"))
    return Ratio(point, low, high)


def format_steps(value: float, budget: int | None = None) -> str:
    """A time for a table: ``3,300``, or ``>10,000`` when censored at the budget."""
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return f">{budget:,}" if budget else "censored"
    return f"{value:,.0f}"


def bracket(rows: Sequence[dict], key: str, threshold: float) -> tuple[int | None, int | None]:
    """(previous evaluated step, first evaluated step at or above ``threshold``): the time lies
    in that interval; (None, None) when never reached."""
    previous = None
    for r in rows:
        if r[key] is not None and r[key] >= threshold:
            return (previous if previous is not None else r["step"]), r["step"]
        previous = r["step"]
    return None, None


def censored_times(
    runs_rows: Sequence[Sequence[dict]],
    budgets: Sequence[int],
    threshold: float = 0.99,
    key: str = "val_accuracy",
):
    """Several runs' times to ``threshold`` of ``key`` as ``statistics.Times``: each known to lie
    in (previous evaluation, first evaluation at the threshold], censored at its budget when
    never reached."""
    from grokkit.analysis.statistics import Times

    return Times.from_brackets(
        [(*bracket(rows, key, threshold), budget) for rows, budget in zip(runs_rows, budgets)]
    )
