"""Figure 2 (right): best validation accuracy within the budget vs data fraction, 12 operations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grokkit.config import RunConfig
from grokkit.experiments import common
from grokkit.ops import PAPER_OPERATIONS as OPERATIONS

NAME = "fig2-right"
DESCRIPTION = "best validation accuracy within 10^5 steps vs data fraction, all 12 operations"
CLAIM = (
    "x-y and x/y need about the same data; symmetric operations need less than their "
    "asymmetric counterparts; x^3+xy^2+y does not generalise at any fraction up to 95 %."
)
OPTIONS: tuple[str, ...] = ()
MODULAR = [name for name in OPERATIONS if not name.startswith("s5")]
S5 = [name for name in OPERATIONS if name.startswith("s5")]
REDUCTIONS = {
    "smoke": (
        "all 12 operations, modulus 11, 2 fractions, 1 seed, 1 layer of width 16, 20 steps: "
        "code path only."
    ),
    "laptop": (
        "modulus 23 instead of 97; fractions 0.2-0.8 step 0.2 for the 9 modular operations, "
        "0.5 and 0.8 for the 3 S5 operations (an S5 run costs ~15x a mod-23 run on a CPU); "
        "1 seed instead of 3; budget 10,000 steps instead of 10^5; runs stop 200 steps after "
        "reaching 99 % validation. Paper model, AdamW."
    ),
    "paper": (
        "all 12 operations, modulus 97, fractions 0.05-0.95 step 0.05, 3 seeds, budget 10^5 "
        "steps, AdamW."
    ),
}


def runs(scale: str) -> list[RunConfig]:
    common.check_scale(scale)
    if scale == "smoke":
        ops, changes, fractions, seeds = list(OPERATIONS), {"modulus": 11}, (0.5, 0.8), range(1)
    elif scale == "laptop":
        changes = {"modulus": 23, "steps": 10_000, "stop_after_val_99": 200}
        return [
            common.base_config(op, scale, train_fraction=f, **changes)
            for op in MODULAR
            for f in (0.2, 0.4, 0.6, 0.8)
        ] + [
            common.base_config(op, scale, train_fraction=f, **changes)
            for op in S5
            for f in (0.5, 0.8)
        ]
    else:
        ops, changes, fractions, seeds = list(OPERATIONS), {}, common.PAPER_FRACTIONS, range(3)
    return [
        common.base_config(op, scale, train_fraction=f, seed=s, **changes)
        for op in ops
        for f in fractions
        for s in seeds
    ]


CSV_HEADER = [
    "operation",
    "modulus",
    "train_fraction",
    "n_seeds",
    "mean_best_val_accuracy",
    "std_best_val_accuracy",
]


def table(results) -> list[list]:
    rows = []
    for (op, f), group in common.group_by(
        results, lambda r: (r.config.operation, r.config.train_fraction)
    ).items():
        mean, std = common.mean_std([r.summary["best_val_accuracy"] for r in group])
        modulus = None if op.startswith("s5") else group[0].config.modulus
        rows.append([op, modulus, f, len(group), mean, std])
    return rows


def threshold_fraction(rows, op: str, level: float = 0.99) -> float | None:
    """The smallest data fraction whose mean best validation accuracy reaches ``level``."""
    hits = sorted(r[2] for r in rows if r[0] == op and r[4] >= level)
    return hits[0] if hits else None


@dataclass(frozen=True)
class Scores:
    """One row of CSV_HEADER per (operation, data fraction)."""

    rows: list[list]
    steps: int  # the first run's budget, for the title
    scale: str


def measure(results, scale: str) -> Scores:
    return Scores(table(results), results[0].config.steps, scale)


def plot(scores: Scores, out_dir: Path) -> list[Path]:
    # Imported here: `reproduce --list` and `--plan` import every figure module and must not wait
    # for matplotlib.
    import matplotlib.pyplot as plt

    from grokkit.plots import apply_style

    rows = scores.rows
    csv_path = common.write_csv(Path(out_dir) / f"{NAME}.csv", CSV_HEADER, rows)
    apply_style()
    # Small multiples: one panel per operation on shared axes (twelve overlaid lines could not be
    # told apart), every other operation faint grey behind it for comparison.
    ncols = 4
    nrows = -(-len(OPERATIONS) // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(10.0, 2.3 * nrows + 0.9),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    curves = {op: sorted((r[2], r[4]) for r in rows if r[0] == op) for op in OPERATIONS}
    modulus = next((r[1] for r in rows if r[1] is not None), None)
    for ax, op in zip(axes.flat, OPERATIONS):
        for other, pts in curves.items():
            if other != op and pts:
                ax.plot(
                    [p[0] for p in pts], [100 * p[1] for p in pts], color="0.85", lw=0.8, zorder=1
                )
        pts = curves[op]
        if pts:
            ax.plot(
                [p[0] for p in pts],
                [100 * p[1] for p in pts],
                "o-",
                ms=4,
                zorder=3,
                color="tab:purple" if op in S5 else "tab:blue",
            )
        ax.axhline(99, color="0.5", lw=0.6, ls=":", zorder=2)
        ax.set_title(op if op in S5 or modulus is None else f"{op} (mod {modulus})", fontsize=9)
    for ax in axes.flat[len(OPERATIONS) :]:
        ax.set_visible(False)
    axes[0, 0].set_ylim(-4, 104)
    axes[0, 0].set_yticks(range(0, 101, 25))
    fig.supxlabel("training data fraction", fontsize=10)
    fig.supylabel("best validation accuracy (%)", fontsize=10)
    fig.suptitle(
        f"Best validation accuracy within {scores.steps:,} steps, mean over {rows[0][3]} "
        "seed(s); grey: the other operations, dotted: 99 %",
        fontsize=10,
    )
    common.add_caption(fig, common.caption(REDUCTIONS, scores.scale))
    return [*common.save(fig, out_dir, NAME), csv_path]


def verdict(scores: Scores) -> str:
    rows = scores.rows

    def fr(op: str) -> str:
        f = threshold_fraction(rows, op)
        return "at no fraction tried" if f is None else f"at fraction {f:g}"

    ops = {r[0] for r in rows}
    parts = []
    if {"x-y", "x/y"} <= ops:
        a, b = threshold_fraction(rows, "x-y"), threshold_fraction(rows, "x/y")
        if a is None and b is None:
            judged = "neither generalised, so the claim is untested here"
        elif a is not None and b is not None and abs(a - b) <= 0.1 + 1e-9:
            judged = "about the same, as the paper says"
        else:
            judged = "not the same, unlike the paper"
        parts.append(
            f"x-y reached 99 % mean best validation accuracy {fr('x-y')} and x/y "
            f"{fr('x/y')} ({judged})"
        )
    if "x^3+xy^2+y" in ops:
        best = max(r[4] for r in rows if r[0] == "x^3+xy^2+y")
        peaked = (
            "no generalisation, as the paper says"
            if best < 0.9
            else "it did generalise, unlike the paper"
        )
        parts.append(f"x^3+xy^2+y peaked at {common.fmt_pct(best)} ({peaked})")
    pairs = [("x+y", "x-y"), ("x^2+xy+y^2", "x^2+xy+y^2+x")]
    sym = [f"{s} {fr(s)} vs {a} {fr(a)}" for s, a in pairs if {s, a} <= ops]
    if sym:
        parts.append("symmetric vs asymmetric: " + ", ".join(sym))
    s5 = [op for op in S5 if op in ops]
    if s5:
        tried = sorted({r[2] for r in rows if r[0] in s5})
        parts.append(
            "S5 (fractions "
            + ", ".join(f"{f:g}" for f in tried)
            + "): "
            + ", ".join(f"{op} reached 99 % {fr(op)}" for op in s5)
        )
    return "; ".join(parts) + "."
