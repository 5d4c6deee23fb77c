"""Figure 1 (center): median steps to 99 % validation (and train) accuracy vs data fraction."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

from grokkit.analysis import grokking_time
from grokkit.config import RunConfig
from grokkit.experiments import common
from grokkit.plot_style import TRAIN_COLOR, VALIDATION_COLOR

NAME = "fig1-center"
DESCRIPTION = "S5 x·y: median steps to 99 % validation/train accuracy vs data fraction (7 seeds)"
CLAIM = (
    "Steps to generalise (99 % validation) grow fast as the data fraction shrinks, while steps "
    "to 99 % training accuracy trend down and stay at 10^3-10^4."
)
OPTIONS: tuple[str, ...] = ()
REDUCTIONS = {
    "smoke": "s5_xy, 2 fractions, 2 seeds, 1 layer of width 16, 20 steps: code path only.",
    "laptop": (
        "s5_xy as in the paper; fractions 0.3-0.7 step 0.1 instead of 0.2-0.6 step 0.025, "
        "3 seeds instead of 7, budget 15,000 steps instead of 5*10^5, evaluations every 100 "
        "steps, runs stop 100 steps after reaching 99 % validation. Paper model and AdamW."
    ),
    "paper": (
        "s5_xy, fractions 0.20-0.60 step 0.025, 7 seeds, budget 5*10^5 steps, AdamW; runs stop "
        "1,000 steps after reaching 99 % validation (does not change the measured steps)."
    ),
}
CENSORING = (
    "Runs that never reached 99 % count as later than the budget (right-censored); the "
    "median is shown only when at least half of the seeds reached 99 %, else as '> budget'."
)


def runs(scale: str) -> list[RunConfig]:
    common.check_scale(scale)
    if scale == "smoke":
        base, fractions, seeds = common.base_config("s5_xy", scale), (0.4, 0.6), range(2)
    elif scale == "laptop":
        base = common.base_config(
            "s5_xy", scale, steps=15_000, eval_every=100, stop_after_val_99=100
        )
        fractions, seeds = (0.3, 0.4, 0.5, 0.6, 0.7), range(3)
    else:
        base = common.base_config("s5_xy", scale, steps=500_000, stop_after_val_99=1000)
        fractions = tuple(round(0.2 + 0.025 * i, 3) for i in range(17))
        seeds = range(7)
    return [base.with_changes(train_fraction=f, seed=s) for f in fractions for s in seeds]


CSV_HEADER = [
    "train_fraction",
    "n_runs",
    "budget",
    "n_reached_val_99",
    "median_steps_to_val_99",
    "val_median_beyond_budget",
    "n_reached_train_99",
    "median_steps_to_train_99",
    "train_median_beyond_budget",
]


def _median(values: list[int | None]) -> tuple[float | None, bool]:
    """(median, censored): None when the median lies beyond the budget (grokking_time.median)."""
    m = grokking_time.median(values)
    return (None, True) if math.isinf(m) or math.isnan(m) else (m, False)


def table(results) -> list[list]:
    rows = []
    for fraction, group in common.group_by(results, lambda r: r.config.train_fraction).items():
        budget = group[0].config.steps
        val = [r.summary["steps_to_val_99"] for r in group]
        train = [r.summary["steps_to_train_99"] for r in group]
        val_median, val_censored = _median(val)
        train_median, train_censored = _median(train)
        rows.append(
            [
                fraction,
                len(group),
                budget,
                sum(v is not None for v in val),
                val_median,
                val_censored,
                sum(v is not None for v in train),
                train_median,
                train_censored,
            ]
        )
    return sorted(rows)


@dataclass(frozen=True)
class Medians:
    """One row of CSV_HEADER per data fraction, in order."""

    rows: list[list]
    config: RunConfig  # the first run's: the task, for the title
    scale: str


def measure(results, scale: str) -> Medians:
    return Medians(table(results), results[0].config, scale)


def plot(medians: Medians, out_dir: Path) -> list[Path]:
    # Imported here: `reproduce --list` and `--plan` import every figure module and must not wait
    # for matplotlib.
    import matplotlib.pyplot as plt

    from grokkit.plots import apply_style

    rows = medians.rows
    csv_path = common.write_csv(Path(out_dir) / f"{NAME}.csv", CSV_HEADER, rows)
    apply_style()
    fig, ax = plt.subplots(figsize=(8.0, 4.0))  # the legend stands right of the axes
    budget = max(r[2] for r in rows)
    fractions = sorted(r[0] for r in rows)
    gap = min((b - a for a, b in itertools.pairwise(fractions)), default=0.1)
    # Medians beyond the budget are drawn at the budget, validation's a little left of its
    # fraction and training's a little right, so that the two never hide each other.
    for col, cens, color, label, shift in (
        (4, 5, VALIDATION_COLOR, "steps to 99% validation", -0.2 * gap),
        (7, 8, TRAIN_COLOR, "steps to 99% train", 0.2 * gap),
    ):
        reached = [(r[0], r[col]) for r in rows if not r[cens]]
        beyond = [r[0] for r in rows if r[cens]]
        ax.plot([p[0] for p in reached], [p[1] for p in reached], "o-", color=color, label=label)
        if beyond:
            ax.plot(
                [f + shift for f in beyond],
                [budget] * len(beyond),
                "^",
                ms=6,
                mew=1.2,
                color=color,
                fillstyle="none",
                label=f"{label}: median > budget",
            )
    ax.axhline(budget, color="0.5", lw=0.8, ls="--", label=f"budget ({budget:,} steps)")
    ax.set_yscale("log")
    lowest = min([budget] + [r[c] for r in rows for c, cens in ((4, 5), (7, 8)) if not r[cens]])
    ax.set_ylim(lowest / 2, budget * 2)
    ax.set_xlim(fractions[0] - 0.5 * gap, fractions[-1] + 0.5 * gap)
    ax.set_xlabel("training data fraction")
    ax.set_ylabel("median optimization steps")
    ax.set_title(f"{common.op_label(medians.config)}: median over {rows[0][1]} seeds")
    ax.legend(
        fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0
    )  # off the data
    fig.tight_layout()
    common.add_caption(fig, common.caption(REDUCTIONS, medians.scale, CENSORING))
    return [*common.save(fig, out_dir, NAME), csv_path]


def verdict(medians: Medians) -> str:
    rows = medians.rows
    known = [r for r in rows if not r[5]]
    beyond = [r[0] for r in rows if r[5]]
    train = [r[7] for r in rows if not r[8]]
    tail = (
        f" At fractions {', '.join(f'{f:g}' for f in beyond)} fewer than half the seeds "
        f"reached 99 % validation within {rows[0][2]} steps."
        if beyond
        else ""
    )
    train_text = (
        f" Median steps to 99 % train ranged {min(train):.0f}-{max(train):.0f}"
        f" (paper: 10^3-10^4, trending down with less data)."
        if train
        else ""
    )
    if len(known) < 2:
        return (
            f"Too few fractions generalised to see a trend ({len(known)} of {len(rows)})."
            f"{tail}{train_text}"
        )
    lo, hi = known[0], known[-1]
    growth = lo[4] / max(hi[4], 1)
    trend = (
        "grew as data shrank, as the paper says"
        if growth > 1.5
        else "did not grow clearly as data shrank, unlike the paper"
    )
    return (
        f"Median steps to 99 % validation went from {hi[4]:.0f} at fraction {hi[0]:g} to "
        f"{lo[4]:.0f} at {lo[0]:g} ({growth:.1f}x): it {trend}.{tail}{train_text}"
    )
