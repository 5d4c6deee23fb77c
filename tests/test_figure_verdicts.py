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
from grokkit.experiments import fig1_left, fig3, stablemax

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
    # the rows' own space: the same points (a layout the projection kept as it was)
    monkeypatch.setattr(fig3, "element_rows", lambda run_dir: by_dir[run_dir])
    return results


def test_fig3_claim_holds_only_for_a_layout_that_has_x_plus_8(monkeypatch):
    from grokkit.experiments import claims

    good = fake_results(
        monkeypatch,
        {s: circle_with_step(8, noise=0.01, seed=s) for s in range(3)},
        "x+y",
        tag="good",
    )
    panels = fig3.measure(good, "laptop")
    records = {r["id"]: r for r in claims.decide(fig3.claims(panels), "laptop")}
    for space in fig3.SPACES:
        record = records[f"grokkit.x+y mod {P}.{space}"]
        assert record["verdict"] == "holds" and record["p_value_raw"] == pytest.approx(1 / 1001)
    bad = fake_results(
        monkeypatch, {s: random_layout(P, 10 + s) for s in range(3)}, "x+y", tag="bad"
    )
    panels = fig3.measure(bad, "laptop")
    records = claims.decide(fig3.claims(panels), "laptop")
    assert [r["verdict"] for r in records] == ["undetermined"] * 2
    assert "holds" not in fig3.describe(panels)  # numbers only: the verdicts are the records'


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
    assert len({c.seed for c in configs}) == fig3.SEEDS["laptop"] >= 10
    assert len({c.seed for c in fig3.runs("laptop", seeds=4)}) == 4
    assert {c.arch for c in fig3.runs("laptop", arch="openai-grok")} == {"openai-grok"}
    assert fig3.runs("laptop", arch="grokkit") == [c for c in configs if c.arch == "grokkit"]
    with pytest.raises(Exception):
        fig3.runs("laptop", arch="nope")


# ---------------------------------------------------------------- fig1-left


def fig1_result(train_99, val_99, steps_done=8000):
    summary = {
        "steps_to_train_99": train_99,
        "steps_to_val_99": val_99,
        "steps_done": steps_done,
        "best_val_accuracy": 1.0,
    }
    return fig1_left.Curve(config=RunConfig(), summary=summary, rows=[], scale="laptop")


def test_fig1_left_same_step_is_not_as_in_the_paper():
    text = fig1_left.verdict(fig1_result(300, 300))
    assert "as in the paper" not in text and "no delay" in text


@pytest.mark.parametrize(
    "train_99, val_99, as_paper",
    [(300, 200, False), (300, 2_900, False), (300, 3_000, True), (500, 900_000, True)],
)
def test_fig1_left_needs_a_decade_of_delay(train_99, val_99, as_paper):
    text = fig1_left.verdict(fig1_result(train_99, val_99))
    assert ("as in the paper" in text) == as_paper, text


# ---------------------------------------------------------------- stablemax


def test_stablemax_runs_are_the_authors_transformer_runs_plus_ours():
    """run_main_experiments.sh, Figure 6, the three --use_transformer commands: x+y mod 113, 40 %,
    full batch, lr 1e-3, 5,000 updates; baseline AdamW (wd 0, beta2 0.99, eps 1e-25), ⊥AdamW (as
    their wrapper runs: PyTorch's beta2 0.999 and eps 1e-8), AdamW weight decay 1.5. No warm-up."""
    configs = {stablemax.method_of(c): c for c in stablemax.runs("paper") if c.seed == 0}
    assert set(configs) == set(stablemax.METHODS) and set(stablemax.THEIRS) | set(
        stablemax.OURS
    ) == set(configs)
    for c in configs.values():
        o = c.optimizer
        assert (c.operation, c.modulus, c.train_fraction, c.steps) == ("x+y", 113, 0.4, 5_000)
        assert (o.lr, o.beta1, o.l2, o.batch_size, o.warmup_steps) == (1e-3, 0.9, 0.0, 0, 0)
    opt = {
        m: (c.loss, c.orthogonal_grad, c.optimizer.weight_decay, c.optimizer.beta2, c.optimizer.eps)
        for m, c in configs.items()
    }
    assert opt["softmax"] == ("softmax", False, 0.0, 0.99, 1e-25)
    assert opt["softmax + ⊥AdamW"] == ("softmax", True, 0.0, 0.999, 1e-8)
    assert opt["softmax + weight decay 1.5"] == ("softmax", False, 1.5, 0.99, 1e-25)
    assert opt["StableMax"] == ("stablemax", False, 0.0, 0.99, 1e-25)
    assert opt["StableMax + ⊥AdamW"] == ("stablemax", True, 0.0, 0.999, 1e-8)
    assert len(stablemax.runs("laptop")) == 5 and len(stablemax.runs("paper")) == 15


def test_stablemax_verdict_judges_the_authors_claim_on_their_runs():
    finals = {
        "softmax": (0.2, 0.6),
        "softmax + ⊥AdamW": (0.99, 0.0),
        "softmax + weight decay 1.5": (1.0, 0.0),
        "StableMax": (0.1, 0.0),
        "StableMax + ⊥AdamW": (0.97, 0.0),
    }
    text = stablemax.verdict_from(finals)
    assert (
        "As in the authors' transformer runs" in text
        and "Of our combinations, StableMax + ⊥AdamW reached" in text
    )
    text = stablemax.verdict_from({**finals, "softmax + weight decay 1.5": (0.5, 0.0)})
    assert "did not reach 95 % either: their claim does not hold here" in text
    assert "Unlike the authors' runs" in stablemax.verdict_from({**finals, "softmax": (0.99, 0.0)})
