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

import math

import torch
from torch import Tensor

from grokkit import torch_private
from grokkit.model_config import ModelConfig, hidden_matrices

# The settings, torch-free in grokkit.optim_config, re-exported.
from grokkit.optim_config import (
    DEFAULT_PRESET as DEFAULT_PRESET,
    LATER_FIELDS as LATER_FIELDS,
    PRESET_DESCRIPTIONS as PRESET_DESCRIPTIONS,
    PRESETS as PRESETS,
    RECIPES as RECIPES,
    OptimizerConfig as OptimizerConfig,
    preset as preset,
)


class _Memberwise:
    """What every batched optimizer does alike over a population's flat parameters [E, P]: each
    member's hyperparameters as [E, 1] columns, the scheduled learning rate (linear warm-up),
    the coupled L2 term, the decoupled weight decay and the update noise, and cutting out,
    loading and dropping members. A subclass adds its update and names its per-weight state
    (``STATE_VECTORS``, each [E, P], zero at the start)."""

    STATE_VECTORS: tuple[str, ...] = ()
    # The hyperparameters kept as [E, 1] tensors, one row per member.
    _COLUMNS = ("weight_decay", "l2", "beta1", "beta2", "eps", "update_noise")

    def __init__(self, configs: list[OptimizerConfig], flat: Tensor):
        E = flat.shape[0]
        if len(configs) != E:
            raise ValueError(f"{len(configs)} optimizer configs for {E} members")
        self.configs = configs
        self._dtype, self._device = flat.dtype, flat.device
        for name in self._COLUMNS:
            values = [float(getattr(c, name)) for c in configs]
            setattr(
                self, name, torch.tensor(values, dtype=flat.dtype, device=flat.device).view(E, 1)
            )
        self.decay_to_init = torch.tensor(
            [c.decay_target == "init" for c in configs], device=flat.device
        ).view(E, 1)
        self._derive_from_configs()
        for name in self.STATE_VECTORS:
            setattr(self, name, torch.zeros_like(flat))
        self.initial = flat.clone() if self.any_decay_to_init else None
        self.step_count = 0  # updates made; also the population's step (Population.step_count)

    def _derive_from_configs(self) -> None:
        """What the step decides in Python, from the members' configs: reading it back from the
        device tensors would make a GPU wait every step. Redone when members leave (``keep``)."""
        c = self.configs
        self.any_weight_decay = any(o.weight_decay > 0 for o in c)
        self.any_l2 = any(o.l2 > 0 for o in c)
        self.update_noise_std = [o.update_noise for o in c]
        self.any_update_noise = any(o.update_noise > 0 for o in c)
        self.any_decay_to_init = any(o.decay_target == "init" for o in c)
        self.warm_after = max(o.warmup_steps for o in c)  # from here on every rate is constant
        self._after_warmup: dict[str, object] = {}  # what depends on the rates, once constant

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
                [c.lr_at(u) for c in self.configs], dtype=self._dtype, device=self._device
            ).view(-1, 1),
        )

    def with_l2(self, flat: Tensor, grad: Tensor) -> Tensor:
        """The gradient plus each member's coupled L2 term, l2 * W."""
        if not self.any_l2:
            return grad
        return grad + self.l2 * flat  # a new tensor: the caller's gradient stays as it was

    def decay(self, flat: Tensor, lr: Tensor) -> None:
        """W <- W - lr wd (W - target), target 0 or the initial weights, computed as
        W (1 - lr wd) + lr wd target: torch.optim.AdamW's arithmetic for target 0, and the same
        expression for every member so that a member's result never depends on the others."""
        if not self.any_weight_decay:
            return
        flat.mul_(1 - lr * self.weight_decay)
        if self.any_decay_to_init:
            target = torch.where(self.decay_to_init, self.initial, torch.zeros_like(flat))
            flat.add_(target * (lr * self.weight_decay))

    def add_update_noise(self, flat: Tensor, noise: list[torch.Generator] | None) -> None:
        """W <- W + lr * update_noise * N(0, 1) for the members with update noise."""
        if self.any_update_noise:
            lr = self.scheduled_lr(self.step_count)
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

    # Exact resume needs the state vectors, the update count and the decay target, per member.
    def member_state(self, i: int) -> dict:
        state = {name: getattr(self, name)[i].clone() for name in self.STATE_VECTORS}
        state["step_count"] = self.step_count
        if self.initial is not None:
            state["initial"] = self.initial[i].clone()
        return state

    def load_member_state(self, i: int, state: dict) -> None:
        for name in self.STATE_VECTORS:
            getattr(self, name)[i] = state[name]
        if self.step_count and self.step_count != state["step_count"]:
            raise ValueError("population members must be at the same update to train in lockstep")
        self.step_count = state["step_count"]
        if self.initial is not None and "initial" in state:
            self.initial[i] = state["initial"]

    def keep(self, idx: Tensor) -> None:
        """Keep only the members at ``idx`` (see Population.keep)."""
        self.configs = [self.configs[i] for i in idx.tolist()]
        for name in (*self._COLUMNS, "decay_to_init", *self.STATE_VECTORS):
            setattr(self, name, getattr(self, name)[idx].contiguous())
        if self.initial is not None:
            self.initial = self.initial[idx].contiguous()
        self._derive_from_configs()


