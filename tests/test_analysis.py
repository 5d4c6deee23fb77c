import itertools
import math

import numpy as np
import pytest
import torch

from grokkit.analysis import (
    PAPER_S5_GENERATORS,
    add_constant_pairs,
    compose,
    flatten_parameters,
    inverse,
    keskar_sharpness,
    parse_permutation,
    residue_labels,
    s5_coset_labels,
    subgroup_closure,
    tsne_2d,
)

EPSILON = 1e-3
S5_NAMES = ["".join(map(str, p)) for p in itertools.permutations(range(5))]


def quadratic(curvature: torch.Tensor):
    return lambda w: 0.5 * (curvature * w**2).sum()


def analytic_quadratic_phi(curvature: np.ndarray, x0: np.ndarray, epsilon: float) -> float:
    # 0.5 Σ c_i w_i² grows away from 0, so its max over the box is at the corner farthest from 0.
    half_width = epsilon * (np.abs(x0) + 1)
    f0 = 0.5 * np.sum(curvature * x0**2)
    f_max = 0.5 * np.sum(curvature * (np.abs(x0) + half_width) ** 2)
    return (f_max - f0) / (1 + f0) * 100


def test_sharpness_of_quadratic_matches_the_farthest_corner():
    curvature = np.array([1.0, 4.0, 0.5, 10.0, 2.0])
    x0 = np.array([0.3, -1.2, 2.0, -0.05, 0.7])
    phi = keskar_sharpness(
        quadratic(torch.tensor(curvature)), torch.tensor(x0), epsilon=EPSILON, max_iterations=100
    )
    assert phi == pytest.approx(analytic_quadratic_phi(curvature, x0, EPSILON), rel=1e-3)


def test_sharpness_at_a_stationary_point_uses_the_random_start():
    curvature = np.array([1.0, 3.0, 7.0])
    x0 = np.zeros(3)
    phi = keskar_sharpness(
        quadratic(torch.tensor(curvature)), torch.tensor(x0), epsilon=EPSILON, max_iterations=100
    )
    assert phi == pytest.approx(analytic_quadratic_phi(curvature, x0, EPSILON), rel=1e-3)


def test_sharpness_is_deterministic_given_the_seed():
    def loss(w):
        return 0.5 * (w**2).sum()

    x0 = torch.zeros(4, dtype=torch.float64)
    assert keskar_sharpness(loss, x0, seed=3) == keskar_sharpness(loss, x0, seed=3)


@pytest.mark.parametrize(
    "loss_fn",
    [lambda w: torch.tensor(2.5, dtype=w.dtype), lambda w: 0.0 * w.sum() + 2.5],
    ids=["independent_of_w", "zero_gradient"],
)
def test_sharpness_of_a_constant_loss_is_zero(loss_fn):
    assert keskar_sharpness(loss_fn, torch.randn(6, dtype=torch.float64)) == 0.0


def test_sharper_quadratic_has_larger_sharpness():
    x0 = torch.tensor([0.5, -0.2, 1.0], dtype=torch.float64)
    flat = keskar_sharpness(quadratic(torch.full((3,), 1.0, dtype=torch.float64)), x0)
    sharp = keskar_sharpness(quadratic(torch.full((3,), 20.0, dtype=torch.float64)), x0)
    assert sharp > flat > 0


def test_sharpness_works_in_float32_through_a_module():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    inputs, targets = torch.randn(16, 3), torch.randint(0, 2, (16,))
    flat, unflatten = flatten_parameters(dict(model.named_parameters()))

    def loss(w):
        logits = torch.func.functional_call(model, unflatten(w), (inputs,))
        return torch.nn.functional.cross_entropy(logits, targets)

    phi = keskar_sharpness(loss, flat)
    assert math.isfinite(phi) and phi > 0


def test_flatten_parameters_round_trips_and_keeps_gradients():
    tensors = {"W_E": torch.randn(3, 4), "b": torch.randn(4)}
    flat, unflatten = flatten_parameters(tensors)
    assert flat.shape == (16,)
    restored = unflatten(flat)
    for name, tensor in tensors.items():
        assert torch.equal(restored[name], tensor)
    w = flat.clone().requires_grad_(True)
    unflatten(w)["b"].sum().backward()
    assert w.grad[12:].eq(1).all() and w.grad[:12].eq(0).all()


def test_tsne_is_deterministic_with_its_seed_and_returns_two_columns():
    vectors = np.random.default_rng(0).normal(size=(30, 6))
    first = tsne_2d(vectors, seed=1)
    assert first.shape == (30, 2)
    assert np.array_equal(first, tsne_2d(vectors, seed=1))


