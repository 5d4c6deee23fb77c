"""The benchmark's search spaces and seeds: one table of every method's declared hyperparameter
ranges, the quasi-random trials drawn from it, and the seed streams that keep tuning apart from
what is reported.

**Search spaces** (``SPACES``; the same table is in docs/benchmark.md). Each method tunes its
learning rate, its regulariser and its own hyperparameters, with the same number of trials per
method (AlgoPerf's rule: an equal tuning budget). The trials are the first points of a scrambled
Sobol sequence (``scipy.stats.qmc.Sobol(scramble=True, seed=...)``, one seed per method derived
from its name), mapped from the unit cube onto each axis, log-uniformly where an axis spans
orders of magnitude. A winner within ``EDGE`` of a bound of the unit cube on any axis is
flagged ``on_edge``: the best point may lie outside the space.

Sources of the ranges:

* learning rates: 3e-4 to 1e-2 around the paper's 1e-3 (Power et al. 2022, A.1.2), for every
  method; Muon to 3e-2 (Muon's own default for its hidden matrices is 0.02, Jordan et al. 2024;
  the grokking study, Tveit et al. 2025, gives no value);
* AdamW's and Muon's weight decay: 0.1 to 10, log-uniform around the paper's 1 (its Figure 2
  sweeps 0.1-10 in effect);
* Grokfast (Lee et al. 2024, arXiv 2405.20233; github.com/ironjr/grokfast): the README's runs
  use EMA alpha from 0.8 (MNIST) to 0.98 (algorithmic data) and lambda from 0.1 to 5, an MA
  window of 100 (128 by default), and its FAQ sweeps near a pivot (alpha^100 = 0.1, w = 100):
  alpha 0.8-0.99, lambda 0.1-5 and window 10-200 cover them; the coupled L2 penalty 1e-3 to
  5e-2 around their 0.005 (EMA) and 0.01 (MA);
* ⊥AdamW and StableMax (Prieto et al. 2025): weight decay 0-2, linear so that 0 (their claim:
  no weight decay at all) is in the space; they also keep a row at weight decay 0
  (``benchmark_design``);
* the fixed norm (Omnigrok, Liu et al. 2022): the norm the weights are held at, as a fraction of
  the usual initialisation's norm (``init_scale``), 0.3-1.0: Omnigrok's reduced norm (their
  alpha < 1) removes the delay, 1 is the initialisation's own norm.

**Seeds** (``reported_seeds``, ``tuning_seeds``). Seed 0 is the selection seed: the tasks, their
fractions and the budgets were chosen on it (docs), so it is never reported and never tunes.
Reported seeds are 1, 2, ... (at most ``TUNING_BASE`` - 1 of them); tuning seeds come from their
own range, ``TUNING_BASE`` upwards. The two ranges cannot meet whatever ``--seeds`` says.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

from grokkit.errors import InputError

SELECTION_SEED = 0  # the tasks, fractions and budgets were chosen on it: never reported
TUNING_BASE = 10_000  # tuning seeds: TUNING_BASE, TUNING_BASE + 1, ...
EDGE = 0.05  # a winner within 5 % of a bound (unit cube) on any axis is on the edge
SOBOL_SEED = 38  # the base seed of every method's Sobol sequence (this number)


@dataclass(frozen=True)
class Axis:
    """One hyperparameter's range: the run field it sets, its bounds, log-uniform or linear,
    and whether it takes integers."""

    field: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def value(self, u: float) -> float | int:
        """The value at position ``u`` in [0, 1)."""
        if self.log:
            x = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            x = self.low + u * (self.high - self.low)
        return int(round(x)) if self.integer else float(f"{x:.4g}")

    def unit(self, x: float) -> float:
        """Where ``x`` lies in the axis, in [0, 1]."""
        if self.log:
            return (math.log(x) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (x - self.low) / (self.high - self.low)


_LR = Axis("lr", 3e-4, 1e-2, log=True)
_L2 = Axis("l2", 1e-3, 5e-2, log=True)
_LAMBDA = Axis("grad_filter_lambda", 0.1, 5.0, log=True)
# method -> its axes: the search space table (docs/benchmark.md has it in words)
SPACES: dict[str, tuple[Axis, ...]] = {
    "adamw": (_LR, Axis("weight_decay", 0.1, 10.0, log=True)),
    "grokfast-ema": (_LR, _L2, Axis("grad_filter_alpha", 0.8, 0.99), _LAMBDA),
    "grokfast-ma": (_LR, _L2, Axis("grad_filter_window", 10, 200, log=True, integer=True), _LAMBDA),
    "orthograd": (_LR, Axis("weight_decay", 0.0, 2.0)),
    "stablemax": (_LR, Axis("weight_decay", 0.0, 2.0)),
    "muon": (Axis("lr", 3e-4, 3e-2, log=True), Axis("weight_decay", 0.1, 10.0, log=True)),
    "fixed-norm": (_LR, Axis("init_scale", 0.3, 1.0)),
}


def sobol_seed(method: str) -> int:
    """Each method's own Sobol seed, derived from its name (stable across Python runs)."""
    return SOBOL_SEED * 1_000_003 + zlib.crc32(method.encode())


def trials(method: str, n: int) -> list[dict]:
    """The first ``n`` points of the method's scrambled Sobol sequence, as run fields."""
    from scipy.stats import qmc

    axes = SPACES[method]
    cube = qmc.Sobol(d=len(axes), scramble=True, seed=sobol_seed(method)).random(n)
    return [{a.field: a.value(float(u)) for a, u in zip(axes, row)} for row in cube]


def on_edge(method: str, point: dict, edge: float = EDGE) -> bool:
    """Whether ``point`` lies within ``edge`` of a bound of the method's unit cube on any of its
    axes (fields the point lacks, or fields outside the space, do not count)."""
    units = [a.unit(point[a.field]) for a in SPACES[method] if a.field in point]
    return any(u <= edge or u >= 1 - edge for u in units)


def reported_seeds(n: int) -> range:
    """The ``n`` reported seeds: 1..n, never the selection seed, never a tuning seed."""
    if not 1 <= n < TUNING_BASE:
        raise InputError(f"--seeds must be between 1 and {TUNING_BASE - 1}, got {n}")
    return range(SELECTION_SEED + 1, SELECTION_SEED + 1 + n)


def tuning_seeds(n: int) -> range:
    """The ``n`` tuning seeds, from their own range."""
    return range(TUNING_BASE, TUNING_BASE + n)


def space_table() -> list[dict]:
    """The search space table as rows (method, field, low, high, scale): docs and --plan."""
    return [
        {
            "method": m,
            "field": a.field,
            "low": a.low,
            "high": a.high,
            "scale": "log" if a.log else "linear",
        }
        for m, axes in SPACES.items()
        for a in axes
    ]
