"""Every field of a training checkpoint, checked against the run's configuration before use.

``grokkit.runs`` loads a checkpoint without running code and checks its top-level keys and its
weights; ``check_training_state`` then checks everything else a resume reads (what
``Population.member_state`` and ``train.Tracker`` write): the batch order and its position, both
generator states, the optimizer's moments and update count, the gradient interventions' state
and the tracker's record, each for its type, shape, range and finiteness. A problem raises
``CheckpointProblem`` with one line saying what is wrong; ``grokkit.runs`` names the file, so a
damaged latest.pt falls back to previous.pt instead of failing in the middle of a resume (a
KeyError, a RuntimeError from a generator) or training on NaN moments into a false "diverged".

Nothing here imports ``grokkit.runs`` or ``grokkit.train`` (both import this module's caller);
the tests check that the field lists below match what those modules write.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from grokkit.config import BUDGET_FIELDS, RunConfig
from grokkit.ops import get_operation
from grokkit.optim import optimizer_class

# Top-level keys of a checkpoint: always written, and written only by some versions or settings.
# ``noise_device`` and ``interventions`` came later; a checkpoint without them resumes as before.
# ``norm_target``: only --fixed-norm runs write it.
REQUIRED_KEYS = (
    "config",
    "step",
    "flat",
    "optimizer",
    "batch_generator",
    "noise_generator",
    "permutation",
    "position",
    "tracker",
)
OPTIONAL_KEYS = ("noise_device", "interventions", "norm_target")

# train.Tracker's fields: the exact set a checkpoint's tracker holds.
TRACKER_FIELDS = (
    "rows",
    "steps_to_train_99",
    "steps_to_val_99",
    "best_val_accuracy",
    "val_99_since",
    "wall_before",
    "last_checkpoint_step",
)
# What every metrics row holds (runs.METRIC_COLUMNS less the later, optional ones); rows may hold
# more (per-part weight norms, softmax_collapse), all numbers.
ROW_KEYS = (
    "step",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "weight_norm",
    "lr",
    "wall_seconds",
)
FRACTIONS = ("train_accuracy", "val_accuracy", "softmax_collapse")  # in [0, 1]

NOISE_DEVICES = ("cpu", "cuda", "mps")
# A CUDA (and MPS) generator's state: a 64-bit seed and a 64-bit Philox offset, which CUDA requires
# to be a multiple of 4 (PyTorch's CUDAGeneratorImpl::set_state); a CPU one is as long as this
# PyTorch's own (torch.Generator().get_state()).
PHILOX_STATE_BYTES = 16


# The dtype of the weights and of everything laid out like them (moments, filters): a resume in
# another dtype would round differently, so it could never equal an uninterrupted run.
WEIGHT_DTYPE = torch.float32


class CheckpointProblem(ValueError):
    """One line saying what is wrong with a checkpoint's content (the caller names the file)."""


def check_training_state(state: dict, config: RunConfig) -> None:
    """Raise CheckpointProblem unless every field of ``state`` is what a run with ``config`` (the
    checkpoint's own, validated) writes. ``state`` has passed ``runs._read_checkpoint``'s checks:
    its top-level keys' types, a non-negative step and finite weights of the model's size."""
    _check_keys(state, REQUIRED_KEYS, OPTIONAL_KEYS, "")
    step = state["step"]
    if step > config.steps:
        raise CheckpointProblem(
            f"'step' is {step}, beyond the run's budget of {config.steps} steps"
        )
    flat = state["flat"]
    _check_optimizer(state["optimizer"], config, flat, step)
    _check_generator("batch_generator", state["batch_generator"], "cpu")
    noise_device = state.get("noise_device", "cpu")
    if not isinstance(noise_device, str) or noise_device not in NOISE_DEVICES:
        raise CheckpointProblem(
            f"'noise_device' is {noise_device!r}, not one of {', '.join(NOISE_DEVICES)}"
        )
    _check_generator("noise_generator", state["noise_generator"], noise_device)
    _check_batch_order(state["permutation"], state["position"], config, step)
    _check_interventions(state.get("interventions"), config, flat, step)
    _check_norm_target(state.get("norm_target"), config, flat)
    _check_tracker(state["tracker"], step)


