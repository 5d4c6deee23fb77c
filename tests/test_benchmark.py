"""The grokking benchmark (``reproduce benchmark``): its search spaces, its seeds, the tuning that
chooses the tuned rows on seeds that are never reported, the statistics of a constructed result
against values computed here by hand, the aggregates, and a resumed smoke run."""

from __future__ import annotations

import math
import types

import pytest

from grokkit.experiments import (
    benchmark as bm,
    benchmark_aggregate as agg,
    benchmark_design as design,
    benchmark_spaces as spaces,
    benchmark_tuning as tuning,
)

# ---------------------------------------------------------------- search spaces and seeds


@pytest.mark.parametrize("method", list(spaces.SPACES))
def test_trials_lie_inside_their_space_and_are_reproducible(method):
    points = spaces.trials(method, 8)
    assert len(points) == 8 and len({tuple(p.items()) for p in points}) == 8
    for p in points:
        for axis in spaces.SPACES[method]:
            assert axis.low <= p[axis.field] <= axis.high, (axis.field, p)
            if axis.integer:
                assert isinstance(p[axis.field], int)
    assert spaces.trials(method, 8) == points  # same seed, same points
    assert spaces.trials(method, 4) == points[:4]  # fewer trials: a prefix of the sequence


def test_the_methods_spaces_hold_their_papers_points_and_differ_in_their_draws():
    ema = {a.field: a for a in spaces.SPACES["grokfast-ema"]}
    assert (ema["grad_filter_alpha"].low, ema["grad_filter_alpha"].high) == (0.8, 0.99)
    assert (ema["grad_filter_lambda"].low, ema["grad_filter_lambda"].high) == (0.1, 5.0)
    norm = {a.field: a for a in spaces.SPACES["fixed-norm"]}["init_scale"]
    assert norm.low <= 0.5 and norm.high == 1.0  # Omnigrok's reduced norm is in the space
    for method in ("orthograd", "stablemax"):  # "no weight decay" is a point of the space
        assert {a.field: a for a in spaces.SPACES[method]}["weight_decay"].low == 0.0
    assert spaces.trials("adamw", 2) != spaces.trials("muon", 2)


def test_a_point_near_a_bound_of_its_space_is_on_the_edge():
    inner = {"lr": 1e-3, "weight_decay": 1.0}
    assert not spaces.on_edge("adamw", inner)
    assert spaces.on_edge("adamw", {**inner, "lr": 1e-2})  # the upper bound
    assert spaces.on_edge("adamw", {**inner, "weight_decay": 0.1 * 1.1})  # 2 % from the lower
    assert not spaces.on_edge("adamw", {**inner, "weight_decay": 0.1 * 1.5})  # 9 %


@pytest.mark.parametrize("scale", ["smoke", "laptop", "paper"])
def test_tuning_and_reported_seeds_never_overlap(scale):
    for n in (1, 2, 10, 100, spaces.TUNING_BASE - 1):
        reported = set(spaces.reported_seeds(n))
        assert not reported & set(spaces.tuning_seeds(50))
        assert spaces.SELECTION_SEED not in reported | set(spaces.tuning_seeds(50))
    with pytest.raises(Exception, match="--seeds"):
        design.seeds_per_task(scale, spaces.TUNING_BASE)  # would reach the tuning seeds
    first = bm.runs(scale)
    tune = [c for c in first if tuning.is_tuning(c)]
    report = [c for c in first + bm.planned_followup_runs(scale) if not tuning.is_tuning(c)]
    assert tune and report
    assert not {c.seed for c in tune} & {c.seed for c in report}
    assert spaces.SELECTION_SEED not in {c.seed for c in tune + report}


