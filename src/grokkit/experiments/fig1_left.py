"""Figure 1 (left): x/y mod 97 at 50 % data with Adam (no weight decay), accuracy vs step.

Claim ``delay_decade`` (tested over seeds): validation accuracy reaches 99 % at least a decade of
steps (10x) after training accuracy does. Each seed's delay is known only to within its
evaluation brackets: it counts for the claim when even its earliest possible ratio (validation's
previous evaluation / training's first evaluation at 99 %) is at least 10x, or when validation
never got there within a budget 10x past training's time; against it when even its latest
possible ratio (validation's first evaluation at 99 % / training's previous evaluation) is below
10x; otherwise (a bracket straddles 10x, or training never reached 99 %) it is undecided. An
exact two-sided sign test over the decided seeds decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grokkit.analysis import grokking_time, statistics
from grokkit.config import RunConfig
from grokkit.experiments import claims as claim_records, common
from grokkit.experiments.claims import Claim
from grokkit.plot_style import TRAIN_COLOR, VALIDATION_COLOR
from grokkit.runs import read_metrics

NAME = "fig1-left"
DESCRIPTION = "grokking curve: x/y mod 97, 50 % data, Adam without weight decay, accuracy vs step"
CLAIM = (
    "Training accuracy is near perfect before 10^3 steps, but validation accuracy reaches "
    "that level only close to 10^6 steps (x/y mod 97, 50 % data, Adam)."
)
OPTIONS: tuple[str, ...] = ("seeds",)
# The paper shows one run. A sign test over seeds needs 6 to reject at alpha 0.05 at all; 9 give
# Figure 4's double-descent test (same runs) a power of 0.93 instead of 0.74 at 6.
SEEDS = {"smoke": 1, "laptop": 9, "paper": 9}
REDUCTIONS = {
    "smoke": "x+y mod 11, 1 layer of width 16, 20 steps, 1 seed: checks the code path only.",
    "laptop": (
        "AdamW (weight decay 1, the paper's default) instead of Adam, 8,000 steps instead "
        "of 10^6: without weight decay grokking takes ~10^5-10^6 steps, too long for a CPU. "
        "x/y mod 97, 50 % data, paper model; 9 seeds (the paper shows one run): an exact sign "
        "test over seeds of a delay of at least 10x, within the evaluation brackets, decides."
    ),
    "paper": (
        "x/y mod 97, 50 % data, Adam (no weight decay), 10^6 steps; 9 seeds (the paper shows "
        "one run) for the sign test of a delay of at least 10x."
    ),
}
DELAY_FACTOR = 10  # a decade of steps: the figure's log axis
THRESHOLD = 0.99
# The paper's effect, for the power: a ~10^3x delay (<10^3 vs ~10^6 steps), so a seed's delay
# exceeds 10x with probability near 1 (0.99 assumed).
PAPER_SEED_PROBABILITY = 0.99


def runs(scale: str, seeds: int | None = None) -> list[RunConfig]:
    common.check_scale(scale)
    n = common.check_seeds(seeds, SEEDS[scale])
    if scale == "smoke":
        base = common.base_config("x+y", scale, "adam", modulus=11)
    elif scale == "laptop":
        base = common.base_config("x/y", scale, "adamw", steps=8_000, eval_every=100)
    else:
        base = common.base_config("x/y", scale, "adam", steps=1_000_000, eval_every=500)
    return [base.with_changes(seed=s) for s in range(n)]


CSV_HEADER = ["seed", "step", "train_accuracy", "val_accuracy", "train_loss", "val_loss"]
KEYS = CSV_HEADER[1:]


@dataclass(frozen=True)
class SeedCurve:
    """One seed's run: its configuration and metrics rows (``KEYS``: step, train and
    validation accuracy, train and validation loss)."""

    config: RunConfig
    rows: list[list]

    def dicts(self) -> list[dict]:
        return [dict(zip(KEYS, r)) for r in self.rows]

    @property
    def steps_done(self) -> int:
        return int(self.rows[-1][0]) if self.rows else 0


@dataclass(frozen=True)
class Curve:
    """Every seed's curves; Figure 4 reads the same."""

    seeds: list[SeedCurve]
    scale: str

    @property
    def config(self) -> RunConfig:
        return self.seeds[0].config


def curve_rows(result) -> list[list]:
    return [
        [m["step"], m["train_accuracy"], m["val_accuracy"], m["train_loss"], m["val_loss"]]
        for m in read_metrics(result.run_dir)
    ]


def measure(results, scale: str, seeds: int | None = None) -> Curve:
    ordered = sorted(results, key=lambda r: r.config.seed)
    return Curve([SeedCurve(r.config, curve_rows(r)) for r in ordered], scale)


def csv_rows(curve: Curve) -> list[list]:
    return [[s.config.seed, *r] for s in curve.seeds for r in s.rows]


