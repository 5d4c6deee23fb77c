"""The statistics every verdict uses: grokking times as right-censored data, tests between arms,
equivalence, multiple testing, power.

A grokking time is the first *evaluated* step at which a run reached a threshold. It is known to
lie in (previous evaluation, that evaluation]; a run that never reached it within its budget is
*right-censored* at the budget, never a large number. So:

* ``Times`` holds, per run, the bracket (``lower``, ``upper``] and whether it was reached;
* ``km_median`` is the Kaplan-Meier median (``scipy.stats.ecdf`` on ``CensoredData``) of the
  upper ends, with the Brookmeyer-Crowley 95 % interval read off the log-log confidence band of
  the survival curve; the interval's low end is read from the lower ends, so the evaluation
  interval is inside the interval, and ``resolution`` reports the widest bracket among the runs
  that reached the threshold;
* ``logrank`` (``scipy.stats.logrank``) tests two arms' time distributions, ``fisher`` (an exact
  test) the counts that reached the threshold;
* ``probability_of_improvement`` is P(X < Y) over every pair of runs (rliable's statistic), a
  pair whose order the censoring hides counted as a tie, with a bootstrap interval that resamples
  each arm on its own (stratified);
* ``tost_log_ratio`` and ``tost_difference`` are equivalence tests (two one-sided Welch t-tests):
  "matches" is said only when one of them rejects "differs by at least the margin";
* ``holm`` corrects a family of p-values (Holm 1979);
* ``power_*`` give the probability that a test rejects at a stated effect, so that "no
  significant difference" at low power reads as undetermined.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 4000
BOOTSTRAP_SEED = 0


def _scipy_stats():
    # Imported on first use: `grokkit reproduce --list` and `--plan` import every figure module
    # (and so this one), and scipy.stats takes seconds to import.
    from scipy import stats

    return stats


# ---------------------------------------------------------------- censored times


@dataclass(frozen=True)
class Times:
    """One arm's grokking times. ``upper[i]``: the first evaluated step at the threshold, or the
    budget when never reached (``reached[i]`` False: right-censored there); ``lower[i]``: the
    evaluation before it (the time lies in (lower, upper])."""

    upper: tuple[float, ...]
    lower: tuple[float, ...]
    reached: tuple[bool, ...]

    @classmethod
    def from_brackets(cls, brackets: Sequence[tuple[float | None, float | None, int]]) -> Times:
        """From (lower, upper, budget) per run, ``upper`` None when never reached."""
        up, lo, hit = [], [], []
        for lower, upper, budget in brackets:
            hit.append(upper is not None)
            up.append(float(budget if upper is None else upper))
            lo.append(float(budget if upper is None else (lower if lower is not None else 0)))
        return cls(tuple(up), tuple(lo), tuple(hit))

    @classmethod
    def exact(cls, values: Sequence[float | None], budget: float) -> Times:
        """Times known exactly (no evaluation interval); None: censored at ``budget``."""
        return cls.from_brackets([(v, v, budget) for v in values])

    @property
    def n(self) -> int:
        return len(self.upper)

    @property
    def n_reached(self) -> int:
        return sum(self.reached)

    def censored(self, which: str = "upper"):
        stats = _scipy_stats()
        times = np.asarray(self.upper if which == "upper" else self.lower, dtype=float)
        hit = np.asarray(self.reached, dtype=bool)
        return stats.CensoredData(uncensored=times[hit], right=times[~hit])

    @property
    def resolution(self) -> float:
        """The widest (lower, upper] bracket among the runs that reached the threshold."""
        widths = [u - lo for u, lo, h in zip(self.upper, self.lower, self.reached) if h]
        return max(widths) if widths else math.nan


@dataclass(frozen=True)
class Median:
    """A Kaplan-Meier median and its interval; ``math.inf``: beyond every time observed (the
    survival curve never falls to one half, or its band never does)."""

    median: float
    ci_low: float
    ci_high: float
    resolution: float
    n: int
    reached: int

    @property
    def censored(self) -> bool:
        return math.isinf(self.median)


def _first_at_or_below_half(times: np.ndarray, survival: np.ndarray) -> float:
    below = np.nonzero(np.nan_to_num(survival, nan=0.0) <= 0.5 + 1e-12)[0]
    return float(times[below[0]]) if below.size else math.inf


def _km_band(data, level: float):
    """(times, survival, band low, band high) of the Kaplan-Meier curve."""
    stats = _scipy_stats()
    sf = stats.ecdf(data).sf
    with warnings.catch_warnings():
        # undefined where the curve is 0 or 1; those points count as reached (0) in the search
        warnings.simplefilter("ignore", RuntimeWarning)
        band = sf.confidence_interval(level, method="log-log")
    return sf.quantiles, sf.probabilities, band.low.probabilities, band.high.probabilities


def km_median(times: Times, level: float = CONFIDENCE) -> Median:
    """The Kaplan-Meier median (the first time the survival curve is at or below one half) of
    the runs' first evaluated steps, with the Brookmeyer-Crowley interval: from the first time the
    band's lower edge (on the earliest possible times) is at or below one half, to the first time
    its upper edge (on the latest possible times) is (inf: never)."""
    if times.n == 0 or times.n_reached == 0:
        return Median(math.inf if times.n else math.nan, math.nan, math.inf, math.nan, times.n, 0)
    t, s, _, band_high = _km_band(times.censored("upper"), level)
    t_early, _, band_low_early, _ = _km_band(times.censored("lower"), level)
    median = _first_at_or_below_half(t, s)
    ci_low = min(_first_at_or_below_half(t_early, band_low_early), median)
    ci_high = _first_at_or_below_half(t, band_high)
    return Median(median, ci_low, ci_high, times.resolution, times.n, times.n_reached)


# ---------------------------------------------------------------- tests between two arms


@dataclass(frozen=True)
class Test:
    """A test's result: its name, its null hypothesis, the p-value and the statistic."""

    name: str
    null: str
    p_value: float
    statistic: float = math.nan


