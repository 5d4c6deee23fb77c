"""The benchmark's files and words: benchmark.csv (one row per cell; the columns of round 1, then
the ones added in round 2), benchmark.json (every reported run, every cell, the tuning, the
aggregates), the sentences of REPORT.md, and the figure."""

from __future__ import annotations

import math
from pathlib import Path

from grokkit.analysis.grokking_time import format_steps
from grokkit.experiments import benchmark_spaces as spaces, claims as claim_records, common

CSV_HEADER = [
    "task",
    "method",
    "variant",
    "seeds",
    "grokked_95",
    "grokked_99",
    "median_steps_95",
    "ci_low_95",
    "ci_high_95",
    "median_steps_99",
    "ci_low_99",
    "ci_high_99",
    "ms_per_step",
    "q25_steps_95",
    "q75_steps_95",
    "q25_steps_99",
    "q75_steps_99",
    "median_seconds_95",
    "median_train_steps_99",
    "median_delay_99",
    "speedup_95",
    "speedup_95_low",
    "speedup_95_high",
    "speedup_99",
    "speedup_99_low",
    "speedup_99_high",
    "state_bytes",
    "lr",
    "regulariser",
    "regulariser_value",
    "budget",
    "eval_every",
    "km_median_steps_95",
    "km_ci_low_95",
    "km_ci_high_95",
    "p_improvement",
    "p_improvement_low",
    "p_improvement_high",
    "logrank_p",
    "fisher_p",
    "resolution_steps",
    # round 2
    "task_role",
    "claim",
    "baseline",
    "trials",
    "tuned_on",
    "on_edge",
    "point",
    "time_to_95_seconds",
    "tuning_steps",
    "tuning_seconds",
    "power",
]

# Each method's published speed-up over its paper's baseline, the effect the power is computed
# at; ⊥AdamW, StableMax and the fixed norm claim no speed-up (2x is the effect assumed for them).
CLAIMED_SPEEDUP = {
    "grokfast-ema": 43.8,  # their README: 910 against 39,890 updates
    "grokfast-ma": 50.5,  # their README: 790 against 39,890 updates
    "orthograd": 2.0,
    "stablemax": 2.0,
    "muon": 1.49,  # Tveit et al. 2025: mean grokking epoch 102.9 against 153.1
    "fixed-norm": 2.0,
}
SIGMA_LOG = 0.3  # seed spread of log steps to 95 % (benchmarks/RESULTS.md: sd 0.1-0.3)
LABELS = {
    "adamw": "AdamW",
    "adam": "Adam",
    "grokfast-ema": "Grokfast-EMA",
    "grokfast-ma": "Grokfast-MA",
    "orthograd": "⊥AdamW",
    "stablemax": "StableMax",
    "muon": "Muon",
    "fixed-norm": "fixed norm",
}
REDUCTIONS = {
    "smoke": "x+y mod 11, 1 layer of width 16, 30 steps, 2 seeds, 2 trials: the code path only.",
    "laptop": (
        "x/y mod 97 at 70 % (10 reported seeds) and x+y mod 97 at 50 % (5 seeds, at the first "
        "task's tuned points), the paper's model; 8 Sobol trials per method on 1 tuning seed "
        "(1,000 updates); reported runs 1,800 updates evaluated every 100, each stopping 200 "
        "updates after it holds 99 % validation; Grokfast's own task x*y mod 97 at 50 % (GELU, "
        "Adam without weight decay as its baseline; that baseline needs ~40,000 updates, so it is "
        "censored here)."
    ),
    "paper": (
        "x+y, x-y, x*y, x/y mod 97 at 50 % and S5 x·y at 70 %, the paper's model; 10 reported "
        "seeds each, 16 trials per method on 2 tuning seeds of every task (20,000 updates); a "
        "budget of 100,000 updates (evaluated every 100)."
    ),
}


def family_alpha(bench) -> float:
    """Holm's first level over the benchmark's claims: the bound the power is computed at."""
    m = sum(1 for c in bench.cells if c.versus) + 1
    return claim_records.ALPHA / m


def claim_power(bench, c) -> float:
    """The power of a row's log-rank claim at the seeds run, against its method's claimed
    speed-up (log sd ``SIGMA_LOG``)."""
    from grokkit.analysis import statistics

    base = bench.cell(c.task, *c.spec.baseline)
    n, base_n = c.brackets["steps_95"].n, base.brackets["steps_95"].n
    speedup = CLAIMED_SPEEDUP.get(c.method, 2.0)
    alpha = family_alpha(bench)
    return statistics.power_log_ratio(speedup, SIGMA_LOG, n, base_n, alpha)


def task_label(task: tuple) -> str:
    operation, modulus, fraction = task
    name = operation if operation.startswith("s5") else f"{operation} mod {modulus}"
    return f"{name}, {100 * fraction:.0f}%"


def _t(value, budget: int):
    """A time for the CSV: a number, ``>budget`` when censored, empty when unknown."""
    if value is None or math.isnan(value):
        return None
    return f">{budget}" if math.isinf(value) else value