def test_every_method_has_the_same_number_of_trials_and_the_laptop_design():
    s = design.SCALES["laptop"]
    configs = design.tuning_runs("laptop")
    per_method = {m: sum(tuning.method_of(c) == m for c in configs) for m in design.METHODS}
    assert set(per_method.values()) == {s["trials"] * s["tuning_seeds"]} and s["trials"] >= 8
    assert len(s["tasks"]) == 2 and s["seeds"][0] >= 10 and s["seeds"][1] >= 5
    cells = design.cells("laptop")
    assert {c.role for c in cells} == {"own", "common"}
    grokfast = [c for c in cells if c.method == "grokfast-ema" and c.variant == "published"]
    assert grokfast[0].task == ("x*y", 97, 0.5) and grokfast[0].baseline == ("adam", "published")
    no_wd = [c for c in cells if c.variant == "tuned-no-wd"]
    assert {c.method for c in no_wd} == {"orthograd", "stablemax"}
    ema = design.config("laptop", grokfast[0].task, "grokfast-ema", {"lr": 1e-3}, 1)
    assert (ema.grad_filter_alpha, ema.effective_grad_filter_lambda, ema.optimizer.l2) == (
        0.98,
        2.0,
        0.005,
    )
    assert ema.optimizer.weight_decay == 0.0


# ---------------------------------------------------------------- a constructed benchmark

SCALE = "laptop"
EVERY = design.SCALES[SCALE]["eval_every"]
# steps to 95 % validation of the ten reported seeds 1..10 on the first task (None: never)
STEPS_95 = {
    "adamw": [300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200],
    "grokfast-ema": [100] * 10,  # always sooner
    "muon": [None] * 10,  # never
}
WINNING_TRIAL = 3  # the tuning seeds reach 95 % soonest at this trial


def _steps_at(c) -> int | None:
    method = tuning.method_of(c)
    if tuning.is_tuning(c):
        trial = spaces.trials(method, design.SCALES[SCALE]["trials"]).index(
            tuning.point_of(c, method)
        )
        return 200 if trial == WINNING_TRIAL else 900
    steps = STEPS_95.get(method, STEPS_95["adamw"])
    return steps[(c.seed - 1) % len(steps)]


def _rows(result) -> list[dict]:
    c = result.config
    at = _steps_at(c)
    return [
        {
            "step": step,
            "val_accuracy": 1.0 if at is not None and step >= at else 0.1,
            "train_accuracy": 1.0 if step >= 100 else 0.5,
            "wall_seconds": step / 100,
        }
        for step in range(0, c.steps + 1, EVERY)
    ]


def _fake(config):
    return types.SimpleNamespace(config=config, run_dir=types.SimpleNamespace(name=str(id(config))))


@pytest.fixture(scope="module")
def constructed():
    """The laptop design measured from constructed metrics (nothing trains)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tuning, "rows_of", _rows)
        mp.setattr(bm, "cost", lambda config: (2.0, 0))  # 2 ms a step, for every method
        mp.setattr(bm, "_newton_schulz_dtype", lambda: "float32")
        first = [_fake(c) for c in bm.runs(SCALE)]
        second = [_fake(c) for c in bm.followup_runs(first, SCALE)]
        yield bm.measure(first + second, SCALE)


def test_the_tuned_point_is_the_tuning_seeds_winner_and_reported_seeds_change_nothing(monkeypatch):
    monkeypatch.setattr(tuning, "rows_of", _rows)
    results = [_fake(c) for c in bm.runs(SCALE)]
    task = design.SCALES[SCALE]["tasks"][0]
    trials = spaces.trials("adamw", design.SCALES[SCALE]["trials"])
    assert tuning.chosen_points(results, SCALE)[(task, "adamw")] == trials[WINNING_TRIAL]
    # a reported seed trained at another trial's point, reaching 95 % at once, is not tuning
    cheat = design.config(SCALE, task, "adamw", trials[0], 1)
    assert tuning.chosen_points(results + [_fake(cheat)], SCALE)[(task, "adamw")] == trials[3]
    followup = bm.followup_runs(results, SCALE)
    adamw = [c for c in followup if tuning.method_of(c) == "adamw" and c.operation == "x/y"]
    assert {c.seed for c in adamw} == set(range(1, 11))
    assert all(c.optimizer.lr == trials[WINNING_TRIAL]["lr"] for c in adamw)


def _km_median_by_hand(times: list[float | None]) -> float:
    """Kaplan-Meier with censoring only at the end: the first time half the runs are done."""
    done = sorted(t for t in times if t is not None)
    k = math.ceil(len(times) / 2)
    return done[k - 1] if len(done) >= k else math.inf


def _logrank_p_by_hand(a: list, b: list, budget: int) -> float:
    """The two-sample log-rank test, written out: observed minus expected events of ``a`` over
    the distinct event times, hypergeometric variance, chi-square with one degree of freedom."""
    arms = [[(t, True) if t is not None else (budget, False) for t in x] for x in (a, b)]
    events = sorted({t for arm in arms for t, hit in arm if hit})
    o_minus_e = variance = 0.0
    for t in events:
        at_risk = [sum(u >= t for u, _ in arm) for arm in arms]
        died = [sum(u == t and hit for u, hit in arm) for arm in arms]
        n, d = sum(at_risk), sum(died)
        o_minus_e += died[0] - d * at_risk[0] / n
        if n > 1:
            variance += d * (at_risk[0] / n) * (1 - at_risk[0] / n) * (n - d) / (n - 1)
    chi2 = o_minus_e**2 / variance
    return math.erfc(math.sqrt(chi2 / 2))


def _fisher_p_by_hand(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """Two-sided Fisher's exact p: every table with the same margins no likelier than this."""
    total, k = n_a + n_b, k_a + k_b

    def prob(x: int) -> float:
        return math.comb(n_a, x) * math.comb(n_b, k - x) / math.comb(total, k)

    observed = prob(k_a)
    xs = range(max(0, k - n_b), min(k, n_a) + 1)
    return sum(prob(x) for x in xs if prob(x) <= observed * (1 + 1e-9))


