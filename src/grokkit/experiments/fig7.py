"""Figure 7 (A.5): sharpness φ vs validation accuracy over seeds, at the step where about half
grokked.

The paper's protocol (Appendix A.5): seeds are trained "for a fixed number of steps until
approximately half of them achieved high validation accuracy", then φ is measured. We train every
seed with weight snapshots (``snapshot_every``), choose T, the snapshot step at which the number of
seeds that have reached 99 % validation accuracy is closest to half (``half_grokked_step``), and
measure φ and the validation accuracy of every seed at T.

φ is measured by each of grokkit.analysis.sharpness's definitions (``SHARPNESS_DEFINITIONS``), on
each run's own training loss for its own architecture (read from its config): ``keskar`` (A = the
identity, the box |y_i| <= ε(|x_i| + 1), ε = 1e-3, the maximum of the loss in it found by 10
iterations of L-BFGS-B), ``keskar-subspace`` (the same in a random 10-dimensional subspace, as
Keskar et al. 2017 Sec 2.2.2) and ``openai-grok`` (what the authors' released ``get_sharpness``
returns). Each gets its own Spearman test; the ``sharpness`` and ``spearman_*`` columns of the CSV
are the ``keskar`` definition's, as before.

The claims (``claims``), per architecture and definition, one Holm family for the figure:

* ``negative``: null "φ and validation accuracy at T are unrelated" (every pairing of the seeds'
  accuracies with their sharpnesses equally likely), decided by the two-sided permutation p of
  Spearman's rho; a rejection with rho < 0 holds the paper's claim, with rho > 0 contradicts it;
* ``paper_rho``: null "rho = -0.795" (the paper's value), decided by the Fisher-z test with
  Bonett and Wright's variance; a rejection contradicts the paper's value.

The interval of rho is the Fisher-z (Bonett-Wright) 95 % interval. Power is computed at the
family's first Holm level (alpha / number of claims, a lower bound): for ``negative`` against the
paper's rho = -0.795, for ``paper_rho`` against rho = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grokkit.analysis import statistics
from grokkit.analysis.sharpness import SHARPNESS_DEFINITIONS
from grokkit.config import RunConfig
from grokkit.errors import InputError
from grokkit.experiments import claims as claim_records, common
from grokkit.runs import read_metrics, snapshot_steps

NAME = "fig7"
DESCRIPTION = (
    "S5 x·y: sharpness (three definitions) vs validation accuracy over seeds when half grokked"
)
CLAIM = (
    "Networks that grok sit in flatter minima: sharpness and validation accuracy have "
    "Spearman rho = -0.795 (p < 1.4e-5) over seeds on S5."
)
OPTIONS: tuple[str, ...] = ("arch", "seeds")
PAPER_RHO = -0.795
SEEDS = {"smoke": 3, "laptop": 20, "paper": 20}
ARCH_CHOICES = ("grokkit", "openai-grok", "both")
EPSILON, ITERATIONS = 1e-3, 10  # Keskar et al.'s box size and L-BFGS-B iterations
PERMUTATIONS = 9999
REDUCTIONS = {
    "smoke": (
        "s5_xy at 30 % data, 3 seeds per architecture, 1 layer of width 16, 20 steps, snapshots "
        "every 5: code path only."
    ),
    "laptop": (
        "the authors' protocol reduced: s5_xy at 70 % data (their script's T-70), one split "
        "(split seed 0, as their code: seeds change only the initialisation and batch order), "
        "dropout 0, 10 warm-up updates, AdamW (the paper's recipe); 20 seeds per architecture "
        "(as theirs), 5,000 steps with snapshots and evaluations every 250; T is the snapshot "
        "step at which about half the seeds have reached 99 % validation."
    ),
    "paper": (
        "the authors' protocol: s5_xy at 70 % data, split seed 0, dropout 0, 10 warm-up "
        "updates, AdamW, 20 seeds per architecture (their SD-0..19), 20,000 steps with "
        "snapshots every 500; T chosen as at laptop scale."
    ),
}


def _archs(arch: str | None) -> tuple[str, ...]:
    if arch not in (None, *ARCH_CHOICES):
        raise InputError(f"fig7 --arch must be one of {', '.join(ARCH_CHOICES)}, got {arch!r}")
    return ("grokkit", "openai-grok") if arch in (None, "both") else (arch,)


def runs(scale: str, arch: str | None = None, seeds: int | None = None) -> list[RunConfig]:
    """Every seed of each architecture asked for (both by default), the same seeds for each;
    ``seeds`` per architecture (default ``SEEDS[scale]``)."""
    common.check_scale(scale)
    n_seeds = common.check_seeds(seeds, SEEDS[scale], minimum=4)
    if scale == "smoke":
        # A small training set and three seeds: each seed's φ by three definitions is the cost.
        base, seeds = (
            common.base_config("s5_xy", scale, train_fraction=0.3, snapshot_every=5),
            range(n_seeds),
        )
    elif scale == "laptop":
        # Evaluated at the snapshots only (and on the early log grid): T and the accuracy at T are
        # read at snapshot steps, and every evaluation of the whole S5 table costs ~7 steps.
        base = common.base_config(
            "s5_xy",
            scale,
            train_fraction=0.7,
            split_seed=0,
            steps=5_000,
            snapshot_every=250,
            eval_every=250,
        )
        seeds = range(n_seeds)
    else:
        base = common.base_config(
            "s5_xy", scale, train_fraction=0.7, split_seed=0, steps=20_000, snapshot_every=500
        )
        seeds = range(n_seeds)
    return [base.with_changes(arch=a, seed=s) for a in _archs(arch) for s in seeds]


def by_arch(results) -> dict[str, list]:
    """The results of each architecture, in the order the architectures first appear."""
    groups: dict[str, list] = {}
    for r in results:
        groups.setdefault(r.config.arch, []).append(r)
    return groups


# ---------------------------------------------------------------- the protocol


def half_grokked_step(first_steps: list[int | None], candidates: list[int]) -> int:
    """T: the candidate step at which the number of seeds whose first step at >= 99 % validation
    is at or before it lies closest to half the seeds (the earliest such step on a tie).

    ``first_steps``: per seed, its first evaluated step at >= 99 % (None: never). When fewer than
    half ever get there, that is the step by which the last of them got there; when none does,
    the last candidate (the most-trained weights)."""
    if not candidates:
        raise ValueError("half_grokked_step needs at least one candidate step")
    if all(f is None for f in first_steps):
        return max(candidates)
    half = len(first_steps) / 2

    def distance(step: int) -> float:
        return abs(sum(f is not None and f <= step for f in first_steps) - half)

    return min(sorted(candidates), key=distance)  # min keeps the first (earliest) of equals


def accuracy_at(metrics: list[dict], step: int) -> float:
    """The validation accuracy evaluated at ``step`` (snapshots fall on evaluation steps)."""
    for row in metrics:
        if row["step"] == step:
            return float(row["val_accuracy"])
    raise ValueError(
        f"no evaluation at step {step}: snapshot_every must be a multiple of eval_every"
    )


def common_snapshot_step_list(results) -> list[int]:
    """Steps at which every seed kept a snapshot."""
    kept = [set(snapshot_steps(r.run_dir)) for r in results]
    steps = sorted(set.intersection(*kept)) if kept else []
    if not steps:
        raise ValueError("Figure 7 needs runs with common weight snapshots (snapshot_every > 0)")
    return steps


def spearman(a, b) -> tuple[float, float]:
    """Spearman's rho and its two-sided p (scipy's t approximation); NaN for constant inputs."""
    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return math.nan, math.nan
    # Imported here: `reproduce --list` and `--plan` import every figure module and must not wait
    # for scipy (or, in plot, matplotlib).
    from scipy.stats import spearmanr

    result = spearmanr(a, b)
    return float(result.statistic), float(result.pvalue)


def permutation_p(a, b, resamples: int = PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided permutation p of Spearman's rho: the accuracies shuffled against the
    sharpnesses."""
    if math.isnan(spearman(a, b)[0]):
        return math.nan
    from scipy.stats import permutation_test

    result = permutation_test(
        (np.asarray(a, dtype=float), np.asarray(b, dtype=float)),
        _spearman_along,
        permutation_type="pairings",
        vectorized=True,
        n_resamples=resamples,
        alternative="two-sided",
        random_state=seed,
    )
    return float(result.pvalue)


