"""One definition of grokking time (grokkit.analysis.grokking_time) on constructed curves, and its
statistics over seeds against independent computations."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest

from grokkit.analysis.grokking_time import (
    format_steps,
    grokking_time,
    ratio_of_medians,
    summarize,
)


def curve(points: list[tuple[int, float, float]]) -> list[dict]:
    """metrics.csv rows from (step, train accuracy, validation accuracy); 2 s per 100 steps."""
    return [
        {"step": s, "train_accuracy": tr, "val_accuracy": va, "wall_seconds": s / 50}
        for s, tr, va in points
    ]


def test_the_first_evaluated_step_at_or_above_each_threshold():
    rows = curve(
        [
            (0, 0.0, 0.0),
            (100, 0.99, 0.2),
            (200, 1.0, 0.949),
            (300, 1.0, 0.95),
            (400, 1.0, 0.98),
            (500, 1.0, 0.99),
            (600, 1.0, 1.0),
        ]
    )
    t = grokking_time(rows, budget=1000)
    assert (t.steps_95, t.steps_99, t.train_steps_99) == (300, 500, 100)
    assert t.seconds_95 == 6.0 and t.seconds_99 == 10.0
    assert t.delay_99 == 400


def test_a_threshold_never_met_is_censored_not_a_number():
    rows = curve([(0, 0.0, 0.0), (500, 1.0, 0.94), (1000, 1.0, 0.97)])
    t = grokking_time(rows, budget=1000)
    assert t.steps_95 == 1000 and t.steps_99 is None and t.seconds_99 is None
    assert t.delay_99 is None
    never = grokking_time(curve([(0, 0.1, 0.0), (1000, 0.5, 0.0)]), budget=1000)
    assert never.steps_95 is None and never.train_steps_99 is None


def test_a_dip_after_the_threshold_does_not_move_the_first_step():
    rows = curve([(0, 0, 0), (100, 1, 0.99), (200, 1, 0.5), (300, 1, 0.995)])
    assert grokking_time(rows, budget=300).steps_99 == 100


def _exact_bootstrap_medians(values: list[float]) -> list[float]:
    """Every resample of n values (n^n equally likely) and its median: the bootstrap
    distribution without Monte Carlo, by the textbook definition."""
    out = []
    for sample in itertools.product(values, repeat=len(values)):
        ordered = sorted(sample)
        n = len(ordered)
        low, high = ordered[(n - 1) // 2], ordered[n // 2]
        out.append(high if math.isinf(high) else 0.5 * (low + high))
    return out


@pytest.mark.parametrize(
    "values",
    [[300, 500, 700, 900, 1200], [100, 100, 400, 800, None], [200, 250, 900, None, None]],
)
def test_the_median_interval_is_the_exact_bootstrap_percentile(values):
    s = summarize(values)
    times = [math.inf if v is None else v for v in values]
    exact = np.array(_exact_bootstrap_medians(times))
    assert s.seeds == 5 and s.reached == sum(v is not None for v in values)
    # Monte Carlo with 10,000 resamples against the exact distribution of 3,125: the interval
    # ends are the same resampled medians, or neighbours in the exact distribution.
    support = np.unique(exact)
    lo_exact = np.percentile(exact, 2.5, method="lower")
    hi_exact = np.percentile(exact, 97.5, method="higher")
    for got, want in ((s.ci_low, lo_exact), (s.ci_high, hi_exact)):
        i, j = np.searchsorted(support, [got, want])
        assert abs(int(i) - int(j)) <= 1, (got, want)
    assert s.median == statistics.median(times) or math.isinf(s.median)


def test_identical_seeds_have_a_zero_width_interval_and_a_censored_median_is_infinite():
    s = summarize([400, 400, 400, 400, 400])
    assert (s.median, s.ci_low, s.ci_high, s.q25, s.q75) == (400, 400, 400, 400, 400)
    c = summarize([300, None, None, None, None])
    assert math.isinf(c.median) and c.reached == 1 and math.isinf(c.ci_high)
    assert format_steps(c.median, 5000) == ">5,000" and format_steps(s.median) == "400"


def test_the_ratio_of_medians_and_its_interval():
    slow = [1000, 1100, 1200, 1300, 1400]
    fast = [100, 110, 120, 130, 140]
    r = ratio_of_medians(slow, fast)
    assert r.ratio == pytest.approx(10.0)
    assert 1000 / 140 <= r.ci_low <= 10.0 <= r.ci_high <= 1400 / 100
    same = ratio_of_medians(slow, slow)
    assert same.ratio == 1.0 and same.ci_low < 1.0 < same.ci_high
    never = ratio_of_medians([None] * 5, fast)  # the baseline never got there: "faster, by > x"
    assert math.isinf(never.ratio)
