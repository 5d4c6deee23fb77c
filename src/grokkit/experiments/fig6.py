"""Figure 6 (A.4): best validation accuracy vs data fraction with k outliers in the training set.

The claims compare how often runs reach 99 % validation accuracy, at the data fractions where
both arms were trained, pooled over those fractions and seeds, by Fisher's exact test:

* ``many_outliers_shrink``: the largest k (3000, or its share of the table at laptop scale)
  against k = 0: fewer runs generalise with it; a significant difference the other way
  contradicts;
* ``few_outliers_no_change``: the few-outlier ks (up to 1000, or their share) pooled against
  k = 0 at the same fractions; the paper says they barely change which fractions generalise, so
  a significant difference either way contradicts it, and no test can make it hold.

At laptop scale the two arms of ``many_outliers_shrink`` (k = 0 and the largest k, at the
fractions where the largest k fits) get ``LAPTOP_TEST_SEEDS`` seeds; the rest of the grid one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from grokkit.analysis import statistics
from grokkit.config import RunConfig
from grokkit.experiments import claims as claim_records, common
from grokkit.experiments.claims import Claim
from grokkit.ops import get_operation
from grokkit.plot_style import MARKERS

NAME = "fig6"
DESCRIPTION = "outliers k in {0,10,100,1000,2000,3000}: best validation accuracy vs data fraction"
CLAIM = (
    "A few outliers (up to ~1000) barely change which data fractions generalise; many "
    "outliers (2000-3000) shrink that range markedly."
)
OPTIONS = ("operation", "seeds")
# The paper does not name the operation of Figure 6. x/y mod 97 is its running example
# (Figures 1 and 4) and has 9,312 equations, so k = 3000 (6,000 training equations) is possible
# from 65 % data on; s5_xy (14,400 equations) is the other natural choice: --op s5_xy.
DEFAULT_OPERATION = "x/y"
PAPER_OUTLIERS = (0, 10, 100, 1000, 2000, 3000)
SMOKE_OUTLIERS = (0, 3, 20)  # the largest is impossible at the smallest fraction: tests the skip
FEW_PAPER_K = 1000  # "a few outliers (up to ~1000)"
LAPTOP_TEST_SEEDS = 4
# The paper's effects, for the power: k = 0 generalises in a run with probability 0.95, the
# largest k with 0.2 where both fit; "few" is tested for a change as large as that.
PAPER_REACH = (0.95, 0.2)
TESTS = (
    " Claims: runs reaching 99 % validation, k = 0 against the largest k and against the few-"
    "outlier ks, at the fractions both were trained, Fisher's exact test; Holm over the two."
)
REDUCTIONS = {
    "smoke": (
        "x/y mod 11 (or --op at modulus 11), k in {0, 3, 20}, 2 fractions, 1 layer of width 16, "
        "20 steps: code path only."
    ),
    "laptop": (
        "modulus 31 instead of 97 (930 equations instead of 9,312) and k scaled by the same "
        "ratio, to keep the share of outliers: k in {0, 1, 10, 100, 200, 300}; fractions "
        "0.3-0.9 step 0.2; 1 seed instead of 3, except 4 for k = 0 and k = 300 at the fractions "
        "where k = 300 fits (the test's arms); budget 10,000 steps instead of 10^5; runs stop "
        "200 steps after reaching 99 % validation. Paper model, AdamW." + TESTS
    ),
    "paper": (
        "x/y mod 97 by default (the paper does not name the operation; --op changes it), "
        "k in {0, 10, 100, 1000, 2000, 3000}, fractions 0.05-0.95 step 0.05, 3 seeds, "
        "budget 10^5 steps, AdamW." + TESTS
    ),
}
SKIP_REASON = "k outliers need 2k training equations"


def _settings(scale: str, operation: str | None):
    common.check_scale(scale)
    op = operation or DEFAULT_OPERATION
    if scale == "smoke":
        base = common.base_config(op, scale, modulus=11)
        return base, SMOKE_OUTLIERS, (0.3, 0.6), 1
    if scale == "laptop":
        base = common.base_config(op, scale, modulus=31, steps=10_000, stop_after_val_99=200)
        ratio = get_operation(op, 31).n_equations / get_operation(op, 97).n_equations
        ks = tuple(sorted({round(k * ratio) for k in PAPER_OUTLIERS}))
        return base, ks, (0.3, 0.5, 0.7, 0.9), 1
    return common.base_config(op, scale), PAPER_OUTLIERS, common.PAPER_FRACTIONS, 3


def few_ks(ks: tuple[int, ...]) -> tuple[int, ...]:
    """The few-outlier ks: above 0, up to FEW_PAPER_K's share (the ks are scaled in order)."""
    n_few = sum(0 < k <= FEW_PAPER_K for k in PAPER_OUTLIERS)
    return tuple(k for k in ks if k > 0)[:n_few]