def logrank(a: Times, b: Times) -> Test:
    """Two-sided log-rank test of two arms' grokking times (right-censored at their budgets).
    The statistic is signed: negative when ``a`` reaches the threshold sooner."""
    stats = _scipy_stats()
    null = "the two arms' grokking-time distributions are equal"
    if a.n == 0 or b.n == 0 or a.n_reached + b.n_reached == 0:
        return Test("log-rank", null, math.nan)
    with warnings.catch_warnings():
        # no variance (every event of one arm after every run of the other was censored):
        # scipy warns and returns nan, which is what the test is
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.logrank(a.censored(), b.censored())
    return Test("log-rank", null, float(result.pvalue), -float(result.statistic))


def fisher(reached_a: int, n_a: int, reached_b: int, n_b: int) -> Test:
    """Fisher's exact test (two-sided) that two arms reach the threshold equally often."""
    stats = _scipy_stats()
    table = [[reached_a, n_a - reached_a], [reached_b, n_b - reached_b]]
    result = stats.fisher_exact(table)
    null = "both arms reach the threshold with the same probability"
    return Test("Fisher's exact", null, float(result.pvalue), float(result.statistic))


@dataclass(frozen=True)
class Improvement:
    """P(a run of ``a`` reaches the threshold before one of ``b``) and its bootstrap interval."""

    probability: float
    ci_low: float
    ci_high: float


def _pairwise_wins(ua, ra, ub, rb) -> np.ndarray:
    """Over the last axis pairs: 1 where a is surely sooner, 0 where surely later, 0.5 for a tie
    or an order the censoring hides (both censored; or one censored at a budget before the
    other's time)."""
    ua, ra = ua[..., :, None], ra[..., :, None]
    ub, rb = ub[..., None, :], rb[..., None, :]
    sooner = (ra & rb & (ua < ub)) | (ra & ~rb & (ua < ub))
    later = (ra & rb & (ua > ub)) | (~ra & rb & (ua > ub))
    return np.where(sooner, 1.0, np.where(later, 0.0, 0.5))


