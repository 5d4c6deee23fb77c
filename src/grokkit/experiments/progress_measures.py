"""Progress measures (Nanda et al. 2023, arXiv 2301.05217): the Fourier measures of modular
addition over training, with the three phases marked.

Nanda et al.'s set-up: x+y mod 113, 30 % of the table for training, a 1-layer transformer of
width 128 with 4 heads, a ReLU MLP of width 512 and no LayerNorm, their Gaussian initialisation
(``--init nanda``), full-batch AdamW (lr 1e-3, weight decay 1, betas 0.9/0.98), 40,000 epochs.
Their sequence is ``a b =``; ours is the paper's ``a op b =`` (one more token, constant across
equations). Weight snapshots are kept every 100
updates and measured with grokkit.analysis.fourier (restricted and excluded loss, Gini of the
embedding's and neuron-to-logit map's Fourier norms, total squared weight norm).

The claims, each a sign test over seeds (Nanda et al. show one run; one run cannot test them,
so at one seed both records are untestable):

* ``restricted_before_test``: after memorisation the restricted loss falls (``FALL``x below its
  maximum, half-way on a log scale) before the test loss does; a seed counts for it when the
  restricted loss falls first (or the test loss never falls), against it when the test loss falls
  first (or the restricted loss never falls while the test loss does);
* ``excluded_rises``: the excluded loss is higher at the start of clean-up than at the end of
  memorisation; a seed without both phases is undecided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from grokkit.analysis import statistics
from grokkit.config import RunConfig
from grokkit.experiments import claims as claim_records, common
from grokkit.experiments.claims import Claim
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
OPTIONS: tuple[str, ...] = ("seeds",)
# One run costs ~30 min on a CPU. Two sign tests over seeds, Holm-corrected together, need 7
# seeds to reject at all (7 of 7: p = 0.016, doubled 0.031) and 10 for a power of 0.9.
SEEDS = {"smoke": 1, "laptop": 1, "paper": 1}
TESTABLE_SEEDS = (7, 10)
# The paper's effect, for the power: each seed orders its losses as Nanda et al.'s run with
# probability 0.95.
PAPER_SEED_PROBABILITY = 0.95

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
        "30 % of the table, 1,044 equations, did not generalise at all in 12,000 updates.) "
        "One seed: the sign tests over seeds need --seeds 7 or more (~30 min a seed)."
    ),
    "paper": (
        "x+y mod 113, 30 % data, 40,000 full-batch updates, 1 seed: Nanda et al.'s set-up; "
        "the sign tests over seeds need --seeds 7 or more."
    ),
}


def runs(scale: str, seeds: int | None = None) -> list[RunConfig]:
    common.check_scale(scale)
    n = common.check_seeds(seeds, SEEDS[scale])
    base = common.base_config("x+y", scale, "adamw", train_fraction=0.3, batch_size=0)
    if scale == "smoke":
        base = base.with_changes(modulus=11, snapshot_every=5)
    else:
        base = base.with_changes(**NANDA_MODEL).with_changes(
            modulus=113,
            steps=15_000 if scale == "laptop" else 40_000,
            eval_every=100,
            snapshot_every=100,
            checkpoint_every=1_000,
        )
    return [base.with_changes(seed=s) for s in range(n)]


@dataclass(frozen=True)
class Progress:
    """The runs' Fourier progress measures (curves, phases, key frequencies): the first seed's
    (plotted) and the others'."""

    measures: ProgressMeasures
    config: RunConfig
    scale: str
    others: tuple = ()

    @property
    def seeds(self) -> list:
        return [self.measures, *self.others]


def measure(results, scale: str, seeds: int | None = None) -> Progress:
    # Imported here: `reproduce --list` and `--plan` import every figure module and must not wait
    # for torch and pandas (grokkit.api, the Fourier analysis).
    from grokkit.analysis import fourier
    from grokkit.api import load_run

    ordered = sorted(results, key=lambda r: r.config.seed)
    measures = [fourier.progress_measures(load_run(r.run_dir)) for r in ordered]
    return Progress(measures[0], ordered[0].config, scale, tuple(measures[1:]))


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


