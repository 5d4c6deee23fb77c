"""Interventions: what acts on the gradient between the backward pass and the optimizer.

An intervention transforms the population's flat gradient ``grad [E, P]`` (row i is member i's
gradient, laid out as ``grokkit.model.parameter_layout`` says) given the weights ``flat [E, P]``,
for every member at once. State it keeps (a filter's running average, say) is kept per member:
``member_state(i)`` cuts member i's part out for its checkpoint and ``load_member_state`` puts it
back, as the optimizer does, so a resumed run continues exactly and members restack freely.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class GradientIntervention:
    """One transform of the flat gradient. Subclasses override ``__call__`` and, if they keep
    state, the three state methods."""

    def __call__(self, grad: Tensor, flat: Tensor) -> Tensor:
        raise NotImplementedError

    def member_state(self, i: int) -> dict:
        return {}

    def load_member_state(self, i: int, state: dict) -> None:
        pass

    def keep(self, idx: Tensor) -> None:
        """Drop every member not in ``idx`` (the population's ``keep``)."""


class Interventions:
    """A population's interventions, applied in order; empty for the paper's runs."""

    def __init__(self, items: Sequence[GradientIntervention] = ()):
        self.items = list(items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __call__(self, grad: Tensor, flat: Tensor) -> Tensor:
        for item in self.items:
            grad = item(grad, flat)
        return grad

    def member_state(self, i: int) -> list[dict]:
        return [item.member_state(i) for item in self.items]

    def load_member_state(self, i: int, states: list[dict]) -> None:
        if len(states) != len(self.items):
            raise ValueError(
                f"checkpoint holds {len(states)} intervention states, the run has {len(self.items)}"
            )
        for item, state in zip(self.items, states):
            item.load_member_state(i, state)

    def keep(self, idx: Tensor) -> None:
        for item in self.items:
            item.keep(idx)


# ---------------------------------------------------------------- Grokfast (Lee et al. 2024)
# Its settings and the authors' recipe: grokkit.config (GRAD_FILTERS, DEFAULT_*).


def _column(values: Sequence[float], like: Tensor) -> Tensor:
    """Per-member values as an [E, 1] tensor in ``like``'s dtype and device."""
    return torch.tensor(list(values), dtype=like.dtype, device=like.device).view(-1, 1)


class GrokfastEMA(GradientIntervention):
    """g <- g + lambda * mu, where mu <- alpha * mu + (1 - alpha) * g and mu starts at the first
    gradient (so the first step amplifies g by 1 + lambda), as ironjr/grokfast's gradfilter_ema.
    alpha and lambda are per member."""

    def __init__(
        self, alpha: Sequence[float], lamb: Sequence[float], device: torch.device | str = "cpu"
    ):
        self.alpha, self.lamb, self.device = list(alpha), list(lamb), torch.device(device)
        self.mu: Tensor | None = None  # [E, P], once the first gradient has been seen
        self._columns: tuple[Tensor, Tensor] | None = None  # alpha, lambda as [E, 1]: built once

    def __call__(self, grad: Tensor, flat: Tensor) -> Tensor:
        if self._columns is None or self._columns[0].dtype != grad.dtype:
            self._columns = (_column(self.alpha, grad), _column(self.lamb, grad))
        alpha, lamb = self._columns
        self.mu = grad.clone() if self.mu is None else self.mu * alpha + grad * (1 - alpha)
        return grad + self.mu * lamb

    def member_state(self, i: int) -> dict:
        return {} if self.mu is None else {"mu": self.mu[i].detach().cpu().clone()}

    def load_member_state(self, i: int, state: dict) -> None:
        if "mu" not in state:
            return  # saved before the first step: nothing seen yet
        if self.mu is None:
            self.mu = torch.zeros(
                len(self.alpha), state["mu"].numel(), dtype=state["mu"].dtype, device=self.device
            )
        self.mu[i] = state["mu"].to(self.device)

    def keep(self, idx: Tensor) -> None:
        keep = idx.tolist()
        self.alpha = [self.alpha[i] for i in keep]
        self.lamb = [self.lamb[i] for i in keep]
        self._columns = None
        if self.mu is not None:
            self.mu = self.mu[idx.to(self.mu.device)]


class GrokfastMA(GradientIntervention):
    """g <- g + lambda * (mean of the last ``window`` gradients, this one included), applied only
    once the window is full, as ironjr/grokfast's gradfilter_ma (filter_type "mean", warmup on).
    The window is shared by a population (it sets the buffer's shape); lambda is per member.

    The window's sum is kept up to date (add the new gradient, subtract the one it replaces)
    rather than summed anew each step, which cost as much as the rest of the step at p = 97; it
    is summed anew once per window, so rounding cannot accumulate, and it is part of the
    checkpoint, so a resumed run continues exactly."""

    def __init__(self, window: int, lamb: Sequence[float], device: torch.device | str = "cpu"):
        self.window, self.lamb, self.device = window, list(lamb), torch.device(device)
        self.buffer: Tensor | None = None  # [E, window, P], a ring of the last gradients
        self.total: Tensor | None = None  # [E, P], the sum of the ring
        self.count = 0  # gradients seen (the ring's next slot is count % window)
        self._lamb: Tensor | None = None  # lambda as [E, 1]: built once

    def __call__(self, grad: Tensor, flat: Tensor) -> Tensor:
        if self.buffer is None:
            self.buffer = grad.new_zeros(grad.shape[0], self.window, grad.shape[1])
            self.total = grad.new_zeros(grad.shape)
        slot = self.count % self.window
        self.total += grad - self.buffer[:, slot]  # the ring starts as zeros: nothing to remove
        self.buffer[:, slot] = grad
        self.count += 1
        if self.count % self.window == 0:
            self.total = self.buffer.sum(dim=1)
        if self.count < self.window:
            return grad
        if self._lamb is None or self._lamb.dtype != grad.dtype:
            self._lamb = _column(self.lamb, grad)
        return grad + self.total * (self._lamb / self.window)

    def member_state(self, i: int) -> dict:
        if self.buffer is None:
            return {"count": 0}
        # The last min(count, window) gradients, oldest first: gradient number j sits in slot
        # j % window. The checkpoint holds exactly what the filter holds.
        held = min(self.count, self.window)
        slots = [j % self.window for j in range(self.count - held, self.count)]
        return {
            "count": self.count,
            "gradients": self.buffer[i, slots].detach().cpu().clone(),
            "total": self.total[i].detach().cpu().clone(),
        }

    def load_member_state(self, i: int, state: dict) -> None:
        self.count = state["count"]
        if not self.count:
            return
        gradients = state["gradients"]
        if self.buffer is None:
            self.buffer = torch.zeros(
                len(self.lamb),
                self.window,
                gradients.shape[-1],
                dtype=gradients.dtype,
                device=self.device,
            )
            self.total = torch.zeros(
                len(self.lamb), gradients.shape[-1], dtype=gradients.dtype, device=self.device
            )
        # Put them back in the slots they would occupy had the run never stopped.
        first = self.count - len(gradients)
        for k, g in enumerate(gradients):
            self.buffer[i, (first + k) % self.window] = g.to(self.device)
        self.total[i] = state["total"].to(self.device)

    def keep(self, idx: Tensor) -> None:
        self.lamb = [self.lamb[i] for i in idx.tolist()]
        self._lamb = None
        if self.buffer is not None:
            self.buffer = self.buffer[idx.to(self.buffer.device)]
            self.total = self.total[idx.to(self.total.device)]


# ---------------------------------------------------------------- ⊥Grad (Prieto et al. 2025)


class OrthogonalGrad(GradientIntervention):
    """For each weight tensor: g_perp = g - (<g, w> / <w, w>) w, rescaled to the norm of g, as in
    the authors' orthograd.py (with its 1e-30 guards against division by zero). Stateless.

    ``sizes``: the number of entries of every weight tensor, in the order of the flat vector.
    The sums over each tensor are taken on its slice of the flat vector (measured ten times
    faster than one scatter-add over all P entries)."""

    EPS = 1e-30

    def __init__(self, sizes: Sequence[int], device: torch.device | str = "cpu"):
        self.sizes = list(sizes)
        # Which tensor each entry belongs to: spreads per-tensor factors back over [E, P].
        self.ids = torch.repeat_interleave(
            torch.arange(len(self.sizes), device=device),
            torch.tensor(self.sizes, device=device),
            output_size=sum(self.sizes),
        )

    def _per_tensor(self, values: Tensor) -> Tensor:
        """[E, P] -> [E, n_tensors]: the sum over each weight tensor."""
        return torch.stack([part.sum(dim=1) for part in values.split(self.sizes, dim=1)], dim=1)

    def __call__(self, grad: Tensor, flat: Tensor) -> Tensor:
        w = flat.to(grad.dtype)
        projection = self._per_tensor(w * grad) / (self._per_tensor(w * w) + self.EPS)  # [E, n]
        g_perp = grad - projection.index_select(1, self.ids) * w
        scale = self._per_tensor(grad * grad).sqrt() / (
            self._per_tensor(g_perp * g_perp).sqrt() + self.EPS
        )
        return g_perp * scale.index_select(1, self.ids)
