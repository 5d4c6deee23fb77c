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

import functools
import math
import numbers
import types
import typing
from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import Tensor

from grokkit import torch_private
from grokkit.errors import ConfigError
from grokkit.settings import setting

_KINDS = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "text",
    type(None): "null",
}


@functools.cache
def _field_kinds(cls) -> tuple[tuple[str, tuple], ...]:
    """(name, accepted types) of each field of a settings dataclass, from its annotations."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        hint = hints[f.name]
        union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        out.append((f.name, typing.get_args(hint) if union else (hint,)))
    return tuple(out)


def _fits(value, kind) -> bool:
    if kind is int:  # a bool is an int to Python, and 1e18 a float: neither is a count
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:  # an integer is a number
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind is type(None):
        return value is None
    return isinstance(value, kind)


def check_field_types(settings) -> None:
    """Refuse a setting of the wrong type, as a hand-edited config.json can hold: a float or a
    bool where an integer belongs (``"steps": 1e18``, ``"n_layers": true``), text where a number
    belongs. ConfigError names the field (as config.json names it) and the value."""
    for name, kinds in _field_kinds(type(settings)):
        value = getattr(settings, name)
        if not any(_fits(value, kind) for kind in kinds):
            expected = " or ".join(_KINDS.get(kind, kind.__name__) for kind in kinds)
            raise ConfigError(
                f"{name} has the wrong type: expected {expected}, got {value!r}"[:200]
            )


@dataclass(frozen=True)
class OptimizerConfig:
    """One run's optimisation settings. Defaults: the paper's recipe (A.1.2)."""

    # Each setting's flag, help and group: grokkit.settings; "optimisation" lists them under the
    # preset (--optimizer), whose values they override.
    lr: float = setting(1e-3, "optimisation", "learning rate")
    weight_decay: float = setting(1.0, "optimisation", "decoupled weight decay (AdamW)")
    l2: float = setting(
        0.0,
        "optimisation",
        "coupled L2 penalty: l2 * W added to the gradient before Adam's moments, as "
        "torch.optim.Adam's weight_decay (the Grokfast recipe, Lee et al. 2024); --weight-decay "
        "is AdamW's decoupled decay",
    )
    decay_target: str = setting(
        "origin",
        "optimisation",
        "weight decay pulls towards the origin (AdamW) or the initial weights",
        choices=("origin", "init"),
    )
    beta1: float = setting(0.9, "optimisation", "Adam beta1")
    beta2: float = setting(0.98, "optimisation", "Adam beta2")
    eps: float = 1e-8  # Adam's epsilon: no flag (Python and config.json only)
    warmup_steps: int = setting(
        10, "optimisation", "linear warm-up: update u (1-based) uses lr * min(1, u / warmup-steps)"
    )
    batch_size: int | None = setting(
        None,  # the paper's min(512, ceil(N_train / 2)); 0: the whole training set
        "optimisation",
        "minibatch size, or 'full' for the whole training set",
        default_text="min(512, ceil(N_train / 2))",
    )
    update_noise: float = setting(
        0.0, "optimisation", "std of Gaussian noise added to the Adam update direction"
    )
    weight_noise: float = setting(
        0.0, "optimisation", "std of Gaussian noise on the weights in each forward pass"
    )
    dropout: float = setting(0.0, "optimisation", "residual dropout rate")

    def __post_init__(self) -> None:
        check_field_types(self)
        for f in fields(self):  # nan is refused by the ranges below, inf here
            value = getattr(self, f.name)
            if isinstance(value, float) and math.isinf(value):
                what = "learning rate" if f.name == "lr" else f.name.replace("_", " ")
                raise ConfigError(f"{what} must be a finite number, got {value}")
        checks = [
            (self.lr > 0, f"learning rate must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (self.l2 >= 0, f"l2 must be >= 0, got {self.l2}"),
            (
                self.decay_target in ("origin", "init"),
                f"decay target must be 'origin' or 'init', got {self.decay_target!r}",
            ),
            (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "betas must be in [0, 1)"),
            (self.eps > 0, f"eps must be > 0, got {self.eps}"),
            (self.warmup_steps >= 0, f"warmup steps must be >= 0, got {self.warmup_steps}"),
            (
                self.batch_size is None or self.batch_size >= 0,
                f"batch size must be >= 0 (0 = full batch), got {self.batch_size}",
            ),
            (self.update_noise >= 0, f"update noise must be >= 0, got {self.update_noise}"),
            (self.weight_noise >= 0, f"weight noise must be >= 0, got {self.weight_noise}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def lr_at(self, update: int) -> float:
        """Learning rate of the given 1-based update: linear warm-up, lr * min(1, u / warmup)."""
        return self.lr * (min(1.0, update / self.warmup_steps) if self.warmup_steps > 0 else 1.0)

    @property
    def draws_noise(self) -> bool:
        """Whether a run draws random numbers besides its batch order (dropout masks, noise)."""
        return self.dropout > 0 or self.weight_noise > 0 or self.update_noise > 0

    def resolve_batch_size(self, n_train: int) -> int:
        """The minibatch size for a training set of n_train equations."""
        if self.batch_size == 0:
            return n_train
        if self.batch_size is None:
            return min(512, math.ceil(n_train / 2))
        return min(self.batch_size, n_train)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "OptimizerConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# Fields added after grokkit 0.1: left out of a run's identity while at their defaults (see
# RunConfig.identity_dict), so existing run names stay.
LATER_FIELDS = ("l2",)

_BASE = OptimizerConfig()
_ADAM = replace(_BASE, weight_decay=0.0)

# Figure 2 (left), in the paper's reading order. "adamw" is the default everywhere else.
PRESETS: dict[str, OptimizerConfig] = {
    "adam-full-batch": replace(_ADAM, batch_size=0),
    "adam": _ADAM,
    "adam-full-batch-update-noise": replace(_ADAM, batch_size=0, update_noise=1.0),
    "adam-dropout": replace(_ADAM, dropout=0.1),
    "adamw": _BASE,
    "adamw-to-init": replace(_BASE, decay_target="init"),
    "adam-lr3e-4": replace(_ADAM, lr=3e-4),
    "adam-lr3e-3": replace(_ADAM, lr=3e-3),
    "adam-weight-noise": replace(_ADAM, weight_noise=0.01),
}
DEFAULT_PRESET = "adamw"

PRESET_DESCRIPTIONS: dict[str, str] = {
    "adam-full-batch": "Adam, full batch",
    "adam": "Adam",
    "adam-full-batch-update-noise": "Adam, full batch, Gaussian noise on the update",
    "adam-dropout": "Adam, residual dropout 0.1",
    "adamw": "AdamW, weight decay 1 (default)",
    "adamw-to-init": "AdamW, weight decay 1 towards the initialisation",
    "adam-lr3e-4": "Adam, lr 3e-4",
    "adam-lr3e-3": "Adam, lr 3e-3",
    "adam-weight-noise": "Adam, Gaussian weight noise 0.01",
}


def preset(name: str) -> OptimizerConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown optimizer preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


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