def test_the_table_holds_known_medians_and_p_values(constructed):
    rows = [dict(zip(bm.CSV_HEADER, r)) for r in bm.csv_rows(constructed)]
    assert all(len(r) == len(bm.CSV_HEADER) for r in bm.csv_rows(constructed))
    first = "x/y mod 97, 70%"
    cell = {(r["task"], r["method"], r["variant"]): r for r in rows}
    adamw = cell[(first, "adamw", "tuned")]
    assert adamw["km_median_steps_95"] == _km_median_by_hand(STEPS_95["adamw"]) == 700
    assert adamw["median_steps_95"] == 700 and adamw["resolution_steps"] == EVERY
    assert adamw["logrank_p"] is None and adamw["task_role"] == "common"
    assert adamw["trials"] == 8 and adamw["time_to_95_seconds"] == pytest.approx(700 * 2 / 1000)
    budget = constructed.budget
    muon = cell[(first, "muon", "tuned")]
    assert muon["km_median_steps_95"] == f">{budget}" and muon["grokked_95"] == 0
    assert muon["fisher_p"] == pytest.approx(_fisher_p_by_hand(0, 10, 10, 10))
    assert muon["logrank_p"] == pytest.approx(
        _logrank_p_by_hand(STEPS_95["muon"], STEPS_95["adamw"], budget)
    )
    assert muon["p_improvement"] == 0.0
    ema = cell[(first, "grokfast-ema", "tuned")]
    assert ema["p_improvement"] == 1.0 and ema["km_median_steps_95"] == 100
    assert ema["logrank_p"] == pytest.approx(
        _logrank_p_by_hand(STEPS_95["grokfast-ema"], STEPS_95["adamw"], budget)
    )
    assert cell[("x*y mod 97, 50%", "grokfast-ema", "published")]["task_role"] == "own"
    # the second task's tuned rows say they reuse the first task's tuned points
    assert cell[("x+y mod 97, 50%", "muon", "tuned")]["tuned_on"] == first
    assert cell[("x*y mod 97, 50%", "grokfast-ema", "published")]["tuned_on"] is None
    assert {r["on_edge"] for r in rows} <= {True, False}


def test_claims_are_log_rank_tests_against_each_rows_baseline(constructed):
    from grokkit.experiments import claims

    records = {r["id"]: r for r in claims.decide(bm.claims(constructed), SCALE)}
    assert records["x/y mod 97, 70%: grokfast-ema tuned"]["verdict"] == "holds"
    assert records["x/y mod 97, 70%: muon tuned"]["verdict"] == "contradicted"
    assert records["x/y mod 97, 70%: orthograd tuned"]["p_value"] == 1.0  # AdamW's own times
    assert len(records) == sum(1 for c in design.cells(SCALE) if c.baseline) + 1
    assert all(r["p_value"] >= r["p_value_raw"] for r in records.values() if r["p_value"])


