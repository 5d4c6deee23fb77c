"""Figure 2 (left): best validation accuracy within the budget vs data fraction, 9 optimisers.

The claims are tested on blocks of runs (one block per data fraction and seed, every optimiser
trained in it), each run scored by how well it generalised: a run that reached 99 % validation
accuracy scores above every run that did not, sooner above later; the others by their best
validation accuracy.

* ``weight_decay_best``: AdamW's (weight decay 1) rank among the optimisers, block by block; an
  exact permutation test of the null that its rank is a random draw of the block's ranks (every
  optimiser exchangeable), two-sided: ranking near the top holds, near the bottom contradicts.
* ``full_batch_adam_generalises``: full-batch Adam's validation accuracy at the last evaluation,
  at the largest fraction, pooled over its seeds, against chance (one answer of the group's
  order): a one-sided exact binomial test over the validation equations (it conditions on the
  runs trained).
* ``poor_lr_limits``: the two poor learning rates' (3e-4, 3e-3) mean rank, by the same
  permutation test; ranking near the bottom holds, near the top contradicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grokkit.analysis import statistics
from grokkit.config import RunConfig
from grokkit.experiments import claims as claim_records, common
from grokkit.experiments.claims import Claim
from grokkit.optim_config import PRESET_DESCRIPTIONS, PRESETS
from grokkit.plot_style import CATEGORY_COLORS, MARKERS

NAME = "fig2-left"
DESCRIPTION = "S5 x·y: best validation accuracy within 10^5 steps vs data fraction, 9 optimisers"
CLAIM = (
    "Weight decay improves generalisation the most; some generalisation happens even with "
    "full-batch Adam at high data fractions; poor learning rates severely limit it."
)
OPTIONS: tuple[str, ...] = ("seeds",)
SEEDS = {"smoke": 1, "laptop": 1, "paper": 3}
TESTS = (
    " Claims: AdamW's and the poor learning rates' ranks among the 9 optimisers per (fraction, "
    "seed) block, exact permutation tests; full-batch Adam's validation accuracy at the largest "
    "fraction against chance, exact binomial test; Holm over the three."
)
REDUCTIONS = {
    "smoke": "s5_xy, 2 fractions, 1 seed, 1 layer of width 16, 20 steps: code path only.",
    "laptop": (
        "s5_xy as in the paper; fractions 0.5, 0.7, 0.9; 1 seed instead of 3 (3 blocks for the "
        "rank tests); budget 6,000 steps instead of 10^5, and 1,000 for the two full-batch "
        "optimisers (a full-batch step costs 11-20x a minibatch step here); evaluations every "
        "100 steps; runs stop 200 steps after reaching 99 % validation. Paper model, all 9 "
        "optimisers." + TESTS
    ),
    "paper": (
        "s5_xy, fractions 0.05-0.95 step 0.05, 3 seeds, budget 10^5 steps, all 9 optimisers."
        + TESTS
    ),
}
THRESHOLD = 0.99
WEIGHT_DECAY = "adamw"
FULL_BATCH = "adam-full-batch"
POOR_LR = ("adam-lr3e-4", "adam-lr3e-3")
# The paper's effects, for the power: AdamW first in a block with probability 0.7, second
# otherwise (weight decay towards the initialisation is "not quite as effective"); the poor
# learning rates among the three worst; full-batch Adam at 10 % validation accuracy.
PAPER_WEIGHT_DECAY_RANKS = {1.0: 0.7, 2.0: 0.3}
PAPER_POOR_LR_RANKS = {7.5: 1 / 3, 8.0: 1 / 3, 8.5: 1 / 3}
PAPER_FULL_BATCH_ACCURACY = 0.10


LAPTOP_STEPS, LAPTOP_FULL_BATCH_STEPS = 6_000, 1_000


def runs(scale: str, seeds: int | None = None) -> list[RunConfig]:
    common.check_scale(scale)
    seeds = range(common.check_seeds(seeds, SEEDS[scale]))
    if scale == "smoke":
        changes, fractions = {}, (0.4, 0.8)
    elif scale == "laptop":
        fractions = (0.5, 0.7, 0.9)
        changes = {"steps": LAPTOP_STEPS, "eval_every": 100, "stop_after_val_99": 200}
    else:
        changes, fractions = {}, common.PAPER_FRACTIONS
    configs = [
        common.base_config("s5_xy", scale, name, train_fraction=f, seed=s, **changes)
        for name in PRESETS
        for f in fractions
        for s in seeds
    ]
    if scale == "laptop":  # full-batch steps see the whole training set: a smaller budget
        configs = [
            c.with_changes(steps=LAPTOP_FULL_BATCH_STEPS) if c.optimizer.batch_size == 0 else c
            for c in configs
        ]
    return configs


CSV_HEADER = [
    "preset",
    "train_fraction",
    "n_seeds",
    "mean_best_val_accuracy",
    "std_best_val_accuracy",
    "min_best_val_accuracy",
    "max_best_val_accuracy",
]


def table(results) -> list[list]:
    rows = []
    for (name, f), group in common.group_by(
        results, lambda r: (r.config.preset, r.config.train_fraction)
    ).items():
        accs = [r.summary["best_val_accuracy"] for r in group]
        mean, std = common.mean_std(accs)
        rows.append([name, f, len(accs), mean, std, min(accs), max(accs)])
    return rows


@dataclass(frozen=True)
class RunScore:
    """One run's numbers for the tests."""

    preset: str
    train_fraction: float
    seed: int
    best_val_accuracy: float
    steps_to_val_99: int | None
    steps: int  # its budget
    final_val_accuracy: float | None
    n_val: int | None