# ---------------------------------------------------------------- pieces


def _check_keys(d: dict, required, optional, where: str) -> None:
    missing = [k for k in required if k not in d]
    if missing:
        raise CheckpointProblem(
            f"{where}{_names(missing)} {'is' if len(missing) == 1 else 'are'} missing"
        )
    unknown = [k for k in d if k not in required and k not in optional]
    if unknown:
        raise CheckpointProblem(
            f"{where}unknown {'key' if len(unknown) == 1 else 'keys'} {_names(unknown)}"
        )


def _names(keys) -> str:
    shown = ", ".join(repr(k)[:40] for k in list(keys)[:5])
    return shown + (", ..." if len(keys) > 5 else "")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shape(value) -> str:
    return (
        f"a {value.dtype} tensor of shape {tuple(value.shape)}"
        if isinstance(value, Tensor)
        else type(value).__name__
    )


def _check_vector(name: str, value, shape: tuple[int, ...]) -> Tensor:
    """A finite tensor of ``shape`` in the weights' dtype (moments, filters: what the weights
    are)."""
    if not isinstance(value, Tensor) or value.dtype != WEIGHT_DTYPE or tuple(value.shape) != shape:
        raise CheckpointProblem(
            f"{name} should be a {WEIGHT_DTYPE} tensor of shape {shape}, found {_shape(value)}"
        )
    if not bool(torch.isfinite(value).all()):
        raise CheckpointProblem(f"{name} holds non-finite values")
    return value


def _check_optimizer(opt: dict, config: RunConfig, flat: Tensor, step: int) -> None:
    # "initial" (the weights decay pulls towards) is written for every member of a population in
    # which any member decays towards its initial weights, so it is required only for those.
    # The optimizer's vectors (moments, momenta) are laid out as the weights; which it writes is
    # its own declaration (STATE_VECTORS).
    to_init = config.optimizer.decay_target == "init"
    vectors = optimizer_class(config.optimizer).STATE_VECTORS
    required = (*vectors, "step_count", *(("initial",) if to_init else ()))
    _check_keys(opt, required, ("initial",), "the optimizer's ")
    for key in (*vectors, "initial"):
        if key in opt:
            _check_vector(f"the optimizer's {key!r}", opt[key], tuple(flat.shape))
    if "exp_avg_sq" in vectors and bool((opt["exp_avg_sq"] < 0).any()):
        raise CheckpointProblem("the optimizer's 'exp_avg_sq' holds negative values")
    count = opt["step_count"]
    if not _is_int(count) or count != step:
        raise CheckpointProblem(
            f"the optimizer's 'step_count' is {count!r}, the checkpoint is at step {step}"
        )


@functools.cache
def _cpu_generator_state_bytes() -> int:
    return torch.Generator().get_state().numel()


def _check_generator(name: str, value, device: str) -> None:
    """A generator state as ``torch.Generator.get_state`` returns it for ``device``: a CPU one is
    also loaded into a scratch generator, which refuses a state of the right size but invalid
    content (PyTorch: "Invalid mt19937 state"); a CUDA one's offset must be a multiple of 4."""
    size = _cpu_generator_state_bytes() if device == "cpu" else PHILOX_STATE_BYTES
    if not isinstance(value, Tensor) or value.dtype != torch.uint8 or tuple(value.shape) != (size,):
        raise CheckpointProblem(
            f"{name!r} should be a {device} generator state of {size} bytes (uint8), "
            f"found {_shape(value)}"
        )
    if device == "cuda" and int(value[8]) % 4:  # the offset's low byte (little-endian, as written)
        raise CheckpointProblem(
            f"{name!r} is not a valid CUDA generator state (its offset is not a multiple of 4)"
        )
    if device == "cpu":
        try:
            torch.Generator().set_state(value)
        except RuntimeError as e:
            raise CheckpointProblem(
                f"{name!r} is not a valid generator state ({str(e).splitlines()[0][:80]})"
            ) from None