def test_benchmark_json_keeps_every_reported_run_and_the_tuning(constructed):
    data = bm.json_data(constructed)
    run = data["runs"][0]
    assert set(run) >= {
        "task",
        "method",
        "variant",
        "seed",
        "steps_to_95",
        "steps_to_99",
        "budget",
        "censored_95",
    }
    n_reported = sum(len(c.times) for c in constructed.cells)
    assert len(data["runs"]) == n_reported
    assert all(r["seed"] < spaces.TUNING_BASE for r in data["runs"])
    assert {t["method"] for t in data["tuning"]} == set(design.METHODS)
    assert all(t["winner"] == WINNING_TRIAL for t in data["tuning"])


# ---------------------------------------------------------------- aggregates


def test_iqm_and_performance_profiles_equal_a_hand_computation():
    a, b = ("t1",), ("t2",)
    times = {
        ("m", a): [1.0, 2.0, 3.0, 4.0],  # median 2.5: the best on t1
        ("n", a): [5.0, 5.0, 5.0, 5.0],  # median 5: 2x the best
        ("m", b): [4.0, 4.0, 4.0, 4.0],  # median 4: 2x the best on t2
        ("n", b): [2.0, 2.0, 2.0, math.inf],  # median 2: the best
    }
    # normalised: m on t1 [0.4, 0.8, 1.2, 1.6], on t2 [2, 2, 2, 2]; the middle half of the
    # eight sorted values [0.4 0.8 1.2 1.6 2 2 2 2] is [1.2, 1.6, 2, 2]
    assert agg.normalised_iqm(times)["m"] == pytest.approx((1.2 + 1.6 + 2 + 2) / 4)
    # n: t1 [2, 2, 2, 2], t2 [1, 1, 1, inf] -> middle half [1, 2, 2, 2]
    assert agg.normalised_iqm(times)["n"] == pytest.approx(7 / 4)
    profile = agg.performance_profile(times, taus=(1.0, 1.5, 2.0))
    assert profile == {"m": [0.5, 0.5, 1.0], "n": [0.5, 0.5, 1.0]}
    assert agg.iqm([1, 2, 3, math.inf]) == pytest.approx(2.5)
    assert math.isinf(agg.iqm([1, math.inf, math.inf, math.inf]))


def test_a_slow_first_cost_measurement_falls_on_no_method(monkeypatch):
    """The first step timing in a process runs slow (warm-up); rotated rounds and the median give
    every method its settled cost, where one measurement each charged it to the first method."""
    calls = []

    def timing(config):
        calls.append(config)
        return (30.0 if len(calls) == 1 else 20.0 + config.seed, 7)

    monkeypatch.setattr(bm, "cost", timing)
    configs = {
        k: design.config(SCALE, ("x/y", 97, 0.7), "adamw", {}, seed) for seed, k in enumerate("abc")
    }
    assert bm.costs_alone(configs, 5) == {"a": (20.0, 7), "b": (21.0, 7), "c": (22.0, 7)}
    assert len(calls) == 15
    calls.clear()
    assert bm.costs_alone(configs, 1)["a"] == (30.0, 7)  # why one round is not enough


def test_bootstrap_intervals_hold_the_point_and_are_reproducible():
    times = {("m", ("t",)): [1.0, 2.0, 3.0], ("n", ("t",)): [2.0, 4.0, 6.0]}
    first, again = agg.bootstrap(times, samples=200), agg.bootstrap(times, samples=200)
    assert first == again
    for m in ("m", "n"):
        low, high = first[m]["iqm_interval"]
        assert low <= first[m]["iqm"] <= high


# ---------------------------------------------------------------- the smoke scale, resumed


def _files(run_dir) -> dict:
    return {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}