def probability_of_improvement(
    a: Times, b: Times, level: float = CONFIDENCE, samples: int = BOOTSTRAP_SAMPLES
) -> Improvement:
    """P(X_a < X_b) over all pairs (Mann-Whitney's statistic), censored pairs as stated in
    ``_pairwise_wins``; a percentile interval from resampling each arm's runs on its own."""
    if a.n == 0 or b.n == 0:
        return Improvement(math.nan, math.nan, math.nan)
    ua, ra = np.asarray(a.upper), np.asarray(a.reached)
    ub, rb = np.asarray(b.upper), np.asarray(b.reached)
    point = float(_pairwise_wins(ua, ra, ub, rb).mean())
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    ia = rng.integers(0, a.n, size=(samples, a.n))
    ib = rng.integers(0, b.n, size=(samples, b.n))
    boot = _pairwise_wins(ua[ia], ra[ia], ub[ib], rb[ib]).mean(axis=(-2, -1))
    tail = 100 * (1 - level) / 2
    return Improvement(
        point, float(np.percentile(boot, tail)), float(np.percentile(boot, 100 - tail))
    )


# ---------------------------------------------------------------- equivalence


def _tost(x: np.ndarray, y: np.ndarray, low: float, high: float, name: str, null: str) -> Test:
    """Two one-sided Welch t-tests: H0 mean(x) - mean(y) <= low, and >= high; p the larger."""
    stats = _scipy_stats()
    if x.size < 2 or y.size < 2:
        return Test(name, null, math.nan)
    p_low = stats.ttest_ind(x - low, y, equal_var=False, alternative="greater").pvalue
    p_high = stats.ttest_ind(x - high, y, equal_var=False, alternative="less").pvalue
    p = float(max(p_low, p_high))
    return Test(name, null, 1.0 if math.isnan(p) else p, float(np.mean(x) - np.mean(y)))


def tost_log_ratio(a: Sequence[float], b: Sequence[float], margin: float) -> Test:
    """Equivalence of two arms' times within a factor ``margin`` (> 1): TOST on log times.
    Censored times have no log, so arms with censored runs are not tested here (nan)."""
    null = f"the arms' times differ by a factor of at least {margin:g} (geometric means)"
    x, y = np.log(np.asarray(a, dtype=float)), np.log(np.asarray(b, dtype=float))
    return _tost(x, y, -math.log(margin), math.log(margin), "TOST on log times", null)


def tost_difference(a: Sequence[float], b: Sequence[float], margin: float) -> Test:
    """Equivalence of two arms' means within ``margin`` (absolute): TOST."""
    null = f"the arms' means differ by at least {margin:g}"
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return _tost(x, y, -margin, margin, "TOST on means", null)