def _n_train(config: RunConfig) -> int:
    """The training set's size, as ``split_indices`` (both architectures) draws it."""
    n_equations = get_operation(config.operation, config.modulus).n_equations
    return round(float(config.train_fraction) * n_equations)


def _check_batch_order(permutation, position, config: RunConfig, step: int) -> None:
    n_train = _n_train(config)
    if not _is_int(position) or not 0 <= position <= n_train:
        raise CheckpointProblem(
            f"'position' is {position!r}, outside 0..{n_train} (the training set's size)"
        )
    if permutation is None:
        if step > 0:
            raise CheckpointProblem(
                f"'permutation' is empty at step {step} (every step draws from it)"
            )
        if position != 0:
            raise CheckpointProblem(f"'position' is {position} without a 'permutation'")
        return
    if (
        not isinstance(permutation, Tensor)
        or permutation.dtype != torch.int64
        or tuple(permutation.shape) != (n_train,)
    ):
        raise CheckpointProblem(
            f"'permutation' should be an int64 tensor of shape ({n_train},), "
            f"found {_shape(permutation)}"
        )
    if not torch.equal(torch.sort(permutation).values, torch.arange(n_train)):
        raise CheckpointProblem(
            f"'permutation' is not an ordering of the {n_train} training equations"
        )


def _intervention_kinds(config: RunConfig) -> list[str]:
    """The run's interventions in the order population._interventions applies them."""
    kinds = [config.grad_filter] if config.grad_filter != "none" else []
    return kinds + (["orthogonal_grad"] if config.orthogonal_grad else [])


def _check_interventions(states, config: RunConfig, flat: Tensor, step: int) -> None:
    kinds = _intervention_kinds(config)
    if states is None:
        if kinds:
            raise CheckpointProblem(f"'interventions' is missing (the run uses {', '.join(kinds)})")
        return  # a checkpoint from before interventions existed: the run has none
    if not isinstance(states, list) or not all(isinstance(s, dict) for s in states):
        raise CheckpointProblem(
            f"'interventions' should be a list of dictionaries, found {type(states).__name__}"
        )
    if len(states) != len(kinds):
        raise CheckpointProblem(
            f"'interventions' holds {len(states)} states, the run has {len(kinds)} "
            f"({', '.join(kinds) or 'none'})"
        )
    P = flat.numel()
    for kind, s in zip(kinds, states):
        where = f"the {kind} intervention's "
        if kind == "ema":  # its average exists from the first step on
            _check_keys(s, ("mu",) if step else (), ("mu",), where)
            if "mu" in s:
                _check_vector(f"{where}'mu'", s["mu"], (P,))
        elif kind == "ma":  # a ring of the last min(count, window) gradients and their sum
            count = s.get("count")
            if not _is_int(count) or count != step:
                raise CheckpointProblem(
                    f"{where}'count' is {count!r}, the checkpoint is at step {step}"
                )
            _check_keys(s, ("count", "gradients", "total") if count else ("count",), (), where)
            if count:
                _check_vector(
                    f"{where}'gradients'",
                    s["gradients"],
                    (min(count, config.grad_filter_window), P),
                )
                _check_vector(f"{where}'total'", s["total"], (P,))
        else:  # orthogonal_grad: stateless
            _check_keys(s, (), (), where)


