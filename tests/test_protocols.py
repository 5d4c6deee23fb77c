"""The paper's protocols on constructed cases: Figure 7's half-grokked step and its statistics,
Figure 3's conjugate cosets."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from grokkit.analysis import (
    PAPER_S5_GENERATORS,
    best_coset_colouring,
    compose,
    conjugate_subgroups,
    cycle_notation,
    from_cycles,
    inverse,
    s5_coset_labels,
    subgroup_closure,
)
from grokkit.data import make_table
from grokkit.experiments.fig7 import (
    accuracy_at,
    correlation,
    half_grokked_step,
    permutation_p,
    spearman,
)

S5_NAMES = make_table("s5_xy").operation.element_names

# ---------------------------------------------------------------- Figure 7: the step T


def test_T_is_where_the_count_of_grokked_seeds_is_closest_to_half():
    first = [100, 200, 300, None]  # 4 seeds: half is 2, reached at step 200
    assert half_grokked_step(first, [0, 100, 200, 300, 400]) == 200


def test_T_takes_the_earliest_step_among_equally_close_ones():
    first = [
        100,
        300,
        300,
        300,
        None,
        None,
    ]  # counts 0, 1, 1, 4, 4 at 0, 100, 200, 300, 400: half is 3
    assert half_grokked_step(first, [400, 300, 200, 100, 0]) == 300  # |4-3| < |1-3|


def test_T_jumps_over_half_when_many_seeds_grok_at_once():
    first = [500, 500, 500, 500, 500, 100]  # counts 0, 1, 6: half 3, 1 and 6 are 2 and 3 away
    assert half_grokked_step(first, [0, 100, 500]) == 100


def test_T_when_fewer_than_half_grok_is_where_the_last_did():
    assert half_grokked_step([200, None, None, None], [0, 100, 200, 300]) == 200


def test_T_when_none_groks_is_the_last_snapshot():
    assert half_grokked_step([None, None, None], [0, 500, 1000]) == 1000


def test_T_only_counts_seeds_that_got_there_by_then():
    # A seed that grokked after the step does not count at it, even at the same budget.
    first = [50, 60, 1000, 1000]
    assert half_grokked_step(first, [0, 40, 60, 900, 1000]) == 60


def test_accuracy_at_reads_the_evaluation_of_that_step():
    metrics = [{"step": 0, "val_accuracy": 0.1}, {"step": 500, "val_accuracy": 0.7}]
    assert accuracy_at(metrics, 500) == 0.7
    with pytest.raises(ValueError, match="no evaluation at step 250"):
        accuracy_at(metrics, 250)


# ---------------------------------------------------------------- Figure 7: statistics


@pytest.mark.slow
def test_spearman_of_a_perfectly_decreasing_relation():
    phi = [0.1, 0.2, 0.3, 0.5, 0.8, 1.3, 2.1, 3.4]
    acc = [1.0, 0.99, 0.9, 0.7, 0.5, 0.3, 0.2, 0.1]
    rho, p = spearman(phi, acc)
    assert rho == pytest.approx(-1.0)
    lo, hi = correlation(phi, acc)["ci"]  # Fisher-z: near -1, never past it
    assert -1.0 <= lo < hi < -0.9
    # Only the identity pairing and its reverse reach |rho| = 1: p ~ 2 / 8! ~ 5e-5, bounded by
    # 1/10^4.
    assert permutation_p(phi, acc) < 1e-3


@pytest.mark.slow
def test_unrelated_values_give_a_wide_interval_and_a_large_p():
    rng = np.random.default_rng(1)
    phi, acc = rng.random(16), rng.random(16)
    lo, hi = correlation(phi, acc)["ci"]
    assert lo < 0 < hi
    assert permutation_p(phi, acc) > 0.05


def test_a_constant_variable_has_no_rho():
    assert np.isnan(spearman([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])[0])
    assert np.isnan(permutation_p([1.0, 2.0, 3.0], [1.0, 1.0, 1.0]))


# ---------------------------------------------------------------- Figure 3: conjugate cosets


def test_the_papers_subgroup_has_six_conjugates_of_order_ten():
    conjugates = conjugate_subgroups(PAPER_S5_GENERATORS)
    assert len(conjugates) == 6  # |S5| / |N(D5)| = 120 / 20
    assert conjugates[0][1] == PAPER_S5_GENERATORS  # H itself first
    groups = [frozenset(subgroup_closure(gens)) for _, gens in conjugates]
    assert len(set(groups)) == 6 and all(len(g) == 10 for g in groups)
    # Independently: the set {g h g^-1 : h in H} over every g of S5 gives exactly these 6.
    H = subgroup_closure(PAPER_S5_GENERATORS)
    every = {
        frozenset(compose(compose(g, h), inverse(g)) for h in H)
        for g in itertools.permutations(range(5))
    }
    assert every == set(groups)


def test_cycle_notation():
    assert cycle_notation(from_cycles([(0, 3), (1, 4)], 5)) == "(0,3)(1,4)"
    assert cycle_notation(tuple(range(5))) == "()"


def _layout_by(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Tight clusters, one per label, far apart: every point's 5 nearest share its label."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(labels.max() + 1, 2)) * 100
    return centres[labels] + rng.normal(size=(len(labels), 2))


@pytest.mark.parametrize("which,side", [(0, "left"), (3, "right"), (5, "left")])
def test_the_best_colouring_is_the_conjugate_the_layout_was_built_from(which, side):
    _, gens = conjugate_subgroups(PAPER_S5_GENERATORS)[which]
    points = _layout_by(s5_coset_labels(S5_NAMES, side=side, generators=gens))
    best = best_coset_colouring(points, S5_NAMES, PAPER_S5_GENERATORS, shuffles=200)
    assert best["generators"] == gens and best["side"] == side
    assert best["agreement"] == 1.0 and best["tested"] == 12
    assert best["chance"] == pytest.approx(12 * 10 * 9 / (120 * 119))
    assert best["p"] == pytest.approx(1 / 201)  # no shuffle comes close
    assert best["best_chance_95"] < 0.2


def test_a_random_layout_has_no_coset_structure():
    points = np.random.default_rng(2).normal(size=(120, 2))
    best = best_coset_colouring(points, S5_NAMES, PAPER_S5_GENERATORS, shuffles=200)
    assert best["agreement"] < 0.2 and best["p"] > 0.05
    # The best of 12 colourings beats one colouring's chance level on shuffles too.
    assert best["best_chance_mean"] > best["chance"]


@pytest.mark.parametrize(
    "rho,perm_p,n,negative,paper",
    [
        # strong and negative, 20 seeds: rho < 0 holds; -0.8 is the paper's: not rejected
        (-0.8, 0.0001, 20, "holds", "undetermined"),
        # significant and positive: both the sign and the paper's value are contradicted
        (0.73, 0.0001, 20, "contradicted", "contradicted"),
        # raw p below 0.05 but not after Holm over the family of 12
        (-0.49, 0.03, 20, "undetermined", "undetermined"),
    ],
)
def test_the_fig7_claims_follow_the_tests(rho, perm_p, n, negative, paper):
    from grokkit.analysis.statistics import spearman_interval
    from grokkit.config import RunConfig
    from grokkit.experiments import claims, fig7

    s = {"rho": rho, "p": perm_p, "perm_p": perm_p, "ci": spearman_interval(rho, n)}
    table = {"T": 500, "grokked_at_T": n // 2, "n": n, "stats": dict.fromkeys(fig7.TITLES, s)}
    sharp = fig7.Sharpness({"grokkit": table, "openai-grok": table}, RunConfig("s5_xy"), "laptop")
    records = {r["id"]: r for r in claims.decide(fig7.claims(sharp), "laptop")}
    assert len(records) == 12
    assert records["grokkit.keskar.negative"]["verdict"] == negative
    assert records["grokkit.keskar.paper_rho"]["verdict"] == paper
    assert records["grokkit.keskar.negative"]["power"] > 0.8  # 20 seeds, alpha / 12
    assert "holds" not in fig7.describe(sharp) and "paper" not in fig7.describe(sharp)


def _fig7_results_and_tables(monkeypatch, signs: dict):
    """Fake fig7 results of two architectures whose per-definition statistics have the given
    signs (-1 significant negative, +1 significant positive, 0 nothing)."""
    from grokkit.config import RunConfig
    from grokkit.experiments import fig7

    def stats(sign):
        if sign == 0:
            return {"rho": 0.1, "p": 0.6, "perm_p": 0.6, "ci": (-0.5, 0.6)}
        return {
            "rho": 0.8 * sign,
            "p": 0.001,
            "perm_p": 0.001,
            "ci": tuple(sorted((0.4 * sign, 0.95 * sign))),
        }

    results = [
        SimpleNamespace(config=RunConfig(operation="s5_xy").with_changes(arch=a), arch=a)
        for a in ("grokkit", "openai-grok")
    ]
    monkeypatch.setattr(fig7, "measured_phis", lambda groups: dict.fromkeys(groups))
    monkeypatch.setattr(
        fig7,
        "table",
        lambda rs, measured: {
            "n": 20,
            "stats": {d: stats(signs[(rs[0].arch, d)]) for d in fig7.SHARPNESS_DEFINITIONS},
        },
    )
    return fig7, results


@pytest.mark.parametrize(
    "agreeing,says",
    [
        ((), "Neither the architecture nor the sharpness definition explains"),
        (
            (
                ("openai-grok", "keskar"),
                ("openai-grok", "keskar-subspace"),
                ("openai-grok", "openai-grok"),
            ),
            "the architecture (openai-grok)",
        ),
        (
            (("grokkit", "openai-grok"), ("openai-grok", "openai-grok")),
            "the sharpness definition (openai-grok)",
        ),
        ((("grokkit", "keskar"),), "no single factor"),
    ],
)
def test_fig7_names_the_hypothesis_that_explains_a_disagreement(monkeypatch, agreeing, says):
    from grokkit.analysis.sharpness import SHARPNESS_DEFINITIONS

    signs = {
        (a, d): (-1 if (a, d) in agreeing else 1)
        for a in ("grokkit", "openai-grok")
        for d in SHARPNESS_DEFINITIONS
    }
    fig7, results = _fig7_results_and_tables(monkeypatch, signs)
    assert says in fig7.disagreement(fig7.measure(results, "laptop"))


def _fig3_stats(p: float, values: list[float]) -> dict:
    part = {"stats": values, "p": p, "ps": [p] * len(values)}
    return {"paper": part, "paper_rows": part, "seeds": list(range(len(values)))}


def test_fig3_says_whether_the_architecture_explains_a_missing_structure():
    from grokkit.experiments import fig3

    rng = np.random.default_rng(0)
    weak = list(0.1 + 0.01 * rng.standard_normal(10))
    strong = list(0.9 + 0.01 * rng.standard_normal(10))
    stats = {
        ("grokkit", "s5_xy"): _fig3_stats(0.6, weak),
        ("openai-grok", "s5_xy"): _fig3_stats(1 / 1001, strong),
        ("grokkit", "x+y mod 97"): _fig3_stats(0.6, weak),
        ("openai-grok", "x+y mod 97"): _fig3_stats(0.5, weak[::-1]),
    }
    panels = {key: fig3.Panel([], [], g) for key, g in stats.items()}
    text = fig3.disagreement(fig3.Panels(panels, "laptop"))
    assert (
        "the cosets of H or a conjugate (tsne): grokkit undetermined, openai-grok holds; the "
        "architectures differ" in text
    )
    assert "the architecture explains it" in text
    assert "x -> x+8 (tsne): grokkit undetermined, openai-grok undetermined; the test" in text


def test_fig7_says_undetermined_when_no_claim_is_decided(monkeypatch):
    from grokkit.analysis.sharpness import SHARPNESS_DEFINITIONS

    signs = {(a, d): 0 for a in ("grokkit", "openai-grok") for d in SHARPNESS_DEFINITIONS}
    fig7, results = _fig7_results_and_tables(monkeypatch, signs)
    text = fig7.disagreement(fig7.measure(results, "laptop"))
    assert text.startswith("Undetermined: no combination's claim was decided")
