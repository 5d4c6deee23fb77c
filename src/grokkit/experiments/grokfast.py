"""Grokfast (Lee et al. 2024, arXiv 2405.20233): steps to 95 % validation with and without the
gradient filters, on the Grokfast paper's own algorithmic task and recipe.

The task and recipe are those of the authors' code (ironjr/grokfast, main.py and the README's
commands): x*y mod 97 on 0 <= x < 97, 0 < y < 97, 50 % of the table for training, a 2-layer
width-128 transformer with 4 heads and GELU MLPs, Adam (lr 1e-3, betas 0.9/0.98, 10 warm-up
updates, minibatches of 512):

* baseline: no filter, no regularisation;
* EMA: alpha 0.98, lambda 2, and an L2 penalty 0.005 (torch.optim.Adam's coupled weight_decay);
* MA: window 100, lambda 5, L2 penalty 0.01.

Our model is grokkit's, of the same shape as theirs (2 pre-LayerNorm blocks of width 128, 4
heads, GELU MLPs of width 512, a final LayerNorm, the answer read at "=" of ``x op y =``); its
parameterisation and initialisation are grokkit's, not nn.MultiheadAttention's. Their
README reports 39,890 updates to 95 % validation for the baseline and 910 with the EMA filter
(43.8x sooner); the paper's headline is "up to 50x".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from grokkit.analysis import grokking_time
from grokkit.analysis.grokking_time import first_step_at
from grokkit.config import RunConfig
from grokkit.experiments import common
from grokkit.runs import read_metrics

NAME = "grokfast"
DESCRIPTION = "Grokfast EMA/MA gradient filters vs none: steps to 95 % validation, x*y mod 97"
CLAIM = (
    "With the EMA gradient filter (alpha 0.98, lambda 2) the network reaches 95 % validation "
    "accuracy tens of times sooner than without it (the authors' README: 910 vs 39,890 "
    "updates, 43.8x)."
)
OPTIONS: tuple[str, ...] = ()
THRESHOLD = 0.95
PAPER_STEPS = {"none": 39_890, "ema": 910}  # the authors' README table (algorithmic data)

# filter -> (the run's method fields, the L2 penalty the authors' command gives it)
METHODS = {
    "none": ({"grad_filter": "none"}, 0.0),
    "ema": ({"grad_filter": "ema", "grad_filter_alpha": 0.98, "grad_filter_lambda": 2.0}, 0.005),
    "ma": ({"grad_filter": "ma", "grad_filter_window": 100, "grad_filter_lambda": 5.0}, 0.01),
}
LABELS = {"none": "no filter", "ema": "Grokfast-EMA", "ma": "Grokfast-MA"}
COLORS = {"none": "0.35", "ema": "tab:red", "ma": "tab:blue"}

REDUCTIONS = {
    "smoke": "x*y mod 11, 1 layer of width 16, 20 steps: checks the code path only.",
    "laptop": (
        "1 seed per method; a budget of 50,000 updates (the authors give 300,000), each "
        "run stopping 500 updates after it reaches 99 % validation. Otherwise the "
        "authors' task and recipe (x*y mod 97, 50 % data, Adam, batch 512, GELU)."
    ),
    "paper": "3 seeds per method, the authors' budget of 300,000 updates and their recipe.",
}


def runs(scale: str) -> list[RunConfig]:
    common.check_scale(scale)
    # The default minibatch, min(512, ceil(N_train / 2)), is 512 here as in the authors' code.
    base = common.base_config("x*y", scale, "adam", activation="gelu")
    if scale == "smoke":
        base, seeds = base.with_changes(modulus=11), range(1)
    elif scale == "laptop":
        base, seeds = (
            base.with_changes(
                steps=50_000, eval_every=50, checkpoint_every=5_000, stop_after_val_99=500
            ),
            range(1),
        )
    else:
        base, seeds = (
            base.with_changes(
                steps=300_000, eval_every=100, checkpoint_every=10_000, stop_after_val_99=1_000
            ),
            range(3),
        )
    return [
        base.with_changes(seed=seed, l2=l2, **fields)
        for fields, l2 in METHODS.values()
        for seed in seeds
    ]


def steps_to(rows: list[dict], threshold: float = THRESHOLD) -> int | None:
    """The first evaluated step with validation accuracy >= threshold (None: never): the
    benchmark's definition (``grokking_time.first_step_at``)."""
    row = first_step_at(rows, "val_accuracy", threshold)
    return None if row is None else row["step"]


