"""The grokking benchmark (``reproduce benchmark``): its runs, the tuning that chooses the tuned
runs from seeds that are not reported, verdicts computed from the numbers, and the smoke scale end
to end."""

from __future__ import annotations

import math
import types

from grokkit.analysis.grokking_time import Summary
from grokkit.experiments import benchmark as bm


def test_every_method_has_its_published_recipe_and_the_same_grid_and_budget():
    configs = bm.runs("laptop")
    s = bm.SCALES["laptop"]
    per_method = len(s["seeds"]) + len(bm.grid("adamw")) * len(s["tuning_seeds"])
    assert len(configs) == len(s["tasks"]) * len(bm.METHODS) * per_method
    assert not set(s["seeds"]) & set(s["tuning_seeds"])  # tuned on seeds that are not reported
    assert {c.steps for c in configs} == {s["steps"]} and {c.eval_every for c in configs} == {
        s["eval_every"]
    }
    assert {bm._method_of(c) for c in configs} == set(bm.METHODS)
    for method in bm.METHODS:
        points = bm.grid(method)
        assert len(points) == 4 and points[0]["lr"] == 1e-3  # the published point first
        published = [c for c in configs if bm._method_of(c) == method and c.seed in s["seeds"]]
        assert {tuple(bm._point_of(c, method).items()) for c in published} == {
            tuple(points[0].items())
        }
    ema = next(c for c in configs if bm._method_of(c) == "grokfast-ema")
    assert (ema.grad_filter_alpha, ema.effective_grad_filter_lambda, ema.optimizer.l2) == (
        0.98,
        2.0,
        0.005,
    )
    assert ema.optimizer.weight_decay == 0.0
    adamw = next(c for c in configs if bm._method_of(c) == "adamw")
    assert (adamw.optimizer.lr, adamw.optimizer.weight_decay) == (1e-3, 1.0)


def _fake_result(config):
    return types.SimpleNamespace(config=config, run_dir=config)


def test_the_tuned_point_is_chosen_on_the_tuning_seeds_only(monkeypatch):
    """The tuning seeds reach 95 % soonest at the second grid point; a reported seed that reached
    it at once at the fourth point must not change the choice (no peeking at reported seeds)."""
    scale = "smoke"
    task = bm.SCALES[scale]["tasks"][0]
    points = bm.grid("adamw")
    tuning = list(bm.SCALES[scale]["tuning_seeds"])
    steps_at = {0: 25, 1: 10, 2: 20, 3: None}
    results = [
        _fake_result(bm.config(scale, task, "adamw", points[i], seed))
        for i in range(4)
        for seed in tuning
    ]
    cheat = bm.config(scale, task, "adamw", points[3], 0)
    results.append(_fake_result(cheat))

    def rows(result):
        c = result.config
        i = points.index(bm._point_of(c, "adamw"))
        step = 1 if c is cheat else steps_at[i]
        val = [(0, 0.0), (step, 1.0)] if step is not None else [(0, 0.0), (30, 0.5)]
        return [{"step": s, "val_accuracy": v, "train_accuracy": 1.0} for s, v in val]

    monkeypatch.setattr(bm, "_rows", rows)
    assert bm.chosen_points(results, scale)[(task, "adamw")] == points[1]
    followup = bm.followup_runs(results, scale)
    assert {c.seed for c in followup} == set(bm.SCALES[scale]["seeds"])
    assert all(bm._point_of(c, "adamw") == points[1] for c in followup)


def _summary(median: float, low: float, high: float) -> Summary:
    return Summary(5, 5, median, median, median, low, high)


def _cell(method: str, ratio: tuple) -> bm.Cell:
    s = _summary(100.0, 90.0, 110.0)
    sums = {k: s for k in ("steps_95", "steps_99", "seconds_95", "train_99", "delay")}
    task = ("x+y", 11, 0.5)
    return bm.Cell(task, method, "tuned", bm.grid(method)[0], [], sums, ratio, ratio, 1.0, 0)


def test_verdicts_follow_the_intervals():
    cells = [
        _cell("adamw", (1.0, 0.8, 1.2)),
        _cell("grokfast-ema", (3.0, 2.0, 4.5)),  # the interval lies above 1: faster
        _cell("muon", (0.5, 0.3, 0.8)),  # below 1: slower
        _cell("orthograd", (1.3, 0.7, 2.1)),  # straddles 1
    ]
    text = bm.verdict(bm.Benchmark(cells, "smoke", 30, 5))
    assert "Grokfast-EMA 3.00x [2.00, 4.50]: faster" in text
    assert "Muon 0.50x [0.30, 0.80]: slower" in text
    assert "⊥AdamW 1.30x [0.70, 2.10]: not distinguishable from AdamW" in text
    rows = bm.csv_rows(bm.Benchmark(cells, "smoke", 30, 5))
    assert [len(r) for r in rows] == [len(bm.CSV_HEADER)] * 4
    censored = _cell("adamw", (math.nan,) * 3)
    censored = bm.Cell(
        *[getattr(censored, f) for f in ("task", "method", "variant", "point", "times")],
        {k: _summary(math.inf, 20.0, math.inf) for k in censored.summaries},
        *[getattr(censored, f) for f in ("ratio_95", "ratio_99", "ms_per_step", "state_bytes")],
    )
    row = dict(zip(bm.CSV_HEADER, bm.csv_rows(bm.Benchmark([censored], "smoke", 30, 5))[0]))
    assert row["median_steps_95"] == ">30" and row["ci_high_95"] == ">30"  # never a number
    assert row["ci_low_95"] == 20.0
