"""The statistics layer against hand computations on constructed data, and the claim records'
verdict rule (grokkit.analysis.statistics, grokkit.experiments.claims)."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest
from scipy import stats as scipy_stats

from grokkit.analysis import statistics as st
from grokkit.analysis.grokking_time import bracket, censored_times
from grokkit.experiments import claims


def test_kaplan_meier_median_equals_a_hand_computation_with_censoring():
    # times 3, 5, 5+, 7, 9+, 11: S = 5/6 after 3, 5/6 * 3/4... by hand:
    # at 3: 6 at risk, 1 event -> 5/6; at 5: 5 at risk, 1 event -> 5/6 * 4/5 = 2/3;
    # (5+ leaves); at 7: 3 at risk, 1 event -> 2/3 * 2/3 = 4/9 <= 1/2: the median is 7.
    times = st.Times.exact([3, 5, None, 7, None, 11], budget=0)
    times = st.Times((3, 5, 5, 7, 9, 11), (3, 5, 5, 7, 9, 11), times.reached)
    m = st.km_median(times)
    assert m.median == 7
    sf = scipy_stats.ecdf(times.censored()).sf
    assert sf.evaluate(7) == pytest.approx(4 / 9)
    assert m.ci_low <= 7 <= m.ci_high


def test_a_median_beyond_every_observed_time_is_censored_never_a_number():
    times = st.Times.exact([100, None, None, None], budget=1000)
    m = st.km_median(times)
    assert math.isinf(m.median) and math.isinf(m.ci_high)
    assert m.reached == 1 and m.n == 4


def test_the_evaluation_interval_is_inside_the_median_interval():
    # every run reached 99 % at its first evaluation after 400: known only to lie in (300, 400]
    rows = [{"step": s, "val_accuracy": v} for s, v in ((0, 0.0), (300, 0.5), (400, 1.0))]
    assert bracket(rows, "val_accuracy", 0.99) == (300, 400)
    times = censored_times([rows] * 5, [1000] * 5, 0.99)
    m = st.km_median(times)
    assert m.median == 400 and m.ci_low == 300 and m.resolution == 100


def _logrank_by_hand(a: list[tuple[float, bool]], b: list[tuple[float, bool]]) -> float:
    """The two-sided log-rank p from its textbook sums (Mantel 1966)."""
    events = sorted({t for t, e in a + b if e})
    o_minus_e, var = 0.0, 0.0
    for t in events:
        n_a = sum(x >= t for x, _ in a)
        n = n_a + sum(x >= t for x, _ in b)
        d_a = sum(x == t and e for x, e in a)
        d = d_a + sum(x == t and e for x, e in b)
        o_minus_e += d_a - d * n_a / n
        var += d * (n_a / n) * (1 - n_a / n) * (n - d) / (n - 1) if n > 1 else 0.0
    return 2 * scipy_stats.norm.sf(abs(o_minus_e) / math.sqrt(var))


def test_logrank_equals_the_textbook_computation():
    a = [(300, True), (400, True), (400, True), (900, True), (3000, False)]
    b = [(500, True), (800, True), (1200, True), (3000, False), (3000, False)]
    ta = st.Times.exact([t if e else None for t, e in a], 3000)
    tb = st.Times.exact([t if e else None for t, e in b], 3000)
    result = st.logrank(ta, tb)
    assert result.p_value == pytest.approx(_logrank_by_hand(a, b), rel=1e-9)
    assert result.statistic < 0  # a reaches the threshold sooner


def test_fisher_equals_the_exact_hypergeometric_sum():
    # 1 of 5 against 5 of 5 reached: the two-sided p sums the tables as or less likely
    k_total, n_a, n_b = 6, 5, 5
    pmf = {k: math.comb(n_a, k) * math.comb(n_b, k_total - k) for k in range(1, 6)}
    total = sum(pmf.values())
    observed = pmf[1]
    p = sum(v for v in pmf.values() if v <= observed) / total
    assert st.fisher(1, 5, 5, 5).p_value == pytest.approx(p)
    assert st.fisher(1, 5, 5, 5).p_value == pytest.approx(2 / 42)  # 0.048: significant


def test_holm_on_a_known_family():
    # sorted 0.01, 0.02, 0.03, 0.04: x4, x3 -> max(0.04, 0.06), x2 -> 0.06, x1 -> 0.06
    assert st.holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    adjusted = st.holm([0.001, math.nan, 0.5])
    assert adjusted[0] == pytest.approx(0.002) and math.isnan(adjusted[1])


def test_tost_says_equivalent_only_inside_the_margin():
    rng = np.random.default_rng(0)
    a = 1000 * np.exp(0.05 * rng.standard_normal(12))
    assert st.tost_log_ratio(a, a * 1.02, margin=1.25).p_value < 0.01  # within 25 %
    assert st.tost_log_ratio(a, a * 3.0, margin=1.25).p_value > 0.5  # 3x apart
    wide = 1000 * np.exp(1.5 * rng.standard_normal(4))  # few, noisy: cannot exclude 4x
    assert st.tost_log_ratio(wide, wide[::-1] * 1.1, margin=1.25).p_value > 0.05


def test_probability_of_improvement_counts_hidden_orders_as_ties():
    a = st.Times.exact([100, 200], budget=1000)
    b = st.Times.exact([150, None], budget=1000)
    # pairs: 100<150 win, 100<censored win, 200>150 loss, 200<censored(>1000) win -> 3/4
    assert st.probability_of_improvement(a, b).probability == pytest.approx(0.75)
    both = st.Times.exact([None], budget=1000)
    assert st.probability_of_improvement(both, both).probability == 0.5
    result = st.probability_of_improvement(a, b)
    assert 0 <= result.ci_low <= 0.75 <= result.ci_high <= 1


def test_probability_of_improvement_is_mann_whitneys_u_over_the_pairs():
    """rliable's definition (Agarwal et al. 2021): P(X_a < X_b) = U / (n_a n_b), ties counting a
    half; censored runs at one budget are times above every observed one, tied among
    themselves. Checked against scipy's Mann-Whitney U on evaluation-grid times with ties."""
    rng = np.random.default_rng(3)
    for n_a, n_b in ((10, 10), (10, 5), (7, 12)):
        a = [int(v) if v < 1800 else None for v in 100 * rng.integers(2, 22, n_a)]
        b = [int(v) if v < 1800 else None for v in 100 * rng.integers(4, 24, n_b)]
        as_numbers = [[1e9 if v is None else v for v in arm] for arm in (a, b)]
        u = scipy_stats.mannwhitneyu(as_numbers[1], as_numbers[0]).statistic  # pairs b > a
        measured = st.probability_of_improvement(st.Times.exact(a, 1800), st.Times.exact(b, 1800))
        assert measured.probability == pytest.approx(u / (n_a * n_b))


