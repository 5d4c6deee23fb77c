"""Sharpness φ of a minimum (paper, Appendix A.5), by three named definitions.

Every definition measures how far a loss f rises (or, for the authors' code, falls) inside a small
box around the weights x, relative to f(x), in percent. They differ in the box, the search and the
loss they search on (``SHARPNESS_DEFINITIONS``; ``sharpness(name, ...)`` dispatches):

``keskar``
    Keskar et al. (2017, arXiv 1609.04836, Sec 2.2.2) with A = the identity (the whole parameter
    space): C_ε = {y in R^n : |y_i| <= ε(|x_i| + 1)},
    φ = (max_{y in C_ε} f(x + y) − f(x)) / (1 + f(x)) × 100.
``keskar-subspace``
    The same paper's definition with a random subspace: A an n × p matrix (p = 10) of i.i.d.
    standard-normal entries, A⁺ its Moore-Penrose pseudo-inverse,
    C_ε = {y in R^p : |y_i| <= ε(|(A⁺x)_i| + 1)},
    φ = (max_{y in C_ε} f(x + Ay) − f(x)) / (1 + f(x)) × 100.
``openai-grok``
    What the authors' released code (openai/grok, ``get_sharpness``) returns, quirks included; see
    ``openai_grok_sharpness``. It *minimises* the loss in a 10-dimensional box, so it reports
    (L(x) − min L) / (1 − L(x)) × 100, on a loss that is reshuffled at every evaluation and with a
    gradient that is not the loss's.

For the two Keskar definitions the inner maximum is approximated, as in Keskar et al., by 10
iterations of L-BFGS-B on −f started at y = 0 with the box as bounds; φ uses the largest loss met
at any point the solver evaluated (all lie in the box), so it is a lower bound on the true φ. The
solver's own convergence tests are switched off (``gtol = ftol = 0``), so it always makes its
iterations: at a well-trained minimum the gradient is far below scipy's default tolerance (1e-5),
and L-BFGS-B would stop before its first step and report φ = 0 although the loss rises steeply
inside the box (seen on grokked S5 networks: φ = 0 reported, the loss at a corner of the box 6.6).

Every definition is a function ``(objective, x0, generator, *, epsilon, max_iterations) -> φ``:
``objective(x, examples)`` is the mean training loss over the examples with the given indices
(``None``: all ``objective.n_examples`` of them) at the flat float64 parameter vector x, and its
gradient (``Objective``; ``grokkit.analysis.sharpness_torch.TorchMeanLoss`` builds one from a
PyTorch loss, apart so that this module, and the figure listing that reads its names, start
without PyTorch). Every random draw comes
from ``generator`` (a ``numpy.random.Generator``), so a seed fixes the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np

from grokkit.errors import InputError

EPSILON, MAX_ITERATIONS, SUBSPACE_DIM = 1e-3, 10, 10  # Keskar et al.'s and the authors' settings
OPENAI_MAX_BATCH = 512  # the authors' default batch size: min(512, ceil(N / 2))


class Objective(Protocol):
    """Mean training loss over a subset of the training examples, and its gradient."""

    n_examples: int

    def __call__(
        self, x: np.ndarray, examples: np.ndarray | None = None
    ) -> tuple[float, np.ndarray]:
        """(loss, gradient) at the flat float64 parameters x: the loss is the mean over
        ``examples`` (indices into the training set; None: all of it), the gradient a float64
        array shaped like x."""
        ...


# ---------------------------------------------------------------- the definitions


def _check(x0: np.ndarray, epsilon: float, max_iterations: int) -> np.ndarray:
    x0 = np.asarray(x0)
    if x0.ndim != 1:
        raise ValueError(f"parameters must be a flat 1-D vector, got shape {x0.shape}")
    if not np.issubdtype(x0.dtype, np.floating):
        raise ValueError(f"parameters must be floating point, got {x0.dtype}")
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be at least 1, got {max_iterations}")
    return x0.astype(np.float64)


def _maximise_in_box(
    loss_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]],
    half_width: np.ndarray,
    max_iterations: int,
    generator: np.random.Generator,
) -> tuple[float, float]:
    """(f(0), the largest f met) of ``loss_and_gradient`` over y in the box |y_i| <= half_width_i,
    by L-BFGS-B on −f from y = 0 with its convergence tests off. Where the gradient at 0 vanishes
    (an exact stationary point, from which L-BFGS-B could not move) it starts instead at a small
    random point of the box drawn from ``generator``."""
    f0, gradient0 = loss_and_gradient(np.zeros_like(half_width))
    if not math.isfinite(f0):
        raise ValueError(f"loss at the given parameters is not finite: {f0}")
    best = f0  # y = 0 lies in the box, so the max is at least f(x)

    def negative(y: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal best
        value, gradient = loss_and_gradient(y)
        if math.isfinite(value):
            best = max(best, value)
        return -value, -gradient

    # Imported here: fig7 imports this module, and `reproduce --list` and `--plan` import every
    # figure module and must not wait for scipy.
    from scipy.optimize import minimize

    if np.any(gradient0 != 0):
        start = np.zeros_like(half_width)
    else:
        start = generator.uniform(-1.0, 1.0, size=half_width.shape) * half_width * 1e-2
    minimize(
        negative,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=np.stack([-half_width, half_width], axis=1),
        options={"maxiter": max_iterations, "gtol": 0.0, "ftol": 0.0},
    )
    return f0, best


def keskar(
    objective: Objective,
    x0: np.ndarray,
    generator: np.random.Generator,
    *,
    epsilon: float = EPSILON,
    max_iterations: int = MAX_ITERATIONS,
) -> float:
    """φ in percent with A = identity: (max_{|y_i| <= ε(|x_i|+1)} f(x + y) − f(x)) / (1 + f(x))
    × 100, f the mean loss over the whole training set. ``generator`` is used only for the random
    start at an exact stationary point."""
    x = _check(x0, epsilon, max_iterations)
    f0, best = _maximise_in_box(
        lambda y: objective(x + y), epsilon * (np.abs(x) + 1.0), max_iterations, generator
    )
    return (best - f0) / (1.0 + f0) * 100.0


def keskar_subspace(
    objective: Objective,
    x0: np.ndarray,
    generator: np.random.Generator,
    *,
    epsilon: float = EPSILON,
    max_iterations: int = MAX_ITERATIONS,
    subspace_dim: int = SUBSPACE_DIM,
) -> float:
    """φ in percent in a random p-dimensional subspace (Keskar et al. 2017, Sec 2.2.2, p = 10):

        A: n × p, i.i.d. standard-normal entries drawn from ``generator`` (the paper only says
           A is random); A⁺ = its Moore-Penrose pseudo-inverse (numpy.linalg.pinv), p × n
        C_ε = {y in R^p : |y_i| <= ε(|(A⁺x)_i| + 1)}
        φ = (max_{y in C_ε} f(x + Ay) − f(x)) / (1 + f(x)) × 100

    f is the mean loss over the whole training set, the maximum approximated by L-BFGS-B (gradient
    Aᵀ∇f) from y = 0, as for ``keskar``."""
    x = _check(x0, epsilon, max_iterations)
    if not 1 <= subspace_dim <= x.size:
        raise ValueError(f"subspace_dim must be in [1, {x.size}], got {subspace_dim}")
    A = generator.standard_normal((x.size, subspace_dim))
    half_width = epsilon * (np.abs(np.linalg.pinv(A) @ x) + 1.0)

    def loss_and_gradient(y: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = objective(x + A @ y)
        return value, A.T @ gradient

    f0, best = _maximise_in_box(loss_and_gradient, half_width, max_iterations, generator)
    return (best - f0) / (1.0 + f0) * 100.0


def openai_batch_size(n_examples: int) -> int:
    """The authors' default training batch size: min(512, ceil(N / 2))."""
    return min(OPENAI_MAX_BATCH, math.ceil(n_examples / 2))


