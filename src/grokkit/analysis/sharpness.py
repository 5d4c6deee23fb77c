"""Keskar et al. (2016) sharpness φ of a minimum (paper, Appendix A.5).

With A = identity (the full parameter space), box size ε and loss f at parameters x:

    C_ε = { z : |z_i| <= ε (|x_i| + 1) }
    φ(x, f) = (max_{y in C_ε} f(x + y) − f(x)) / (1 + f(x)) × 100

The inner maximum is approximated, as in Keskar et al., by a few iterations of L-BFGS-B on −f
with the box as bounds. The result is therefore a lower bound on the true φ. The solver's own
convergence tests are switched off (``gtol = ftol = 0``), so it always makes its iterations: at
a well-trained minimum the gradient is far below scipy's default tolerance (1e-5), and L-BFGS-B
would stop before its first step and report φ = 0 although the loss rises steeply inside the box
(seen on grokked S5 networks: φ = 0 reported, the loss at a corner of the box 6.6).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from scipy.optimize import minimize


def flatten_parameters(
    tensors: dict[str, torch.Tensor],
) -> tuple[torch.Tensor, Callable[[torch.Tensor], dict[str, torch.Tensor]]]:
    """Concatenate named tensors into one flat vector and return a function that undoes it.

    The flat vector is detached (it is the point x at which sharpness is measured). The unflatten
    function keeps the autograd graph of its input, so a loss built as
    ``lambda w: loss(functional_call(model, unflatten(w), inputs))`` is differentiable in w.
    """
    if not tensors:
        raise ValueError("flatten_parameters needs at least one tensor")
    names = list(tensors)
    dtypes = {tensors[name].dtype for name in names}
    if len(dtypes) != 1:
        found = sorted(map(str, dtypes))
        raise ValueError(f"all tensors must share one dtype to be flattened, got {found}")
    shapes = [tensors[name].shape for name in names]
    sizes = [tensors[name].numel() for name in names]
    flat = torch.cat([tensors[name].detach().reshape(-1) for name in names])

    def unflatten(vector: torch.Tensor) -> dict[str, torch.Tensor]:
        if vector.shape != flat.shape:
            raise ValueError(
                f"expected a flat vector of shape {tuple(flat.shape)}, got {tuple(vector.shape)}"
            )
        pieces = torch.split(vector, sizes)
        return {name: piece.view(shape) for name, piece, shape in zip(names, pieces, shapes)}

    return flat, unflatten


def keskar_sharpness(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    parameters: torch.Tensor,
    epsilon: float = 1e-3,
    max_iterations: int = 10,
    seed: int = 0,
) -> float:
    """Sharpness φ (in percent) of ``loss_fn`` at ``parameters``, after Keskar et al. (2016).

    Args:
        loss_fn: maps a flat parameter vector (1-D, same shape, dtype and device as
            ``parameters``) to a differentiable scalar loss. It should be deterministic
            (put models in eval mode), since L-BFGS-B assumes a fixed function.
        parameters: the flat point x at which φ is measured.
        epsilon: relative box size ε.
        max_iterations: L-BFGS-B iterations for the inner maximisation (Keskar et al. use 10).
        seed: seeds the random start used only when the gradient at x vanishes (e.g. at an exact
            stationary point, where L-BFGS-B started at y = 0 could not move).

    Returns:
        φ = (max_{y in C_ε} f(x + y) − f(x)) / (1 + f(x)) × 100, with the max approximated.
    """
    if parameters.dim() != 1:
        shape = tuple(parameters.shape)
        raise ValueError(f"parameters must be a flat 1-D vector, got shape {shape}")
    if not parameters.is_floating_point():
        raise ValueError(f"parameters must be floating point, got {parameters.dtype}")
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be at least 1, got {max_iterations}")

    x = parameters.detach()
    x64 = x.double().cpu().numpy()
    half_width = epsilon * (np.abs(x64) + 1.0)  # the box C_ε is |y_i| <= half_width_i

    def loss_and_gradient(y: np.ndarray) -> tuple[float, np.ndarray]:
        point = (x + torch.as_tensor(y, dtype=x.dtype, device=x.device)).requires_grad_(True)
        loss = loss_fn(point)
        if loss.numel() != 1:
            raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
        gradient = None
        if loss.requires_grad:
            (gradient,) = torch.autograd.grad(loss, point, allow_unused=True)
        if gradient is None:  # the loss does not depend on the parameters at all
            gradient = torch.zeros_like(point)
        return float(loss.detach()), gradient.detach().double().cpu().numpy()

    f0, gradient0 = loss_and_gradient(np.zeros_like(x64))
    if not math.isfinite(f0):
        raise ValueError(f"loss at the given parameters is not finite: {f0}")

    best = f0  # y = 0 lies in the box, so the max is at least f(x)

    def negative_loss(y: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal best
        value, gradient = loss_and_gradient(y)
        if math.isfinite(value):
            best = max(best, value)
        return -value, -gradient

    if np.any(gradient0 != 0):
        start = np.zeros_like(x64)
    else:
        rng = np.random.default_rng(seed)
        # A small point inside the box, so that the first step sees a non-zero gradient.
        start = rng.uniform(-1.0, 1.0, size=x64.shape) * half_width * 1e-2

    minimize(
        negative_loss,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=np.stack([-half_width, half_width], axis=1),
        options={"maxiter": max_iterations, "gtol": 0.0, "ftol": 0.0},
    )
    return (best - f0) / (1.0 + f0) * 100.0