@dataclass(frozen=True)
class Scores:
    """One row of CSV_HEADER per (optimiser, data fraction), and every run's numbers."""

    rows: list[list]
    config: RunConfig  # the first run's: the task, for the title
    budgets: list[int]  # the runs' step budgets, in order
    scale: str
    runs: list[RunScore]


def run_score(r) -> RunScore:
    s = r.summary
    return RunScore(
        r.config.preset,
        r.config.train_fraction,
        r.config.seed,
        s["best_val_accuracy"],
        s.get("steps_to_val_99"),
        r.config.steps,
        s.get("val_accuracy"),
        s.get("n_val"),
    )


def measure(results, scale: str, seeds: int | None = None) -> Scores:
    return Scores(
        table(results),
        results[0].config,
        sorted({r.config.steps for r in results}),
        scale,
        [run_score(r) for r in results],
    )


def plot(scores: Scores, out_dir: Path) -> list[Path]:
    # Imported here: `reproduce --list` and `--plan` import every figure module and must not wait
    # for matplotlib.
    import matplotlib.pyplot as plt

    from grokkit.plots import apply_style

    rows = scores.rows
    csv_path = common.write_csv(Path(out_dir) / f"{NAME}.csv", CSV_HEADER, rows)
    apply_style()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    several = max(r[2] for r in rows) > 1  # a min-max band only over several seeds
    # Nine optimisers, several of them near 0 %: a colour and a marker each, so that lines drawn
    # over one another can still be told apart.
    for i, name in enumerate(PRESETS):
        pts = sorted((r[1], r[3], r[5], r[6]) for r in rows if r[0] == name)
        if not pts:
            continue
        x = [p[0] for p in pts]
        color = CATEGORY_COLORS[i % len(CATEGORY_COLORS)]
        ax.plot(
            x,
            [100 * p[1] for p in pts],
            "-",
            marker=MARKERS[i % len(MARKERS)],
            ms=5,
            mfc="none",
            color=color,
            label=PRESET_DESCRIPTIONS[name],
        )
        if several:
            ax.fill_between(
                x, [100 * p[2] for p in pts], [100 * p[3] for p in pts], color=color, alpha=0.1
            )
    ax.set_ylim(-2, 102)
    ax.set_xlabel("training data fraction")
    ax.set_ylabel("best validation accuracy (%)")
    budgets = scores.budgets
    ax.set_title(
        f"{common.op_label(scores.config)}, budget {' or '.join(f'{b:,}' for b in budgets)} steps "
        + ("(mean; band = min-max over seeds)" if several else "(one seed per point)")
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    common.add_caption(fig, common.caption(REDUCTIONS, scores.scale))
    return [*common.save(fig, out_dir, NAME), csv_path]


def score(run: RunScore, longest: int) -> float:
    """How well a run generalised: in (1, 2] when it reached 99 % validation (sooner higher,
    steps over the longest budget), else its best validation accuracy (<= 1)."""
    if run.steps_to_val_99 is not None:
        return 2.0 - run.steps_to_val_99 / longest
    return run.best_val_accuracy


def blocks(scores: Scores) -> dict[tuple[float, int], dict[str, float]]:
    """(fraction, seed) -> preset -> score, every block with at least two optimisers."""
    longest = max((r.steps for r in scores.runs), default=1)
    out: dict[tuple[float, int], dict[str, float]] = {}
    for r in scores.runs:
        out.setdefault((r.train_fraction, r.seed), {})[r.preset] = score(r, longest)
    return {k: v for k, v in out.items() if len(v) >= 2}


def ranks_of(scores: Scores, members: tuple[str, ...]) -> tuple[list[float], float, int]:
    """(the members' mean rank per block, the rank test's p, the number of optimisers)."""
    tested, per_block = [], []
    for by_preset in blocks(scores).values():
        names = list(by_preset)
        idx = [names.index(m) for m in members if m in by_preset]
        if not idx:
            continue
        values = [by_preset[n] for n in names]
        tested.append((values, idx))
        ranks = statistics.midranks(values)
        per_block.append(sum(ranks[i] for i in idx) / len(idx))
    _, p = statistics.rank_test(tested)
    n_arms = max((len(v) for v, _ in tested), default=0)
    return per_block, p, n_arms


def _rank_claim(
    id: str, claim: str, paper: str, scores: Scores, members, high: bool, alt: dict, m: int
) -> Claim:
    """``high``: the paper says the members rank near the top (rank 1)."""
    per_block, p, n_arms = ranks_of(scores, members)
    test = (
        "exact permutation test of the mean rank over (fraction, seed) blocks (rank 1: "
        "generalised best; ties share their mean rank); power assumes per-block mean ranks "
        + ", ".join(f"{k:g} w.p. {v:.2f}" for k, v in alt.items())
    )
    null = "within a block every optimiser's rank is equally likely (exchangeable optimisers)"
    power = statistics.power_rank_test(
        n_arms or len(PRESETS), len(members), len(per_block), alt, claim_records.family_alpha(m)
    )
    if not per_block or n_arms < 3:
        return Claim(
            id,
            claim,
            paper,
            None,
            None,
            test,
            null,
            float("nan"),
            power,
            why="no block with the optimisers compared",
        )
    mean = sum(per_block) / len(per_block)
    top = mean < (n_arms + 1) / 2
    return Claim(
        id,
        claim,
        paper,
        mean,
        statistics.bootstrap_mean_interval(per_block),
        test,
        null,
        p,
        power,
        if_rejected="holds" if top == high else "contradicted",
    )


def chance(config: RunConfig) -> float:
    """One answer of the group's order (S5: 120 permutations; Z_p: p residues)."""
    return 1 / 120 if config.operation.startswith("s5") else 1 / config.modulus


def full_batch_counts(scores: Scores) -> tuple[int, int, float | None]:
    """(correct, validation equations) of full-batch Adam at the largest fraction, pooled over
    seeds, and that fraction."""
    runs = [r for r in scores.runs if r.preset == FULL_BATCH]
    if not runs:
        return 0, 0, None
    top = max(r.train_fraction for r in runs)
    counted = [
        r for r in runs if r.train_fraction == top and r.n_val and r.final_val_accuracy is not None
    ]
    k = sum(round(r.final_val_accuracy * r.n_val) for r in counted)
    return k, sum(r.n_val for r in counted), top


def claims(scores: Scores) -> list[Claim]:
    m = 3
    k, n, top = full_batch_counts(scores)
    p0 = chance(scores.config)
    full_batch = Claim(
        "full_batch_adam_generalises",
        "Full-batch Adam generalises above chance at the largest data fraction tried "
        f"({'none' if top is None else f'{top:g}'}): validation accuracy at its last evaluation.",
        "some generalisation at high fractions",
        k / n if n else None,
        statistics.share_interval(k, n),
        "one-sided exact binomial test over the validation equations, pooled over seeds; power "
        f"assumes {100 * PAPER_FULL_BATCH_ACCURACY:.0f} % validation accuracy",
        f"validation accuracy at most chance ({p0:.3g})",
        statistics.binomial_above_p(k, n, p0),
        statistics.power_binomial_above(
            n, p0, PAPER_FULL_BATCH_ACCURACY, claim_records.family_alpha(m)
        ),
        why="" if n else "no full-batch Adam run with validation counts",
    )
    return [
        _rank_claim(
            "weight_decay_best",
            "AdamW (weight decay 1) generalises best of the 9 optimisers: its rank per (data "
            "fraction, seed) block is near the top.",
            "the top curve of Figure 2 (left)",
            scores,
            (WEIGHT_DECAY,),
            True,
            PAPER_WEIGHT_DECAY_RANKS,
            m,
        ),
        full_batch,
        _rank_claim(
            "poor_lr_limits",
            "Adam with a poor learning rate (3e-4 or 3e-3) generalises worst: their mean rank "
            "per block is near the bottom.",
            "severely limited generalisation",
            scores,
            POOR_LR,
            False,
            PAPER_POOR_LR_RANKS,
            m,
        ),
    ]


def describe(scores: Scores) -> str:
    runs = scores.runs
    n_seeds = len({r.seed for r in runs})
    fractions = sorted({r.train_fraction for r in runs})
    parts = []
    for name in PRESETS:
        mine = [r for r in runs if r.preset == name]
        if not mine:
            continue
        by_f = ", ".join(
            common.fmt_pct(
                sum(r.best_val_accuracy for r in mine if r.train_fraction == f)
                / max(1, sum(r.train_fraction == f for r in mine))
            )
            for f in fractions
        )
        reached = sum(r.steps_to_val_99 is not None for r in mine)
        parts.append(f"{name} {by_f} ({reached} of {len(mine)} runs reached 99 %)")
    wd, _, _ = ranks_of(scores, (WEIGHT_DECAY,))
    lr, _, _ = ranks_of(scores, POOR_LR)
    k, n, top = full_batch_counts(scores)
    return (
        f"{n_seeds} seed(s); mean best validation accuracy at fractions "
        f"{', '.join(f'{f:g}' for f in fractions)}: {'; '.join(parts)}. AdamW's rank per "
        f"block (1 of 9: best): {', '.join(f'{x:g}' for x in wd) or 'n/a'}; the poor learning "
        f"rates' mean rank per block: {', '.join(f'{x:g}' for x in lr) or 'n/a'}. Full-batch "
        f"Adam at fraction {'n/a' if top is None else f'{top:g}'}: {k} of {n} validation "
        "equations right at its last evaluation."
    )


def planned_power(scale: str, seeds: int | None = None) -> list[dict]:
    """Each claim's power at the planned blocks and validation sizes (counts only)."""
    from grokkit.ops import get_operation

    configs = runs(scale, seeds)

    def n_val(c: RunConfig) -> int:
        n = get_operation(c.operation, c.modulus).n_equations
        return n - round(c.train_fraction * n)

    placeholder = [
        RunScore(c.preset, c.train_fraction, c.seed, 0.0, None, c.steps, 0.0, n_val(c))
        for c in configs
    ]
    budgets = sorted({c.steps for c in configs})
    return claim_records.powers(claims(Scores([], configs[0], budgets, scale, placeholder)))