def orders(m) -> dict:
    """One seed's numbers: where (and by how much) the restricted and test losses fall after
    memorisation, and the excluded loss's rise from memorisation's end to clean-up's start."""
    from grokkit.analysis import fourier

    c = m.curves
    steps = c["step"].tolist()
    start, cleanup = m.phases.get("memorisation_end"), m.phases.get("cleanup_start")
    restricted, r_factor = falls(fourier, steps, c["restricted_loss"].tolist(), start)
    test, t_factor = falls(fourier, steps, c["test_loss"].tolist(), start)
    rise = None
    if start is not None and cleanup is not None:
        at = dict(zip(steps, c["excluded_loss"].tolist()))
        rise = at[cleanup] / at[start] if at[start] > 0 else math.inf
    return {
        "start": start,
        "restricted": restricted,
        "restricted_factor": r_factor,
        "test": test,
        "test_factor": t_factor,
        "rise": rise,
    }


def order_signs(progress: Progress) -> tuple[int, int, int]:
    """(seeds whose restricted loss falls first, whose test loss falls first, undecided)."""
    plus = minus = 0
    for m in progress.seeds:
        o = orders(m)
        r, t = o["restricted"], o["test"]
        plus += r is not None and (t is None or r < t)
        minus += t is not None and (r is None or t <= r)
    return plus, minus, len(progress.seeds) - plus - minus


def rise_signs(progress: Progress) -> tuple[int, int, int]:
    """(seeds whose excluded loss rose during circuit formation, did not, undecided)."""
    rises = [orders(m)["rise"] for m in progress.seeds]
    plus = sum(r is not None and r > 1 for r in rises)
    minus = sum(r is not None and r <= 1 for r in rises)
    return plus, minus, len(rises) - plus - minus


def claims(progress: Progress) -> list[Claim]:
    m = 2
    n = len(progress.seeds)
    power = statistics.power_sign(n, PAPER_SEED_PROBABILITY, claim_records.family_alpha(m))
    assumed = f"each seed reads as Nanda et al.'s run with probability {PAPER_SEED_PROBABILITY}"
    specs = [
        (
            "restricted_before_test",
            f"After memorisation the restricted loss falls ({FALL:.0f}x) before the test loss "
            "does.",
            "restricted loss falls well before test loss (one run)",
            order_signs(progress),
        ),
        (
            "excluded_rises",
            "The excluded loss rises from the end of memorisation to the start of clean-up "
            "(circuit formation).",
            "excluded loss rises during circuit formation (one run)",
            rise_signs(progress),
        ),
    ]
    if n == 1:
        powers = ", ".join(
            f"--seeds {k}: power "
            f"{statistics.power_sign(k, PAPER_SEED_PROBABILITY, claim_records.family_alpha(m)):.2f}"
            for k in TESTABLE_SEEDS
        )
        why = f"one run: the sign tests over seeds need at least {TESTABLE_SEEDS[0]} ({powers})"
        return [
            Claim.untestable(
                id, claim, paper, f"1 seed: {s[0]} for, {s[1]} against, {s[2]} undecided", why
            )
            for id, claim, paper, s in specs
        ]
    return [
        claim_records.sign_claim(id, claim, paper, *s, "seed", power, assumed)
        for id, claim, paper, s in specs
    ]


def describe(progress: Progress) -> str:
    from grokkit.analysis import fourier

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

    parts = []
    for seed, m in enumerate(progress.seeds):
        o = orders(m)
        since = "over the whole run" if o["start"] is None else "after memorisation"
        rise = (
            "the excluded loss has no circuit-formation phase to rise over"
            if o["rise"] is None
            else f"the excluded loss changes {o['rise']:.3g}x from the end of memorisation to "
            "the start of clean-up"
        )
        parts.append(
            f"Run {seed + 1}: key frequencies {m.key_freqs}; final test accuracy "
            f"{common.fmt_pct(m.curves['test_accuracy'].iloc[-1])}. Phases: "
            f"{fourier.describe_phases(m.phases)}. {since.capitalize()} "
            f"{fall('restricted loss', o['restricted'], o['restricted_factor'])}, "
            f"{fall('test loss', o['test'], o['test_factor'])}; {rise}."
        )
    return " ".join(parts)


def planned_power(scale: str, seeds: int | None = None) -> list[dict]:
    """Each claim's power at the planned seeds (None: one run, untestable)."""
    n = len(runs(scale, seeds))
    power = (
        statistics.power_sign(n, PAPER_SEED_PROBABILITY, claim_records.family_alpha(2))
        if n > 1
        else None
    )
    effect = f"each seed reads as the paper with probability {PAPER_SEED_PROBABILITY:g}"
    return [
        {"id": claim, "power": power, "effect": effect}
        for claim in ("restricted_before_test", "excluded_rises")
    ]
