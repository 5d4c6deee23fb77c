"""E independent runs trained in lockstep as one stacked model.

Members share the operation, the model's shape and the batch size (so their tensors stack); they
may differ in seeds, data fraction, outliers and every scalar optimiser setting. Each member keeps
its own data split, its own generators (batches, noise) and its own slice of the flat parameter and
optimiser tensors, so member i computes what the same run computes alone (tested), and its state
can be cut out into a checkpoint and stacked again with any other compatible members.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from grokkit.backend import Backend
from grokkit.config import PER_POPULATION, RunConfig, derive_seed
from grokkit.data import Table, make_table
from grokkit.errors import warn
from grokkit.fast_path import forward_fast, forward_openai_fast
from grokkit.interventions import GrokfastEMA, GrokfastMA, Interventions, OrthogonalGrad
from grokkit.losses import LOSSES, softmax_collapse
from grokkit.model import (
    OPENAI_SEQUENCE_LENGTH,
    ModelConfig,
    forward_openai_reference,
    forward_reference,
    init_parameters,
    norm_groups,
    openai_positions,
    openai_tokens,
    parameter_layout,
    parameter_shapes,
    unflatten,
)
from grokkit.openai_grok import EOS_TOKEN
from grokkit.ops import get_operation
from grokkit.optim import build_optimizer
from grokkit.settings import Setting
from grokkit.torch_private import mark_dynamic


def _compiled(logits):
    """``logits`` (forward and, through autograd, backward) compiled once for every population
    size from two members up: the member axis is marked dynamic, so members finishing (``keep``)
    or another sweep group's size reuse the graph. One member is a graph of its own (PyTorch
    specialises axes of size one)."""
    compiled = torch.compile(logits, dynamic=None)

    def call(params: dict[str, Tensor], x: Tensor, y: Tensor, train: bool, c: Tensor | None):
        if x.shape[0] > 1:
            for t in (x, y, c, *params.values()):
                if t is not None:
                    mark_dynamic(t, 0)
        return compiled(params, x, y, train, c)

    return call


def _generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    # The meta device (shapes without data: the device-correctness tests) has no generator of its
    # own; random ops on it accept a CPU one.
    device = torch.device(device)
    return torch.Generator(device="cpu" if device.type == "meta" else device).manual_seed(seed)


def population_key_part(config: RunConfig, s: Setting):
    """A per-population setting's part of the key: its value, or None where it has no effect."""
    return s.value(config) if s.acts_in(config) else None


def population_key(config: RunConfig) -> tuple:
    """Runs with equal keys can share a population (their tensors have the same shapes, and the
    whole stack takes the same steps): every setting declared ``per_population`` (where it has an
    effect), and what follows from the settings rather than being one."""
    table_size = get_operation(config.operation, config.modulus).n_equations
    n_train = round(config.train_fraction * table_size)
    shared = tuple(population_key_part(config, s) for s in PER_POPULATION)
    return shared + (
        # The table's size; S5's does not depend on the modulus, which it ignores.
        None if config.operation.startswith("s5") else config.modulus,
        config.optimizer.resolve_batch_size(n_train),
        # Dropout needs the reference forward pass; keeping such runs apart lets every other run
        # use the fast path, and keeps each member bit-for-bit equal to its solo run.
        config.optimizer.dropout > 0,
        # The authors' epochs end with a smaller batch: members step through epochs together only
        # when their training sets are equally large.
        n_train if config.arch == "openai-grok" else None,
    )


def _interventions(configs: list[RunConfig], model_config: ModelConfig, device) -> Interventions:
    """The population's gradient interventions, in order: the Grokfast filter, then ⊥Grad (so
    the update the optimizer receives is orthogonal to the weights, filtered part included)."""
    first, items = configs[0], []
    lambdas = [c.effective_grad_filter_lambda for c in configs]
    if first.grad_filter == "ema":
        items.append(GrokfastEMA([c.grad_filter_alpha for c in configs], lambdas, device))
    elif first.grad_filter == "ma":
        items.append(GrokfastMA(first.grad_filter_window, lambdas, device))
    if first.orthogonal_grad:
        items.append(
            OrthogonalGrad([size for _, _, size, _ in parameter_layout(model_config)], device)
        )
    return Interventions(items)


