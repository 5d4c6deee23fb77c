"""Figure 2 (left): best validation accuracy within the budget vs data fraction, 9 optimisers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grokkit.config import RunConfig
from grokkit.experiments import common
from grokkit.optim_config import PRESET_DESCRIPTIONS, PRESETS
from grokkit.plot_style import CATEGORY_COLORS, MARKERS

NAME = "fig2-left"
DESCRIPTION = "S5 x·y: best validation accuracy within 10^5 steps vs data fraction, 9 optimisers"
CLAIM = (
    "Weight decay improves generalisation the most; some generalisation happens even with "
    "full-batch Adam at high data fractions; poor learning rates severely limit it."
)
OPTIONS: tuple[str, ...] = ()
REDUCTIONS = {
    "smoke": "s5_xy, 2 fractions, 1 seed, 1 layer of width 16, 20 steps: code path only.",
    "laptop": (
        "s5_xy as in the paper; fractions 0.5, 0.7, 0.9; 1 seed instead of 3; budget 6,000 "
        "steps instead of 10^5, and 1,000 for the two full-batch optimisers (a full-batch "
        "step costs 11-20x a minibatch step here); evaluations every 100 steps; runs stop 200 "
        "steps after reaching 99 % validation. Paper model, all 9 optimisers."
    ),
    "paper": "s5_xy, fractions 0.05-0.95 step 0.05, 3 seeds, budget 10^5 steps, all 9 optimisers.",
}


LAPTOP_STEPS, LAPTOP_FULL_BATCH_STEPS = 6_000, 1_000


def runs(scale: str) -> list[RunConfig]:
    common.check_scale(scale)
    if scale == "smoke":
        changes, fractions, seeds = {}, (0.4, 0.8), range(1)
    elif scale == "laptop":
        fractions, seeds = (0.5, 0.7, 0.9), range(1)
        changes = {"steps": LAPTOP_STEPS, "eval_every": 100, "stop_after_val_99": 200}
    else:
        changes, fractions, seeds = {}, common.PAPER_FRACTIONS, range(3)
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
class Scores:
    """One row of CSV_HEADER per (optimiser, data fraction)."""

    rows: list[list]
    config: RunConfig  # the first run's: the task, for the title
    budgets: list[int]  # the runs' step budgets, in order
    scale: str


def measure(results, scale: str) -> Scores:
    return Scores(
        table(results), results[0].config, sorted({r.config.steps for r in results}), scale
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
        ax.fill_between(
            x, [100 * p[2] for p in pts], [100 * p[3] for p in pts], color=color, alpha=0.1
        )
    ax.set_ylim(-2, 102)
    ax.set_xlabel("training data fraction")
    ax.set_ylabel("best validation accuracy (%)")
    budgets = scores.budgets
    ax.set_title(
        f"{common.op_label(scores.config)}, budget {' or '.join(f'{b:,}' for b in budgets)} steps "
        "(mean; band = min-max over seeds)"
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    common.add_caption(fig, common.caption(REDUCTIONS, scores.scale))
    return [*common.save(fig, out_dir, NAME), csv_path]


def verdict(scores: Scores) -> str:
    rows = scores.rows
    score = {}
    for name in PRESETS:
        accs = [r[3] for r in rows if r[0] == name]
        if accs:
            score[name] = sum(accs) / len(accs)
    ranking = sorted(score, key=score.get, reverse=True)
    best = ranking[0]
    ranks = {n: i + 1 for i, n in enumerate(ranking)}
    wd = [n for n in ("adamw", "adamw-to-init") if n in score]
    agree = any(ranks[n] == 1 for n in wd)
    return (
        f"Averaged over fractions, the best optimiser was {PRESET_DESCRIPTIONS[best]} "
        f"({common.fmt_pct(score[best])}); the weight-decay variants ranked "
        + ", ".join(f"{n} #{ranks[n]} ({common.fmt_pct(score[n])})" for n in wd)
        + f" of {len(ranking)}, "
        + (
            "agreeing with the paper that weight decay helps most."
            if agree
            else "so weight decay did not help most here, unlike the paper."
        )
    )