def grid(
    scale: str, operation: str | None = None, seeds: int | None = None
) -> tuple[list[RunConfig], list[dict]]:
    """(runs to train, skipped (k, fraction) combinations with the reason)."""
    common.check_seeds(seeds, 1)
    base, ks, fractions, default_seeds = _settings(scale, operation)
    n_equations = get_operation(base.operation, base.modulus).n_equations
    fits = {(k, f): 2 * k <= round(f * n_equations) for k in ks for f in fractions}
    configs, skipped = [], []
    for k in ks:
        for f in fractions:
            if not fits[(k, f)]:
                skipped.append(
                    {"outliers": k, "train_fraction": f, "n_train": round(f * n_equations)}
                )
                continue
            # the test's arms: k = 0 and the largest k where the largest k fits
            arm = scale == "laptop" and k in (0, ks[-1]) and fits[(ks[-1], f)]
            n = seeds or (LAPTOP_TEST_SEEDS if arm else default_seeds)
            configs += [base.with_changes(outliers=k, train_fraction=f, seed=s) for s in range(n)]
    return configs, skipped


def runs(scale: str, operation: str | None = None, seeds: int | None = None) -> list[RunConfig]:
    return grid(scale, operation, seeds)[0]


CSV_HEADER = [
    "outliers",
    "train_fraction",
    "n_train",
    "status",
    "n_seeds",
    "mean_best_val_accuracy",
    "std_best_val_accuracy",
    "mean_final_train_accuracy",
    "n_reached_train_99",
]


def table(results, skipped: list[dict]) -> list[list]:
    rows = []
    for (k, f), group in common.group_by(
        results, lambda r: (r.config.outliers, r.config.train_fraction)
    ).items():
        mean, std = common.mean_std([r.summary["best_val_accuracy"] for r in group])
        train, _ = common.mean_std([r.summary["train_accuracy"] for r in group])
        reached = sum(r.summary["steps_to_train_99"] is not None for r in group)
        rows.append(
            [k, f, group[0].summary["n_train"], "trained", len(group), mean, std, train, reached]
        )
    rows += [
        [
            s["outliers"],
            s["train_fraction"],
            s["n_train"],
            f"skipped: {SKIP_REASON}",
            0,
            None,
            None,
            None,
            None,
        ]
        for s in skipped
    ]
    return sorted(rows, key=lambda r: (r[0], r[1]))


@dataclass(frozen=True)
class RunReach:
    outliers: int
    train_fraction: float
    seed: int
    reached_99: bool  # validation accuracy reached 99 % within the budget


@dataclass(frozen=True)
class Outliers:
    """One row of CSV_HEADER per (k, data fraction), trained or skipped, sorted; every run's
    reach; the ks of the grid (trained or not)."""

    rows: list[list]
    n_skipped: int
    n_spiked: int  # runs that reached 99 % training accuracy and ended below it
    config: RunConfig  # the first run's: the task and budget, for the title
    scale: str
    runs: list[RunReach]
    ks: tuple[int, ...]


