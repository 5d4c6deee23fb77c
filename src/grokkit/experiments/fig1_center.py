"""Figure 1 (center): median steps to 99 % validation (and train) accuracy vs data fraction.

Medians are Kaplan-Meier medians of right-censored times (``statistics.km_median``). The claims,
one Holm family:

* ``val_grows_as_data_shrinks``: a permutation test of Gehan's censored trend score between the
  data fraction and the steps to 99 % validation over every run (``statistics.censored_trend``);
  a significant fall with more data holds the claim, a rise contradicts it;
* ``train_falls_with_less_data``: the same test on the steps to 99 % training accuracy, which
  the paper shows trending down as data shrinks;
* ``train_in_1e3_1e4``: a TOST that the mean log10 step to 99 % training lies in [3, 4].

Power is simulated for the planned fractions and seeds under log-normal seed spread
(``SIGMA_LOG``) at the paper's effects (``PAPER_*``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

from grokkit.analysis import grokking_time
from grokkit.config import RunConfig
from grokkit.experiments import claims as claim_records, common
from grokkit.plot_style import TRAIN_COLOR, VALIDATION_COLOR

NAME = "fig1-center"
DESCRIPTION = "S5 x·y: median steps to 99 % validation/train accuracy vs data fraction (7 seeds)"
CLAIM = (
    "Steps to generalise (99 % validation) grow fast as the data fraction shrinks, while steps "
    "to 99 % training accuracy trend down and stay at 10^3-10^4."
)
OPTIONS: tuple[str, ...] = ("seeds",)
SEEDS = {"smoke": 2, "laptop": 3, "paper": 7}
# The paper's effects, read off its Figure 1 (center), for power: steps to 99 % validation fall
# about 30-fold from fraction 0.3 to 0.6; steps to 99 % train rise about 2-fold over the same span.
PAPER_VAL_LOG_SLOPE = -math.log(30) / 0.3
PAPER_TRAIN_LOG_SLOPE = math.log(2) / 0.3
SIGMA_LOG = 0.3  # seed spread of log steps on S5 (benchmarks/RESULTS.md: 8 seeds, sd 0.26)
REDUCTIONS = {
    "smoke": "s5_xy, 2 fractions, 2 seeds, 1 layer of width 16, 20 steps: code path only.",
    "laptop": (
        "s5_xy as in the paper; fractions 0.3-0.7 step 0.1 instead of 0.2-0.6 step 0.025, "
        "3 seeds instead of 7 (--seeds), budget 15,000 steps instead of 5*10^5, evaluations "
        "every 100 steps, runs stop 100 steps after reaching 99 % validation. Paper model and "
        "AdamW."
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


def runs(scale: str, seeds: int | None = None) -> list[RunConfig]:
    common.check_scale(scale)
    base, fractions = _design(scale)
    n = common.check_seeds(seeds, SEEDS[scale], minimum=2)
    return [base.with_changes(train_fraction=f, seed=s) for f in fractions for s in range(n)]


def _design(scale: str) -> tuple[RunConfig, tuple[float, ...]]:
    """The base run and the data fractions of a scale."""
    if scale == "smoke":
        return common.base_config("s5_xy", scale), (0.4, 0.6)
    elif scale == "laptop":
        base = common.base_config(
            "s5_xy", scale, steps=15_000, eval_every=100, stop_after_val_99=100
        )
        return base, (0.3, 0.4, 0.5, 0.6, 0.7)
    base = common.base_config("s5_xy", scale, steps=500_000, stop_after_val_99=1000)
    return base, tuple(round(0.2 + 0.025 * i, 3) for i in range(17))


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


def _median(times) -> tuple[float | None, bool]:
    """(Kaplan-Meier median, censored): None when the median lies beyond the budget."""
    from grokkit.analysis.statistics import km_median

    m = km_median(times).median
    return (None, True) if math.isinf(m) or math.isnan(m) else (m, False)


def table(results) -> list[list]:
    rows = []
    for fraction, group in common.group_by(results, lambda r: r.config.train_fraction).items():
        budget = group[0].config.steps
        val = [r.summary["steps_to_val_99"] for r in group]
        train = [r.summary["steps_to_train_99"] for r in group]
        val_median, val_censored = _median(_times(val, [budget] * len(val)))
        train_median, train_censored = _median(_times(train, [budget] * len(train)))
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
    fractions: tuple[float, ...] = ()  # per run
    val_steps: tuple[int | None, ...] = ()  # per run: first evaluated step at 99 % (None: never)
    train_steps: tuple[int | None, ...] = ()
    budgets: tuple[int, ...] = ()


def measure(results, scale: str, seeds: int | None = None) -> Medians:
    return Medians(
        table(results),
        results[0].config,
        scale,
        tuple(r.config.train_fraction for r in results),
        tuple(r.summary["steps_to_val_99"] for r in results),
        tuple(r.summary["steps_to_train_99"] for r in results),
        tuple(r.config.steps for r in results),
    )


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


def _times(steps, budgets):
    from grokkit.analysis.statistics import Times

    return Times.from_brackets([(s, s, b) for s, b in zip(steps, budgets)])


def claims(medians: Medians) -> list[claim_records.Claim]:
    """The three claims of the module's docstring."""
    from grokkit.analysis import statistics

    x, n = medians.fractions, len(medians.fractions)
    alpha = claim_records.ALPHA / 3  # Holm's first level: the power's bound
    val = statistics.censored_trend(x, _times(medians.val_steps, medians.budgets))
    train = statistics.censored_trend(x, _times(medians.train_steps, medians.budgets))
    reached = [s for s in medians.train_steps if s is not None]
    in_range = (
        statistics.tost_range([math.log10(s) for s in reached], 3.0, 4.0)
        if len(reached) == n
        else None
    )
    where = f"{len(set(x))} fractions, {n} runs"
    return [
        claim_records.Claim(
            id="val_grows_as_data_shrinks",
            claim=f"Steps to 99 % validation grow as the data fraction shrinks ({where}).",
            paper_value="about 30-fold from fraction 0.6 to 0.3",
            measured=val.statistic,
            interval=None,
            test=val.name + " (censored Kendall tau measured)",
            null=val.null,
            p_value=val.p_value,
            power=statistics.power_trend(x, PAPER_VAL_LOG_SLOPE, SIGMA_LOG, alpha) if n else None,
            if_rejected="holds" if val.statistic < 0 else "contradicted",
        ),
        claim_records.Claim(
            id="train_falls_with_less_data",
            claim=f"Steps to 99 % training accuracy trend down as data shrinks ({where}).",
            paper_value="about 2-fold from fraction 0.6 to 0.3",
            measured=train.statistic,
            interval=None,
            test=train.name + " (censored Kendall tau measured)",
            null=train.null,
            p_value=train.p_value,
            power=(
                statistics.power_trend(x, PAPER_TRAIN_LOG_SLOPE, SIGMA_LOG, alpha) if n else None
            ),
            if_rejected="holds" if train.statistic > 0 else "contradicted",
        ),
        _range_claim(in_range, reached, n),
    ]


