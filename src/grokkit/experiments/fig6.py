"""Figure 6 (A.4): best validation accuracy vs data fraction with k outliers in the training set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grokkit.config import RunConfig
from grokkit.experiments import common
from grokkit.ops import get_operation
from grokkit.plot_style import MARKERS

NAME = "fig6"
DESCRIPTION = "outliers k in {0,10,100,1000,2000,3000}: best validation accuracy vs data fraction"
CLAIM = (
    "A few outliers (up to ~1000) barely change which data fractions generalise; many "
    "outliers (2000-3000) shrink that range markedly."
)
OPTIONS = ("operation",)
# The paper does not name the operation of Figure 6. x/y mod 97 is its running example
# (Figures 1 and 4) and has 9,312 equations, so k = 3000 (6,000 training equations) is possible
# from 65 % data on; s5_xy (14,400 equations) is the other natural choice: --op s5_xy.
DEFAULT_OPERATION = "x/y"
PAPER_OUTLIERS = (0, 10, 100, 1000, 2000, 3000)
SMOKE_OUTLIERS = (0, 3, 20)  # the largest is impossible at the smallest fraction: tests the skip
REDUCTIONS = {
    "smoke": (
        "x/y mod 11 (or --op at modulus 11), k in {0, 3, 20}, 2 fractions, 1 layer of width 16, "
        "20 steps: code path only."
    ),
    "laptop": (
        "modulus 31 instead of 97 (930 equations instead of 9,312) and k scaled by the same "
        "ratio, to keep the share of outliers: k in {0, 1, 10, 100, 200, 300}; fractions "
        "0.3-0.9 step 0.2; 1 seed instead of 3; budget 10,000 steps instead of 10^5; runs stop "
        "200 steps after reaching 99 % validation. Paper model, AdamW."
    ),
    "paper": (
        "x/y mod 97 by default (the paper does not name the operation; --op changes it), "
        "k in {0, 10, 100, 1000, 2000, 3000}, fractions 0.05-0.95 step 0.05, 3 seeds, "
        "budget 10^5 steps, AdamW."
    ),
}
SKIP_REASON = "k outliers need 2k training equations"


def _settings(scale: str, operation: str | None):
    common.check_scale(scale)
    op = operation or DEFAULT_OPERATION
    if scale == "smoke":
        base = common.base_config(op, scale, modulus=11)
        return base, SMOKE_OUTLIERS, (0.3, 0.6), range(1)
    if scale == "laptop":
        base = common.base_config(op, scale, modulus=31, steps=10_000, stop_after_val_99=200)
        ratio = get_operation(op, 31).n_equations / get_operation(op, 97).n_equations
        ks = tuple(sorted({round(k * ratio) for k in PAPER_OUTLIERS}))
        return base, ks, (0.3, 0.5, 0.7, 0.9), range(1)
    return common.base_config(op, scale), PAPER_OUTLIERS, common.PAPER_FRACTIONS, range(3)


def grid(scale: str, operation: str | None = None) -> tuple[list[RunConfig], list[dict]]:
    """(runs to train, skipped (k, fraction) combinations with the reason)."""
    base, ks, fractions, seeds = _settings(scale, operation)
    n_equations = get_operation(base.operation, base.modulus).n_equations
    configs, skipped = [], []
    for k in ks:
        for f in fractions:
            n_train = round(f * n_equations)
            if 2 * k > n_train:
                skipped.append({"outliers": k, "train_fraction": f, "n_train": n_train})
                continue
            configs += [base.with_changes(outliers=k, train_fraction=f, seed=s) for s in seeds]
    return configs, skipped


def runs(scale: str, operation: str | None = None) -> list[RunConfig]:
    return grid(scale, operation)[0]


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
class Outliers:
    """One row of CSV_HEADER per (k, data fraction), trained or skipped, sorted."""

    rows: list[list]
    n_skipped: int
    n_spiked: int  # runs that reached 99 % training accuracy and ended below it
    config: RunConfig  # the first run's: the task and budget, for the title
    scale: str


def measure(results, scale: str, operation: str | None = None) -> Outliers:
    _, skipped = grid(scale, operation or results[0].config.operation)
    # Outliers are memorised too: the paper's training accuracy is 100 % everywhere. A run that got
    # there and then lost it in a late loss spike (common with AdamW at lr 1e-3) still memorised.
    spiked = sum(
        1
        for r in results
        if r.summary["steps_to_train_99"] is not None and r.summary["train_accuracy"] < 0.99
    )
    return Outliers(table(results, skipped), len(skipped), spiked, results[0].config, scale)


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


def verdict(outliers: Outliers) -> str:
    rows = [r for r in outliers.rows if r[3] == "trained"]
    ks = sorted({r[0] for r in rows})

    def threshold(k):
        hits = sorted(r[1] for r in rows if r[0] == k and r[5] >= 0.99)
        return hits[0] if hits else None

    def text(k):
        t = threshold(k)
        return f"k={k}: {'none of the fractions tried' if t is None else f'{t:g}'}"

    runs, reached, spiked = sum(r[4] for r in rows), sum(r[8] for r in rows), outliers.n_spiked
    memorised = (
        f"; training accuracy reached >= 99 % in {reached} of {runs} runs (paper: 100 % in all)"
        + (f", {spiked} of them below 99 % at the end after a late loss spike" if spiked else "")
    )
    base = threshold(ks[0])
    worst = threshold(ks[-1])
    if base is None:
        judged = "; without outliers no fraction generalised, so the claim is untested here"
    elif worst is None or worst > base:
        judged = "; the largest k shrank the range of fractions that generalise (as the paper says)"
    else:
        judged = "; the largest k did not shrink the range that generalises (unlike the paper)"
    return (
        "Smallest data fraction with mean best validation accuracy >= 99 %: "
        + ", ".join(text(k) for k in ks)
        + judged
        + memorised
        + "."
    )
