"""Verdicts of fig3, fig1-left and stablemax on constructed statistics and layouts (no training).

fig3's null: the layout does not know which point is which element (the elements are shuffled
over the points, 1,000 times per seed); its statistic is the fraction of points whose translate
lies among their 5 nearest neighbours (or the best colouring's same-coset rate for S5); the
seeds are pooled by their mean statistic; a structure holds at combined p < fig3.SIGNIFICANCE.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from grokkit.analysis.embeddings import (
    best_translation_test,
    combined_permutation_p,
    compose,
    orbit_labels,
    permutation_p,
    s5_coset_labels,
    translation_test,
)
from grokkit.config import RunConfig
from grokkit.errors import InputError
from grokkit.experiments import claims, fig1_left, fig3, fig4

P = 97


def addition_table(p: int = P) -> np.ndarray:
    return (np.arange(p)[:, None] + np.arange(p)[None, :]) % p


def circle_with_step(step: int, p: int = P, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Z_p on a circle in the order 0, step, 2·step, ...: x -> x+step is always a nearest move."""
    slot = (np.arange(p) * pow(step, -1, p)) % p
    angle = 2 * np.pi * slot / p
    points = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return points + noise * np.random.default_rng(seed).normal(size=points.shape)


def random_layout(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 2))


# ---------------------------------------------------------------- the shuffle null itself


def test_perfect_x_plus_8_layout_is_significant_and_random_layouts_are_not():
    perfect = translation_test(circle_with_step(8), addition_table(), 8, k=5, shuffles=1000, seed=0)
    assert perfect["rate"] == 1.0 and perfect["chance"] == pytest.approx(5 / 96)
    assert perfect["p"] == pytest.approx(1 / 1001) and perfect["p"] < fig3.SIGNIFICANCE
    for seed in range(5):
        random = translation_test(
            random_layout(P, seed), addition_table(), 8, k=5, shuffles=1000, seed=seed
        )
        assert random["p"] >= fig3.SIGNIFICANCE, (seed, random["rate"], random["p"])
        assert random["null"].mean() == pytest.approx(5 / 96, abs=0.01)  # the null sits at chance


def test_a_layout_ordered_by_another_step_does_not_pass_for_x_plus_8():
    """x -> x+3 is local on this circle, x -> x+8 is not: the test is about the named move."""
    points = circle_with_step(3)
    assert translation_test(points, addition_table(), 8, seed=0)["p"] > 0.5
    assert translation_test(points, addition_table(), 3, seed=0)["p"] < fig3.SIGNIFICANCE


def test_best_translation_null_pays_for_the_search():
    """The best of 2n translations of a random layout beats the one-translation chance k/(n-1)
    but not the null of the same search; a real structure beats both."""
    table = addition_table()
    random = best_translation_test(random_layout(P, 1), table, k=5, shuffles=500, seed=0)
    assert random["rate"] > 1.5 * random["chance"]  # well above the chance of one named translation
    assert random["p"] >= fig3.SIGNIFICANCE
    found = best_translation_test(circle_with_step(3), table, k=5, shuffles=500, seed=0)
    assert (
        found["g"] in (3, P - 3) and found["rate"] == 1.0 and found["p"] == pytest.approx(1 / 501)
    )


def test_combined_p_pools_seeds_by_their_mean():
    rng = np.random.default_rng(0)
    nulls = [rng.normal(0.05, 0.02, size=1000) for _ in range(3)]
    assert combined_permutation_p([0.2, 0.2, 0.2], nulls) == pytest.approx(1 / 1001)
    assert combined_permutation_p([0.05, 0.05, 0.05], nulls) > 0.2
    # Three seeds each only weakly above their nulls (p ~ 0.07 alone) are strong evidence together.
    weak = [float(np.quantile(n, 0.93)) for n in nulls]
    assert all(permutation_p(w, n) > fig3.SIGNIFICANCE for w, n in zip(weak, nulls))
    assert combined_permutation_p(weak, nulls) < fig3.SIGNIFICANCE
    with pytest.raises(ValueError):
        combined_permutation_p([0.1], [nulls[0][:10], nulls[1]])


def test_orbit_labels_are_the_cosets_of_the_generated_subgroup():
    perms = list(itertools.permutations(range(5)))
    index = {q: i for i, q in enumerate(perms)}
    names = ["".join(map(str, q)) for q in perms]
    g = (1, 2, 0, 3, 4)  # a 3-cycle
    mapping = np.array([index[compose(a, g)] for a in perms])  # a -> a∘g
    labels = orbit_labels(mapping)
    expected = s5_coset_labels(names, side="left", generators=[g])
    assert np.bincount(labels).tolist() == [3] * 40
    assert all(
        (labels[i] == labels[j]) == (expected[i] == expected[j])
        for i in range(120)
        for j in range(120)
    )