class BatchedAdamW(_Memberwise):
    """AdamW over a population's flat parameters [E, P], one hyperparameter set per member.

    Per member and per update u (1-based), with scheduled rate lr_u = lr * min(1, u / warmup):
        L2:     g <- g + l2 * W                        (coupled, as torch.optim.Adam's weight_decay)
        decay:  W <- W - lr_u * wd * (W - target)      (target = 0, or the initial weights)
        Adam:   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
                dW = -(m / (1 - b1^u)) / (sqrt(v / (1 - b2^u)) + eps)
        step:   W <- W + lr_u * (dW + update_noise * N(0, 1))
    which is torch.optim.AdamW's order of operations (decay first, on the pre-update weights).
    """

    # The vectors ``member_state`` writes, each laid out as the weights (checkpoint_check reads
    # this to know what a checkpoint of such a run holds); "initial" besides, for decay to init.
    STATE_VECTORS = ("exp_avg", "exp_avg_sq")

    def __init__(self, configs: list[OptimizerConfig], flat: Tensor, fused: bool | None = None):
        super().__init__(configs, flat)
        # PyTorch's fused AdamW kernel (what torch.optim.AdamW(fused=True) runs) makes one pass over
        # the weights instead of ~10 and gives torch.optim.AdamW's result to the last bit (tested).
        # Without it (grokkit.torch_private), the tensor expressions of _tensor_step.
        available = torch_private.HAS_FUSED_ADAMW and flat.device.type in ("cpu", "cuda")
        if fused and not available:
            raise ValueError(
                f"PyTorch's fused AdamW is not available here (device {flat.device.type})"
            )
        self.fused = available if fused is None else fused

    @torch.no_grad()
    def step(self, flat: Tensor, grad: Tensor, noise: list[torch.Generator] | None = None) -> None:
        """One update u = ``step_count`` of every member: L2, decay and Adam, update noise."""
        self.step_count += 1
        u = self.step_count
        if self.any_l2:  # coupled L2: a new tensor, so the caller's gradient stays as it was
            grad = grad + self.l2 * flat
        if self.fused:
            self._fused_step(flat, grad, u)
        else:
            self._tensor_step(flat, grad, u, self.scheduled_lr(u))
        if self.any_update_noise:
            self.add_update_noise(flat, noise)

    def adam_update(self, flat: Tensor, grad: Tensor) -> None:
        """Weight decay and Adam's step of the current update (``step_count``) on ``flat``."""
        u = self.step_count
        if self.fused:
            self._fused_step(flat, grad, u)
        else:
            self._tensor_step(flat, grad, u, self.scheduled_lr(u))

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
        self.decay(flat, lr)
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad * (1 - self.beta2))
        bias1 = 1 - self.beta1**u
        bias2_sqrt = (1 - self.beta2**u).sqrt()
        denom = (self.exp_avg_sq.sqrt() / bias2_sqrt).add_(self.eps)
        flat.addcdiv_(self.exp_avg, denom * (bias1 / -lr))


