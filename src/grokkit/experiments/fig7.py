"""Figure 7 (A.5): sharpness φ vs validation accuracy over seeds, at the step where about half grokked.

The paper's protocol (Appendix A.5): seeds are trained "for a fixed number of steps until
approximately half of them achieved high validation accuracy", then φ is measured. We train every
seed with weight snapshots (``snapshot_every``), choose T, the snapshot step at which the number of
seeds that have reached 99 % validation accuracy is closest to half (``half_grokked_step``), and
measure φ and the validation accuracy of every seed at T.

φ is Keskar et al.'s: with A = the identity (the whole parameter space), box size ε = 1e-3
relative to each weight (|y_i| <= ε (|x_i| + 1)), the maximum of the training loss inside the box
found by 10 iterations of L-BFGS-B started at the weights themselves (grokkit.analysis.sharpness).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import permutation_test, spearmanr

from grokkit.analysis.run_sharpness import run_sharpness
from grokkit.config import RunConfig
from grokkit.experiments import common
from grokkit.plots import apply_style
from grokkit.runs import read_metrics, snapshot_steps

NAME = "fig7"
DESCRIPTION = "S5 x·y: sharpness (Keskar et al.) vs validation accuracy over seeds when half grokked"
CLAIM = ("Networks that grok sit in flatter minima: sharpness and validation accuracy have "
         "Spearman rho = -0.795 (p < 1.4e-5) over seeds on S5.")
OPTIONS: tuple[str, ...] = ()
EPSILON, ITERATIONS = 1e-3, 10  # Keskar et al.'s box size and L-BFGS-B iterations
BOOTSTRAP_RESAMPLES, PERMUTATIONS = 2000, 9999
REDUCTIONS = {
    "smoke": "s5_xy at 50 % data, 4 seeds, 1 layer of width 16, 20 steps, snapshots every 5: code path only.",
    "laptop": ("s5_xy at 50 % data (the paper gives no fraction; 50 % groks within ~10^4 steps on a "
               "CPU), 16 seeds, every seed trained 12,000 steps with snapshots every 500; T is the "
               "snapshot step at which about half the seeds have reached 99 % validation. "
               "Paper model, AdamW."),
    "paper": ("s5_xy at 30 % data, 24 seeds, 5*10^4 steps with snapshots every 500, AdamW. The paper "
              "gives neither the fraction, the budget nor the number of seeds; T is chosen as at "
              "laptop scale."),
}


def runs(scale: str) -> list[RunConfig]:
    common.check_scale(scale)
    if scale == "smoke":
        base, seeds = common.base_config("s5_xy", scale, train_fraction=0.5, snapshot_every=5), range(4)
    elif scale == "laptop":
        base = common.base_config("s5_xy", scale, train_fraction=0.5, steps=12_000, snapshot_every=500)
        seeds = range(16)
    else:
        base = common.base_config("s5_xy", scale, train_fraction=0.3, steps=50_000, snapshot_every=500)
        seeds = range(24)
    return [base.with_changes(seed=s) for s in seeds]


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
    raise ValueError(f"no evaluation at step {step}: snapshot_every must be a multiple of eval_every")


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
    result = spearmanr(a, b)
    return float(result.statistic), float(result.pvalue)


def permutation_p(a, b, resamples: int = PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided permutation p of Spearman's rho: the accuracies shuffled against the sharpnesses."""
    if math.isnan(spearman(a, b)[0]):
        return math.nan
    result = permutation_test((np.asarray(a), np.asarray(b)), lambda x, y: spearmanr(x, y).statistic,
                              permutation_type="pairings", n_resamples=resamples,
                              alternative="two-sided", random_state=seed)  # fmt: skip
    return float(result.pvalue)