# ---------------------------------------------------------------- fig3's verdict, trained nothing


def fake_results(
    monkeypatch, layouts: dict, operation: str, arch: str = "grokkit", tag: str = "t"
) -> list:
    """Results whose t-SNE layouts are given (by seed): the analysis runs on them as on a real
    run."""
    results = []
    for seed, points in layouts.items():
        cfg = RunConfig(operation=operation, modulus=P, seed=seed, steps=10)
        if arch != "grokkit":
            cfg = cfg.with_changes(arch=arch)
        results.append(
            SimpleNamespace(
                config=cfg,
                run_dir=f"/nonexistent/{tag}-{operation}-{arch}-{seed}",
                summary={"best_val_accuracy": 1.0, "steps_done": 10},
            )
        )
    by_dir = {r.run_dir: layouts[r.config.seed] for r in results}
    monkeypatch.setattr(fig3, "embed", lambda result: (None, by_dir[result.run_dir]))
    return results


def test_fig3_verdict_says_x_plus_8_holds_only_for_a_layout_that_has_it(monkeypatch):
    good = fake_results(
        monkeypatch,
        {s: circle_with_step(8, noise=0.01, seed=s) for s in range(3)},
        "x+y",
        tag="good",
    )
    text = fig3.verdict(fig3.measure(good, "laptop"))
    assert "x -> x+8 is a local move" in text and f"combined p = {1 / 1001:.2g} < 0.01" in text
    bad = fake_results(
        monkeypatch, {s: random_layout(P, 10 + s) for s in range(3)}, "x+y", tag="bad"
    )
    text = fig3.verdict(fig3.measure(bad, "laptop"))
    assert (
        "x -> x+8 is not a local move" in text
        and "is not a local move beyond the search's chance" in text
    )


def test_fig3_reads_s5_structure_in_the_runs_own_convention(monkeypatch):
    """Under openai-grok a∘b is the authors' product (the left operand acts first). A layout in
    which every a sits next to a∘g of *that* product, and whose clusters are the paper's H's left
    cosets xH of that product, is reported as such, not with the sides swapped."""
    from grokkit.analysis.embeddings import PAPER_S5_GENERATORS

    cfg = RunConfig(operation="s5_xy").with_changes(arch="openai-grok")
    names = fig3.run_table(cfg).operation.element_names
    # Cosets xH in the authors' product: {a * h} = {h ∘ a} in grokkit's composition (its right
    # cosets).
    labels = s5_coset_labels(names, side="right", generators=PAPER_S5_GENERATORS)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(labels.max() + 1, 2)) * 100
    points = centres[labels] + rng.normal(size=(120, 2))
    results = fake_results(monkeypatch, {0: points}, "s5_xy", arch="openai-grok", tag="conv")
    g = fig3.group_stats(results)
    assert g["paper"]["holds"] and g["paper"]["names"] == ["x<(0,3)(1,4), (1,2)(3,4)>"]
    assert g["paper"]["paper_h"] == [1.0]
    # Its own translations stay inside the cosets xH: right translations a -> a∘h of the run's
    # product.
    assert g["own"]["names"][0].startswith("x·") and g["own"]["holds"]
    assert g["own"]["cosets"][0]["name"].startswith("x<")


def test_fig3_element_rows_read_the_element_tokens(monkeypatch):
    """openai-grok puts the elements after 119 other tokens: their rows are not W_U[:, :n]."""
    cfg = RunConfig(operation="s5_xy").with_changes(arch="openai-grok", d_model=8, n_heads=2)
    model_config = cfg.model_config(120)
    w_u = torch.arange(model_config.vocab_size, dtype=torch.float32).repeat(
        8, 1
    )  # [d, V]: column = token id
    monkeypatch.setattr(fig3, "load_run_weights", lambda run_dir: (cfg, model_config, {"W_U": w_u}))
    rows = fig3.element_rows("unused")
    first = model_config.element_tokens().start
    assert rows.shape == (120, 8) and first > 0
    assert rows[:, 0].tolist() == list(range(first, first + 120))


def test_fig3_arch_option_trains_both_architectures_by_default():
    configs = fig3.runs("laptop")
    assert {c.arch for c in configs} == {"grokkit", "openai-grok"}
    assert len({c.seed for c in configs}) == fig3.SEEDS["laptop"] >= 3
    assert {c.arch for c in fig3.runs("laptop", arch="openai-grok")} == {"openai-grok"}
    assert fig3.runs("laptop", arch="grokkit") == [c for c in configs if c.arch == "grokkit"]
    with pytest.raises(Exception):
        fig3.runs("laptop", arch="nope")


