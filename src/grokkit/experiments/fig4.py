"""Figure 4: the loss curves of the Figure 1 (left) run (the same run folder is reused)."""

from __future__ import annotations

import math
from pathlib import Path

from grokkit.config import RunConfig
from grokkit.experiments import common, fig1_left
from grokkit.plot_style import TRAIN_COLOR, VALIDATION_COLOR

NAME = "fig4"
DESCRIPTION = "loss curves of the Figure 1 (left) run (shares its run folder)"
CLAIM = (
    "Validation loss first rises while training loss falls, then falls again when the "
    "network generalises (a double descent in validation loss)."
)
OPTIONS: tuple[str, ...] = ()
REDUCTIONS = {
    scale: f"{text} Same run as Figure 1 (left)." for scale, text in fig1_left.REDUCTIONS.items()
}


def runs(scale: str) -> list[RunConfig]:
    return fig1_left.runs(scale)  # identical configs: the sweep trains the run once


def measure(results, scale: str) -> fig1_left.Curve:
    return fig1_left.measure(results, scale)


def plot(curve: fig1_left.Curve, out_dir: Path) -> list[Path]:
    # Imported here: `reproduce --list` and `--plan` import every figure module and must not wait
    # for matplotlib.
    import matplotlib.pyplot as plt

    from grokkit.plots import apply_style

    rows = curve.rows
    csv_path = common.write_csv(Path(out_dir) / f"{NAME}.csv", fig1_left.CSV_HEADER, rows)
    pts = [r for r in rows if r[0] > 0]
    apply_style()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    ax.plot([r[0] for r in pts], [r[3] for r in pts], color=TRAIN_COLOR, label="train")
    ax.plot([r[0] for r in pts], [r[4] for r in pts], color=VALIDATION_COLOR, label="validation")
    ax.set_xscale("log")
    if all(r[3] > 0 and r[4] > 0 for r in pts):
        ax.set_yscale("log")
    ax.set_xlabel("optimization step")
    ax.set_ylabel("loss")
    ax.legend()
    cfg = curve.config
    ax.set_title(f"{common.op_label(cfg)}, {100 * cfg.train_fraction:.0f}% data, {cfg.preset}")
    common.add_caption(fig, common.caption(REDUCTIONS, curve.scale))
    return [*common.save(fig, out_dir, NAME), csv_path]


def verdict(curve: fig1_left.Curve) -> str:
    rows = [r for r in curve.rows if r[0] > 0 and math.isfinite(r[4])]
    if not rows:
        return "The run has no evaluated steps after step 0."
    peak = max(rows, key=lambda r: r[4])
    final = rows[-1]
    first = rows[0]
    rise = peak[4] > first[4] * 1.05
    fall = final[4] < peak[4] * 0.5
    shape = (
        "rose then fell: a double descent as in the paper"
        if rise and fall
        else "rose and has not come down yet within the budget"
        if rise
        else "never rose above its start, so there is no double descent here, unlike the paper"
    )
    return (
        f"Validation loss went from {first[4]:.3g} (step {first[0]}) to a peak of {peak[4]:.3g} "
        f"(step {peak[0]}) and ended at {final[4]:.3g} (step {final[0]}); it {shape}."
    )