def _check_norm_target(target, config: RunConfig, flat: Tensor) -> None:
    """A --fixed-norm run's initial weight norm: a positive number, which the weights keep."""
    if target is None:
        if config.fixed_norm:
            raise CheckpointProblem(
                "'norm_target' is missing (the run keeps its weight norm fixed)"
            )
        return
    if not config.fixed_norm:
        raise CheckpointProblem("'norm_target' is set in a run without --fixed-norm")
    if not _is_number(target) or not math.isfinite(target) or target <= 0:
        raise CheckpointProblem(f"'norm_target' is {target!r}, not a positive finite number")
    norm = float(flat.double().norm())
    # Rescaled after every update, the weights hold the target up to float32 rounding.
    if abs(norm - target) > 1e-4 * target:
        raise CheckpointProblem(
            f"'norm_target' is {target:g}, the weights' norm {norm:g} (the run keeps them equal)"
        )


def _check_step(name: str, value, step: int, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not _is_int(value) or not 0 <= value <= step:
        raise CheckpointProblem(f"{name} is {value!r}, outside 0..{step} (the checkpoint's step)")


def _check_tracker(tracker: dict, step: int) -> None:
    _check_keys(tracker, TRACKER_FIELDS, (), "the tracker's ")
    for name in ("steps_to_train_99", "steps_to_val_99", "val_99_since", "last_checkpoint_step"):
        _check_step(f"the tracker's {name!r}", tracker[name], step)
    best = tracker["best_val_accuracy"]
    if not _is_number(best) or not 0 <= best <= 1:
        raise CheckpointProblem(f"the tracker's 'best_val_accuracy' is {best!r}, outside 0..1")
    wall = tracker["wall_before"]
    if not _is_number(wall) or not math.isfinite(wall) or wall < 0:
        raise CheckpointProblem(
            f"the tracker's 'wall_before' is {wall!r}, not a duration in seconds"
        )
    _check_rows(tracker["rows"], step)


def _check_rows(rows, step: int) -> None:
    """The metric rows (what metrics.csv is rewritten from): from step 0, steps increasing up to
    the checkpoint's, every value a finite number (a diverged row is never checkpointed)."""
    if not isinstance(rows, list) or not rows:
        raise CheckpointProblem("the tracker's metric rows are missing")
    last = -1
    for n, row in enumerate(rows):
        where = f"the tracker's metric row {n}"
        if not isinstance(row, dict):
            raise CheckpointProblem(f"{where} should be a dictionary, found {type(row).__name__}")
        missing = [k for k in ROW_KEYS if k not in row]
        if missing:
            raise CheckpointProblem(f"{where} lacks {_names(missing)}")
        row_step = row["step"]
        if not _is_int(row_step) or not last < row_step <= step or (n == 0 and row_step != 0):
            raise CheckpointProblem(
                f"{where} has step {row_step!r} (steps go from 0 up to {step}, increasing)"
            )
        last = row_step
        for key, value in row.items():
            if key == "step":
                continue
            if not isinstance(key, str) or not _is_number(value) or not math.isfinite(value):
                raise CheckpointProblem(
                    f"{where}: {repr(key)[:40]} is {repr(value)[:40]}, not a finite number"
                )
            if key in FRACTIONS and not 0 <= value <= 1:
                raise CheckpointProblem(f"{where}: {key!r} is {value!r}, outside 0..1")


def config_differences(config: RunConfig, stored: RunConfig) -> list[str]:
    """The settings in which ``config`` (a run folder's config.json) differs from ``stored`` (its
    checkpoint's), as "d_model 64 in config.json, 32 in the checkpoint"; the budget and the stop
    rule aside (a resume may change them). Non-empty: config.json no longer describes the weights
    (a hand-edited model shape would unflatten them wrongly, or not at all)."""
    ours, theirs = config.flat_dict(), stored.flat_dict()
    return [
        f"{key} {ours.get(key)!r} in config.json, {theirs.get(key)!r} in the checkpoint"
        for key in ours
        if key not in BUDGET_FIELDS and ours.get(key) != theirs.get(key)
    ]