def measure(
    results, scale: str, operation: str | None = None, seeds: int | None = None
) -> Outliers:
    _, skipped = grid(scale, operation or results[0].config.operation, seeds)
    # Outliers are memorised too: the paper's training accuracy is 100 % everywhere. A run that got
    # there and then lost it in a late loss spike (common with AdamW at lr 1e-3) still memorised.
    spiked = sum(
        1
        for r in results
        if r.summary["steps_to_train_99"] is not None and r.summary["train_accuracy"] < 0.99
    )
    reach = [
        RunReach(
            r.config.outliers,
            r.config.train_fraction,
            r.config.seed,
            r.summary.get("steps_to_val_99") is not None,
        )
        for r in results
    ]
    ks = tuple(sorted({r.outliers for r in reach} | {s["outliers"] for s in skipped}))
    return Outliers(
        table(results, skipped), len(skipped), spiked, results[0].config, scale, reach, ks
    )


def plot(outliers: Outliers, out_dir: Path) -> list[Path]:
    # Imported here: `reproduce --list` and `--plan` import every figure module and must not wait
    # for matplotlib.
    import matplotlib.pyplot as plt

    from grokkit.plots import apply_style

    rows = outliers.rows
    csv_path = common.write_csv(Path(out_dir) / f"{NAME}.csv", CSV_HEADER, rows)
    apply_style()
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    # k is ordered: a sequential map, stopped where it still contrasts with white at least 3:1
    # (plasma's and viridis' yellow ends are nearly invisible on white), and a marker per k.
    cmap = plt.get_cmap("plasma")
    ks = sorted({r[0] for r in rows})
    for i, k in enumerate(ks):
        pts = [(r[1], r[5]) for r in rows if r[0] == k and r[5] is not None]
        if pts:
            ax.plot(
                [p[0] for p in pts],
                [100 * p[1] for p in pts],
                "-",
                marker=MARKERS[i % len(MARKERS)],
                ms=5,
                color=cmap(0.62 * i / max(1, len(ks) - 1)),
                label=f"k = {k}",
            )
    ax.set_ylim(-2, 102)
    ax.set_xlabel("training data fraction")
    ax.set_ylabel("best validation accuracy (%)")
    cfg = outliers.config
    ax.set_title(f"{common.op_label(cfg)} with k outliers, budget {cfg.steps:,} steps")
    ax.legend(fontsize=8, title="outliers", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    skipped = outliers.n_skipped
    note = (
        f"{skipped} (k, fraction) combinations skipped ({SKIP_REASON}); listed in the CSV."
        if skipped
        else ""
    )
    common.add_caption(fig, common.caption(REDUCTIONS, outliers.scale, note))
    return [*common.save(fig, out_dir, NAME), csv_path]


def arms(outliers: Outliers, ks: tuple[int, ...]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((reached, runs) of k = 0, (reached, runs) of ``ks``) at the fractions where both k = 0
    and some k of ``ks`` were trained, each arm its runs at those fractions."""
    runs = outliers.runs
    zero_at = {r.train_fraction for r in runs if r.outliers == 0}
    other = [r for r in runs if r.outliers in ks and r.train_fraction in zero_at]
    shared = {r.train_fraction for r in other}
    zero = [r for r in runs if r.outliers == 0 and r.train_fraction in shared]
    return (
        (sum(r.reached_99 for r in zero), len(zero)),
        (sum(r.reached_99 for r in other), len(other)),
    )


def _difference_interval(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval of the difference of two shares (Wilson intervals)."""
    if n1 == 0 or n2 == 0:
        return None
    z = 1.959963984540054

    def wilson(k: int, n: int) -> tuple[float, float]:
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return centre - half, centre + half

    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1), wilson(k2, n2)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt(
        (u1 - p1) ** 2 + (p2 - l2) ** 2
    )


def _fisher_claim(id, claim, paper, zero, other, if_rejected, m, what) -> Claim:
    (k0, n0), (k1, n1) = zero, other
    test = statistics.fisher(k0, n0, k1, n1)
    tested = n0 > 0 and n1 > 0
    return Claim(
        id,
        claim,
        paper,
        (k0 / n0 - k1 / n1) if tested else None,
        _difference_interval(k0, n0, k1, n1),
        f"Fisher's exact test, runs reaching 99 % validation: k = 0 {k0}/{n0} vs {what} "
        f"{k1}/{n1}; power assumes shares {PAPER_REACH[0]} vs {PAPER_REACH[1]}",
        test.null,
        test.p_value if tested else math.nan,
        statistics.power_fisher(*PAPER_REACH, n0, n1, claim_records.family_alpha(m))
        if tested
        else 0.0,
        if_rejected=if_rejected,
        why="" if tested else "no fraction where both arms were trained",
    )


def claims(outliers: Outliers) -> list[Claim]:
    m = 2
    ks = outliers.ks
    largest = ks[-1]
    zero, many = arms(outliers, (largest,))
    shrink = (
        "holds"
        if zero[1] and many[1] and zero[0] / zero[1] > many[0] / many[1]
        else ("contradicted")
    )
    few = few_ks(ks)
    zero_few, few_arm = arms(outliers, few)
    return [
        _fisher_claim(
            "many_outliers_shrink",
            f"With k = {largest} outliers fewer runs reach 99 % validation accuracy than with "
            "none, at the data fractions where both were trained.",
            "many outliers (2000-3000) shrink the range of fractions that generalise",
            zero,
            many,
            shrink,
            m,
            f"k = {largest}",
        ),
        _fisher_claim(
            "few_outliers_no_change",
            f"With few outliers (k in {{{', '.join(map(str, few))}}}) runs reach 99 % validation "
            "accuracy as often as with none (only a significant difference can decide: it "
            "contradicts).",
            "up to ~1000 outliers barely change which fractions generalise",
            zero_few,
            few_arm,
            "contradicted",
            m,
            "few k",
        ),
    ]


def describe(outliers: Outliers) -> str:
    rows = [r for r in outliers.rows if r[3] == "trained"]
    ks = sorted({r[0] for r in rows})

    def threshold(k):
        hits = sorted(r[1] for r in rows if r[0] == k and r[5] >= 0.99)
        return hits[0] if hits else None

    def text(k):
        t = threshold(k)
        return f"k={k}: {'none of the fractions tried' if t is None else f'{t:g}'}"

    runs, reached, spiked = sum(r[4] for r in rows), sum(r[8] for r in rows), outliers.n_spiked
    reach = ", ".join(
        f"k={k} {sum(r.reached_99 for r in outliers.runs if r.outliers == k)}/"
        f"{sum(r.outliers == k for r in outliers.runs)}"
        for k in ks
    )
    return (
        "Smallest data fraction with mean best validation accuracy >= 99 %: "
        + ", ".join(text(k) for k in ks)
        + f". Runs reaching 99 % validation: {reach}"
        + f"; training accuracy reached >= 99 % in {reached} of {runs} runs (paper: 100 % in all)"
        + (f", {spiked} of them below 99 % at the end after a late loss spike" if spiked else "")
        + "."
    )


def planned_power(scale: str, operation: str | None = None, seeds: int | None = None) -> list[dict]:
    """Each claim's power at the planned arms (counts only)."""
    configs, skipped = grid(scale, operation, seeds)
    placeholder = [RunReach(c.outliers, c.train_fraction, c.seed, False) for c in configs]
    ks = tuple(sorted({c.outliers for c in configs} | {s["outliers"] for s in skipped}))
    return claim_records.powers(
        claims(Outliers([], len(skipped), 0, configs[0], scale, placeholder, ks))
    )