class AuthorsEpochLoss:
    """The training loss and "gradient" of the authors' sharpness code, with its state.

    Each call at x walks one epoch of the training set in the order of a fresh permutation drawn
    from ``generator``, in minibatches of B = min(512, ceil(N / 2)) (the last one smaller when B
    does not divide N), and returns

        loss: the unweighted mean over the minibatches of each minibatch's mean loss;
        gradient: the mean over the minibatches of G after that minibatch, where the buffer G,
            kept across calls and zero at construction, is updated after minibatch b as
            G <- (G + g_b) / |b|, g_b the gradient of b's mean loss.

    That is what their code returns because the parameters' gradients are never cleared between
    back-propagations, and each is divided in place by the minibatch's size."""

    def __init__(self, objective: Objective, generator: np.random.Generator):
        self.objective, self.generator = objective, generator
        self.n_examples = int(objective.n_examples)
        if self.n_examples < 1:
            raise ValueError(f"the objective needs at least one example, got {self.n_examples}")
        self.batch_size = openai_batch_size(self.n_examples)
        self.stored: np.ndarray | None = None  # G; None: zero

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        order = self.generator.permutation(self.n_examples)
        losses, gradients = [], []
        for start in range(0, self.n_examples, self.batch_size):
            examples = order[start : start + self.batch_size]
            value, gradient = self.objective(x, examples)
            stored = gradient if self.stored is None else self.stored + gradient
            self.stored = stored / len(examples)
            losses.append(value)
            gradients.append(self.stored)
        return float(np.mean(losses)), np.mean(gradients, axis=0)