def test_resume_after_an_interruption_repeats_no_finished_run(tmp_path, capsys):
    """Half the first stage is trained (the benchmark was killed there); ``--resume`` then
    finishes the benchmark without touching a file of the runs that had finished, and the smoke
    scale runs end to end (its CSV and JSON)."""
    import csv
    import json

    import torch

    from grokkit.cli import main
    from grokkit.sweep import run_sweep

    torch.set_num_threads(1)
    out = tmp_path / "bench"
    first = bm.runs("smoke")
    done = run_sweep(first[: len(first) // 2], out, jobs=1, progress=False)
    before = {r.run_dir: _files(r.run_dir) for r in done}
    argv = ["reproduce", "benchmark", "--scale", "smoke", "--out", str(out), "--threads", "1"]
    assert main([*argv, "--resume", "--quiet"]) == 0
    for run_dir, files in before.items():
        assert _files(run_dir) == files, f"{run_dir.name} was trained again"
    with open(out / "benchmark.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == bm.CSV_HEADER
    assert {(r["method"], r["variant"]) for r in rows} >= {(m, "tuned") for m in bm.METHODS}
    meta = json.loads((out / "benchmark.json").read_text())
    assert len(meta["runs"]) == sum(int(r["seeds"]) for r in rows)
    assert {r["verdict"] for r in meta["claims"]} == {"undetermined"}  # smoke decides nothing
    # analysed again, a finished benchmark gives the same table: each method's step cost was
    # measured alone once and kept in the folder (a second measurement would differ)
    first_table = (out / "benchmark.csv").read_text()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bm, "cost", lambda config: pytest.fail("a kept cost was measured again"))
        assert main([*argv, "--quiet"]) == 0
    assert (out / "benchmark.csv").read_text() == first_table
    # the finished benchmark's plan: its real tuned runs, every one done, nothing left to train
    from grokkit.experiments.reproduce import plan_figure

    plan = plan_figure("benchmark", "smoke", out, jobs=1)
    assert {r["status"] for r in plan["runs"]} == {"done"}
    assert {r["run_name"] for r in plan["runs"]} == {p.name for p in (out / "runs").iterdir()}
    assert plan["estimated_seconds"] == 0


def test_resume_needs_a_benchmark_folder(tmp_path):
    from grokkit.cli import main

    argv = ["reproduce", "benchmark", "--scale", "smoke", "--resume", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "nothing")]) != 0


def test_only_laptop_or_paper_results_are_published(tmp_path):
    import datetime
    import json

    from grokkit.errors import InputError
    from grokkit.experiments import benchmark_results

    out, dest = tmp_path / "bench", tmp_path / "results"
    out.mkdir()
    (out / "benchmark.csv").write_text("task,method\n")
    (out / "benchmark.png").write_bytes(b"\x89PNG")
    meta = {"scale": "smoke", "cpu": "Test CPU", "wall_seconds": 7200, "claims": []}
    (out / "benchmark.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="smoke"):
        benchmark_results.publish(out, dest)
    assert not dest.exists()
    (out / "benchmark.json").write_text(json.dumps({**meta, "scale": "laptop"}))
    files = benchmark_results.publish(out, dest, today=datetime.date(2026, 12, 7))
    assert sorted(p.name for p in files) == [
        "benchmark-laptop.csv",
        "benchmark-laptop.md",
        "benchmark-laptop.png",
    ]
    note = (dest / "benchmark-laptop.md").read_text()
    assert "Test CPU" in note and "2026-12-07" in note and "2.00 h" in note


@pytest.mark.parametrize("scale", ["smoke", "laptop", "paper"])
def test_the_run_count_of_reproduce_list_is_the_runs_planned(scale):
    planned = bm.runs(scale) + bm.planned_followup_runs(scale)
    assert bm.run_count(scale) == len(planned)
    assert bm.run_count(scale, seeds=3) == len(
        bm.runs(scale, 3) + bm.planned_followup_runs(scale, 3)
    )


def test_each_compared_row_states_its_power_at_the_seeds_run(constructed):
    from grokkit.analysis import statistics

    rows = [dict(zip(bm.CSV_HEADER, r)) for r in bm.csv_rows(constructed)]
    compared = [r for r in rows if r["logrank_p"] is not None or r["baseline"]]
    alpha = 0.05 / (len(compared) + 1)  # Holm's first level over the family
    muon = next(
        r for r in rows if (r["method"], r["variant"]) == ("muon", "tuned") and "x/y" in r["task"]
    )
    assert muon["power"] == pytest.approx(
        statistics.power_log_ratio(1.49, bm.SIGMA_LOG, 10, 10, alpha), abs=1e-3
    )
    second = next(
        r for r in rows if (r["method"], r["variant"]) == ("muon", "tuned") and "x+y" in r["task"]
    )
    assert second["power"] < muon["power"]  # 5 seeds against 10
    assert all(r["power"] is None for r in rows if not r["baseline"])
    assert muon["speedup_95"] == f"<{700 / constructed.budget:.3g}"  # Muon's median censored