def planned_power(scale: str, seeds: int | None = None) -> list[dict]:
    """The trend claims' power at the planned fractions and seeds (the range claim has none)."""
    from grokkit.analysis import statistics

    _, fractions = _design(scale)
    n = common.check_seeds(seeds, SEEDS[scale], minimum=2)
    x = [f for f in fractions for _ in range(n)]
    alpha = claim_records.ALPHA / 3
    return [
        {
            "id": "val_grows_as_data_shrinks",
            "power": statistics.power_trend(x, PAPER_VAL_LOG_SLOPE, SIGMA_LOG, alpha),
            "effect": "30-fold from fraction 0.6 to 0.3, log sd 0.3",
        },
        {
            "id": "train_falls_with_less_data",
            "power": statistics.power_trend(x, PAPER_TRAIN_LOG_SLOPE, SIGMA_LOG, alpha),
            "effect": "2-fold from fraction 0.6 to 0.3, log sd 0.3",
        },
        {"id": "train_in_1e3_1e4", "power": None, "effect": "a range, not an effect"},
    ]


def _power10(interval: tuple[float, float] | None) -> tuple[float, float] | None:
    return None if interval is None else (10 ** interval[0], 10 ** interval[1])


def _range_claim(test, reached: list, n: int) -> claim_records.Claim:
    from grokkit.analysis import statistics

    claim = "Steps to 99 % training accuracy stay at 10^3-10^4."
    if test is None or math.isnan(test.p_value):
        why = (
            f"{n - len(reached)} of {n} runs never reached 99 % training accuracy"
            if len(reached) < n
            else "too few runs, or all at one step"
        )
        return claim_records.Claim.untestable("train_in_1e3_1e4", claim, "10^3-10^4", None, why)
    logs = [math.log10(s) for s in reached]
    return claim_records.Claim(
        id="train_in_1e3_1e4",
        claim=claim,
        paper_value="10^3-10^4",
        measured=10**test.statistic,
        interval=_power10(statistics.mean_interval(logs)),
        test=test.name + " (log10 steps over every run; interval: t interval of the mean)",
        null=test.null,
        p_value=test.p_value,
        power=None,
    )


def describe(medians: Medians) -> str:
    rows = medians.rows
    cells = [
        f"{r[0]:g}: {grokking_time.format_steps(math.inf if r[5] else r[4], r[2])} "
        f"({r[3]}/{r[1]} reached)"
        for r in rows
    ]
    train = [r[7] for r in rows if not r[8]]
    train_text = (
        f" Kaplan-Meier median steps to 99 % train ranged {min(train):,.0f}-{max(train):,.0f}."
        if train
        else ""
    )
    return (
        "Kaplan-Meier median steps to 99 % validation by data fraction: "
        + "; ".join(cells)
        + f".{train_text}"
    )
