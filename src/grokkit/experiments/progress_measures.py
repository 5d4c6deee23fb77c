"""Progress measures (Nanda et al. 2023, arXiv 2301.05217): the Fourier measures of modular
addition over training, with the three phases marked.

Nanda et al.'s set-up: x+y mod 113, 30 % of the table for training, a 1-layer transformer of
width 128 with 4 heads, a ReLU MLP of width 512 and no LayerNorm, their Gaussian initialisation
(``--init nanda``), full-batch AdamW (lr 1e-3, weight decay 1, betas 0.9/0.98), 40,000 epochs.
Their sequence is ``a b =``; ours is the paper's ``a op b =`` (one more token, constant across
equations). Weight snapshots are kept every 100
updates and measured with grokkit.analysis.fourier (restricted and excluded loss, Gini of the
embedding's and neuron-to-logit map's Fourier norms, total squared weight norm).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from grokkit.config import RunConfig
from grokkit.experiments import common
from grokkit.files import atomic_write_text

if TYPE_CHECKING:
    from grokkit.analysis.fourier import ProgressMeasures

NAME = "progress-measures"
DESCRIPTION = (
    "Nanda et al.'s Fourier progress measures over training, phases marked (x+y, 1 layer, no "
    "LayerNorm)"
)
CLAIM = (
    "The restricted loss (key frequencies only) falls well before the test loss does, and "
    "the excluded loss (key frequencies removed) rises during circuit formation, before "
    "clean-up; test loss falls only at clean-up."
)
OPTIONS: tuple[str, ...] = ()

# Their initialisation too (--init nanda): with PyTorch's (N(0, 1) embeddings, sqrt(128) times
# larger) the laptop run memorised and had not begun to generalise after 15,000 updates.
NANDA_MODEL = {
    "n_layers": 1,
    "d_model": 128,
    "n_heads": 4,
    "d_mlp": 512,
    "norm": "none",
    "activation": "relu",
    "init": "nanda",
}
REDUCTIONS = {
    "smoke": "x+y mod 11, 1 layer of width 16, 20 steps: checks the code path only.",
    "laptop": (
        "15,000 full-batch updates instead of 40,000 (Nanda et al.'s clean-up ends near "
        "14,000), 1 seed. Otherwise Nanda et al.'s task, model and recipe: x+y mod 113, "
        "30 % data, 1 layer, no LayerNorm, full-batch AdamW, weight decay 1. (At p = 59, "
        "30 % of the table, 1,044 equations, did not generalise at all in 12,000 updates.)"
    ),
    "paper": "x+y mod 113, 30 % data, 40,000 full-batch updates, 1 seed: Nanda et al.'s set-up.",
}


def runs(scale: str) -> list[RunConfig]:
    common.check_scale(scale)
    base = common.base_config("x+y", scale, "adamw", train_fraction=0.3, batch_size=0)
    if scale == "smoke":
        return [base.with_changes(modulus=11, snapshot_every=5)]
    base = base.with_changes(**NANDA_MODEL)
    if scale == "laptop":
        return [
            base.with_changes(
                modulus=113,
                steps=15_000,
                eval_every=100,
                snapshot_every=100,
                checkpoint_every=1_000,
            )
        ]
    return [
        base.with_changes(
            modulus=113, steps=40_000, eval_every=100, snapshot_every=100, checkpoint_every=1_000
        )
    ]


@dataclass(frozen=True)
class Progress:
    """The run's Fourier progress measures (curves, phases, key frequencies)."""

    measures: ProgressMeasures
    config: RunConfig
    scale: str


def measure(results, scale: str) -> Progress:
    # Imported here: `reproduce --list` and `--plan` import every figure module and must not wait
    # for torch and pandas (grokkit.api, the Fourier analysis).
    from grokkit.analysis import fourier
    from grokkit.api import load_run

    (result,) = results
    return Progress(fourier.progress_measures(load_run(result.run_dir)), result.config, scale)


def plot(progress: Progress, out_dir: Path) -> list[Path]:
    from grokkit.analysis import fourier

    measures = progress.measures
    out_dir = Path(out_dir)
    cfg = progress.config
    # One short line: the reductions are in REPORT.md and docs/figures.md (a long title would
    # widen the whole figure).
    title = (
        f"{common.op_label(cfg)}, {100 * cfg.train_fraction:.0f}% data, {cfg.n_layers} layer, "
        f"{cfg.steps:,} full-batch updates ({progress.scale} scale)"
    )
    files = fourier.plot_progress_measures(measures, out_dir / f"{NAME}.png", title=title)
    csv_path = out_dir / f"{NAME}.csv"
    atomic_write_text(csv_path, measures.curves.to_csv(index=False))
    return [*files, csv_path]


FALL = 10.0  # a loss has fallen when it ends at least this many times below its maximum


def falls(
    fourier, steps: list[int], values: list[float], after: int | None
) -> tuple[int | None, float]:
    """(where a loss curve falls, by how much): the fall is max / final over the steps from
    ``after`` on, and its step is fourier.fall_step's half-way point (on a log scale); None when
    the curve falls less than FALL times, because any noise "falls" half-way somewhere."""
    kept = [v for s, v in zip(steps, values) if after is None or s >= after]
    factor = max(kept) / kept[-1] if kept[-1] > 0 else float("inf")
    return (fourier.fall_step(steps, values, after=after) if factor >= FALL else None), factor


def verdict(progress: Progress) -> str:
    from grokkit.analysis import fourier

    m = progress.measures
    c = m.curves
    steps = c["step"].tolist()
    phases = m.phases
    start, cleanup = phases.get("memorisation_end"), phases.get("cleanup_start")
    restricted, r_factor = falls(fourier, steps, c["restricted_loss"].tolist(), start)
    test, t_factor = falls(fourier, steps, c["test_loss"].tolist(), start)

    def fall(name: str, step: int | None, factor: float) -> str:
        if step is None and factor >= FALL:
            return (
                f"the {name} did not fall (it ended above its first value, though {factor:.3g}x "
                "below its peak)"
            )
        if step is None:
            return (
                f"the {name} did not fall {FALL:.0f}x (its maximum is {factor:.3g}x its final "
                "value)"
            )
        return f"the {name} falls {factor:.3g}x (half-way at step {step})"

    since = "Over the whole run" if start is None else "After memorisation"
    text = (
        f"Key frequencies {m.key_freqs}; final test accuracy "
        f"{common.fmt_pct(c['test_accuracy'].iloc[-1])}. "
        f"Phases: {fourier.describe_phases(phases)}. "
        f"{since} {fall('restricted loss', restricted, r_factor)}, "
        f"{fall('test loss', test, t_factor)}."
    )
    if start is None or cleanup is None or restricted is None or test is None:
        return text + (
            " The network did not reach clean-up (or a loss did not fall "
            f"{FALL:.0f}x), so the claim cannot be tested at this scale."
        )
    at = dict(zip(steps, c["excluded_loss"].tolist()))
    rise = at[cleanup] / at[start] if at[start] > 0 else float("inf")
    earlier = restricted < test
    text += (
        f" The excluded loss rises {rise:.3g}x from the end of memorisation to the start of "
        "clean-up."
    )
    if earlier and rise > 1:
        return text + (
            f" As in the paper: the restricted loss falls {test - restricted:,} steps "
            "before the test loss, and the excluded loss rises during circuit formation."
        )
    wrong = [
        s
        for s, bad in (
            ("the restricted loss does not fall before the test loss", not earlier),
            ("the excluded loss does not rise during circuit formation", rise <= 1),
        )
        if bad
    ]
    return text + " Unlike the paper: " + "; ".join(wrong) + "."
