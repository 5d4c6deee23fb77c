"""The three sharpness definitions (grokkit.analysis.sharpness), each against an answer known
without the code under test: a box maximum at a corner worked out by hand, the maximum of a convex
function over all vertices of a box, a bounded least-squares minimum (scipy's lsq_linear), and the
authors' loss/gradient bookkeeping replayed from the minibatches the objective was asked for."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import lsq_linear

from grokkit import runs
from grokkit.analysis.run_sharpness import run_sharpness, training_objective
from grokkit.analysis.sharpness import (
    SHARPNESS_DEFINITIONS,
    AuthorsEpochLoss,
    openai_batch_size,
    sharpness,
    sharpness_definition,
)
from grokkit.config import RunConfig
from grokkit.errors import InputError
from grokkit.population import Population
from grokkit.train import train_runs

EPS = 1e-3


class Quadratic:
    """f(x) = sum_i a_i (x_i - c_i)^2, the same for every example (any subset's mean is f)."""

    def __init__(self, a, c, n_examples: int = 1):
        self.a, self.c, self.n_examples = np.asarray(a, float), np.asarray(c, float), n_examples
        self.calls = 0

    def __call__(self, x, examples=None):
        self.calls += 1
        r = x - self.c
        return float(np.sum(self.a * r**2)), 2 * self.a * r


def test_the_registry_names_three_definitions():
    assert SHARPNESS_DEFINITIONS == ("keskar", "keskar-subspace", "openai-grok")
    assert len({sharpness_definition(n) for n in SHARPNESS_DEFINITIONS}) == 3


@pytest.mark.parametrize("name", ["sam", "Keskar", "", "openai_grok"])
def test_an_unknown_definition_is_refused_in_one_line(name):
    with pytest.raises(InputError) as error:
        sharpness(name, Quadratic([1.0], [0.0]), np.zeros(1))
    message = str(error.value)
    assert "\n" not in message and repr(name) in message
    assert all(valid in message for valid in SHARPNESS_DEFINITIONS)


def test_run_sharpness_refuses_an_unknown_definition_before_reading_the_run(tmp_path):
    with pytest.raises(InputError, match="keskar-subspace"):
        run_sharpness(tmp_path / "no-such-run", definition="hessian")


def test_keskar_finds_the_far_corner_of_the_box():
    # Separable and convex: each coordinate is largest at the box edge farther from c_i, so
    # max f = sum a_i (|x_i - c_i| + eps (|x_i| + 1))^2.
    a = np.array([1.0, 4.0, 0.5, 10.0, 2.0, 0.1])
    c = np.array([0.2, -1.0, 1.5, 0.0, 0.7, -3.0])
    x0 = np.array([0.3, -1.2, 2.0, -0.05, 0.6, -2.0])
    h = EPS * (np.abs(x0) + 1)
    f0 = np.sum(a * (x0 - c) ** 2)
    f_max = np.sum(a * (np.abs(x0 - c) + h) ** 2)
    phi = sharpness("keskar", Quadratic(a, c), x0, 0)
    assert phi == pytest.approx((f_max - f0) / (1 + f0) * 100, rel=1e-6)


def _keskar_subspace_matrix(seed: int, n: int, p: int = 10) -> np.ndarray:
    # The documented draw: the generator's first draw, i.i.d. standard normal, n x p.
    return np.random.default_rng(seed).standard_normal((n, p))


@pytest.mark.parametrize("seed", [0, 7])
def test_keskar_subspace_reaches_the_best_vertex_of_its_box(seed):
    n, p = 14, 10
    rng = np.random.default_rng(100 + seed)
    a = rng.uniform(0.5, 3.0, n)
    c = rng.normal(size=n)
    x0 = c + rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 1.0, n)
    A = _keskar_subspace_matrix(seed, n, p)
    # A^+ x by least squares (an independent route to the pseudo-inverse).
    half = EPS * (np.abs(np.linalg.lstsq(A, x0, rcond=None)[0]) + 1)
    # A convex function's maximum over a box lies at a vertex: try all 2^10 of them.
    vertices = np.array(list(itertools.product([-1.0, 1.0], repeat=p))) * half
    values = ((x0 + vertices @ A.T - c) ** 2 * a).sum(axis=1)
    f0 = np.sum(a * (x0 - c) ** 2)
    expected = (values.max() - f0) / (1 + f0) * 100
    phi = sharpness("keskar-subspace", Quadratic(a, c), x0, seed)
    assert phi == pytest.approx(expected, rel=1e-6)


def _authors_matrices(seed: int, n: int, p: int = 10) -> tuple[np.ndarray, np.ndarray]:
    # The documented draw: the generator's first draw, uniform [-1, 1), rows scaled to unit length.
    A_plus = np.random.default_rng(seed).random((p, n)) * 2 - 1
    A_plus = A_plus / np.sqrt((A_plus**2).sum(axis=1, keepdims=True))
    return A_plus, np.linalg.pinv(A_plus)