# ---------------------------------------------------------------- multiple testing


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (nan stays nan and does not count in the family)."""
    p = np.asarray(p_values, dtype=float)
    tested = np.nonzero(~np.isnan(p))[0]
    adjusted = np.full(p.shape, math.nan)
    m = tested.size
    running = 0.0
    for rank, i in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


# ---------------------------------------------------------------- correlation


def spearman_interval(rho: float, n: int, level: float = CONFIDENCE) -> tuple[float, float]:
    """Fisher-z interval of Spearman's rho with Bonett and Wright's (2000) variance
    (1 + rho^2 / 2) / (n - 3)."""
    stats = _scipy_stats()
    if math.isnan(rho):
        return math.nan, math.nan
    if n <= 3:  # no Fisher-z interval: every correlation is possible
        return -1.0, 1.0
    rho = max(min(rho, 0.999999), -0.999999)
    se = math.sqrt((1 + rho**2 / 2) / (n - 3))
    z = stats.norm.ppf(0.5 + level / 2)
    return math.tanh(math.atanh(rho) - z * se), math.tanh(math.atanh(rho) + z * se)


def spearman_against(rho: float, n: int, rho0: float) -> Test:
    """Two-sided test of H0: Spearman's rho = ``rho0`` on the Fisher-z scale (Bonett-Wright
    variance at ``rho0``)."""
    stats = _scipy_stats()
    null = f"Spearman rho = {rho0:g}"
    if n <= 3 or math.isnan(rho):
        return Test("Fisher-z test of Spearman rho", null, math.nan)
    rho = max(min(rho, 0.999999), -0.999999)
    se = math.sqrt((1 + rho0**2 / 2) / (n - 3))
    z = (math.atanh(rho) - math.atanh(rho0)) / se
    return Test("Fisher-z test of Spearman rho", null, float(2 * stats.norm.sf(abs(z))), z)


# ---------------------------------------------------------------- power


def _two_sided_normal_power(shift: float, alpha: float) -> float:
    stats = _scipy_stats()
    z = stats.norm.ppf(1 - alpha / 2)
    return float(stats.norm.sf(z - abs(shift)) + stats.norm.cdf(-z - abs(shift)))


def power_spearman(rho: float, n: int, alpha: float, rho0: float = 0.0) -> float:
    """Power of the two-sided Fisher-z test of rho = ``rho0`` when the true rho is ``rho``."""
    if n <= 3:
        return 0.0
    se = math.sqrt((1 + rho**2 / 2) / (n - 3))
    return _two_sided_normal_power((math.atanh(rho) - math.atanh(rho0)) / se, alpha)


def power_log_ratio(ratio: float, sigma_log: float, n_a: int, n_b: int, alpha: float) -> float:
    """Power of a two-sided two-sample t-test on log times when the true ratio of (geometric
    mean) times is ``ratio`` and log times spread with standard deviation ``sigma_log``: the
    noncentral t. The log-rank test on uncensored log-normal times has about this power."""
    stats = _scipy_stats()
    if n_a < 2 or n_b < 2:
        return 0.0  # the test cannot be made
    if sigma_log <= 0:
        return math.nan
    df = n_a + n_b - 2
    ncp = abs(math.log(ratio)) / (sigma_log * math.sqrt(1 / n_a + 1 / n_b))
    t = stats.t.ppf(1 - alpha / 2, df)
    power = float(stats.nct.sf(t, df, ncp) + stats.nct.cdf(-t, df, ncp))
    if math.isnan(power):  # scipy's nct fails far in the tail: the normal approximation
        power = float(stats.norm.sf(t - ncp))
    return power


def power_difference(delta: float, sigma: float, n_a: int, n_b: int, alpha: float) -> float:
    """Power of a two-sided two-sample t-test when the true difference of means is ``delta``."""
    if sigma <= 0:
        return 1.0 if delta else 0.0
    return power_log_ratio(math.exp(delta / sigma), 1.0, n_a, n_b, alpha)


def power_fisher(p_a: float, p_b: float, n_a: int, n_b: int, alpha: float) -> float:
    """Exact power of Fisher's test: the probability, over every outcome of two binomials with
    success probabilities ``p_a`` and ``p_b``, that the test rejects at ``alpha``."""
    stats = _scipy_stats()
    ka, kb = np.arange(n_a + 1), np.arange(n_b + 1)
    prob = np.outer(stats.binom.pmf(ka, n_a, p_a), stats.binom.pmf(kb, n_b, p_b))
    power = 0.0
    for i in ka:
        for j in kb:
            if prob[i, j] > 0 and fisher(int(i), n_a, int(j), n_b).p_value < alpha:
                power += prob[i, j]
    return float(power)


def power_sign(n: int, p_success: float, alpha: float) -> float:
    """Power of a two-sided exact binomial (sign) test of 1/2 when each of ``n`` paired
    comparisons favours one side with probability ``p_success`` (0: no comparison)."""
    stats = _scipy_stats()
    if n <= 0:
        return 0.0
    k = np.arange(n + 1)
    reject = np.array([stats.binomtest(int(i), n, 0.5).pvalue < alpha for i in k])
    return float(stats.binom.pmf(k, n, p_success)[reject].sum())


# ---------------------------------------------------------------- trend of censored times


def _gehan_trend(x: np.ndarray, upper: np.ndarray, reached: np.ndarray) -> np.ndarray:
    """Sum over pairs with x_i < x_j of +1 where run j surely took longer than run i, -1 where
    surely shorter, 0 where the censoring hides the order or x ties (Gehan's scores). The last
    axis is the runs; leading axes of ``x`` are permutations."""
    xi, xj = x[..., :, None], x[..., None, :]
    ui, uj = upper[:, None], upper[None, :]
    ri, rj = reached[:, None], reached[None, :]
    longer = (ri & (uj > ui)) | (ri & ~rj & (uj >= ui))  # j later than i surely
    shorter = (rj & (ui > uj)) | (rj & ~ri & (ui >= uj))
    score = longer.astype(float) - shorter.astype(float)
    return np.where(xi < xj, score, 0.0).sum(axis=(-2, -1))


def censored_trend(
    x: Sequence[float], times: Times, resamples: int = 9999, seed: int = BOOTSTRAP_SEED
) -> Test:
    """Does time grow with ``x``? A permutation test (``x`` shuffled over the runs) of Gehan's
    pairwise score for right-censored times (``_gehan_trend``). The statistic, scaled to
    [-1, 1] by the number of pairs with different ``x``, is a censored Kendall tau: positive when
    times grow with ``x``. Two-sided p."""
    null = "the grokking time does not depend on x (every assignment of x to runs equally likely)"
    xs = np.asarray(x, dtype=float)
    upper, reached = np.asarray(times.upper), np.asarray(times.reached)
    pairs = float((xs[:, None] < xs[None, :]).sum())
    if pairs == 0 or times.n < 3:
        return Test("permutation test of Gehan's trend score", null, math.nan)
    observed = _gehan_trend(xs, upper, reached)
    rng = np.random.default_rng(seed)
    shuffled = np.stack([rng.permutation(xs) for _ in range(resamples)])
    null_scores = _gehan_trend(shuffled, upper, reached)
    extreme = (np.abs(null_scores) >= abs(observed) - 1e-9).sum()
    p = float((extreme + 1) / (resamples + 1))
    return Test("permutation test of Gehan's trend score", null, p, float(observed / pairs))


def power_trend(
    x: Sequence[float],
    log_slope: float,
    sigma_log: float,
    alpha: float,
    simulations: int = 200,
    seed: int = BOOTSTRAP_SEED,
) -> float:
    """Power of ``censored_trend`` at runs placed at ``x`` when log time = ``log_slope`` * x +
    N(0, ``sigma_log``^2) and nothing is censored: the fraction of simulated experiments that it
    rejects at ``alpha`` (999 permutations each)."""
    rng = np.random.default_rng(seed)
    xs = np.asarray(x, dtype=float)
    hits = 0
    for _ in range(simulations):
        t = np.exp(log_slope * xs + sigma_log * rng.standard_normal(xs.size))
        times = Times(tuple(t), tuple(t), (True,) * xs.size)
        p = censored_trend(xs, times, resamples=999, seed=int(rng.integers(1 << 31))).p_value
        hits += p < alpha
    return hits / simulations


def tost_range(values: Sequence[float], low: float, high: float) -> Test:
    """Is the mean of ``values`` inside [low, high]? Two one-sided one-sample t-tests (H0: mean
    <= low, H0: mean >= high); p the larger."""
    stats = _scipy_stats()
    null = f"the mean lies outside [{low:g}, {high:g}]"
    v = np.asarray(values, dtype=float)
    if v.size < 2 or np.ptp(v) == 0:
        return Test("TOST of a mean inside a range", null, math.nan)
    p_low = stats.ttest_1samp(v, low, alternative="greater").pvalue
    p_high = stats.ttest_1samp(v, high, alternative="less").pvalue
    return Test("TOST of a mean inside a range", null, float(max(p_low, p_high)), float(v.mean()))


# ---------------------------------------------------------------- tests over seeds and pairs


def sign_p(plus: int, minus: int) -> float:
    """Two-sided exact binomial test of 1/2 over the decided comparisons (nan: none)."""
    stats = _scipy_stats()
    n = plus + minus
    return float(stats.binomtest(plus, n, 0.5).pvalue) if n else math.nan


def share_interval(k: int, n: int) -> tuple[float, float] | None:
    """Clopper-Pearson 95 % interval of a share k / n (None: n = 0)."""
    stats = _scipy_stats()
    if n == 0:
        return None
    ci = stats.binomtest(k, n, 0.5).proportion_ci(CONFIDENCE, method="exact")
    return float(ci.low), float(ci.high)


def midranks(values: Sequence[float]) -> list[float]:
    """Rank 1 for the largest value; tied values share their mean rank."""
    stats = _scipy_stats()
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


def paired_tost(differences: Sequence[float], margin: float) -> float:
    """Two one-sided one-sample t-tests of H0: mean difference <= -margin, or >= margin; the p
    is the larger one (nan under 2 pairs). Differences with no spread at all: 0 inside the
    margin, 1 outside."""
    stats = _scipy_stats()
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
    stats = _scipy_stats()
    if n < 2:
        return 0.0
    se = sigma / math.sqrt(n)
    t = stats.t.ppf(1 - alpha, n - 1)
    reach = margin / se - t
    return float(max(0.0, 2 * stats.norm.cdf(reach) - 1))


def power_logrank_reach(p_a: float, p_b: float, n_a: int, n_b: int, alpha: float) -> float:
    """Power of the log-rank test when each run of arm a reaches the threshold with probability
    ``p_a`` and each of arm b with ``p_b``, every reached run of a before every reached run of b
    (the effect: b late if at all), the rest censored at the budget; exact over the counts."""
    stats = _scipy_stats()
    power = 0.0
    for i in range(n_a + 1):
        for j in range(n_b + 1):
            prob = stats.binom.pmf(i, n_a, p_a) * stats.binom.pmf(j, n_b, p_b)
            a = Times.exact([1.0 + t for t in range(i)] + [None] * (n_a - i), 1e6)
            b = Times.exact([1e3 + t for t in range(j)] + [None] * (n_b - j), 1e6)
            test = logrank(a, b)
            if test.p_value < alpha and test.statistic < 0:
                power += prob
    return float(power)


def mean_interval(values: Sequence[float], level: float = CONFIDENCE) -> tuple[float, float] | None:
    """The t interval of a mean (None: fewer than 2 values)."""
    stats = _scipy_stats()
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return None
    half = stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return float(v.mean() - half), float(v.mean() + half)


def bootstrap_mean_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """Percentile-bootstrap 95 % interval of a mean (fixed seed; None: no values)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = v[rng.integers(0, v.size, size=(BOOTSTRAP_SAMPLES, v.size))].mean(axis=1)
    tail = 100 * (1 - CONFIDENCE) / 2
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def binomial_above_p(k: int, n: int, p0: float) -> float:
    """One-sided exact binomial test of H0: success probability <= ``p0`` (nan: n = 0)."""
    stats = _scipy_stats()
    return float(stats.binomtest(k, n, p0, alternative="greater").pvalue) if n else math.nan


def power_binomial_above(n: int, p0: float, p1: float, alpha: float) -> float:
    """Power of ``binomial_above_p`` at success probability ``p1``."""
    stats = _scipy_stats()
    if n == 0:
        return 0.0
    k = np.arange(n + 1)
    reject = stats.binom.sf(k - 1, n, p0) < alpha  # P(X >= k) under H0
    return min(1.0, float(stats.binom.pmf(k, n, p1)[reject].sum()))