def test_tsne_keeps_two_separated_blobs_apart():
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(0, 1, size=(20, 8)), rng.normal(20, 1, size=(20, 8))])
    labels = np.repeat([0, 1], 20)
    embedding = tsne_2d(blobs, seed=0)
    distances = np.linalg.norm(embedding[:, None] - embedding[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    nearest = distances.argmin(axis=1)  # leave-one-out 1-NN on the embedding
    assert np.mean(labels[nearest] == labels) == 1.0


def test_one_line_notation_and_composition_convention():
    x, y = parse_permutation("12034"), parse_permutation("10234")
    assert x == (1, 2, 0, 3, 4)
    assert compose(x, y)[0] == x[y[0]] == 2
    assert compose(x, inverse(x)) == (0, 1, 2, 3, 4)


def brute_force_closure(generators):
    elements = {tuple(range(5)), *generators}
    while True:
        products = {compose(a, b) for a in elements for b in elements}
        if products <= elements:
            return elements
        elements |= products


def test_paper_subgroup_order_matches_brute_force_closure():
    subgroup = subgroup_closure(PAPER_S5_GENERATORS)
    assert subgroup == brute_force_closure(PAPER_S5_GENERATORS)
    assert len(subgroup) == 10  # (0,3)(1,4) · (1,2)(3,4) is a 5-cycle: dihedral of order 10


@pytest.mark.parametrize("side", ["left", "right"])
def test_cosets_partition_s5_into_equal_classes(side):
    labels = s5_coset_labels(S5_NAMES, side=side)
    order = len(subgroup_closure(PAPER_S5_GENERATORS))
    assert sorted(set(labels.tolist())) == list(range(120 // order))
    assert np.all(np.bincount(labels) == order)
    assert labels[0] == 0  # numbered in order of first appearance


def test_same_left_coset_iff_quotient_in_subgroup():
    subgroup = subgroup_closure(PAPER_S5_GENERATORS)
    labels = s5_coset_labels(S5_NAMES)
    permutations = [parse_permutation(name) for name in S5_NAMES]
    for (g1, l1), (g2, l2) in itertools.combinations(zip(permutations, labels), 2):
        assert (compose(inverse(g1), g2) in subgroup) == (l1 == l2)


def test_same_right_coset_iff_quotient_in_subgroup():
    subgroup = subgroup_closure(PAPER_S5_GENERATORS)
    labels = s5_coset_labels(S5_NAMES, side="right")
    permutations = [parse_permutation(name) for name in S5_NAMES]
    for (g1, l1), (g2, l2) in itertools.combinations(zip(permutations, labels), 2):
        assert (compose(g2, inverse(g1)) in subgroup) == (l1 == l2)


def test_residue_labels_and_add_constant_pairs():
    assert residue_labels(10).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]
    pairs = add_constant_pairs(97)
    assert len(pairs) == 97
    assert pairs[0] == (0, 8) and pairs[90] == (90, 1)
    assert add_constant_pairs(5, shift=2, p=7) == [(0, 2), (1, 3), (2, 4)]


def test_translation_rates_find_the_shift_that_orders_a_circle():
    """Points of Z_p on a circle in the order 0, 3, 6, ...: adding 3 (or -3) always reaches a
    nearest neighbour, the paper's +8 does not, and a random layout scores about chance."""
    from grokkit.analysis import translation_neighbour_rates

    p, step = 31, 3
    table = (np.arange(p)[:, None] + np.arange(p)[None, :]) % p  # a + b mod p
    position = (
        np.arange(p) * pow(step, -1, p)
    ) % p  # x sits at slot x / 3, so x + 3 is the next slot
    angle = 2 * np.pi * position / p
    circle = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    rates = translation_neighbour_rates(circle, table, k=2)
    assert rates["right"][step] == 1.0 and rates["right"][p - step] == 1.0
    assert (
        rates["right"][8] == 0.0 and rates["right"][0] == 0.0
    )  # identity: a point is not its own neighbour
    np.testing.assert_array_equal(rates["left"], rates["right"])  # a commutative table
    assert rates["chance"] == pytest.approx(2 / 30)
    random = translation_neighbour_rates(np.random.default_rng(0).normal(size=(p, 2)), table, k=2)
    assert random["right"][1:].mean() == pytest.approx(2 / 30, abs=0.02)


def test_translation_rates_tell_left_from_right_multiplication_in_s5():
    """A layout where each point sits next to x·g (a right coset pattern) scores 1 for the right
    translation by g and near chance for the left one."""
    from grokkit.analysis import translation_neighbour_rates

    perms = list(itertools.permutations(range(5)))
    index = {q: i for i, q in enumerate(perms)}
    table = np.array([[index[compose(a, b)] for b in perms] for a in perms])
    g = (1, 0, 2, 3, 4)  # a transposition: pairs {x, x·g} are the left cosets of <g>
    points = np.zeros((120, 2))
    seen = set()
    for i, x in enumerate(perms):
        if i in seen:
            continue
        j = index[compose(x, g)]
        seen |= {i, j}
        centre = np.random.default_rng(i).normal(size=2) * 100
        points[i], points[j] = centre, centre + 0.01
    rates = translation_neighbour_rates(points, table, k=1)
    assert rates["right"][index[g]] == 1.0
    assert rates["left"][index[g]] < 0.3


def test_sharpness_is_not_fooled_by_a_tiny_gradient():
    # Near the bottom of a steep bowl the gradient is ~1e-8, below scipy's default tolerance, yet
    # the box reaches far up the walls: the solver must still climb (it once reported 0 here).
    centre = torch.zeros(20, dtype=torch.float64)
    x0 = centre + 1e-10

    def loss(w):
        return 1e3 * ((w - centre) ** 2).sum()

    phi = keskar_sharpness(loss, x0, epsilon=1e-3)
    # The box's corner: 20 * (1e-3 * (1 + 1e-10))^2 * 1e3 = 0.02, i.e. φ ~ 2 %.
    assert phi == pytest.approx(100 * 0.02 / (1 + loss(x0).item()), rel=1e-3)


def test_neighbour_agreement_and_its_chance_on_a_constructed_layout():
    """Two tight clusters, one per label: every nearest neighbour shares the label (1.0), while
    a random layout of the same labels scores sum (n_c/n)((n_c-1)/(n-1)) = 2 * (3/6)(2/5) = 0.4."""
    from grokkit.analysis import chance_agreement, neighbour_agreement

    points = np.array([[0, 0], [0, 0.1], [0.1, 0], [10, 10], [10, 10.1], [10.1, 10]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert neighbour_agreement(points, labels, k=2) == 1.0
    assert neighbour_agreement(points, np.array([0, 1, 0, 1, 0, 1]), k=2) == pytest.approx(1 / 3)
    assert chance_agreement(labels) == pytest.approx(0.4)
