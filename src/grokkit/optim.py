"""Optimisation: the paper's AdamW recipe, the variants of Figure 2 (left), and a batched AdamW.

All variants of A.1.2 are one optimiser with knobs: Adam is AdamW with ``weight_decay = 0``;
weight decay can pull towards the origin or towards the initial weights; noise can be added to the
update (``W <- W + lr * (dW + eps)``) or to the weights seen by the forward pass
(``W + sigma * eps``); residual dropout lives in the model.

``BatchedAdamW`` updates the flat parameters of a whole population ([E, P]) with per-member
hyperparameters in a handful of tensor operations; for each member it computes exactly what
``torch.optim.AdamW`` computes (tested).
"""

from __future__ import annotations

import torch
from torch import Tensor

from grokkit import torch_private

# The settings, torch-free in grokkit.optim_config, re-exported.
from grokkit.optim_config import (
    DEFAULT_PRESET as DEFAULT_PRESET,
    LATER_FIELDS as LATER_FIELDS,
    PRESET_DESCRIPTIONS as PRESET_DESCRIPTIONS,
    PRESETS as PRESETS,
    OptimizerConfig as OptimizerConfig,
    preset as preset,
)


class BatchedAdamW:
    """AdamW over a population's flat parameters [E, P], one hyperparameter set per member.

    Per member and per update u (1-based), with scheduled rate lr_u = lr * min(1, u / warmup):
        L2:     g <- g + l2 * W                        (coupled, as torch.optim.Adam's weight_decay)
        decay:  W <- W - lr_u * wd * (W - target)      (target = 0, or the initial weights)
        Adam:   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
                dW = -(m / (1 - b1^u)) / (sqrt(v / (1 - b2^u)) + eps)
        step:   W <- W + lr_u * (dW + update_noise * N(0, 1))
    which is torch.optim.AdamW's order of operations (decay first, on the pre-update weights).
    """

    def __init__(self, configs: list[OptimizerConfig], flat: Tensor, fused: bool | None = None):
        E = flat.shape[0]
        assert len(configs) == E
        self.configs = configs

        def column(name: str) -> Tensor:
            return torch.tensor(
                [float(getattr(c, name)) for c in configs], dtype=flat.dtype, device=flat.device
            ).view(E, 1)

        self.weight_decay, self.l2 = column("weight_decay"), column("l2")
        self.beta1, self.beta2, self.eps = column("beta1"), column("beta2"), column("eps")
        self.update_noise = column("update_noise")
        self.decay_to_init = torch.tensor(
            [c.decay_target == "init" for c in configs], device=flat.device
        ).view(E, 1)
        self._derive_from_configs()
        self.exp_avg = torch.zeros_like(flat)
        self.exp_avg_sq = torch.zeros_like(flat)
        self.initial = flat.clone() if self.any_decay_to_init else None
        self.step_count = 0  # updates made; also the population's step (Population.step_count)
        # PyTorch's fused AdamW kernel (what torch.optim.AdamW(fused=True) runs) makes one pass over
        # the weights instead of ~10 and gives torch.optim.AdamW's result to the last bit (tested).
        # Without it (grokkit.torch_private), the tensor expressions of _tensor_step.
        available = torch_private.HAS_FUSED_ADAMW and flat.device.type in ("cpu", "cuda")
        if fused and not available:
            raise ValueError(
                f"PyTorch's fused AdamW is not available here (device {flat.device.type})"
            )
        self.fused = available if fused is None else fused

    def _derive_from_configs(self) -> None:
        """What the step decides in Python, from the members' configs: reading it back from the
        device tensors would make a GPU wait every step. Redone when members leave (``keep``)."""
        c = self.configs
        self.any_weight_decay = any(o.weight_decay > 0 for o in c)
        self.any_l2 = any(o.l2 > 0 for o in c)
        self.update_noise_std = [o.update_noise for o in c]
        self.any_update_noise = any(o.update_noise > 0 for o in c)
        self.any_decay_to_init = any(o.decay_target == "init" for o in c)
        self.warm_after = max(
            o.warmup_steps for o in c
        )  # from this update on, every rate is constant
        self._after_warmup: dict[
            str, object
        ] = {}  # what depends on the rates, once they are constant

    def _per_update(self, name: str, update: int, compute):
        """``compute(update)``, kept and reused from the end of the warm-up on (the rates, and so
        the result, no longer change)."""
        if update < self.warm_after:
            return compute(update)
        if name not in self._after_warmup:
            self._after_warmup[name] = compute(update)
        return self._after_warmup[name]

    def scheduled_lr(self, update: int) -> Tensor:
        """[E, 1] learning rate of the given 1-based update (linear warm-up, then constant). After
        the warm-up the same tensor is returned: a host-to-device copy per step would make a GPU
        wait for the host."""
        return self._per_update(
            "lr",
            update,
            lambda u: torch.tensor(
                [c.lr_at(u) for c in self.configs],
                dtype=self.exp_avg.dtype,
                device=self.exp_avg.device,
            ).view(-1, 1),
        )

    @torch.no_grad()
    def step(self, flat: Tensor, grad: Tensor, noise: list[torch.Generator] | None = None) -> None:
        self.step_count += 1
        u = self.step_count
        if self.any_l2:
            grad = grad + self.l2 * flat  # a new tensor: the caller's gradient stays as it was
        if self.fused:
            self._fused_step(flat, grad, u)
        else:
            self._tensor_step(flat, grad, u, self.scheduled_lr(u))
        if self.any_update_noise:
            lr = self.scheduled_lr(u)
            # Only members with update noise draw, so the others' generators stay as if alone.
            eps = torch.stack(
                [
                    torch.randn(flat.shape[1], generator=g, device=flat.device, dtype=flat.dtype)
                    if s > 0
                    else torch.zeros(flat.shape[1], device=flat.device, dtype=flat.dtype)
                    for g, s in zip(noise, self.update_noise_std)
                ]
            )
            flat.add_(eps * (lr * self.update_noise))

    def _fused_step(self, flat: Tensor, grad: Tensor, u: int) -> None:
        """PyTorch's fused kernel, called once per set of members that share their (scheduled)
        hyperparameters: once for the whole population when all do, on the [E, P] tensors."""
        step = torch.full((), float(u), dtype=torch.float32, device=flat.device)
        groups = self.fused_groups(u)
        state = (flat, grad, self.exp_avg, self.exp_avg_sq)
        rows = [t.unbind(0) for t in state] if len(groups) > 1 else None  # views, no copies
        for (lr, beta1, beta2, weight_decay, eps), members in groups:
            tensors = (
                [[t] for t in state] if rows is None else [[r[e] for e in members] for r in rows]
            )
            steps = [step] * len(tensors[0])
            torch_private.fused_adamw_(*tensors, steps, lr, beta1, beta2, weight_decay, eps)
        if self.any_decay_to_init:
            # The kernel decayed towards 0: W(1 - lr wd) - step; adding lr wd W_init makes it
            # W - lr wd (W - W_init) - step, the decay towards the initial weights.
            for e, c in enumerate(self.configs):
                if c.decay_target == "init":
                    flat[e].add_(self.initial[e], alpha=c.lr_at(u) * c.weight_decay)

    def fused_groups(self, u: int) -> list[tuple[tuple, list[int]]]:
        """(lr, beta1, beta2, weight decay, eps) of update ``u`` and the members that share them,
        in order of their first member; computed once for every update after the warm-up."""

        def compute(update: int) -> list[tuple[tuple, list[int]]]:
            groups: dict[tuple, list[int]] = {}
            for e, c in enumerate(self.configs):
                groups.setdefault(
                    (c.lr_at(update), c.beta1, c.beta2, c.weight_decay, c.eps), []
                ).append(e)
            return list(groups.items())

        return self._per_update("fused_groups", u, compute)

    def _tensor_step(self, flat: Tensor, grad: Tensor, u: int, lr: Tensor) -> None:
        if self.any_weight_decay:
            # W (1 - lr wd) + lr wd target: torch.optim.AdamW's arithmetic for target 0, and the
            # same expression for every member so that a member's result never depends on others.
            flat.mul_(1 - lr * self.weight_decay)
            if self.any_decay_to_init:
                target = torch.where(self.decay_to_init, self.initial, torch.zeros_like(flat))
                flat.add_(target * (lr * self.weight_decay))
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad * (1 - self.beta2))
        bias1 = 1 - self.beta1**u
        bias2_sqrt = (1 - self.beta2**u).sqrt()
        denom = (self.exp_avg_sq.sqrt() / bias2_sqrt).add_(self.eps)
        flat.addcdiv_(self.exp_avg, denom * (bias1 / -lr))

    # Exact resume needs the moments, the update count and the decay target, per member.
    def member_state(self, i: int) -> dict:
        state = {
            "exp_avg": self.exp_avg[i].clone(),
            "exp_avg_sq": self.exp_avg_sq[i].clone(),
            "step_count": self.step_count,
        }
        if self.initial is not None:
            state["initial"] = self.initial[i].clone()
        return state

    def load_member_state(self, i: int, state: dict) -> None:
        self.exp_avg[i] = state["exp_avg"]
        self.exp_avg_sq[i] = state["exp_avg_sq"]
        if self.step_count and self.step_count != state["step_count"]:
            raise ValueError("population members must be at the same update to train in lockstep")
        self.step_count = state["step_count"]
        if self.initial is not None and "initial" in state:
            self.initial[i] = state["initial"]

    def keep(self, idx: Tensor) -> None:
        """Keep only the members at ``idx`` (see Population.keep)."""
        self.configs = [self.configs[i] for i in idx.tolist()]
        for name in (
            "weight_decay",
            "l2",
            "beta1",
            "beta2",
            "eps",
            "update_noise",
            "decay_to_init",
            "exp_avg",
            "exp_avg_sq",
        ):
            setattr(self, name, getattr(self, name)[idx].contiguous())
        if self.initial is not None:
            self.initial = self.initial[idx].contiguous()
        self._derive_from_configs()