def _none_nan(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _regulariser(method: str, point: dict | None) -> tuple[str, float | None]:
    axes = [a.field for a in spaces.SPACES.get(method, ()) if a.field != "lr"]
    field = axes[0] if axes else "weight_decay"
    return field, (point or {}).get(field)


def _ratio_cells(bench, c, ratio: tuple) -> list:
    """The ratio of the baseline's median to the row's, with its interval; where one median is
    censored, the bound it is known by: "<b" when the row's is (the baseline's median / the
    budget), ">b" when the baseline's is (the budget / the row's median)."""
    r, low, high = (_none_nan(v) for v in ratio)
    base = bench.cell(c.task, *c.spec.baseline) if c.spec.baseline else c
    if r == 0:
        r = f"<{base.summaries['steps_95'].median / bench.budget:.3g}"
    elif r is not None and math.isinf(r):
        r = f">{bench.budget / c.summaries['steps_95'].median:.3g}"
    return [r, low, high]


def csv_rows(bench) -> list[list]:
    return [_row(bench, c) for c in bench.cells]


def _row(bench, c) -> list:
    s95, s99 = c.summaries["steps_95"], c.summaries["steps_99"]
    field, value = _regulariser(c.method, c.point)
    b = bench.budget
    return [
        task_label(c.task),
        c.method,
        c.variant,
        s95.seeds,
        s95.reached,
        s99.reached,
        *(_t(v, b) for v in (s95.median, s95.ci_low, s95.ci_high)),
        *(_t(v, b) for v in (s99.median, s99.ci_low, s99.ci_high)),
        None if math.isnan(c.ms_per_step) else round(c.ms_per_step, 3),
        *(_t(v, b) for v in (s95.q25, s95.q75, s99.q25, s99.q75)),
        _t(c.summaries["seconds_95"].median, b),
        _t(c.summaries["train_99"].median, b),
        _t(c.summaries["delay"].median, b),
        *_ratio_cells(bench, c, c.ratio_95),
        *_ratio_cells(bench, c, c.ratio_99),
        c.state_bytes,
        (c.point or {}).get("lr"),
        field,
        value,
        b,
        bench.eval_every,
        *(_t(v, b) for v in (s95.median, s95.ci_low, s95.ci_high)),
        *_versus_cells(c),
        *_round2_cells(c, b),
        _power(bench, c),
    ]


def _power(bench, c) -> float | None:
    """The power of the row's log-rank claim at the seeds run (``claim_power``)."""
    return None if not c.versus else round(claim_power(bench, c), 3)


def _versus_cells(c) -> list:
    """P(improvement) and its interval, log-rank p, Fisher p (empty for a baseline), and the
    widest evaluation bracket of the seeds that reached 95 %."""
    resolution = _none_nan(c.brackets["steps_95"].resolution) if c.brackets else None
    if not c.versus:
        return [None] * 5 + [resolution]
    v = c.versus
    finite = [_none_nan(x) for x in v["p_improvement"]]
    return [*finite, _none_nan(v["logrank"].p_value), _none_nan(v["fisher"].p_value), resolution]


def _round2_cells(c, budget: int) -> list:
    """Role, claim, baseline, the tuning (trials, edge, point, cost) and the time-to-target: the
    Kaplan-Meier median steps x the method's ms per step measured alone."""
    t, ms = c.tuning, c.ms_per_step
    median = c.summaries["steps_95"].median
    seconds = None
    if not (math.isnan(ms) or math.isnan(median)):
        seconds = f">{budget * ms / 1000:.3g}" if math.isinf(median) else median * ms / 1000
    return [
        c.spec.role,
        c.spec.claim,
        " ".join(c.spec.baseline) if c.spec.baseline else None,
        len(t.trials) if t else 0,
        task_label(t.task) if t else None,  # a later task may reuse the first task's tuning
        t.on_edge if t else False,
        ";".join(f"{k}={v:g}" for k, v in (c.point or {}).items()),
        seconds,
        t.steps_trained if t else 0,
        None if not t or math.isnan(ms) else round(t.steps_trained * ms / 1000, 1),
    ]


def _runs(bench) -> list[dict]:
    return [
        {
            "task": task_label(c.task),
            "task_role": c.spec.role,
            "method": c.method,
            "variant": c.variant,
            "seed": seed,
            "steps_to_95": t.steps_95,
            "steps_to_99": t.steps_99,
            "budget": t.budget,
            "censored_95": t.steps_95 is None,
        }
        for c in bench.cells
        for seed, t in zip(c.seeds, c.times)
    ]


def _tunings(bench) -> list[dict]:
    seen, out = set(), []
    for c in bench.cells:
        t = c.tuning
        if t is None or (t.task, t.method) in seen:
            continue
        seen.add((t.task, t.method))
        out.append(
            {
                "task": task_label(t.task),
                "method": t.method,
                "trials": t.trials,
                "scores_steps_95": [
                    _none_nan(s[0]) if not math.isinf(s[0]) else None for s in t.scores
                ],
                "winner": t.winner,
                "point": t.point,
                "on_edge": t.on_edge,
                "steps_trained": t.steps_trained,
            }
        )
    return out


def json_data(bench) -> dict:
    """What benchmark.json holds besides the figure's metadata: the definition, every reported
    run (``runs``), the tuning (every trial and its score), the aggregates and the table."""
    from grokkit.devices import device_name

    return {
        "budget": bench.budget,
        "eval_every": bench.eval_every,
        "runs": _runs(bench),
        "tuning": _tunings(bench),
        "search_spaces": spaces.space_table(),
        "aggregates": _finite(bench.aggregates),
        "cpu": device_name("cpu"),
        "muon_newton_schulz_dtype": bench.newton_schulz,
        "definition": "first evaluated step at or above the validation-accuracy threshold; "
        "null when not within the budget (censored)",
        "cells": [dict(zip(CSV_HEADER, row)) for row in csv_rows(bench)],
    }


def _finite(value):
    """JSON-safe: ``"censored"`` for an infinite value (beyond the budget), None for nan."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and math.isinf(value):
        return "censored"
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def describe(bench) -> str:
    """Per task, each row's Kaplan-Meier median steps to 95 % with its interval and P(sooner
    than its baseline); then the aggregates."""
    parts = []
    for task in dict.fromkeys(c.task for c in bench.cells):
        cells = [c for c in bench.cells if c.task == task]
        parts.append(
            f"{task_label(task)}, Kaplan-Meier median steps to 95 % [95 % interval] "
            f"(evaluations every {bench.eval_every}): "
            + "; ".join(_cell_text(c, bench.budget) for c in cells)
            + "."
        )
    tuned = {(c.tuning.task, c.method): c for c in bench.cells if c.tuning}
    if tuned:
        parts.append(
            "Tuning cost (trials x tuning seeds, steps trained x ms per step alone): "
            + "; ".join(
                f"{c.method} {c.tuning.steps_trained:,} steps"
                + (
                    ""
                    if math.isnan(c.ms_per_step)
                    else f", {c.tuning.steps_trained * c.ms_per_step / 1000:.0f} s"
                )
                + (" (winner on the edge)" if c.tuning.on_edge else "")
                for c in tuned.values()
            )
            + "."
        )
    if bench.aggregates:
        parts.append(
            "Over the common tasks (tuned), IQM of time-to-target over the best median "
            "[bootstrap 95 %]: "
            + "; ".join(
                f"{m} {_num(a['iqm'])} [{_num(a['iqm_interval'][0])}, {_num(a['iqm_interval'][1])}]"
                for m, a in bench.aggregates.items()
            )
            + "."
        )
    return " ".join(parts)


def _num(x: float) -> str:
    return ">budget" if math.isinf(x) else ("n/a" if math.isnan(x) else f"{x:.2f}")


def _cell_text(c, budget: int) -> str:

    s = c.summaries["steps_95"]
    text = (
        f"{LABELS[c.method]} {c.variant} {format_steps(s.median, budget)} "
        f"[{format_steps(s.ci_low, budget)}, {format_steps(s.ci_high, budget)}] "
        f"({s.reached}/{s.seeds})"
    )
    if c.versus:
        p, low, high = c.versus["p_improvement"]
        text += f", P(sooner than {' '.join(c.spec.baseline)}) {p:.2f} [{low:.2f}, {high:.2f}]"
    if c.tuning and c.tuning.on_edge:
        text += ", tuned point on the edge of its space"
    return text


def plot(bench, out_dir: Path) -> list[Path]:
    # Imported here: `reproduce --list` and `--plan` import every figure module.
    import matplotlib.pyplot as plt

    from grokkit.experiments.benchmark_plot import draw_profile, draw_task
    from grokkit.plots import apply_style

    apply_style()
    tasks = list(dict.fromkeys(c.task for c in bench.cells))
    fig, axes = plt.subplots(
        len(tasks) + 1,
        1,
        figsize=(8.0, 3.4 * (len(tasks) + 1)),
        squeeze=False,
        constrained_layout=True,
    )
    for task, ax in zip(tasks, axes[:, 0]):
        draw_task(ax, [c for c in bench.cells if c.task == task], bench.budget, LABELS)
        roles = sorted({c.spec.role for c in bench.cells if c.task == task})
        ax.set_title(f"{task_label(task)} ({' and '.join(roles)} rows)")
    draw_profile(axes[-1, 0], bench.aggregates, LABELS)
    common.add_caption(
        fig,
        common.caption(
            REDUCTIONS,
            bench.scale,
            f"Kaplan-Meier median over seeds with its 95 % interval (Brookmeyer-Crowley); the "
            f"first evaluated step (every {bench.eval_every}) at or above the threshold; seeds "
            f"not there within {bench.budget:,} updates are censored (triangles at the budget). "
            f"Bottom: performance profiles of the tuned rows over the common tasks.",
        ),
    )
    out_dir = Path(out_dir)
    csv_path = common.write_csv(out_dir / "benchmark.csv", CSV_HEADER, csv_rows(bench))
    return [*common.save(fig, out_dir, "benchmark"), csv_path]