@pytest.mark.parametrize("scale,sign", [(0.02, 1), (0.3, -1)], ids=["loss-below-1", "loss-above-1"])
def test_openai_grok_reports_the_fall_to_the_box_minimum_over_one_minus_the_loss(scale, sign):
    # Identical examples: the shuffles cannot change the loss, so what remains is the search
    # and the sign convention φ = (L0 − Lmin) / (1 − L0) × 100.
    n, seed = 40, 3
    rng = np.random.default_rng(1)
    a = np.full(n, scale)
    c = rng.normal(size=n)
    x0 = c + rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 1.0, n)
    A_plus, A = _authors_matrices(seed, n)
    half = EPS * (np.abs(A_plus @ x0) + 1)
    # min over the box of sum a (x0 + A y - c)^2: a bounded linear least-squares problem.
    root = np.sqrt(a)[:, None]
    solution = lsq_linear(root * A, -(root[:, 0] * (x0 - c)), bounds=(-half, half), tol=1e-14)
    L0 = np.sum(a * (x0 - c) ** 2)
    L_min = np.sum(a * (x0 + A @ solution.x - c) ** 2)
    assert L_min < L0 and (L0 < 1) == (sign > 0)
    phi = sharpness("openai-grok", Quadratic(a, c, n_examples=6), x0, seed)
    assert phi == pytest.approx((L0 - L_min) / (1 - L0) * 100, rel=1e-6)
    assert np.sign(phi) == sign  # downhill search: positive below a loss of 1, negative above


class LinearExamples:
    """Example j's loss is w_j . x + b_j; records which examples each call was asked about."""

    def __init__(self, n_examples: int, dim: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.w, self.b = rng.normal(size=(n_examples, dim)), rng.normal(size=n_examples)
        self.n_examples, self.batches = n_examples, []

    def __call__(self, x, examples=None):
        idx = np.arange(self.n_examples) if examples is None else np.asarray(examples)
        self.batches.append(idx.copy())
        return float(np.mean(self.w[idx] @ x + self.b[idx])), self.w[idx].mean(axis=0)


def test_the_authors_loss_is_a_mean_of_batch_means_and_their_gradient_a_decaying_buffer():
    n_examples, dim = 7, 3  # batches of ceil(7 / 2) = 4 and 3
    objective = LinearExamples(n_examples, dim)
    epoch = AuthorsEpochLoss(objective, np.random.default_rng(5))
    assert epoch.batch_size == 4
    points = [np.array([0.5, -1.0, 2.0]), np.array([1.0, 0.0, -0.5])]
    got = [epoch(x) for x in points]

    # Replay from the recorded minibatches: two calls, two batches each, in order.
    batches = objective.batches
    assert [len(b) for b in batches] == [4, 3, 4, 3]
    for k in (0, 2):  # each call is one whole epoch...
        assert sorted(np.concatenate(batches[k : k + 2])) == list(range(n_examples))
    assert not np.array_equal(
        np.concatenate(batches[0:2]), np.concatenate(batches[2:4])
    )  # ...reshuffled
    G = np.zeros(dim)
    for call, x in enumerate(points):
        losses, snapshots = [], []
        for idx in batches[2 * call : 2 * call + 2]:
            losses.append(np.mean(objective.w[idx] @ x + objective.b[idx]))
            G = (G + objective.w[idx].mean(axis=0)) / len(idx)
            snapshots.append(G)
        loss, gradient = got[call]
        assert loss == pytest.approx(np.mean(losses), rel=1e-12)
        np.testing.assert_allclose(gradient, np.mean(snapshots, axis=0), rtol=1e-12)
        # Neither is the full training set's: the short batch weighs more, the buffer shrinks.
        assert loss != pytest.approx(np.mean(objective.w @ x + objective.b), rel=1e-9)
        assert not np.allclose(gradient, objective.w.mean(axis=0))


def test_the_authors_batch_size():
    assert [openai_batch_size(n) for n in (2, 7, 1024, 1025, 7200)] == [1, 4, 512, 512, 512]


@pytest.mark.parametrize("name", ["keskar-subspace", "openai-grok"])
def test_the_subspace_definitions_are_fixed_by_their_seed(name):
    rng = np.random.default_rng(2)
    a, c = rng.uniform(0.1, 2.0, 30), rng.normal(size=30)
    x0 = c + rng.normal(size=30)
    first = sharpness(name, Quadratic(a, c, 5), x0, 11)
    assert sharpness(name, Quadratic(a, c, 5), x0, np.random.default_rng(11)) == first
    assert sharpness(name, Quadratic(a, c, 5), x0, 12) != first


# ---------------------------------------------------------------- on a run, either architecture


@pytest.mark.parametrize("arch", ["grokkit", "openai-grok"])
def test_a_runs_objective_is_its_populations_training_loss(tmp_path, arch):
    torch.manual_seed(0)
    config = RunConfig().with_changes(
        arch=arch, operation="x+y", modulus=11, n_layers=1, d_model=16, n_heads=2, steps=3, seed=4
    )
    train_runs([config], [tmp_path], progress=False)  # a real run folder: its checkpoint at step 3
    pop = Population.from_member_states([runs.load_checkpoint(tmp_path)], [config])
    objective, weights = training_objective(tmp_path)
    assert objective.n_examples == pop.members[0].n_train
    loss, gradient = objective(weights)
    # evaluate() scores the whole table in chunks and masks the training part: another route.
    assert loss == pytest.approx(float(pop.evaluate()["train_loss"][0]), rel=1e-5)
    assert gradient.shape == weights.shape and np.isfinite(gradient).all() and np.any(gradient != 0)
    # A subset's loss is the mean over its examples: two halves average to the whole.
    half = objective.n_examples // 2
    first, _ = objective(weights, np.arange(half))
    second, _ = objective(weights, np.arange(half, 2 * half))
    if objective.n_examples == 2 * half:
        assert (first + second) / 2 == pytest.approx(loss, rel=1e-5)
    for name in SHARPNESS_DEFINITIONS:
        phi = run_sharpness(tmp_path, definition=name)
        assert np.isfinite(phi)
        if name != "openai-grok":
            assert phi > 0