def plot(curve: Curve, out_dir: Path) -> list[Path]:
    # Imported here: `reproduce --list` and `--plan` import every figure module and must not wait
    # for matplotlib.
    import matplotlib.pyplot as plt

    from grokkit.plots import apply_style

    common.write_csv(Path(out_dir) / f"{NAME}.csv", CSV_HEADER, csv_rows(curve))
    apply_style()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for i, s in enumerate(curve.seeds):
        pts = [r for r in s.rows if r[0] > 0]
        steps = [r[0] for r in pts]
        first = i == 0
        ax.plot(
            steps,
            [100 * r[1] for r in pts],
            color=TRAIN_COLOR,
            lw=1.0,
            label="train" if first else None,
        )
        ax.plot(
            steps,
            [100 * r[2] for r in pts],
            color=VALIDATION_COLOR,
            lw=1.0,
            label="validation" if first else None,
        )
    ax.set_xscale("log")
    ax.set_ylim(-2, 102)
    ax.set_xlabel("optimization step")
    ax.set_ylabel("accuracy (%)")
    ax.legend()
    cfg = curve.config
    ax.set_title(
        f"{common.op_label(cfg)}, {100 * cfg.train_fraction:.0f}% data, {cfg.preset}, "
        f"{len(curve.seeds)} seed(s)"
    )
    common.add_caption(fig, common.caption(REDUCTIONS, curve.scale))
    return [*common.save(fig, out_dir, NAME), Path(out_dir) / f"{NAME}.csv"]


def delay_bounds(seed: SeedCurve) -> tuple[float, float] | None:
    """(earliest, latest) possible ratio of validation's to training's step at 99 %, from the
    evaluation brackets; latest is inf when validation never got there; None when training
    never did."""
    rows = seed.dicts()
    t_low, t_up = grokking_time.bracket(rows, "train_accuracy", THRESHOLD)
    if t_up is None:
        return None
    v_low, v_up = grokking_time.bracket(rows, "val_accuracy", THRESHOLD)
    if v_up is None:
        return seed.steps_done / max(t_up, 1), float("inf")
    return v_low / max(t_up, 1), (v_up / t_low if t_low else float("inf"))


def delay_signs(curve: Curve) -> tuple[int, int, int]:
    """(seeds whose delay is surely >= 10x, surely < 10x, undecided)."""
    plus = minus = 0
    for s in curve.seeds:
        bounds = delay_bounds(s)
        if bounds is None:
            continue
        earliest, latest = bounds
        plus += earliest >= DELAY_FACTOR
        minus += latest < DELAY_FACTOR
    return plus, minus, len(curve.seeds) - plus - minus


def claims(curve: Curve) -> list[Claim]:
    plus, minus, undecided = delay_signs(curve)
    n = len(curve.seeds)
    power = statistics.power_sign(n, PAPER_SEED_PROBABILITY, claim_records.family_alpha(1))
    return [
        claim_records.sign_claim(
            "delay_decade",
            f"Validation accuracy reaches 99 % at least {DELAY_FACTOR}x the steps after "
            "training accuracy does (a seed's delay judged within its evaluation brackets).",
            "<10^3 vs ~10^6 steps (~10^3x), one run",
            plus,
            minus,
            undecided,
            "seed",
            power,
            f"the paper's ~10^3x delay: each seed beyond {DELAY_FACTOR}x with probability "
            f"{PAPER_SEED_PROBABILITY}",
        )
    ]


def describe(curve: Curve) -> str:
    seeds = curve.seeds
    budget = max(s.config.steps for s in seeds)
    rows = [s.dicts() for s in seeds]
    budgets = [s.steps_done for s in seeds]
    train = statistics.km_median(
        grokking_time.censored_times(rows, budgets, THRESHOLD, "train_accuracy")
    )
    val = statistics.km_median(grokking_time.censored_times(rows, budgets, THRESHOLD))
    bounds = [delay_bounds(s) for s in seeds]
    shown = [
        "n/a" if b is None else f"{b[0]:.3g}-{'inf' if b[1] == float('inf') else f'{b[1]:.3g}'}x"
        for b in bounds
    ]
    return (
        f"{len(seeds)} seed(s), budget {budget:,} steps. Steps to 99 % training accuracy: "
        f"Kaplan-Meier median {claim_records.format_median(train, budget)} ({train.reached} of "
        f"{train.n} seeds reached it); to 99 % validation accuracy: "
        f"{claim_records.format_median(val, budget)} ({val.reached} of {val.n}). Delay of "
        f"validation after training per seed (earliest-latest ratio within the evaluation "
        f"brackets): {', '.join(shown)}."
    )


def placeholder(scale: str, seeds: int | None = None) -> Curve:
    """The planned runs with one empty evaluation each: what a plan knows before training."""
    return Curve([SeedCurve(c, [[0, 0.0, 0.0, 1.0, 1.0]]) for c in runs(scale, seeds)], scale)


def planned_power(scale: str, seeds: int | None = None) -> list[dict]:
    """Each claim's power at the planned number of seeds (the powers depend on counts only)."""
    return claim_records.powers(claims(placeholder(scale, seeds)))