def _authors_subspace(
    x: np.ndarray, subspace_dim: int, epsilon: float, generator: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(A, the box's half-widths) of ``get_sharpness``: A⁺ with entries uniform on [−1, 1) and
    unit rows, A = pinv(A⁺), half-widths ε(|A⁺x| + 1)."""
    if not 1 <= subspace_dim <= x.size:
        raise ValueError(f"subspace_dim must be in [1, {x.size}], got {subspace_dim}")
    A_plus = generator.random((subspace_dim, x.size)) * 2.0 - 1.0
    A_plus /= np.linalg.norm(A_plus, axis=1, keepdims=True)
    return np.linalg.pinv(A_plus), epsilon * (np.abs(A_plus @ x) + 1.0)


def openai_grok_sharpness(
    objective: Objective,
    x0: np.ndarray,
    generator: np.random.Generator,
    *,
    epsilon: float = EPSILON,
    max_iterations: int = MAX_ITERATIONS,
    subspace_dim: int = SUBSPACE_DIM,
) -> float:
    """φ in percent as the authors' released code computes it (openai/grok, grok/measure.py
    ``get_sharpness`` with its defaults, called on their training-set loader), quirks included.

    The subspace and the box:
        A⁺: subspace_dim × n (10 × n), entries uniform on [−1, 1), then each *row* scaled to unit
            Euclidean length; A = pinv(A⁺) (n × 10). Box: |y_i| <= ε(|(A⁺x)_i| + 1), ε = 1e-3.
    The search: scipy.optimize.fmin_l_bfgs_b with maxiter = 10 and every other option at scipy's
    default (pgtol 1e-5, factr 1e7, m 10), from y = 0, *minimising* the positive loss L(x + Ay)
    with gradient Aᵀ G(x + Ay). Keskar et al. maximise; this searches downhill.
    The value: with f(x0) = −L(x0) and f_x = −(the minimum value fmin_l_bfgs_b returns),
        φ = (f_x − f(x0)) / (1 + f(x0)) × 100 = (L(x0) − L_min) / (1 − L(x0)) × 100,
    which is >= 0 when L(x0) < 1 (up to the noise below) and flips sign for L(x0) > 1.

    The loss L and its "gradient" G are ``AuthorsEpochLoss``'s: a fresh shuffled epoch per
    evaluation (the one at x0 included), so L moves from one evaluation to the next even at one x,
    and a G about 1/(B − 1) of ∇L (its fixed point for a steady gradient). With so small a
    gradient, near or below fmin_l_bfgs_b's projected-gradient tolerance, the solver can end where
    it started (it did on smoke-scale S5 runs: one iteration, y = 0), and φ is then the shuffle
    noise alone.

    Here the network is in evaluation mode (no dropout), as in their code. Differences that are
    not the authors' choices: A⁺ and the epoch orders are drawn from ``generator`` (numpy; A⁺
    first, then one permutation per loss evaluation) instead of unseeded global generators, and
    G and the means over batches are kept in float64 (theirs in float32). A non-finite loss at
    x0 raises a ValueError instead of returning NaN.
    """
    x = _check(x0, epsilon, max_iterations)
    A, half_width = _authors_subspace(x, subspace_dim, epsilon, generator)
    epoch_loss_and_gradient = AuthorsEpochLoss(objective, generator)  # G = 0 from here on

    loss_x0, _ = epoch_loss_and_gradient(x)
    f_x0 = -loss_x0
    if not math.isfinite(f_x0):
        raise ValueError(f"loss at the given parameters is not finite: {loss_x0}")

    def subspace_loss(y: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = epoch_loss_and_gradient(x + A @ y)
        return value, A.T @ gradient

    from scipy.optimize import fmin_l_bfgs_b

    _, minimum, _ = fmin_l_bfgs_b(
        subspace_loss,
        np.zeros(subspace_dim),
        maxiter=max_iterations,
        bounds=np.stack([-half_width, half_width], axis=1),
    )
    f_x = -float(minimum)
    return (f_x - f_x0) / (1.0 + f_x0) * 100.0


SHARPNESS_DEFINITIONS = ("keskar", "keskar-subspace", "openai-grok")
_FUNCTIONS = {
    "keskar": keskar,
    "keskar-subspace": keskar_subspace,
    "openai-grok": openai_grok_sharpness,
}


def sharpness_definition(name: str) -> Callable[..., float]:
    """The function of the definition called ``name``; an unknown name is an InputError."""
    if name not in _FUNCTIONS:
        raise InputError(
            f"unknown sharpness definition {name!r}; "
            f"choose one of: {', '.join(SHARPNESS_DEFINITIONS)}"
        )
    return _FUNCTIONS[name]


def sharpness(
    name: str,
    objective: Objective,
    x0: np.ndarray,
    seed: int | np.random.Generator = 0,
    *,
    epsilon: float = EPSILON,
    max_iterations: int = MAX_ITERATIONS,
) -> float:
    """φ in percent of ``objective`` at ``x0`` by the definition ``name`` (SHARPNESS_DEFINITIONS);
    ``seed``: an int or a numpy Generator, the source of every random draw."""
    function = sharpness_definition(name)
    generator = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return function(objective, x0, generator, epsilon=epsilon, max_iterations=max_iterations)