@dataclass(frozen=True)
class Methods:
    """Every run's metrics, by filter ("none", "ema", "ma") in the order the runs come."""

    curves: dict[str, list[common.RunCurve]]
    config: RunConfig  # the first run's: the task, for the title
    scale: str


def measure(results, scale: str) -> Methods:
    by_filter = common.group_by(results, lambda r: r.config.grad_filter)
    curves = {
        m: [common.RunCurve(r.config, read_metrics(r.run_dir)) for r in members]
        for m, members in by_filter.items()
    }
    return Methods(curves, results[0].config, scale)


def plot(methods: Methods, out_dir: Path) -> list[Path]:
    # Imported here: `reproduce --list` and `--plan` import every figure module and must not wait
    # for matplotlib.
    import matplotlib.pyplot as plt

    from grokkit.plots import apply_style

    apply_style()
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    groups = {LABELS[m]: members for m, members in methods.curves.items()}
    rows = common.plot_accuracy_by_method(ax, groups, {LABELS[m]: c for m, c in COLORS.items()})
    ax.axhline(
        100 * THRESHOLD, color="0.5", lw=0.8, ls=":", label=f"{100 * THRESHOLD:.0f} % (the measure)"
    )
    ax.legend(loc="best")
    ax.set_xscale("log")
    ax.set_xlabel("optimization step")
    cfg = methods.config
    ax.set_title(f"{common.op_label(cfg)}, {100 * cfg.train_fraction:.0f}% data, Adam")
    common.add_caption(fig, common.caption(REDUCTIONS, methods.scale))
    csv_path = common.write_csv(Path(out_dir) / f"{NAME}.csv", common.METHOD_CSV_HEADER, rows)
    return [*common.save(fig, out_dir, NAME), csv_path]


def verdict(methods: Methods) -> str:
    medians = {}
    parts = []
    for method, members in methods.curves.items():
        budget = max(c.config.steps for c in members)
        median = grokking_time.median([steps_to(c.metrics) for c in members])
        censored = math.isinf(median)
        medians[method] = (None if censored else median, budget)
        shown = f">{budget:,}" if censored else f"{median:,.0f}"
        parts.append(f"{LABELS[method]} {shown}")
    text = f"Median updates to {100 * THRESHOLD:.0f} % validation: " + ", ".join(parts) + "."
    base, base_budget = medians.get("none", (None, 0))
    for method in ("ema", "ma"):
        if method not in medians:
            continue
        steps, _ = medians[method]
        if steps is None:
            text += f" {LABELS[method]} did not reach it within its budget."
        elif base is None:
            text += (
                f" {LABELS[method]} is more than {base_budget / steps:.1f}x sooner (the baseline "
                "never got there)."
            )
        else:
            text += f" {LABELS[method]} is {base / steps:.1f}x sooner."
    ema, _ = medians.get("ema", (None, 0))
    if ema is not None:
        factor = (base or base_budget) / ema
        holds = factor >= 10
        text += (
            f" The authors: {PAPER_STEPS['none']:,} vs {PAPER_STEPS['ema']:,} "
            f"({PAPER_STEPS['none'] / PAPER_STEPS['ema']:.1f}x); "
            + (
                "the claim holds here (at least 10x)."
                if holds
                else "the claim does not hold here: less than 10x."
            )
        )
    return text
