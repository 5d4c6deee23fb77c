"""Figure 4: the loss curves of the Figure 1 (left) runs (the same run folders are reused).

Claim ``double_descent`` (tested over seeds): a seed shows the double descent when its validation
loss peaks at least ``RISE`` x its first evaluated value and ends at most ``FALL`` x that peak; it
counts against the claim when the validation loss never rose ``RISE`` x above its start; a seed
whose loss rose and had not fallen by the end of its budget is undecided (the budget may end
before the fall). An exact two-sided sign test over the decided seeds decides.
"""

from __future__ import annotations

import math
from pathlib import Path

from grokkit.analysis import statistics
from grokkit.config import RunConfig
from grokkit.experiments import claims as claim_records, common, fig1_left
from grokkit.experiments.claims import Claim
from grokkit.plot_style import TRAIN_COLOR, VALIDATION_COLOR

NAME = "fig4"
DESCRIPTION = "loss curves of the Figure 1 (left) runs (shares their run folders)"
CLAIM = (
    "Validation loss first rises while training loss falls, then falls again when the "
    "network generalises (a double descent in validation loss)."
)
OPTIONS: tuple[str, ...] = ("seeds",)
REDUCTIONS = {
    scale: (
        f"{text} Same runs as Figure 1 (left); double descent per seed: validation loss peaks "
        "at least 1.05x its start and ends at most 0.5x its peak, decided by a sign test over "
        "seeds."
    )
    for scale, text in fig1_left.REDUCTIONS.items()
}
RISE = 1.05  # the peak must exceed the first evaluated validation loss by 5 %
FALL = 0.5  # and the last must be at most half the peak
# The paper's effect, for the power: its run shows the double descent; each seed assumed to show
# it with probability 0.95.
PAPER_SEED_PROBABILITY = 0.95


def runs(scale: str, seeds: int | None = None) -> list[RunConfig]:
    return fig1_left.runs(scale, seeds)  # identical configs: the sweep trains each run once


def measure(results, scale: str, seeds: int | None = None) -> fig1_left.Curve:
    return fig1_left.measure(results, scale)


def plot(curve: fig1_left.Curve, out_dir: Path) -> list[Path]:
    # Imported here: `reproduce --list` and `--plan` import every figure module and must not wait
    # for matplotlib.
    import matplotlib.pyplot as plt

    from grokkit.plots import apply_style

    csv_path = common.write_csv(
        Path(out_dir) / f"{NAME}.csv", fig1_left.CSV_HEADER, fig1_left.csv_rows(curve)
    )
    apply_style()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    positive = True
    for i, s in enumerate(curve.seeds):
        pts = [r for r in s.rows if r[0] > 0]
        steps = [r[0] for r in pts]
        ax.plot(
            steps, [r[3] for r in pts], color=TRAIN_COLOR, lw=1.0, label="train" if i == 0 else None
        )
        ax.plot(
            steps,
            [r[4] for r in pts],
            color=VALIDATION_COLOR,
            lw=1.0,
            label="validation" if i == 0 else None,
        )
        positive = positive and all(r[3] > 0 and r[4] > 0 for r in pts)
    ax.set_xscale("log")
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("optimization step")
    ax.set_ylabel("loss")
    ax.legend()
    cfg = curve.config
    ax.set_title(
        f"{common.op_label(cfg)}, {100 * cfg.train_fraction:.0f}% data, {cfg.preset}, "
        f"{len(curve.seeds)} seed(s)"
    )
    common.add_caption(fig, common.caption(REDUCTIONS, curve.scale))
    return [*common.save(fig, out_dir, NAME), csv_path]


def shape(seed: fig1_left.SeedCurve) -> tuple[float, float, float] | None:
    """(first, peak, last) evaluated validation loss of one seed; None without evaluations."""
    losses = [r[4] for r in seed.rows if r[4] is not None and math.isfinite(r[4])]
    return (losses[0], max(losses), losses[-1]) if losses else None


def signs(curve: fig1_left.Curve) -> tuple[int, int, int]:
    """(seeds with a double descent, seeds whose loss never rose, undecided)."""
    plus = minus = 0
    for s in curve.seeds:
        x = shape(s)
        if x is None:
            continue
        first, peak, last = x
        rose = peak >= RISE * first
        plus += rose and last <= FALL * peak
        minus += not rose
    return plus, minus, len(curve.seeds) - plus - minus


def claims(curve: fig1_left.Curve) -> list[Claim]:
    plus, minus, undecided = signs(curve)
    power = statistics.power_sign(
        len(curve.seeds), PAPER_SEED_PROBABILITY, claim_records.family_alpha(1)
    )
    return [
        claim_records.sign_claim(
            "double_descent",
            f"Validation loss rises to a peak at least {RISE:g}x its start, then falls to at "
            f"most {FALL:g}x that peak (per seed).",
            "a double descent in the one run shown",
            plus,
            minus,
            undecided,
            "seed",
            power,
            f"each seed shows the double descent with probability {PAPER_SEED_PROBABILITY}",
        )
    ]


def describe(curve: fig1_left.Curve) -> str:
    parts = []
    for s in curve.seeds:
        x = shape(s)
        if x is None:
            parts.append(f"seed {s.config.seed}: no evaluation")
            continue
        first, peak, last = x
        parts.append(
            f"seed {s.config.seed}: {first:.3g} -> peak {peak:.3g} ({peak / first:.3g}x the "
            f"start) -> {last:.3g} ({last / peak:.3g}x the peak)"
        )
    plus, minus, undecided = signs(curve)
    return (
        f"Validation loss, first evaluation -> peak -> last evaluation: {'; '.join(parts)}. "
        f"{plus} seed(s) rose and fell by those factors, {minus} never rose {RISE:g}x, "
        f"{undecided} rose without falling {1 / FALL:g}x within the budget (or had no curve)."
    )


def planned_power(scale: str, seeds: int | None = None) -> list[dict]:
    """Each claim's power at the planned number of seeds (the powers depend on counts only)."""
    return claim_records.powers(claims(fig1_left.placeholder(scale, seeds)))