class BatchedLion(_Memberwise):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", arXiv 2302.06675,
    Algorithm 2) over a population's flat parameters [E, P], one hyperparameter set per member.

    Per member and per update u, with scheduled rate lr_u = lr * min(1, u / warmup):
        L2:     g <- g + l2 * W                        (coupled, as for AdamW)
        decay:  W <- W - lr_u * wd * (W - target)      (decoupled; target = 0 in the paper)
        Lion:   c = b1 m + (1 - b1) g;  W <- W - lr_u sign(c);  m <- b2 m + (1 - b2) g
        noise:  W <- W + lr_u * update_noise * N(0, 1)
    The paper's decay and sign step both read the pre-update weights, as here. Its one moment
    is kept as ``exp_avg`` (m), laid out as the weights in a checkpoint.
    """

    STATE_VECTORS = ("exp_avg",)
    fused = False  # no fused kernel: the tensor expressions below (grokkit bench reports it)

    @torch.no_grad()
    def step(self, flat: Tensor, grad: Tensor, noise: list[torch.Generator] | None = None) -> None:
        self.step_count += 1
        lr = self.scheduled_lr(self.step_count)
        grad = self.with_l2(flat, grad)
        self.decay(flat, lr)
        direction = (self.exp_avg * self.beta1 + grad * (1 - self.beta1)).sign_()
        flat.sub_(direction * lr)
        self.exp_avg.mul_(self.beta2).add_(grad * (1 - self.beta2))
        self.add_update_noise(flat, noise)


# ---------------------------------------------------------------- Muon (Jordan et al. 2024)

# torch.optim.Muon's defaults (torch/optim/_muon.py, from Keller Jordan's muon.py).
MUON_MOMENTUM = 0.95
NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)
NS_STEPS = 5
NS_EPS = 1e-7


def newton_schulz(matrices: Tensor, dtype: torch.dtype = torch.bfloat16) -> Tensor:
    """torch.optim.Muon's orthogonalisation of each matrix of a stack [N, rows, cols], iterated in
    ``dtype`` (torch's is bfloat16; a tall stack is iterated as its transpose), one batched product
    per term: in bfloat16, matrix by matrix what torch's ``_zeropower_via_newtonschulz`` returns;
    in float32, that to bfloat16's tolerance (tested)."""
    a, b, c = NS_COEFFICIENTS
    x = matrices.to(dtype)
    tall = matrices.size(-2) > matrices.size(-1)
    if tall:
        x = x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=NS_EPS)
    for _ in range(NS_STEPS):
        gram = x @ x.mT
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.mT if tall else x