# ---------------------------------------------------------------- claim records, trained nothing
#
# Each figure's claims on constructed measurements: one where a claim must hold, one where it is
# contradicted (where the claim allows it), one undetermined, smoke scale all undetermined, and a
# description without judgement words.

JUDGEMENT_WORDS = (
    "as the paper",
    "as in the paper",
    "unlike",
    "does not hold",
    "holds",
    "no double descent",
    "agreeing",
    "contradict",
    "the claim",
    "their claim",
)


def verdicts(module, measured, scale: str = "laptop") -> dict[str, str]:
    return {r["id"]: r["verdict"] for r in claims.decide(module.claims(measured), scale)}


def assert_no_judgement(text: str) -> None:
    low = text.lower()
    assert not [w for w in JUDGEMENT_WORDS if w in low], text


def accuracy_rows(train_at: int, val_at: int | None, steps: int = 8000, every: int = 100):
    """Rows (step, train acc, val acc, train loss, val loss) evaluated every ``every`` steps:
    training at 100 % from ``train_at``, validation from ``val_at`` (None: never)."""
    return [
        [
            s,
            1.0 if s >= train_at else 0.5,
            1.0 if val_at is not None and s >= val_at else 0.1,
            0.01,
            1.0,
        ]
        for s in range(0, steps + 1, every)
    ]


def fig1_curve(rows_per_seed) -> fig1_left.Curve:
    return fig1_left.Curve(
        [fig1_left.SeedCurve(RunConfig(seed=i), rows) for i, rows in enumerate(rows_per_seed)],
        "laptop",
    )


def test_fig1_left_delay_of_a_decade_on_every_seed_holds():
    curve = fig1_curve([accuracy_rows(200, 5_000)] * 6)  # at least 4,900 / 200 = 24.5x
    assert verdicts(fig1_left, curve) == {"delay_decade": "holds"}


def test_fig1_left_short_delay_on_every_seed_is_contradicted():
    curve = fig1_curve([accuracy_rows(200, 400)] * 6)  # at most 400 / 100 = 4x
    assert verdicts(fig1_left, curve) == {"delay_decade": "contradicted"}


def test_fig1_left_delay_within_one_evaluation_of_ten_x_is_undecided():
    # Training's bracket (900, 1000], validation's (9,900, 10,000]: 9.9x to 11.1x, either side.
    curve = fig1_curve([accuracy_rows(1_000, 10_000, steps=12_000)] * 6)
    assert fig1_left.delay_signs(curve) == (0, 0, 6)
    assert verdicts(fig1_left, curve) == {"delay_decade": "undetermined"}


def test_fig1_left_one_seed_is_undetermined_and_smoke_always():
    assert verdicts(fig1_left, fig1_curve([accuracy_rows(200, 5_000)])) == {
        "delay_decade": "undetermined"
    }
    curve = fig1_curve([accuracy_rows(200, 5_000)] * 6)
    assert verdicts(fig1_left, curve, "smoke") == {"delay_decade": "undetermined"}


def test_fig1_left_describes_medians_without_judgement():
    text = fig1_left.describe(fig1_curve([accuracy_rows(200, 5_000)] * 6))
    assert "Kaplan-Meier median 200 [" in text and "6 of 6" in text
    assert_no_judgement(text)


def test_fig1_left_seeds_option():
    assert [c.seed for c in fig1_left.runs("laptop")] == list(range(6))
    assert len(fig1_left.runs("laptop", seeds=9)) == 9
    with pytest.raises(InputError):
        fig1_left.runs("laptop", seeds=0)


def loss_rows(val_losses, every: int = 100):
    return [[i * every, 1.0, 1.0, 0.01, v] for i, v in enumerate(val_losses)]


def test_fig4_rise_then_fall_on_every_seed_holds():
    curve = fig1_curve([loss_rows([4.6, 9.0, 12.0, 0.5])] * 6)
    assert verdicts(fig4, curve) == {"double_descent": "holds"}


def test_fig4_loss_that_never_rose_is_contradicted():
    curve = fig1_curve([loss_rows([4.6, 3.0, 1.0, 0.1])] * 6)
    assert verdicts(fig4, curve) == {"double_descent": "contradicted"}


def test_fig4_loss_still_high_at_the_budget_is_undecided():
    curve = fig1_curve([loss_rows([4.6, 9.0, 12.0, 11.0])] * 6)
    assert fig4.signs(curve) == (0, 0, 6)
    assert verdicts(fig4, curve) == {"double_descent": "undetermined"}


def test_fig4_smoke_is_undetermined_and_describe_has_no_judgement():
    curve = fig1_curve([loss_rows([4.6, 9.0, 12.0, 0.5])] * 6)
    assert verdicts(fig4, curve, "smoke") == {"double_descent": "undetermined"}
    assert_no_judgement(fig4.describe(fig1_curve([loss_rows([4.6, 3.0, 1.0])])))
