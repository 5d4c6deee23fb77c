"""Tests over seeds that several figure modules share, on top of ``analysis.statistics``.

* ``check_seeds``: a figure's ``seeds`` option (at least 1);
* ``sign_claim``: an exact two-sided sign test over seeds (or pairs), each counted for the
  paper's reading, against it, or undecided (dropped, as a sign test drops ties); a rejection in
  the paper's direction holds, in the other direction contradicts;
* ``rank_test``: the exact permutation test of where some arms rank among all arms, block by
  block (data fraction x seed), under the null that every arm is exchangeable within a block;
* ``paired_tost``: equivalence of paired differences within a margin (two one-sided t-tests);
* ``power_*``: each test's power at a stated effect, at the family's first Holm level
  (``family_alpha``: alpha / the number of claims tested together), so that a figure's records
  state the power they really have after correction.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

from grokkit.analysis import statistics
from grokkit.errors import InputError
from grokkit.experiments.claims import ALPHA, Claim


def check_seeds(seeds: int | None) -> None:
    """``seeds`` None (the scale's default) or a whole number >= 1."""
    if seeds is None:
        return
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise InputError(f"--seeds must be a whole number >= 1, got {seeds!r}")


def family_alpha(n_claims: int, alpha: float = ALPHA) -> float:
    """The level the family's smallest p-value must reach after Holm: alpha / its size. A
    claim's power is stated at this level (a lower bound of its power under Holm)."""
    return alpha / max(1, n_claims)


# ---------------------------------------------------------------- sign tests


def sign_p(plus: int, minus: int) -> float:
    """Two-sided exact binomial test of 1/2 over the decided comparisons (nan: none)."""
    n = plus + minus
    return float(stats.binomtest(plus, n, 0.5).pvalue) if n else math.nan


def share_interval(k: int, n: int) -> tuple[float, float] | None:
    """Clopper-Pearson 95 % interval of a share k / n (None: n = 0)."""
    if n == 0:
        return None
    ci = stats.binomtest(k, n, 0.5).proportion_ci(statistics.CONFIDENCE, method="exact")
    return float(ci.low), float(ci.high)


def power_sign(n: int, p_success: float, alpha: float) -> float:
    """``statistics.power_sign``, 0 for no comparison."""
    return statistics.power_sign(n, p_success, alpha) if n > 0 else 0.0


def sign_claim(
    id: str,
    claim: str,
    paper_value: str,
    plus: int,
    minus: int,
    undecided: int,
    unit: str,
    power: float,
    assumed: str,
) -> Claim:
    """A claim decided by a two-sided exact sign test: ``plus`` units read as the paper says,
    ``minus`` the other way, ``undecided`` dropped. Measured: the share of decided units that
    read as the paper, with its Clopper-Pearson interval."""
    n = plus + minus
    test = (
        f"exact two-sided sign test over {unit}s ({n} decided, {undecided} undecided and "
        f"dropped); power assumes {assumed}"
    )
    null = f"a {unit} is as likely to go against the claim as for it (probability 1/2)"
    if n == 0:
        return Claim(
            id,
            claim,
            paper_value,
            None,
            None,
            test,
            null,
            math.nan,
            power,
            why=f"no {unit} decided the comparison ({undecided} undecided)",
        )
    return Claim(
        id,
        claim,
        paper_value,
        plus / n,
        share_interval(plus, n),
        test,
        null,
        sign_p(plus, minus),
        power,
        if_rejected="holds" if plus > minus else "contradicted",
    )


# ---------------------------------------------------------------- rank test over blocks


def midranks(values: Sequence[float]) -> list[float]:
    """Rank 1 for the largest value; tied values share their mean rank."""
    return [float(r) for r in stats.rankdata([-v for v in values], method="average")]


def _subset_means(ranks: Sequence[float], k: int) -> dict[float, float]:
    """The null distribution of the mean rank of ``k`` arms drawn at random among ``ranks``."""
    subsets = list(itertools.combinations(ranks, k))
    out: dict[float, float] = {}
    for s in subsets:
        key = round(sum(s) / k, 9)
        out[key] = out.get(key, 0.0) + 1 / len(subsets)
    return out


def _convolve(dists: Sequence[dict[float, float]]) -> dict[float, float]:
    total = {0.0: 1.0}
    for d in dists:
        nxt: dict[float, float] = {}
        for a, pa in total.items():
            for b, pb in d.items():
                key = round(a + b, 9)
                nxt[key] = nxt.get(key, 0.0) + pa * pb
        total = nxt
    return total


def _two_sided(null: dict[float, float], observed: float) -> float:
    low = sum(p for s, p in null.items() if s <= observed + 1e-9)
    high = sum(p for s, p in null.items() if s >= observed - 1e-9)
    return min(1.0, 2 * min(low, high))


def rank_test(blocks: Sequence[tuple[Sequence[float], Sequence[int]]]) -> tuple[float, float]:
    """(the arms' mean rank over blocks, two-sided exact p) for blocks of (every arm's value,
    the indices of the arms tested). Null: within a block the tested arms' ranks are a random
    draw of the block's (mid)ranks, independently across blocks (a conditional permutation
    test, ties kept as they are)."""
    if not blocks:
        return math.nan, math.nan
    dists, observed = [], 0.0
    for values, members in blocks:
        ranks = midranks(values)
        dists.append(_subset_means(ranks, len(members)))
        observed += sum(ranks[i] for i in members) / len(members)
    return observed / len(blocks), _two_sided(_convolve(dists), observed)


def power_rank_test(
    n_arms: int, k: int, n_blocks: int, alternative: dict[float, float], alpha: float
) -> float:
    """Power of ``rank_test`` without ties, when each block's mean rank of the ``k`` tested
    arms follows ``alternative`` (mean rank -> probability)."""
    if n_blocks == 0:
        return 0.0
    null = _convolve([_subset_means(range(1, n_arms + 1), k)] * n_blocks)
    alt = _convolve([alternative] * n_blocks)
    return min(1.0, float(sum(p for s, p in alt.items() if _two_sided(null, s) < alpha)))


# ---------------------------------------------------------------- equivalence of pairs


def paired_tost(differences: Sequence[float], margin: float) -> float:
    """Two one-sided one-sample t-tests of H0: mean difference <= -margin, or >= margin; the p
    is the larger one (nan under 2 pairs). Differences with no spread at all: 0 inside the
    margin, 1 outside."""
    d = np.asarray(differences, dtype=float)
    if d.size < 2:
        return math.nan
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        return 0.0 if abs(mean) < margin else 1.0
    se = sd / math.sqrt(d.size)
    p_low = stats.t.sf((mean + margin) / se, d.size - 1)
    p_high = stats.t.cdf((mean - margin) / se, d.size - 1)
    return float(max(p_low, p_high))


def power_paired_tost(n: int, sigma: float, margin: float, alpha: float) -> float:
    """Power of ``paired_tost`` when the true mean difference is 0 and differences spread with
    standard deviation ``sigma`` (normal approximation of the mean, t critical value)."""
    if n < 2:
        return 0.0
    se = sigma / math.sqrt(n)
    t = stats.t.ppf(1 - alpha, n - 1)
    reach = margin / se - t
    return float(max(0.0, 2 * stats.norm.cdf(reach) - 1))


# ---------------------------------------------------------------- times


def power_log_ratio(ratio: float, sigma_log: float, n_a: int, n_b: int, alpha: float) -> float:
    """``statistics.power_log_ratio``, with the normal approximation where the noncentral t
    overflows (very large effects: power 1 to many digits); 0 under two runs an arm."""
    if n_a < 2 or n_b < 2:
        return 0.0
    power = statistics.power_log_ratio(ratio, sigma_log, n_a, n_b, alpha)
    if math.isnan(power) and n_a >= 2 and n_b >= 2 and sigma_log > 0:
        shift = abs(math.log(ratio)) / (sigma_log * math.sqrt(1 / n_a + 1 / n_b))
        power = float(stats.norm.sf(stats.t.ppf(1 - alpha / 2, n_a + n_b - 2) - shift))
    return power


def logrank(a: statistics.Times, b: statistics.Times) -> statistics.Test:
    """``statistics.logrank``, with p nan where the statistic is undefined (no variance: e.g.
    every event of one arm after every run of the other was censored) instead of a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return statistics.logrank(a, b)


def power_logrank_reach(p_a: float, p_b: float, n_a: int, n_b: int, alpha: float) -> float:
    """Power of the log-rank test when each run of arm a reaches the threshold with probability
    ``p_a`` and each of arm b with ``p_b``, every reached run of a before every reached run of b
    (the effect: b late if at all), the rest censored at the budget; exact over the counts."""
    power = 0.0
    for i in range(n_a + 1):
        for j in range(n_b + 1):
            prob = stats.binom.pmf(i, n_a, p_a) * stats.binom.pmf(j, n_b, p_b)
            a = statistics.Times.exact([1.0 + t for t in range(i)] + [None] * (n_a - i), 1e6)
            b = statistics.Times.exact([1e3 + t for t in range(j)] + [None] * (n_b - j), 1e6)
            test = logrank(a, b)
            if test.p_value < alpha and test.statistic < 0:
                power += prob
    return float(power)


def format_median(median: statistics.Median, budget: int | None = None) -> str:
    """A Kaplan-Meier median in words: ``3,300 [2,900, 4,100]`` or ``>8,000`` (censored)."""
    if math.isnan(median.median):
        return "n/a"
    if math.isinf(median.median):
        return f">{budget:,}" if budget else "beyond every time observed"

    def f(x: float) -> str:
        return "inf" if math.isinf(x) else "n/a" if math.isnan(x) else f"{x:,.0f}"

    return f"{median.median:,.0f} [{f(median.ci_low)}, {f(median.ci_high)}]"


def bootstrap_mean_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """Percentile-bootstrap 95 % interval of a mean (fixed seed; None: no values)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return None
    rng = np.random.default_rng(statistics.BOOTSTRAP_SEED)
    means = v[rng.integers(0, v.size, size=(statistics.BOOTSTRAP_SAMPLES, v.size))].mean(axis=1)
    tail = 100 * (1 - statistics.CONFIDENCE) / 2
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def binomial_above_p(k: int, n: int, p0: float) -> float:
    """One-sided exact binomial test of H0: success probability <= ``p0`` (nan: n = 0)."""
    return float(stats.binomtest(k, n, p0, alternative="greater").pvalue) if n else math.nan


def power_binomial_above(n: int, p0: float, p1: float, alpha: float) -> float:
    """Power of ``binomial_above_p`` at success probability ``p1``."""
    if n == 0:
        return 0.0
    k = np.arange(n + 1)
    reject = stats.binom.sf(k - 1, n, p0) < alpha  # P(X >= k) under H0
    return min(1.0, float(stats.binom.pmf(k, n, p1)[reject].sum()))


def powers(claims: Sequence[Claim]) -> dict[str, float | None]:
    """claim id -> its power (None: untestable), for a figure's plan."""
    return {c.id: c.power for c in claims}