def bootstrap_interval(a, b, resamples: int = BOOTSTRAP_RESAMPLES, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float, int]:  # fmt: skip
    """Percentile bootstrap interval of Spearman's rho over seeds (pairs resampled together).
    Resamples in which either variable is constant have no rho and are left out; their number is
    returned third."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    values, dropped = [], 0
    for _ in range(resamples):
        idx = rng.integers(0, len(a), len(a))
        rho = spearman(list(a[idx]), list(b[idx]))[0]
        if math.isnan(rho):
            dropped += 1
        else:
            values.append(rho)
    if not values:
        return math.nan, math.nan, dropped
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi), dropped


# ---------------------------------------------------------------- table, plot, verdict

CSV_HEADER = ["seed", "step_T", "sharpness", "val_accuracy_at_T", "first_step_val_99",
              "final_val_accuracy", "spearman_rho", "spearman_p", "permutation_p", "rho_ci_low",
              "rho_ci_high"]  # fmt: skip

_TABLES: dict = {}  # plot() and verdict() share one computation (φ and 2,000 bootstrap resamples)


def table(results) -> dict:
    key = tuple((str(r.run_dir), r.summary.get("steps_done")) for r in results)
    if key in _TABLES:
        return _TABLES[key]
    first = [r.summary["steps_to_val_99"] for r in results]
    T = half_grokked_step(first, common_snapshot_step_list(results))
    metrics = [read_metrics(r.run_dir) for r in results]
    vals = [accuracy_at(m, T) for m in metrics]
    phis = [run_sharpness(r.run_dir, EPSILON, ITERATIONS, step=T) for r in results]
    rho, p = spearman(phis, vals)
    perm = permutation_p(phis, vals)
    lo, hi, dropped = bootstrap_interval(phis, vals)
    rows = [[r.config.seed, T, phi, v, f, r.summary["val_accuracy"], rho, p, perm, lo, hi]
            for r, phi, v, f in zip(results, phis, vals, first)]  # fmt: skip
    out = {"rows": rows, "T": T, "rho": rho, "p": p, "perm_p": perm, "ci": (lo, hi), "dropped": dropped,
           "n": len(rows), "grokked_at_T": sum(f is not None and f <= T for f in first),
           "curves": [[(m["step"], m["val_accuracy"]) for m in ms] for ms in metrics]}  # fmt: skip
    _TABLES[key] = out
    return out


def _stats_text(t: dict) -> str:
    lo, hi = t["ci"]
    return (f"Spearman ρ = {t['rho']:.3f} (p = {t['p']:.2g}; permutation p = {t['perm_p']:.2g}; "
            f"95 % bootstrap interval [{lo:.2f}, {hi:.2f}]), n = {t['n']} seeds")


def plot(results, out_dir: Path, scale: str) -> list[Path]:
    t = table(results)
    csv_path = common.write_csv(Path(out_dir) / f"{NAME}.csv", CSV_HEADER, t["rows"])
    apply_style()
    fig, (ax, curves) = plt.subplots(1, 2, figsize=(11.0, 4.5))
    rows = t["rows"]
    ax.scatter([r[2] for r in rows], [100 * r[3] for r in rows], color="tab:blue", s=18)
    ax.set_xlabel(f"sharpness φ at step {t['T']} (ε = {EPSILON:g}, {ITERATIONS} L-BFGS-B iterations)")
    ax.set_ylabel(f"validation accuracy at step {t['T']} (%)")
    cfg = results[0].config
    ax.set_title(f"{common.op_label(cfg)}, {100 * cfg.train_fraction:.0f}% data: {t['grokked_at_T']}/{t['n']} "
                 f"seeds at >= 99% val by T = {t['T']}\n{_stats_text(t)}\n(paper: ρ = -0.795, p < 1.4e-5)",
                 fontsize=8)  # fmt: skip
    for curve in t["curves"]:
        pts = [(s, v) for s, v in curve if s > 0]
        curves.plot([s for s, _ in pts], [100 * v for _, v in pts], color="tab:blue", lw=0.7, alpha=0.6)
    curves.axvline(t["T"], color="tab:red", ls="--", lw=1, label=f"T = {t['T']}")
    curves.set_xscale("log")
    curves.set_xlabel("optimization step")
    curves.set_ylabel("validation accuracy (%)")
    curves.set_title("every seed's validation accuracy; φ is measured at T", fontsize=8)
    curves.legend(fontsize=8)
    common.add_caption(fig, common.caption(REDUCTIONS, scale, "φ is measured on each run's full training "
                                           "set at its snapshot of step T."))  # fmt: skip
    return [*common.save(fig, out_dir, NAME), csv_path]


def verdict(results) -> str:
    t = table(results)
    head = f"At T = {t['T']}, {t['grokked_at_T']} of {t['n']} seeds had reached 99 % validation accuracy"
    if math.isnan(t["rho"]):
        return f"{head}; Spearman rho is undefined (constant sharpness or accuracy), so the claim is untested."
    lo, hi = t["ci"]
    significant = t["perm_p"] < 0.05 and (hi < 0 or lo > 0)
    if significant and t["rho"] < 0:
        judged = "a significant negative correlation, as the paper reports (-0.795)."
    elif significant:
        judged = ("a significant positive correlation, the opposite of the paper's -0.795: the seeds "
                  "that generalised sit in sharper places by this measure.")
    else:
        judged = "no significant correlation, so we do not reproduce the paper's (-0.795)."
    return f"{head}; {_stats_text(t).replace('ρ', 'rho')}: {judged}"
