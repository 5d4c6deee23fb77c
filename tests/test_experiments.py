"""Every paper figure end to end at smoke scale, and the reproduce command's contract."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import pytest
import torch

from grokkit.analysis import grokking_time
from grokkit.cli import main
from grokkit.experiments import FIGURES, fig3
from grokkit.experiments.reproduce import REPORT, figure_runs, reproduce_figure
from grokkit.sweep import projection
from grokkit.sweep.projection import CostMeter, StepCost

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory) -> Path:
    """One smoke sweep folder holding every figure (fig1-left and fig4 share their run)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("smoke")
    meter = CostMeter("cpu")
    # The figures' projections, not what these tests check (tests/test_plan.py measures costs):
    # one fixed cost per step and evaluation spares timing every kind of run.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(projection, "measure", lambda *args, **kwargs: StepCost(1e-3, 1e-2))
        for name in FIGURES:
            reproduce_figure(name, "smoke", out, jobs=1, device="cpu", progress=False, meter=meter)
    return out


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summaries(out: Path, name: str) -> list[dict]:
    from grokkit.sweep import run_name

    return [
        json.loads((out / "runs" / run_name(c) / "summary.json").read_text())
        for c in figure_runs(name, "smoke")
    ]


@pytest.mark.parametrize("name", list(FIGURES))
def test_figure_writes_png_pdf_csv_and_metadata(smoke_dir, name):
    png = smoke_dir / f"{name}.png"
    assert png.read_bytes()[:8] == PNG_MAGIC, f"{png} is not a PNG"
    assert (smoke_dir / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    assert read_csv(smoke_dir / f"{name}.csv"), f"{name}.csv has no rows"
    meta = json.loads((smoke_dir / f"{name}.json").read_text())
    assert meta["scale"] == "smoke" and meta["wall_seconds"] > 0 and meta["verdict"]


RECORD_KEYS = {
    "id",
    "claim",
    "paper_value",
    "measured",
    "interval",
    "test",
    "null",
    "p_value",
    "alpha",
    "power",
    "verdict",
}


@pytest.mark.parametrize("name", list(FIGURES))
def test_smoke_claims_are_full_records_and_all_undetermined(smoke_dir, name):
    records = json.loads((smoke_dir / f"{name}.json").read_text())["claims"]
    assert records, f"{name} tests no claim"
    for r in records:
        assert RECORD_KEYS <= set(r), RECORD_KEYS - set(r)
        assert r["verdict"] == "undetermined", r  # 20-step runs decide nothing


def test_smoke_report_passes_no_judgement(smoke_dir):
    report = (smoke_dir / REPORT).read_text().lower()
    for words in ("unlike the paper", "no double descent", "does not hold", "as in the paper"):
        assert words not in report, words


def test_report_mentions_every_figure_with_claim_and_verdict(smoke_dir):
    report = (smoke_dir / REPORT).read_text()
    for name, module in FIGURES.items():
        assert f"## {name}:" in report, f"REPORT.md lacks {name}"
        assert module.CLAIM in report


def test_fig1_left_and_fig4_share_one_run(smoke_dir):
    assert figure_runs("fig1-left", "smoke") == figure_runs("fig4", "smoke")
    assert read_csv(smoke_dir / "fig1-left.csv") == read_csv(smoke_dir / "fig4.csv")


def test_fig1_center_medians_match_summaries(smoke_dir):
    rows = read_csv(smoke_dir / "fig1-center.csv")
    configs = figure_runs("fig1-center", "smoke")
    fractions = sorted({c.train_fraction for c in configs})
    assert [float(r["train_fraction"]) for r in rows] == fractions
    by_fraction: dict = {}
    for c, s in zip(configs, summaries(smoke_dir, "fig1-center")):
        by_fraction.setdefault(c.train_fraction, []).append(s["steps_to_train_99"])
    for r in rows:
        median, beyond = _censored_median(by_fraction[float(r["train_fraction"])])
        assert r["train_median_beyond_budget"] == str(beyond)
        assert (r["median_steps_to_train_99"] or None) == (None if median is None else repr(median))


def test_fig2_right_means_equal_summaries(smoke_dir):
    rows = read_csv(smoke_dir / "fig2-right.csv")
    configs = figure_runs("fig2-right", "smoke")
    assert len(rows) == len({(c.operation, c.train_fraction) for c in configs})
    assert len({r["operation"] for r in rows}) == 12
    expected: dict = {}
    for c, s in zip(configs, summaries(smoke_dir, "fig2-right")):
        expected.setdefault((c.operation, c.train_fraction), []).append(s["best_val_accuracy"])
    for r in rows:
        want = statistics.fmean(expected[(r["operation"], float(r["train_fraction"]))])
        assert float(r["mean_best_val_accuracy"]) == pytest.approx(want, abs=1e-12)


def test_fig2_left_has_every_preset_and_fraction(smoke_dir):
    rows = read_csv(smoke_dir / "fig2-left.csv")
    configs = figure_runs("fig2-left", "smoke")
    assert len(rows) == len({(c.preset, c.train_fraction) for c in configs}) == 9 * 2


def test_fig6_records_skipped_combinations(smoke_dir):
    rows = read_csv(smoke_dir / "fig6.csv")
    skipped = [r for r in rows if r["status"].startswith("skipped")]
    assert skipped, "the smoke grid includes an impossible (k, fraction) pair"
    for r in skipped:
        assert 2 * int(r["outliers"]) > int(r["n_train"])
    trained = [r for r in rows if r["status"] == "trained"]
    assert len(trained) == len(
        {(c.outliers, c.train_fraction) for c in figure_runs("fig6", "smoke")}
    )


def test_fig6_operation_is_a_parameter():
    assert {c.operation for c in FIGURES["fig6"].runs("paper", operation="s5_xy")} == {"s5_xy"}
    assert {c.operation for c in FIGURES["fig6"].runs("paper")} == {"x/y"}


def test_fig7_measures_every_seed_at_the_half_grokked_step(smoke_dir):
    from grokkit.analysis.run_sharpness import training_objective
    from grokkit.analysis.sharpness import SHARPNESS_DEFINITIONS, sharpness
    from grokkit.experiments.fig7 import EPSILON, ITERATIONS, column, half_grokked_step
    from grokkit.runs import read_metrics, snapshot_steps
    from grokkit.sweep import run_name

    rows = read_csv(smoke_dir / "fig7.csv")
    configs = figure_runs("fig7", "smoke")
    assert len(rows) == len(configs) and {c.operation for c in configs} == {"s5_xy"}
    assert {c.arch for c in configs} == {"grokkit", "openai-grok"}  # both, by default
    assert [r["arch"] for r in rows] == [c.arch for c in configs]
    dirs = [smoke_dir / "runs" / run_name(c) for c in configs]
    first = [s["steps_to_val_99"] for s in summaries(smoke_dir, "fig7")]
    for r, d, c in zip(rows, dirs, configs):
        # T is chosen within each architecture's seeds.
        T = half_grokked_step(
            [f for f, o in zip(first, configs) if o.arch == c.arch], snapshot_steps(dirs[0])
        )
        assert int(r["step_T"]) == T
        at_T = [m["val_accuracy"] for m in read_metrics(d) if m["step"] == T]
        assert float(r["val_accuracy_at_T"]) == pytest.approx(at_T[0], abs=0)
        assert r["sharpness"] == r["phi_keskar"]  # the old column is the keskar definition's
        # The maximising definitions include y = 0, so they cannot be negative.
        assert float(r["phi_keskar"]) >= 0 and float(r["phi_keskar_subspace"]) >= 0
    # Measured again without the cache, from the snapshot at T (the first seed; every definition).
    objective, weights = training_objective(dirs[0], int(rows[0]["step_T"]))
    for name in SHARPNESS_DEFINITIONS:
        again = sharpness(name, objective, weights, 0, epsilon=EPSILON, max_iterations=ITERATIONS)
        assert float(rows[0][column(name)]) == pytest.approx(again, rel=1e-9, abs=1e-12), name
    for suffix in ("", "_keskar", "_keskar_subspace", "_openai_grok"):
        for arch in ("grokkit", "openai-grok"):  # one test per architecture
            assert len({r["spearman_rho" + suffix] for r in rows if r["arch"] == arch}) == 1
        rho = float(r["spearman_rho" + suffix])
        if rho == rho:  # NaN: undefined (a constant φ or accuracy)
            assert float(r["rho_ci_low" + suffix]) <= rho <= float(r["rho_ci_high" + suffix])
            assert 0 < float(r["permutation_p" + suffix]) <= 1


def test_the_laptop_figures_train_the_papers_tasks():
    for name in ("fig1-center", "fig2-left", "fig7"):
        assert {c.operation for c in figure_runs(name, "laptop")} == {"s5_xy"}, name
    ops = {c.operation for c in figure_runs("fig2-right", "laptop")}
    assert {"s5_xy", "s5_xyx^-1", "s5_xyx"} <= ops and len(ops) == 12
    presets = {c.preset for c in figure_runs("fig2-left", "laptop")}
    assert len(presets) == 9


def test_fig3_has_one_row_per_element(smoke_dir):
    """Panels: (grokkit, S5), (grokkit, x+y), (openai-grok, S5), (openai-grok, x+y); two seeds at
    smoke, each with a row per element."""
    rows = read_csv(smoke_dir / "fig3.csv")
    seeds = fig3.SEEDS["smoke"]
    for panel, arch, n in (
        ("0", "grokkit", 120),
        ("1", "grokkit", 11),
        ("2", "openai-grok", 120),
        ("3", "openai-grok", 11),
    ):
        mine = [r for r in rows if r["panel"] == panel]
        assert len(mine) == seeds * n and {r["arch"] for r in mine} == {arch}
        r = mine[0]
        assert float(r["translation_chance"]) == pytest.approx(5 / (n - 1))
        assert 0 <= float(r["best_translation_rate"]) <= 1
        assert (
            0 < float(r["best_translation_p"]) <= 1
            and 0 < float(r["best_translation_combined_p"]) <= 1
        )
    for s5_panel, add_panel in (("0", "1"), ("2", "3")):
        s5, add = (next(r for r in rows if r["panel"] == p) for p in (s5_panel, add_panel))
        assert s5["shift_8_neighbour_rate"] == "" and add["shift_8_neighbour_rate"] != ""
        assert (
            s5["learned_cosets"].startswith(("x<", "<")) and add["learned_cosets"] == ""
        )  # S5 only
        # The paper's structures, tested: the best conjugate's cosets and x -> x+8, each with a
        # shuffle p.
        assert (
            s5["paper_structure"].startswith(("x<", "<"))
            and 0 < float(s5["paper_structure_p"]) <= 1
        )
        assert float(s5["paper_structure_chance"]) == pytest.approx(12 * 10 * 9 / (120 * 119))
        assert add["paper_structure"] == "x -> x+8" and 0 < float(add["paper_structure_p"]) <= 1
        assert add["shift_8_p"] == add["paper_structure_p"]


def test_every_scale_defines_runs():
    for name, module in FIGURES.items():
        for scale in ("smoke", "laptop", "paper"):
            assert module.runs(scale), f"{name} has no runs at {scale} scale"
            assert module.REDUCTIONS[scale]


def _censored_median(values: list) -> tuple:
    """(median, beyond the budget) with unreached runs (None) later than every reached one."""
    reached = sorted(v for v in values if v is not None)
    n, k = len(values), len(reached)
    middle = [(n - 1) // 2, n // 2]
    if middle[-1] >= k:  # a middle run never got there
        return None, True
    return (reached[middle[0]] + reached[middle[1]]) / 2, False


def test_censored_median_counts_unreached_runs_as_beyond_budget():
    assert _censored_median([100, 300, None]) == (300.0, False)
    assert grokking_time.median([100, 300, None]) == 300.0
    assert _censored_median([100, None, None]) == (None, True)
    assert math.isinf(grokking_time.median([100, None, None]))
    assert grokking_time.median([100, 200]) == 150.0
    assert math.isinf(grokking_time.median([100, None]))  # never half of a censored time
    assert math.isnan(grokking_time.median([]))


@pytest.mark.parametrize(
    "argv",
    [
        ["reproduce", "fig99", "--out", "x"],
        ["reproduce", "fig3", "--scale", "huge", "--out", "x"],
        ["reproduce", "fig3", "--scale", "smoke"],
        ["reproduce", "fig6", "--op", "nope", "--scale", "smoke", "--out", "x"],
    ],
)
def test_reproduce_bad_input_exits_2(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("grokkit: error:") and "\n" not in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("flag, value", [("--op", "x+y"), ("--arch", "both")])
def test_a_reproduce_flag_reaches_exactly_the_figures_that_declare_its_option(
    flag, value, tmp_path, capsys, monkeypatch
):
    """The figures a flag applies to are read from their OPTIONS, so a new figure declaring one
    takes the flag without the command line naming it."""
    option = {"--op": "operation", "--arch": "arch"}[flag]
    takers = [n for n, m in FIGURES.items() if option in m.OPTIONS]
    refusing = next(n for n, m in FIGURES.items() if option not in m.OPTIONS)
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", refusing, flag, value, "--scale", "smoke", "--out", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"grokkit: error: {flag} applies to {', '.join(takers)}, not {refusing}"
    assert not (tmp_path / "x").exists()


def test_reproduce_list_names_every_target(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name in FIGURES:
        assert name in out
    # the paper's eight figures, then grokfast, stablemax, progress-measures and the benchmark
    assert len(FIGURES) == 12


def test_reproduce_cli_writes_figure_and_report(tmp_path, capsys):
    out = tmp_path / "fig"
    assert (
        main(
            [
                "reproduce",
                "fig4",
                "--scale",
                "smoke",
                "--out",
                str(out),
                "--device",
                "cpu",
                "--jobs",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    assert (out / "fig4.png").read_bytes()[:8] == PNG_MAGIC
    assert "## fig4:" in (out / REPORT).read_text()


# -------------------------------------------------------------- the methods that followed the paper


def test_grokfast_runs_are_the_authors_recipe():
    """ironjr/grokfast main.py and README: x*y mod 97 (y != 0), 50 %, Adam without decoupled decay,
    batch 512, GELU; EMA alpha 0.98 lambda 2 with L2 0.005, MA window 100 lambda 5 with L2 0.01."""
    configs = FIGURES["grokfast"].runs("laptop")
    by_filter = {c.grad_filter: c for c in configs}
    assert set(by_filter) == {"none", "ema", "ma"}
    for c in configs:
        assert (c.operation, c.modulus, c.train_fraction, c.activation) == ("x*y", 97, 0.5, "gelu")
        o = c.optimizer
        assert (o.lr, o.weight_decay, o.beta1, o.beta2, o.warmup_steps) == (
            1e-3,
            0.0,
            0.9,
            0.98,
            10,
        )
        assert o.resolve_batch_size(len(c.split(97 * 96)[0])) == 512
    ema, ma = by_filter["ema"], by_filter["ma"]
    assert (ema.grad_filter_alpha, ema.effective_grad_filter_lambda, ema.optimizer.l2) == (
        0.98,
        2.0,
        0.005,
    )
    assert (ma.grad_filter_window, ma.effective_grad_filter_lambda, ma.optimizer.l2) == (
        100,
        5.0,
        0.01,
    )
    assert by_filter["none"].optimizer.l2 == 0.0


def test_grokfast_steps_to_threshold_and_description(monkeypatch):
    from types import SimpleNamespace

    from grokkit.experiments import grokfast

    rows = {"none": [0.1, 0.5, 0.96], "ema": [0.2, 0.97, 1.0], "ma": [0.1, 0.9, 0.94]}
    results = [
        SimpleNamespace(config=c, run_dir=c.grad_filter) for c in grokfast.runs("laptop", seeds=1)
    ]
    monkeypatch.setattr(
        grokfast,
        "read_metrics",
        lambda run_dir: [
            {"step": 1000 * (i + 1), "val_accuracy": v} for i, v in enumerate(rows[run_dir])
        ],
    )
    assert grokfast.steps_to(grokfast.read_metrics("ema")) == 2000
    assert grokfast.steps_to(grokfast.read_metrics("ma")) is None
    text = grokfast.describe(grokfast.measure(results, "laptop"))
    assert "no filter 3,000 [" in text and "Grokfast-EMA 2,000 [" in text, text
    assert "Grokfast-MA >20,000 (0 of 1 runs" in text, text


def test_progress_measures_runs_are_nandas_setup():
    [c] = FIGURES["progress-measures"].runs("paper")
    m, o = c, c.optimizer
    assert (c.operation, c.modulus, c.train_fraction, c.steps) == ("x+y", 113, 0.3, 40_000)
    assert (m.n_layers, m.d_model, m.n_heads, m.d_mlp, m.norm, m.activation) == (
        1,
        128,
        4,
        512,
        "none",
        "relu",
    )
    assert (o.lr, o.weight_decay, o.beta1, o.beta2, o.batch_size) == (1e-3, 1.0, 0.9, 0.98, 0)
    assert c.snapshot_every == 100 and c.init == "nanda"


def test_progress_measures_counts_only_a_real_fall():
    """Noise always crosses its half-way point somewhere: only a 10x fall is a fall."""
    from grokkit.analysis import fourier
    from grokkit.experiments.progress_measures import falls

    steps = [0, 100, 200, 300, 400]
    assert falls(fourier, steps, [5.0, 4.0, 6.0, 3.0, 3.5], after=None) == (None, 6.0 / 3.5)
    step, factor = falls(fourier, steps, [5.0, 4.0, 0.5, 0.02, 0.01], after=100)
    assert (step, factor) == (300, 400.0)  # geometric mean of 4 and 0.01 is 0.2: first below at 300


def test_the_smoke_benchmark_runs_end_to_end_and_its_report_follows_its_csv(smoke_dir):
    from grokkit.experiments import benchmark as bm

    rows = read_csv(smoke_dir / "benchmark.csv")
    assert list(rows[0]) == bm.CSV_HEADER
    from grokkit.experiments import benchmark_design

    cells = benchmark_design.cells("smoke")
    assert {(r["method"], r["variant"]) for r in rows} == {(c.method, c.variant) for c in cells}
    for r in rows:  # a time not reached within the budget is censored, never a number
        if int(r["grokked_95"]) < int(r["seeds"]) / 2:
            assert r["median_steps_95"] == f">{r['budget']}"
    meta = json.loads((smoke_dir / "benchmark.json").read_text())
    assert len(meta["cells"]) == len(rows) and meta["budget"] == int(rows[0]["budget"])
    verdict = json.loads((smoke_dir / "benchmark.json").read_text())
    words = (smoke_dir / REPORT).read_text()
    # one record per row with a baseline, and the delay; smoke decides nothing
    assert len(verdict["claims"]) == sum(1 for c in cells if c.baseline) + 1
    assert {r["verdict"] for r in verdict["claims"]} == {"undetermined"}
    assert all(r["id"] in words for r in verdict["claims"])
    runs_kept = {(r["method"], r["variant"], r["seed"]) for r in verdict["runs"]}
    assert len(runs_kept) == sum(int(r["seeds"]) for r in rows)
    assert verdict["definition"].startswith("first evaluated step")
