"""The benchmark's figure: one panel per task, every method's median steps to 95 % and 99 %
validation with their intervals, published and tuned side by side, censored seeds marked."""

from __future__ import annotations

import math

VARIANT_COLORS = {"published": "0.45", "tuned": "tab:blue", "tuned-no-wd": "tab:green"}
THRESHOLD_MARKERS = {"steps_95": "o", "steps_99": "s"}
# x offsets within a method's slot: (variant, threshold)
OFFSETS = {
    ("published", "steps_95"): -0.3,
    ("published", "steps_99"): -0.2,
    ("tuned", "steps_95"): -0.05,
    ("tuned", "steps_99"): 0.05,
    ("tuned-no-wd", "steps_95"): 0.2,
    ("tuned-no-wd", "steps_99"): 0.3,
}


def draw_task(ax, cells, budget: int, labels: dict[str, str]) -> None:
    """Medians with bootstrap intervals on a log axis; a censored median or interval end is drawn
    at the budget with an upward arrow, and each censored seed as a triangle at the budget."""
    methods = list(dict.fromkeys(c.method for c in cells))
    for c in cells:
        x0 = methods.index(c.method)
        for key, marker in THRESHOLD_MARKERS.items():
            s = c.summaries[key]
            if s.seeds == 0:
                continue
            x = x0 + OFFSETS[(c.variant, key)]
            color = VARIANT_COLORS[c.variant]
            median, low, high = (min(v, budget) for v in (s.median, s.ci_low, s.ci_high))
            ax.errorbar(
                x,
                median,
                yerr=[[median - low], [high - median]],
                fmt=marker,
                color=color,
                mfc=color if c.variant != "published" else "white",
                ms=5,
                capsize=2,
                lw=1,
            )
            if math.isinf(s.ci_high):
                ax.annotate("", (x, budget * 1.6), (x, budget), arrowprops={"arrowstyle": "->"})
            censored = s.seeds - s.reached
            if censored:
                ax.plot(x, budget, marker="^", color="tab:red", ms=6, ls="none")
                ax.annotate(
                    f"{censored}",
                    (x, budget),
                    xytext=(0, 5),
                    textcoords="offset points",
                    ha="center",
                    fontsize=6,
                    color="tab:red",
                )
    ax.axhline(budget, color="tab:red", lw=0.8, ls=":")
    ax.set_yscale("log")
    # two lines where a name has two words: seven names side by side on one panel
    names = [labels[m].replace("-", "\n", 1).replace(" ", "\n", 1) for m in methods]
    ax.set_xticks(range(len(methods)), names)
    ax.set_xlim(-0.6, len(methods) - 0.4)
    ax.set_ylabel("updates to the threshold")
    _legend(ax)


def _legend(ax) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", color="0.2", ls="none", mfc="white", label="95 % validation"),
        Line2D([], [], marker="s", color="0.2", ls="none", mfc="white", label="99 % validation"),
        Line2D(
            [],
            [],
            marker="o",
            color=VARIANT_COLORS["published"],
            ls="none",
            mfc="white",
            label="as published",
        ),
        Line2D([], [], marker="o", color=VARIANT_COLORS["tuned"], ls="none", label="tuned"),
        Line2D(
            [], [], marker="o", color=VARIANT_COLORS["tuned-no-wd"], ls="none", label="tuned, wd 0"
        ),
        Line2D([], [], marker="^", color="tab:red", ls=":", label="budget; censored seeds"),
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def draw_profile(ax, aggregates: dict | None, labels: dict[str, str]) -> None:
    """Each method's performance profile over the common tasks (tuned rows): the fraction of
    tasks it reaches 95 % within tau x the best method's median time."""
    from grokkit.experiments.benchmark_aggregate import TAUS

    if not aggregates:
        ax.set_axis_off()
        return
    styles = ("-", "--", "-.", ":")
    n = len(aggregates)
    for i, (method, a) in enumerate(aggregates.items()):
        # equal profiles would hide each other: each line is nudged by at most +-0.012
        nudge = 0.024 * (i - (n - 1) / 2) / max(n - 1, 1)
        ax.step(
            TAUS,
            [v + nudge for v in a["profile"]],
            where="post",
            ls=styles[i % len(styles)],
            lw=1.6,
            label=f"{labels.get(method, method)} (score {a['profile_score']:.2f})",
        )
    ax.set_xscale("log")
    ax.set_xlabel("tau (time-to-target over the best median on the task; lines nudged apart)")
    ax.set_ylabel("fraction of tasks")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