def _padded(rows: list[Tensor]) -> Tensor:
    """1-D int64 tensors as the rows of one [len(rows), longest] tensor, zero-padded."""
    out = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


@dataclass
class Member:
    """What one run owns inside a population besides its slice of the stacked tensors."""

    config: RunConfig
    n_train: int
    batch_generator: torch.Generator  # CPU: the data order is the same on every device
    noise_generator: torch.Generator  # on the device: update noise, weight noise, dropout
    device: torch.device = torch.device("cpu")
    permutation: Tensor | None = None  # current epoch's order of the training set (CPU)
    position: int = 0  # next unread index into `permutation`
    _on_device: Tensor | None = None  # the same order on the device, copied once per epoch

    def set_permutation(self, permutation: Tensor | None, position: int) -> None:
        self.permutation, self.position = permutation, position
        self._on_device = (
            None if permutation is None else permutation.to(self.device, non_blocking=True)
        )

    def next_batch_positions(self, batch_size: int, within_epoch: bool = False) -> Tensor:
        """The next batch_size training-set positions from an endless stream of shuffled epochs,
        on the device. Each epoch's order is drawn on the CPU (the same on every device) and
        copied to the device once; the batches are slices of that copy. ``within_epoch`` (the
        authors' iterator): a batch never crosses into the next epoch, so an epoch's last batch
        is smaller."""
        if within_epoch and self.permutation is not None and self.position < self.n_train:
            batch_size = min(batch_size, self.n_train - self.position)
        parts, need = [], batch_size
        while need:
            if self.permutation is None or self.position >= self.n_train:
                self.set_permutation(
                    torch.randperm(self.n_train, generator=self.batch_generator), 0
                )
            take = min(need, self.n_train - self.position)
            parts.append(self._on_device[self.position : self.position + take])
            self.position += take
            need -= take
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def noise_state(self) -> dict:
        # A CUDA generator's state (Philox) cannot seed a CPU one (Mersenne Twister): say which
        # it is, so that a checkpoint written on a GPU still resumes on a CPU.
        return {
            "noise_generator": self.noise_generator.get_state().cpu(),
            "noise_device": self.noise_generator.device.type,
        }

    def load_noise_state(self, state: dict) -> None:
        """The noise generator as saved, or, from a checkpoint whose generator lived on another
        kind of device, a new stream seeded from the run's seed and step (the noise differs from
        an uninterrupted run from here on; said as a warning for runs that draw noise). The batch
        order is drawn on the CPU everywhere, so it always resumes exactly."""
        saved_on, here = state.get("noise_device", "cpu"), self.noise_generator.device.type
        if saved_on == here:
            self.noise_generator.set_state(state["noise_generator"])
            return
        self.noise_generator.manual_seed(derive_seed(self.config.seed, "noise", state["step"]))
        if self.config.optimizer.draws_noise:
            warn(
                f"a run (seed {self.config.seed}) resumes on {here} "
                f"from a checkpoint written on {saved_on}: "
                f"its noise and dropout draws restart from a new stream at step {state['step']}, "
                "so they differ from an uninterrupted run's"
            )


def _check_compatible(configs: list[RunConfig]) -> None:
    """ValueError unless there is at least one run and all can share a population."""
    if not configs:
        raise ValueError("a population needs at least one run")
    if len({population_key(c) for c in configs}) > 1:
        differ = [
            s.name for s in PER_POPULATION if len({population_key_part(c, s) for c in configs}) > 1
        ]
        raise ValueError(
            "runs in one population must share the model's shape, the methods they use, the "
            "batch size, whether they use dropout and the evaluation interval; these differ: "
            + (", ".join(differ) or "the batch size, the modulus, dropout or the training set size")
        )


