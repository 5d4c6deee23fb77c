"""Sharpness of PyTorch losses: ``grokkit.analysis.sharpness``'s definitions, which work on flat
float64 numpy vectors, applied to a loss written in PyTorch (an ``Objective`` built from it, named
weights flattened into one vector, Keskar's φ of a PyTorch loss)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from grokkit.analysis.sharpness import EPSILON, MAX_ITERATIONS, keskar


@dataclass
class TorchMeanLoss:
    """An ``Objective`` from a PyTorch loss.

    ``loss_fn(flat, examples)`` maps a flat parameter tensor (``dtype``, ``device``) and a 1-D
    long tensor of example indices (or None: every example) to the differentiable scalar mean
    loss over those examples. Parameters arrive as float64 and are rounded to ``dtype``."""

    loss_fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    n_examples: int
    dtype: torch.dtype = torch.float32
    device: torch.device | str = "cpu"

    def __call__(
        self, x: np.ndarray, examples: np.ndarray | None = None
    ) -> tuple[float, np.ndarray]:
        point = (
            torch.as_tensor(np.asarray(x), device=self.device).to(self.dtype).requires_grad_(True)
        )
        index = (
            None
            if examples is None
            else torch.as_tensor(examples, dtype=torch.long, device=self.device)
        )
        loss = self.loss_fn(point, index)
        if loss.numel() != 1:
            raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
        gradient = None
        if loss.requires_grad:
            (gradient,) = torch.autograd.grad(loss, point, allow_unused=True)
        if gradient is None:  # the loss does not depend on the parameters at all
            gradient = torch.zeros_like(point)
        return float(loss.detach()), gradient.detach().double().cpu().numpy()


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
    epsilon: float = EPSILON,
    max_iterations: int = MAX_ITERATIONS,
    seed: int = 0,
) -> float:
    """The ``keskar`` definition (A = identity) of a PyTorch loss at ``parameters``.

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
    objective = TorchMeanLoss(
        lambda flat, _examples: loss_fn(flat), 1, parameters.dtype, parameters.device
    )
    x0 = parameters.detach().double().cpu().numpy()
    return keskar(
        objective, x0, np.random.default_rng(seed), epsilon=epsilon, max_iterations=max_iterations
    )