def test_censored_trend_finds_a_trend_and_its_sign():
    x = [0.3, 0.3, 0.4, 0.4, 0.5, 0.5, 0.6, 0.6]
    falling = st.Times.exact([None, None, 5000, 6000, 2000, 2500, 900, 1000], budget=9000)
    result = st.censored_trend(x, falling)
    assert result.statistic == pytest.approx(-1.0) and result.p_value < 0.01
    flat = st.Times.exact([1000, 2000] * 4, budget=9000)
    assert st.censored_trend(x, flat).p_value > 0.5


def test_power_matches_known_values():
    # Fisher-z power at n = 8 against rho = -0.795, alpha 0.05: the issue's ~0.6
    assert st.power_spearman(-0.795, 8, 0.05) == pytest.approx(0.56, abs=0.02)
    assert st.power_spearman(-0.795, 20, 0.05) > 0.95
    # exact Fisher power equals the sum over every outcome
    direct = sum(
        scipy_stats.binom.pmf(i, 5, 0.2) * scipy_stats.binom.pmf(j, 5, 1.0)
        for i, j in product(range(6), range(6))
        if st.fisher(i, 5, j, 5).p_value < 0.05
    )
    assert st.power_fisher(0.2, 1.0, 5, 5, 0.05) == pytest.approx(direct)


def _claim(p: float, if_rejected: str = "holds", power: float | None = 0.9) -> claims.Claim:
    return claims.Claim("c", "a claim", "x", 1.0, (0.5, 1.5), "t", "h0", p, power, if_rejected)


def test_a_verdict_is_a_rejected_null_after_holm_and_nothing_else():
    holds, contradicted, weak = claims.decide(
        [_claim(0.001), _claim(0.002, "contradicted"), _claim(0.04)], "laptop"
    )
    assert holds["verdict"] == "holds" and holds["p_value"] == pytest.approx(0.003)
    assert contradicted["verdict"] == "contradicted"
    # the largest of three is multiplied by 1: 0.04 stays below alpha
    assert weak["p_value"] == pytest.approx(0.04) and weak["verdict"] == "holds"
    (alone,) = claims.decide([_claim(0.049)], "laptop")
    assert alone["verdict"] == "holds"
    # two at 0.03: Holm makes both 0.06; no significant difference is "undetermined"
    undecided = claims.decide([_claim(0.03), _claim(0.03)], "laptop")
    assert [r["verdict"] for r in undecided] == ["undetermined"] * 2
    assert "power against the paper's effect: 0.90" in undecided[0]["why"]


def test_smoke_scale_and_untestable_claims_are_undetermined():
    (smoke,) = claims.decide([_claim(1e-9)], "smoke")
    assert smoke["verdict"] == "undetermined" and "code path only" in smoke["why"]
    one_run = claims.Claim.untestable("c", "a claim", "x", 0.7, "one run per point")
    (record,) = claims.decide([one_run], "paper")
    assert record["verdict"] == "undetermined" and record["why"] == "one run per point"
    assert record["p_value"] is None  # JSON has no nan
    for key in ("id", "claim", "paper_value", "measured", "interval", "test", "null", "alpha"):
        assert key in record