def _pieces(t: Tensor, offset: int, shape: tuple[int, int], pieces: int) -> Tensor:
    """A hidden matrix [in, out] of every member of ``t`` [E, width], at ``offset``, as views
    [E, pieces, in, out / pieces]: the weights of the PyTorch modules it holds side by side."""
    rows, cols = shape
    block = t[:, offset : offset + rows * cols]
    return block.view(t.shape[0], rows, pieces, cols // pieces).transpose(1, 2)


class BatchedMuon:
    """Muon for the blocks' hidden matrices and BatchedAdamW for every other weight, over a
    population's flat parameters [E, P], with each member's learning rate, warm-up and decay.

    Per member, update u and hidden matrix (as the nn.Linear weight W [out, in]), what
    torch.optim.Muon computes with its defaults (momentum mu 0.95, Nesterov, five Newton-Schulz
    steps in bfloat16, adjust_lr_fn None):
        B <- B + (1 - mu) (g - B);  O = NS(g + mu (B - g))
        W <- W (1 - lr_u wd) - lr_u sqrt(max(1, out / in)) O
    (torch's lerps: its documented B <- mu B + g, g + mu B, times 1 - mu, which NS's
    normalisation removes). g holds the coupled L2 term, the gradient of the penalised loss; the
    other weights take exactly BatchedAdamW's step; update noise (A.1.2) is added to every weight
    after both, as W <- W + lr (dW + eps) defines it.

    ``matrices``: (name, offset, shape, pieces) of each hidden matrix (model_config's
    ``hidden_matrices``).
    """

    STATE_VECTORS = ("exp_avg", "exp_avg_sq", "muon_momentum")

    def __init__(
        self,
        configs: list[OptimizerConfig],
        flat: Tensor,
        matrices: tuple,
        ns_dtype: torch.dtype = torch.float32,
    ):
        E, self.width = flat.shape
        is_muon = torch.zeros(self.width, dtype=torch.bool)
        for _, offset, (rows, cols), _ in matrices:
            is_muon[offset : offset + rows * cols] = True
        self.muon_columns = is_muon.nonzero().squeeze(1).to(flat.device)
        self.adam_columns = (~is_muon).nonzero().squeeze(1).to(flat.device)
        self.adamw = BatchedAdamW(configs, flat.index_select(1, self.adam_columns))
        self.momentum = flat.new_zeros(E, len(self.muon_columns))  # the Muon columns' buffers
        self.groups = _muon_groups(matrices)
        self.ns_dtype = ns_dtype  # the Backend's choice (grokkit.backend_choice measures it)

    @property
    def step_count(self) -> int:
        return self.adamw.step_count

    @property
    def fused(self) -> bool:
        return self.adamw.fused

    @property
    def any_update_noise(self) -> bool:
        return self.adamw.any_update_noise

    def scheduled_lr(self, update: int) -> Tensor:
        return self.adamw.scheduled_lr(update)

    @torch.no_grad()
    def step(self, flat: Tensor, grad: Tensor, noise: list[torch.Generator] | None = None) -> None:
        adamw = self.adamw
        adamw.step_count += 1
        grad = adamw.with_l2(flat, grad)
        others = flat.index_select(1, self.adam_columns)
        adamw.adam_update(others, grad.index_select(1, self.adam_columns))
        flat.index_copy_(1, self.adam_columns, others)
        self._muon_update(flat, grad.index_select(1, self.muon_columns))
        adamw.add_update_noise(flat, noise)

    def _muon_update(self, flat: Tensor, grad: Tensor) -> None:
        """torch.optim.Muon's step on every hidden matrix; ``grad`` [E, Muon columns]."""
        lr = self.adamw.scheduled_lr(self.adamw.step_count).view(-1, 1, 1, 1)
        decay = 1 - lr * self.adamw.weight_decay.view(-1, 1, 1, 1)
        self.momentum.lerp_(grad, 1 - MUON_MOMENTUM)
        nesterov = grad.lerp(self.momentum, MUON_MOMENTUM)
        for ratio, matrices in self.groups:
            # grokkit's W is [in, out] (h @ W); torch.optim.Muon would hold the nn.Linear weight
            # [out, in]: each piece goes in as that transpose, so the orientation NS iterates in
            # and the factor sqrt(max(1, out / in)) are torch's for the same layer.
            stacked = torch.cat(
                [_pieces(nesterov, at, shape, k).mT.flatten(0, 1) for _, at, shape, k in matrices]
            )
            ortho = newton_schulz(stacked, self.ns_dtype).split(
                [len(flat) * k for _, _, _, k in matrices]
            )
            for (offset, _, shape, k), o in zip(matrices, ortho):
                weights = _pieces(flat, offset, shape, k)
                weights.mul_(decay)
                weights.sub_(o.view(len(flat), k, *o.shape[1:]).mT * (lr * ratio))

    def member_state(self, i: int) -> dict:
        """BatchedAdamW's state and Muon's momentum, each laid out as the weights (zeros where the
        other optimiser acts), so that a checkpoint's vectors all have the weights' shape."""
        state = self.adamw.member_state(i)
        for key in ("exp_avg", "exp_avg_sq"):
            state[key] = self._spread(state[key], self.adam_columns)
        state["muon_momentum"] = self._spread(self.momentum[i], self.muon_columns)
        return state

    def _spread(self, values: Tensor, columns: Tensor) -> Tensor:
        out = values.new_zeros(self.width)
        out[columns] = values
        return out

    def load_member_state(self, i: int, state: dict) -> None:
        adam = {k: v for k, v in state.items() if k != "muon_momentum"}
        for key in ("exp_avg", "exp_avg_sq"):
            adam[key] = state[key][self.adam_columns]
        self.adamw.load_member_state(i, adam)
        self.momentum[i] = state["muon_momentum"][self.muon_columns]

    def keep(self, idx: Tensor) -> None:
        """Keep only the members at ``idx`` (see Population.keep)."""
        self.adamw.keep(idx)
        self.momentum = self.momentum[idx].contiguous()


def _muon_groups(matrices: tuple) -> list[tuple[float, list[tuple[int, int, tuple, int]]]]:
    """The hidden matrices by the shape torch.optim.Muon sees, [out, in] of one piece (one
    Newton-Schulz call each): (sqrt(max(1, out / in)), [(offset in the weights, offset in the
    Muon columns, shape, pieces), ...])."""
    groups: dict[tuple[int, int], list] = {}
    at = 0
    for _, offset, (rows, cols), pieces in matrices:
        groups.setdefault((cols // pieces, rows), []).append((offset, at, (rows, cols), pieces))
        at += rows * cols
    return [(math.sqrt(max(1, out / in_)), members) for (out, in_), members in groups.items()]


# ---------------------------------------------------------------- the choice of optimizer

# A population's update rule -> the batched optimizer that runs it (--muon aside: it takes part of
# the weights from any of them). Adding an optimizer: its class here and its preset in
# grokkit.optim_config.
UPDATE_RULES: dict[str, type] = {"adamw": BatchedAdamW, "lion": BatchedLion}


def optimizer_class(config: OptimizerConfig) -> type:
    """The batched optimizer class that runs ``config`` (a population's members share it)."""
    return BatchedMuon if config.muon else UPDATE_RULES[config.update_rule]


def build_optimizer(
    configs: list[OptimizerConfig],
    flat: Tensor,
    model: ModelConfig,
    ns_dtype: torch.dtype = torch.float32,
):
    """The optimizer of a population over its flat weights [E, P], one config per member;
    ``ns_dtype``: Muon's Newton-Schulz precision (the population's Backend says which)."""
    cls = optimizer_class(configs[0])
    if cls is BatchedMuon:
        return BatchedMuon(configs, flat, hidden_matrices(model), ns_dtype)
    return cls(configs, flat)