def _spearman_along(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho of every resample at once: the Pearson correlation of the ranks (ties
    averaged, as scipy's spearmanr), along ``axis``. One call per batch instead of one spearmanr
    per permutation (10,000 of them for each definition and architecture)."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=axis), rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    return (rx * ry).sum(axis=axis) / np.sqrt((rx**2).sum(axis=axis) * (ry**2).sum(axis=axis))


# ---------------------------------------------------------------- table, plot, verdict

PRIMARY = "keskar"  # the definition of the `sharpness` and `spearman_*` columns (as before)
TITLES = {
    "keskar": "Keskar et al., A = identity (max of the loss in the box)",
    "keskar-subspace": "Keskar et al., random 10-dim subspace (max)",
    "openai-grok": "the authors' get_sharpness (min of the loss)",
}


def column(definition: str) -> str:
    """The CSV column of a definition's φ: ``phi_keskar``, ``phi_keskar_subspace``, ..."""
    return "phi_" + definition.replace("-", "_")


def _suffix(definition: str) -> str:
    return definition.replace("-", "_")


STAT_COLUMNS = ("spearman_rho", "spearman_p", "permutation_p", "rho_ci_low", "rho_ci_high")
CSV_HEADER = [
    "arch",
    "seed",
    "step_T",
    "sharpness",
    "val_accuracy_at_T",
    "first_step_val_99",
    "final_val_accuracy",
    *STAT_COLUMNS,
    *(column(d) for d in SHARPNESS_DEFINITIONS),
    *(f"{c}_{_suffix(d)}" for d in SHARPNESS_DEFINITIONS for c in STAT_COLUMNS),
]


def correlation(phis, vals) -> dict:
    """Spearman rho, its p, the permutation p and the Fisher-z (Bonett-Wright) 95 % interval of
    one definition's φ against the validation accuracies."""
    rho, p = spearman(phis, vals)
    return {
        "rho": rho,
        "p": p,
        "perm_p": permutation_p(phis, vals),
        "ci": statistics.spearman_interval(rho, len(vals)),
    }


def phis_at(run_dir: Path, step: int) -> dict[str, float]:
    """A run's φ at ``step`` by every definition (one worker's task in ``measure``)."""
    # Imported here: it trains nothing but needs PyTorch, which `reproduce --list` does without.
    from grokkit.analysis.run_sharpness import run_sharpness

    # The loss is the run's own architecture's (run_sharpness reads the run's config).
    return {
        d: run_sharpness(run_dir, EPSILON, ITERATIONS, step=step, definition=d)
        for d in SHARPNESS_DEFINITIONS
    }


def half_grokked(results) -> int:
    """T of one architecture's seeds (``half_grokked_step`` over their common snapshots)."""
    first = [r.summary["steps_to_val_99"] for r in results]
    return half_grokked_step(first, common_snapshot_step_list(results))


def table(results, measured: list[dict[str, float]] | None = None) -> dict:
    """The seeds of one architecture at T: their CSV rows, φ by every definition, validation
    accuracies and curves, and each definition's statistics (``correlation``). ``measured``:
    each run's ``phis_at`` T, if already computed."""
    first = [r.summary["steps_to_val_99"] for r in results]
    T = half_grokked(results)
    metrics = [read_metrics(r.run_dir) for r in results]
    vals = [accuracy_at(m, T) for m in metrics]
    measured = measured or [phis_at(r.run_dir, T) for r in results]
    phis = {d: [m[d] for m in measured] for d in SHARPNESS_DEFINITIONS}
    stats = {d: correlation(phis[d], vals) for d in SHARPNESS_DEFINITIONS}

    def stat_cells(s: dict) -> list:
        return [s["rho"], s["p"], s["perm_p"], *s["ci"]]

    rows = []
    for i, (r, v, f) in enumerate(zip(results, vals, first)):
        rows.append(
            [
                r.config.arch,
                r.config.seed,
                T,
                phis[PRIMARY][i],
                v,
                f,
                r.summary["val_accuracy"],
                *stat_cells(stats[PRIMARY]),
                *(phis[d][i] for d in SHARPNESS_DEFINITIONS),
                *(c for d in SHARPNESS_DEFINITIONS for c in stat_cells(stats[d])),
            ]
        )
    return {
        "rows": rows,
        "T": T,
        **stats[PRIMARY],
        "stats": stats,
        "phis": phis,
        "vals": vals,
        "n": len(rows),
        "grokked_at_T": sum(f is not None and f <= T for f in first),
        "curves": [[(m["step"], m["val_accuracy"]) for m in ms] for ms in metrics],
    }


@dataclass(frozen=True)
class Sharpness:
    """``table`` of each architecture, in the order the architectures first appear."""

    tables: dict[str, dict]
    config: RunConfig  # the first run's: the task, for the title
    scale: str


def measure(results, scale: str, arch: str | None = None) -> Sharpness:
    """φ by every definition and its statistics, once per architecture. ``arch`` is the option
    ``runs`` took; the architectures measured are those of ``results``. The runs' φ are computed
    in parallel, one worker per core (each run's own folder caches its values)."""
    groups = by_arch(results)
    measured = measured_phis(groups)
    tables = {a: table(rs, measured[a]) for a, rs in groups.items()}
    return Sharpness(tables, results[0].config, scale)


def measured_phis(groups: dict[str, list]) -> dict[str, list[dict[str, float]]]:
    """Each architecture's runs' ``phis_at`` their T, computed by one worker per core."""
    from grokkit.sweep.executors import core_budget, map_in_workers

    steps = {a: half_grokked(rs) for a, rs in groups.items()}  # T, once per architecture
    tasks = [(r.run_dir, steps[a]) for a, rs in groups.items() for r in rs]
    done = iter(map_in_workers(_phis_task, tasks, core_budget()))
    return {a: [next(done) for _ in rs] for a, rs in groups.items()}


def _phis_task(task: tuple[Path, int]) -> dict[str, float]:
    return phis_at(*task)


# The smallest p-value written as a number: a permutation p is at least 1/(PERMUTATIONS + 1), and
# scipy's t approximation of Spearman's p reaches 0 at |rho| = 1; below this, "p < 0.0001".
P_FLOOR = 1 / (PERMUTATIONS + 1)


def format_p(p: float, name: str = "p") -> str:
    """``p = 0.031``, ``p < 0.0001`` below P_FLOOR (never ``p = 0``), ``p undefined`` for NaN."""
    if p is None or math.isnan(p):
        return f"{name} undefined"
    if p < P_FLOOR:
        return f"{name} < {P_FLOOR:.2g}"
    return f"{name} = {p:.2g}"


def _stats_text(s: dict, n: int) -> str:
    """rho with the declared test's p (the permutation test) and its Fisher-z interval."""
    if math.isnan(s["rho"]):
        return "Spearman ρ undefined (constant φ or accuracy)"
    lo, hi = s["ci"]
    return (
        f"Spearman ρ = {s['rho']:.3f} ({format_p(s['perm_p'], 'permutation p')}; "
        f"95 % interval [{lo:.2f}, {hi:.2f}]), n = {n} seeds"
    )


def _panel_stats(s: dict) -> str:
    """One short line of one definition's statistics for a panel's title."""
    if math.isnan(s["rho"]):
        return "Spearman ρ undefined (constant φ or accuracy)"
    lo, hi = s["ci"]
    return f"ρ = {s['rho']:.2f} [{lo:.2f}, {hi:.2f}], {format_p(s['perm_p'], 'perm. p')}"


def _draw_sharpness(axes, arch: str, t: dict) -> None:
    """One architecture's panels: validation accuracy at T against φ, per definition."""
    accuracy = [100 * v for v in t["vals"]]
    for d, ax in zip(SHARPNESS_DEFINITIONS, axes):
        color = "tab:blue" if arch == "grokkit" else "tab:orange"
        ax.scatter(t["phis"][d], accuracy, color=color, s=18)
        # Keskar's φ is a percentage increase of the loss; the authors' is a signed ratio.
        unit = "" if d == "openai-grok" else " (% loss increase)"
        ax.set_xlabel(f"φ {d} at step {t['T']}{unit}")
        ax.set_ylabel("validation accuracy at T (%)")
        ax.set_title(f"{arch}, φ {d}\n{_panel_stats(t['stats'][d])}", fontsize=8)


def _draw_curves(ax, arch: str, t: dict) -> None:
    """Every seed's validation accuracy, with T marked."""
    for curve in t["curves"]:
        pts = [(s, v) for s, v in curve if s > 0]
        ax.plot([s for s, _ in pts], [100 * v for _, v in pts], color="tab:gray", lw=0.7, alpha=0.6)
    # T is named in the title, not in a legend that would sit on the curves.
    ax.axvline(t["T"], color="tab:red", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("optimization step")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(
        f"{arch}: each seed's validation accuracy\nred: T = {t['T']}, {t['grokked_at_T']}/{t['n']} "
        "at >= 99 % by then",
        fontsize=8,
    )


def _label(fig, sharpness: Sharpness) -> None:
    cfg = sharpness.config
    seeds = "/".join(sorted({str(t["n"]) for t in sharpness.tables.values()}))
    fig.suptitle(
        f"{common.op_label(cfg)}, {100 * cfg.train_fraction:.0f}% data: sharpness vs validation "
        f"accuracy over {seeds} seeds per architecture (paper: ρ = -0.795, p < 1.4e-5)",
        fontsize=10,
    )
    common.add_caption(
        fig,
        common.caption(
            REDUCTIONS,
            sharpness.scale,
            (
                "φ is measured on each run's full training set at its snapshot of step T "
                f"(ε = {EPSILON:g}, {ITERATIONS} L-BFGS-B iterations, seed 0), by three "
                "definitions (grokkit.analysis.sharpness). Intervals: Fisher-z (Bonett-Wright); "
                "the claims' tests and verdicts are in fig7.json and REPORT.md."
            ),
        ),
    )


def plot(sharpness: Sharpness, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    from grokkit.plots import apply_style

    tables = sharpness.tables
    csv_path = common.write_csv(
        Path(out_dir) / f"{NAME}.csv",
        CSV_HEADER,
        [row for t in tables.values() for row in t["rows"]],
    )
    apply_style()
    n_panels = len(SHARPNESS_DEFINITIONS) + 1
    fig, grid = plt.subplots(
        len(tables),
        n_panels,
        figsize=(4.3 * n_panels, 4.4 * len(tables)),
        layout="constrained",
        squeeze=False,
    )
    for axes, (arch, t) in zip(grid, tables.items()):
        _draw_sharpness(axes, arch, t)
        _draw_curves(axes[-1], arch, t)
    _label(fig, sharpness)
    return [*common.save(fig, out_dir, NAME), csv_path]


def claims(sharpness: Sharpness) -> list[claim_records.Claim]:
    """Two claims per architecture and definition (the module's docstring): rho < 0, and rho
    equal to the paper's -0.795."""
    cells = [
        (a, d, s, t["n"])
        for a, t in sharpness.tables.items()
        for d, s in t.get("stats", {PRIMARY: t}).items()
    ]
    alpha = claim_records.ALPHA / max(1, 2 * len(cells))  # Holm's first level: power's bound
    out = []
    for a, d, s, n in cells:
        out += _cell_claims(a, d, s, n, alpha)
    return out


def _cell_claims(arch: str, definition: str, s: dict, n: int, alpha: float) -> list:
    rho, interval = s["rho"], tuple(s["ci"])
    where = f"arch {arch}, φ {definition}, {n} seeds at T"
    if math.isnan(rho):
        why = "Spearman rho is undefined (constant sharpness or accuracy)"
        return [
            claim_records.Claim.untestable(
                f"{arch}.{definition}.{k}", f"{c} ({where}).", "-0.795", None, why
            )
            for k, c in (
                ("negative", "φ and accuracy are negatively correlated"),
                ("paper_rho", "Spearman rho = -0.795"),
            )
        ]
    against_paper = statistics.spearman_against(rho, n, PAPER_RHO)
    return [
        claim_records.Claim(
            id=f"{arch}.{definition}.negative",
            claim=f"Sharpness and validation accuracy are negatively correlated ({where}).",
            paper_value="rho = -0.795 (p < 1.4e-5)",
            measured=rho,
            interval=interval,
            test="permutation test of Spearman rho (9,999 pairings)",
            null="φ and validation accuracy are unrelated (rho = 0)",
            p_value=s["perm_p"],
            power=statistics.power_spearman(PAPER_RHO, n, alpha),
            if_rejected="holds" if rho < 0 else "contradicted",
        ),
        claim_records.Claim(
            id=f"{arch}.{definition}.paper_rho",
            claim=f"Spearman rho is the paper's -0.795 ({where}).",
            paper_value="-0.795",
            measured=rho,
            interval=interval,
            test=against_paper.name + " (Bonett-Wright variance)",
            null=against_paper.null,
            p_value=against_paper.p_value,
            power=statistics.power_spearman(0.0, n, alpha, rho0=PAPER_RHO),
            if_rejected="contradicted",
        ),
    ]


def planned_power(scale: str, arch: str | None = None, seeds: int | None = None) -> list[dict]:
    """Each claim's power at the planned seeds, at the family's first Holm level."""
    from grokkit.analysis import statistics

    n = common.check_seeds(seeds, SEEDS[scale], minimum=4)
    cells = [(a, d) for a in _archs(arch) for d in SHARPNESS_DEFINITIONS]
    alpha = claim_records.ALPHA / (2 * len(cells))
    negative = statistics.power_spearman(PAPER_RHO, n, alpha)
    paper = statistics.power_spearman(0.0, n, alpha, rho0=PAPER_RHO)
    return [
        row
        for a, d in cells
        for row in (
            {"id": f"{a}.{d}.negative", "power": negative, "effect": "the paper's rho = -0.795"},
            {
                "id": f"{a}.{d}.paper_rho",
                "power": paper,
                "effect": "a true rho of 0, tested against -0.795",
            },
        )
    ]


def disagreement(sharpness: Sharpness) -> str:
    """Which of the hypotheses tested here explains a disagreement with the paper: architecture
    (grokkit's model against the authors') and sharpness definition (the three), read from the
    ``negative`` claims' verdicts. Seeds, data fraction and training length are fixed by the
    protocol."""
    records = claim_records.decide(claims(sharpness), sharpness.scale)
    cells = {
        tuple(r["id"].split(".")[:2]): r["verdict"] for r in records if r["id"].endswith("negative")
    }
    holds = [k for k, v in cells.items() if v == "holds"]
    listing = "; ".join(f"{a} / {d}: {v}" for (a, d), v in cells.items())
    if len(holds) == len(cells):
        return f"No disagreement: every architecture and definition holds ({listing})."
    if not holds and all(v == "undetermined" for v in cells.values()):
        return (
            "Undetermined: no combination's claim was decided, so whether the architecture or "
            f"the sharpness definition explains a disagreement is not known ({listing})."
        )
    if not holds:
        return (
            "Neither the architecture nor the sharpness definition explains the disagreement: no "
            f"combination gives a significant negative correlation ({listing})."
        )
    archs = {a for a, _ in holds}
    defs = {d for _, d in holds}
    by = []
    if all(cells[(a, d)] == "holds" for a in archs for d in {d for _, d in cells}):
        by.append(f"the architecture ({', '.join(sorted(archs))})")
    if all(cells[(a, d)] == "holds" for d in defs for a in {a for a, _ in cells}):
        by.append(f"the sharpness definition ({', '.join(sorted(defs))})")
    how = " and ".join(by) if by else "no single factor (only some combinations)"
    return f"The paper's sign appears with {how}: {listing}."


def describe(sharpness: Sharpness) -> str:
    return " ".join(_numbers_of(a, t) for a, t in sharpness.tables.items())


def _numbers_of(arch: str, t: dict) -> str:
    head = (
        f"Arch {arch}: at T = {t['T']}, {t['grokked_at_T']} of {t['n']} seeds had reached 99 % "
        "validation accuracy"
    )
    stats = t.get("stats", {PRIMARY: t})  # a table of the primary definition alone also reads
    parts = [
        f"φ {d}: "
        + (
            "Spearman rho undefined (constant sharpness or accuracy)."
            if math.isnan(s["rho"])
            else f"{_stats_text(s, t['n']).replace('ρ', 'rho')}."
        )
        for d, s in stats.items()
    ]
    return f"{head}. " + " ".join(parts)