class Population:
    """A stack of E runs. ``step()`` makes one update of every member; ``evaluate()`` scores all."""

    def __init__(
        self,
        configs: list[RunConfig],
        device: str | torch.device = "cpu",
        backend: Backend | None = None,
    ):
        """``backend``: how the steps are computed (grokkit.backend_choice.choose_backend picks
        the machine's fastest); None: plain eager PyTorch, with the configs' bf16 and TF32."""
        _check_compatible(configs)
        self.device = torch.device(device)
        first = configs[0]
        self.backend = backend or Backend.plain(first.bf16, first.tf32, self.device)
        if (self.backend.bf16 is not None) != first.bf16:
            raise ValueError("the backend's bf16 path disagrees with the runs' bf16 setting")
        self.table: Table = make_table(first.operation, first.modulus, first.arch)
        self.model_config: ModelConfig = first.model_config(self.table.n_elements)
        self.shapes = parameter_shapes(self.model_config)
        self.configs = list(configs)
        train_positions, train_labels = self._build_members()
        flat = self._initial_weights()  # [E, P] on the CPU
        self.batch_size = self._shared_batch_size()
        # Training sets padded to one width so a batch is one gather for all members.
        self.train_equations, self.train_labels = _padded(train_positions), _padded(train_labels)
        self._move_to_device(flat)
        self._build_training()
        self._refresh_hyperparameters()
        self._leaf_cache: tuple[Tensor, dict[str, Tensor]] | None = None
        self._linear = self.backend.linear  # the projection of the fast forward passes
        # A step in float32 without TF32 sets nothing process-wide: no context to enter.
        self._plain_step = self.backend.bf16 is None and not self.backend.tf32
        # torch.compile is lazy: nothing compiles before the first step.
        self._training_logits = _compiled(self.logits) if self.backend.compiled else self.logits

    def _build_members(self) -> tuple[list[Tensor], list[Tensor]]:
        """Each member's data split, trained answers (outliers included) and generators: sets
        ``members``, ``eval_targets`` and ``train_mask`` (on the CPU) and returns each member's
        training-set positions and labels."""
        E, N = len(self.configs), self.table.n_equations
        self.members: list[Member] = []
        train_positions, train_labels = [], []
        self.eval_targets = self.table.result.repeat(E, 1)  # [E, N]; outliers change train answers
        self.train_mask = torch.zeros(E, N, dtype=torch.bool)
        for i, c in enumerate(self.configs):
            train_idx, _ = c.split(N)
            labels = c.trained_answers(self.table.result, train_idx)
            self.eval_targets[i, train_idx] = labels
            self.train_mask[i, train_idx] = True
            train_positions.append(train_idx)
            train_labels.append(labels)
            self.members.append(
                Member(
                    config=c,
                    n_train=len(train_idx),
                    batch_generator=_generator(derive_seed(c.seed, "batches")),
                    noise_generator=_generator(derive_seed(c.seed, "noise"), self.device),
                    device=self.device,
                )
            )
        return train_positions, train_labels

    def _initial_weights(self) -> Tensor:
        """[E, P] on the CPU: each member's initial weights, drawn from its own init seed,
        flattened in parameter order and scaled by its init_scale."""
        flat_rows = []
        for c in self.configs:
            init = init_parameters(
                self.model_config, _generator(derive_seed(c.seed, "init")), c.init
            )
            flat_rows.append(
                torch.cat([init[name].reshape(-1) for name in self.shapes]) * c.init_scale
            )
        return torch.stack(flat_rows)

    def _shared_batch_size(self) -> int:
        """The batch size every member uses (ValueError if their training sets give others)."""
        optimizer = self.configs[0].optimizer
        batch_size = optimizer.resolve_batch_size(self.members[0].n_train)
        for m in self.members:
            if optimizer.resolve_batch_size(m.n_train) != batch_size:
                raise ValueError("runs in one population must share the batch size")
        return batch_size

    def _move_to_device(self, flat: Tensor) -> None:
        """The tables, the training sets, the targets and the weights ``flat`` on the device."""
        dev = self.device
        self.x, self.y = self.table.x.to(dev), self.table.y.to(dev)
        self.train_equations = self.train_equations.to(dev)
        self.train_labels = self.train_labels.to(dev)
        self.eval_targets, self.train_mask = self.eval_targets.to(dev), self.train_mask.to(dev)
        self.flat = flat.to(dev)  # [E, P]: every member's weights, one row each

    def _build_training(self) -> None:
        """The optimizer over ``flat``, the gradient interventions (none: the paper), the loss, and
        what the openai-grok forward pass needs built before any step."""
        first = self.configs[0]
        opts = [c.optimizer for c in self.configs]
        self.optimizer = build_optimizer(opts, self.flat, self.model_config, self.backend.ns_dtype)
        # Omnigrok's constraint: each member's global weight norm at initialisation, kept.
        self.norm_target = self.flat.norm(dim=1) if first.fixed_norm else None
        self.interventions = _interventions(self.configs, self.model_config, self.device)
        self.loss = LOSSES[first.loss]
        self.openai = first.arch == "openai-grok"
        if self.openai:  # built on the CPU once, here, so no step ever makes a host tensor
            openai_positions(OPENAI_SEQUENCE_LENGTH, self.model_config.d_model, str(self.device))

    # ------------------------------------------------------------ parameters

    def _refresh_hyperparameters(self) -> None:
        opts = [c.optimizer for c in self.configs]
        # Python copies decide who draws noise without reading the device (no sync per step).
        self.weight_noise_std = [o.weight_noise for o in opts]
        self.dropout_rates = [o.dropout for o in opts]
        self.dropout = torch.tensor(self.dropout_rates, device=self.device)
        self.uses_dropout = any(o.dropout > 0 for o in opts)
        self.uses_weight_noise = any(o.weight_noise > 0 for o in opts)

    def views(self, flat: Tensor) -> dict[str, Tensor]:
        """Named [E, ...] views into a flat [E, P] tensor (no copies)."""
        return unflatten(flat, self.model_config)

    def parameters(self) -> dict[str, Tensor]:
        return self.views(self.flat)

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def step_count(self) -> int:
        # The optimizer owns the count: Adam's bias correction and the warm-up need it, and a
        # second copy here could only drift from it. A checkpoint's "step" is this value.
        return self.optimizer.step_count

    # ------------------------------------------------------------ training

    def _noise_rows(self, std: list[float], width: int) -> Tensor:
        """[E, width] Gaussian noise scaled per member; members with std 0 draw nothing, so their
        generators advance exactly as they would in a run without this noise."""
        rows = []
        for m, s in zip(self.members, std):
            if s > 0:
                rows.append(torch.randn(width, generator=m.noise_generator, device=self.device) * s)
            else:
                rows.append(torch.zeros(width, device=self.device))
        return torch.stack(rows)

    def _leaves(self, source: Tensor) -> dict[str, Tensor]:
        """Named weights the step differentiates: autograd leaves that view ``source``.

        Without weight noise the source is ``self.flat`` itself, updated in place by the optimizer,
        so the same leaf views serve every step (their gradients are cleared instead): making 34
        views and leaves anew each step costs measurably (benchmarks/RESULTS.md)."""
        if source is not self.flat:
            return {k: v.detach().requires_grad_() for k, v in self.views(source).items()}
        if self._leaf_cache is None or self._leaf_cache[0] is not self.flat:
            base = self.flat.detach()
            self._leaf_cache = (
                self.flat,
                {k: v.requires_grad_() for k, v in self.views(base).items()},
            )
        leaves = self._leaf_cache[1]
        for leaf in leaves.values():
            leaf.grad = None
        return leaves

    def logits(
        self, params: dict[str, Tensor], x: Tensor, y: Tensor, train: bool, c: Tensor | None = None
    ) -> Tensor:
        """Logits the loss reads: [E, B, vocab] at "=", or for openai-grok [E, B, 2, vocab] at "="
        and at the answer c (given: the model reads it to predict the closing <eos>)."""
        if self.openai:
            if train and self.uses_dropout:
                gens = [m.noise_generator for m in self.members]
                return forward_openai_reference(
                    params,
                    self.model_config,
                    openai_tokens(self.model_config, x, y, c),
                    dropout=self.dropout,
                    generators=gens,
                    dropout_rates=self.dropout_rates,
                )
            return forward_openai_fast(params, self.model_config, x, y, c, self._linear)
        if train and self.uses_dropout:
            cfg = self.model_config
            tokens = torch.stack(
                [x, torch.full_like(x, cfg.op_token), y, torch.full_like(x, cfg.eq_token)], dim=-1
            )
            gens = [m.noise_generator for m in self.members]
            return forward_reference(
                params,
                cfg,
                tokens,
                dropout=self.dropout,
                generators=gens,
                dropout_rates=self.dropout_rates,
            )
        return forward_fast(params, self.model_config, x, y, self._linear)

    def step(self) -> Tensor:
        """One update of every member. Returns the members' minibatch losses [E] (no sync)."""
        if self._plain_step:
            return self._step()
        with self.backend.around_step(self.device):
            return self._step()

    def _step(self) -> Tensor:
        E, B = len(self.members), self.batch_size
        positions = torch.stack(
            [m.next_batch_positions(B, self.openai) for m in self.members]
        )  # on the device
        equations = torch.gather(self.train_equations, 1, positions)  # [E, B]
        labels = torch.gather(self.train_labels, 1, positions)
        source = self.flat
        if self.uses_weight_noise:
            source = self.flat + self._noise_rows(self.weight_noise_std, self.flat.shape[1])
        leaves = self._leaves(source)
        logits = self._training_logits(
            leaves, self.x[equations], self.y[equations], train=True, c=labels
        )
        losses = self.example_losses(logits, labels).mean(dim=1)  # [E]
        losses.sum().backward()  # members are independent: each gets the gradient of its own mean
        grad = torch.cat(
            [
                leaves[k].grad.reshape(E, -1)
                if leaves[k].grad is not None
                else torch.zeros(E, math.prod(s), device=self.device)
                for k, s in self.shapes.items()
            ],
            dim=1,
        )
        if self.interventions.items:
            grad = self.interventions(grad, self.flat)
        noise = (
            [m.noise_generator for m in self.members] if self.optimizer.any_update_noise else None
        )
        self.optimizer.step(self.flat, grad, noise)
        if self.norm_target is not None:
            self._restore_norm()
        return losses.detach()

    @torch.no_grad()
    def _restore_norm(self) -> None:
        """Each member's weights rescaled to its initial global L2 norm, as Omnigrok's code does
        after every optimizer step (its factor sqrt(initial / current) of squared norms)."""
        self.flat.mul_((self.norm_target / self.flat.norm(dim=1)).unsqueeze(1))

    def _token_targets(self, answers: Tensor) -> Tensor:
        """What the logits are scored against: the answers, or for openai-grok the answer's token
        and the closing <eos> [E, B, 2]."""
        if not self.openai:
            return answers
        tokens = answers + self.model_config.element_offset
        return torch.stack([tokens, torch.full_like(tokens, EOS_TOKEN)], dim=-1)

    def example_losses(self, logits: Tensor, answers: Tensor) -> Tensor:
        """Loss per equation [E, B]: on the answer, or (openai-grok) the mean over the tokens
        after "=", as their mean cross-entropy over the right-hand side."""
        losses = self.loss(logits, self._token_targets(answers))
        return losses.mean(dim=-1) if self.openai else losses

    # ------------------------------------------------------------ evaluation

    def evaluate(self, chunk_examples: int = 1 << 16) -> dict[str, Tensor]:
        """Loss and accuracy of every member on its whole training set (with its outlier answers)
        and its whole validation set. Returns CPU tensors [E] keyed train_loss, train_accuracy,
        val_loss, val_accuracy, plus weight_norm (the one copy to the host an evaluation makes)."""
        return {k: v.cpu() for k, v in self.evaluate_on_device(chunk_examples).items()}

    def evaluate_on_device(self, chunk_examples: int = 1 << 16) -> dict[str, Tensor]:
        """``evaluate``'s numbers, still on the population's device (with bf16, its products in
        bfloat16 as in training). Evaluation runs eagerly whatever the backend."""
        with self.backend.around_step(self.device):
            return self._evaluate_on_device(chunk_examples)

    @torch.inference_mode()
    def _evaluate_on_device(self, chunk_examples: int) -> dict[str, Tensor]:
        E, N = self.size, self.table.n_equations
        params = self.parameters()
        # At most 2,048 equations per member at a time: the activations then stay in cache
        # (faster than one chunk of the whole table: benchmarks/RESULTS.md).
        chunk = max(1, min(2048, chunk_examples // E))
        losses, correct, collapsed = [], [], []
        for start in range(0, N, chunk):
            stop = min(N, start + chunk)
            x = self.x[start:stop].expand(E, -1)
            y = self.y[start:stop].expand(E, -1)
            target = self.eval_targets[:, start:stop]
            logits = self.logits(params, x, y, train=False, c=target)
            losses.append(self.example_losses(logits, target))
            hits = logits.argmax(dim=-1) == self._token_targets(target)
            collapse = softmax_collapse(logits)
            if self.openai:  # an equation is right only when every token after "=" is
                hits, collapse = hits.all(dim=-1), collapse.all(dim=-1)
            correct.append(hits)
            collapsed.append(collapse)
        loss, hit = torch.cat(losses, dim=1), torch.cat(correct, dim=1).float()
        collapse = torch.cat(collapsed, dim=1).float()
        train, val = self.train_mask.float(), (~self.train_mask).float()
        n_train, n_val = train.sum(1), val.sum(1)
        out = {
            "train_loss": (loss * train).sum(1) / n_train,
            "train_accuracy": (hit * train).sum(1) / n_train,
            "val_loss": (loss * val).sum(1) / n_val,
            "val_accuracy": (hit * val).sum(1) / n_val,
            "weight_norm": self.flat.norm(dim=1),
            **self._part_norms(),
            "softmax_collapse": (collapse * train).sum(1) / n_train,
        }
        return out

    def _part_norms(self) -> dict[str, Tensor]:
        """``norm_<part>`` [E] for each part of the model (grokkit.model.norm_groups): the
        slingshot cycles and Omnigrok's norm story, per layer."""
        weights = self.parameters()
        return {
            f"norm_{part}": torch.sqrt(sum(weights[n].pow(2).flatten(1).sum(1) for n in names))
            for part, names in norm_groups(self.model_config).items()
        }

    # ------------------------------------------------------------ state of one member

    def member_state(self, i: int) -> dict:
        """Everything needed to resume member i exactly, on any device, alone or stacked."""
        m = self.members[i]
        return {
            "config": m.config.to_dict(),
            "step": self.step_count,
            "flat": self.flat[i].detach().cpu().clone(),
            "optimizer": {
                k: v.cpu() if isinstance(v, Tensor) else v
                for k, v in self.optimizer.member_state(i).items()
            },
            "batch_generator": m.batch_generator.get_state(),
            **m.noise_state(),
            "permutation": m.permutation,
            "position": m.position,
            "interventions": self.interventions.member_state(i),
            **({} if self.norm_target is None else {"norm_target": float(self.norm_target[i])}),
        }

    def load_member_state(self, i: int, state: dict) -> None:
        m = self.members[i]
        self.flat[i] = state["flat"].to(self.device)
        self.optimizer.load_member_state(
            i,
            {
                k: v.to(self.device) if isinstance(v, Tensor) else v
                for k, v in state["optimizer"].items()
            },
        )
        m.batch_generator.set_state(state["batch_generator"])
        m.load_noise_state(state)
        m.set_permutation(state["permutation"], state["position"])
        self.interventions.load_member_state(i, state.get("interventions", []))
        if self.norm_target is not None:
            self.norm_target[i] = state["norm_target"]

    @classmethod
    def from_member_states(
        cls,
        states: list[dict],
        configs: list[RunConfig] | None = None,
        device: str = "cpu",
        backend: Backend | None = None,
    ) -> "Population":
        """Stack saved members again (configs may override budgets and stop rules)."""
        configs = configs or [RunConfig.from_dict(s["config"]) for s in states]
        pop = cls(configs, device, backend)
        for i, s in enumerate(states):
            pop.load_member_state(i, s)
        return pop

    def keep(self, indices: list[int]) -> None:
        """Drop every member not in ``indices`` (finished runs stop costing compute)."""
        idx = torch.tensor(indices, device=self.device)
        self.members = [self.members[i] for i in indices]
        self.configs = [self.configs[i] for i in indices]
        self.flat = self.flat[idx].contiguous()
        self.train_equations, self.train_labels = self.train_equations[idx], self.train_labels[idx]
        self.eval_targets, self.train_mask = self.eval_targets[idx], self.train_mask[idx]
        self.optimizer.keep(idx)
        self.interventions.keep(idx)
        if self.norm_target is not None:
            self.norm_target = self.norm_target[idx]
        self._refresh_hyperparameters()
