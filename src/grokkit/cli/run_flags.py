"""The flags that define a run, shared by ``train`` (one value each) and ``sweep`` (grids)."""

from __future__ import annotations

import argparse

from grokkit.config import RunConfig
from grokkit.errors import InputError
from grokkit.interventions import DEFAULT_ALPHA, DEFAULT_LAMBDA, DEFAULT_WINDOW, GRAD_FILTERS
from grokkit.losses import LOSSES
from grokkit.model import ACTIVATIONS, ARCHS, INIT_SCHEMES, NORMS
from grokkit.optim import DEFAULT_PRESET, PRESETS, preset

# Flag dest -> RunConfig (or OptimizerConfig) field. All default to None so that --resume can
# refuse them and a sweep can tell a grid axis from an unset flag.
RUN_FLAGS = {
    "op": "operation", "modulus": "modulus", "train_fraction": "train_fraction", "seed": "seed",
    "split_seed": "split_seed", "outliers": "outliers", "outlier_seed": "outlier_seed",
    "eval_every": "eval_every", "checkpoint_every": "checkpoint_every",
    "snapshot_every": "snapshot_every",
    "stop_after_val_99": "stop_after_val_99", "layers": "n_layers", "d_model": "d_model",
    "heads": "n_heads", "d_mlp": "d_mlp", "norm": "norm", "activation": "activation",
    "lr": "lr", "weight_decay": "weight_decay", "l2": "l2", "decay_target": "decay_target", "beta1": "beta1",
    "beta2": "beta2", "warmup_steps": "warmup_steps", "batch_size": "batch_size",
    "update_noise": "update_noise", "weight_noise": "weight_noise", "dropout": "dropout",
    "init": "init", "init_scale": "init_scale", "grad_filter": "grad_filter", "grad_filter_alpha": "grad_filter_alpha",
    "grad_filter_lambda": "grad_filter_lambda", "grad_filter_window": "grad_filter_window",
    "loss": "loss", "orthogonal_grad": "orthogonal_grad", "tf32": "tf32", "arch": "arch",
}  # fmt: skip
# One value per sweep: the evaluation schedule must be shared by a population's members.
SCHEDULE_FLAGS = ("eval_every", "checkpoint_every", "snapshot_every", "stop_after_val_99")
# A sweep's grid axes (flag dest -> field; --optimizer names a whole preset) and its single values.
GRID_FLAGS = {"optimizer": "preset", **{a: f for a, f in RUN_FLAGS.items() if a not in SCHEDULE_FLAGS}}
SINGLE_FLAGS = {"steps": "steps", **{a: RUN_FLAGS[a] for a in SCHEDULE_FLAGS}}


def batch_size(text: str) -> int:
    """``full`` (0: the whole training set) or a positive integer."""
    if text == "full":
        return 0
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch size must be an integer or 'full', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"batch size must be >= 1 or 'full', got {value}")
    return value


def on_off(text: str) -> bool:
    """``on`` or ``off`` (a sweep axis of a switch)."""
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return text == "on"


def add_run_flags(p: argparse.ArgumentParser, grid: bool = False) -> None:
    """The flags that define a run. With ``grid`` (grokkit sweep) every flag except the schedule's
    takes one or more values."""

    def group(title: str, gridded: bool = True):
        g = p.add_argument_group(title + (" [grid]" if grid and gridded else ""))

        def add(*names, **kw):
            if grid and gridded:
                kw["nargs"] = "+"
                kw.setdefault("metavar", None if "choices" in kw else "V")
            g.add_argument(*names, **kw)

        return add

    add = group("task")
    add("--op", help="operation, e.g. x/y, x+y, s5_xy (default x/y)")
    add("--modulus", type=int, help="modulus p for the modular operations (default 97)")
    add("--train-fraction", type=float, help="fraction of equations used for training (default 0.5)")
    add("--seed", type=int, help="seed of initialisation, batch order and noise (default 0)")
    add("--split-seed", type=int, help="seed of the train/validation split (default: --seed)")
    add("--outliers", type=int, help="k training answers replaced by other answers (A.4)")
    add("--outlier-seed", type=int, help="seed for choosing outliers (default: the split seed)")
    add = group("schedule", gridded=False)
    add("--eval-every", type=int, help="evaluate every N steps, log-spaced before (default 50)")
    add("--checkpoint-every", type=int, help="checkpoint every N steps (default 1000)")
    add("--snapshot-every", type=int, metavar="N",
        help="also keep the weights every N steps, for analyses over training (default: none)")
    add("--stop-after-val-99", type=int, metavar="N",
        help="stop once validation accuracy has stayed >= 99%% for N steps (default: never)")
    add = group("model")
    add("--arch", choices=list(ARCHS),
        help="grokkit (the paper's text as grokkit reads it) or openai-grok (the authors' released "
             "code: post-LN without biases, sinusoidal positions, their tokens, S5 convention and "
             "split; see the README). Default grokkit")
    add("--layers", type=int, help="transformer layers (default 2)")
    add("--d-model", type=int, help="width (default 128)")
    add("--heads", type=int, help="attention heads (default 4)")
    add("--d-mlp", type=int, help="MLP hidden width (default 512)")
    add("--norm", choices=list(NORMS), help="LayerNorm placement: pre, post or none (default pre)")
    add("--activation", choices=list(ACTIVATIONS), help="MLP activation (default relu)")
    add("--init", choices=list(INIT_SCHEMES),
        help="initialisation: pytorch (PyTorch's module defaults, as Power et al.) or nanda "
             "(Nanda et al. 2023: Gaussian, std 1/sqrt(d_model)); default pytorch")
    add("--init-scale", type=float, metavar="ALPHA",
        help="multiply every initial weight by ALPHA (Omnigrok, Liu et al. 2022; default 1)")
    add = group("optimisation (individual knobs override the preset)")
    add("--optimizer", choices=list(PRESETS), metavar="PRESET",
        help=f"preset of Figure 2 left: {', '.join(PRESETS)} (default adamw)")
    add("--lr", type=float, help="learning rate (default 1e-3)")
    add("--weight-decay", type=float, help="decoupled weight decay (default 1)")
    add("--decay-target", choices=["origin", "init"], help="decay towards (default origin)")
    add("--l2", type=float, help="coupled L2 penalty added to the gradient, as torch.optim.Adam's "
                                 "weight_decay (Grokfast's recipe; default 0)")
    add("--beta1", type=float, help="Adam beta1 (default 0.9)")
    add("--beta2", type=float, help="Adam beta2 (default 0.98)")
    add("--warmup-steps", type=int, help="linear warm-up updates (default 10)")
    add("--batch-size", type=batch_size, help="minibatch size or 'full' (default min(512, ceil(N_train/2)))")
    add("--update-noise", type=float, help="std of Gaussian noise on the Adam update")
    add("--weight-noise", type=float, help="std of Gaussian weight noise in the forward pass")
    add("--dropout", type=float, help="residual dropout rate")
    add = group("methods that followed the paper")
    add("--grad-filter", choices=list(GRAD_FILTERS),
        help="Grokfast (Lee et al. 2024) gradient filter: ema or ma (default none)")
    add("--grad-filter-alpha", type=float, help=f"EMA momentum (default {DEFAULT_ALPHA})")
    add("--grad-filter-lambda", type=float,
        help=f"filter amplification (default: EMA {DEFAULT_LAMBDA['ema']:g}, MA {DEFAULT_LAMBDA['ma']:g})")
    add("--grad-filter-window", type=int, help=f"MA window (default {DEFAULT_WINDOW})")
    add("--loss", choices=list(LOSSES),
        help="softmax cross-entropy (default) or stablemax (Prieto et al. 2025)")

    def switch(add, flag: str, what: str, details: str) -> None:
        """A flag that turns something on: ``--flag`` for one run, ``--flag on off`` in a grid."""
        if grid:
            add(flag, type=on_off, choices=[True, False], metavar="on|off", help=f"{what}: on and/or off")
        else:
            add(flag, action="store_const", const=True, help=f"{what}: {details}")

    switch(add, "--orthogonal-grad", "⊥Grad (Prieto et al. 2025)",
           "remove from each weight tensor's gradient its component along the tensor, keeping the "
           "gradient's norm")
    switch(group("execution"), "--tf32", "TF32 float32 matmuls on a CUDA GPU",
           "faster on Ampere or newer, ~1e-3 relative error per product; no effect on the CPU. Default off")


# A filter setting and the filters it belongs to: given without any of them it would do nothing.
_FILTER_SETTINGS = {"grad_filter_alpha": ("ema",), "grad_filter_window": ("ma",),
                    "grad_filter_lambda": ("ema", "ma")}  # fmt: skip


def check_method_flags(args: argparse.Namespace) -> None:
    """Refuse a Grokfast setting given without a filter it applies to (silently ignored, it
    would leave the user believing the run was filtered)."""
    chosen = getattr(args, "grad_filter", None) or ()
    chosen = {chosen} if isinstance(chosen, str) else set(chosen)
    for setting, filters in _FILTER_SETTINGS.items():
        if getattr(args, setting, None) is not None and not chosen & set(filters):
            flag = "--" + setting.replace("_", "-")
            raise InputError(f"{flag} applies to --grad-filter {' or '.join(filters)}; give that too")


def given_run_flags(args: argparse.Namespace) -> list[str]:
    """The run-defining flags given on the command line, as typed (``--train-fraction``)."""
    return [f"--{f.replace('_', '-')}" for f in (*RUN_FLAGS, "optimizer")
            if getattr(args, f, None) is not None]  # fmt: skip


def config_from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """A RunConfig from the preset, then each flag that was given."""
    check_method_flags(args)
    base = base or RunConfig()
    name = getattr(args, "optimizer", None) or DEFAULT_PRESET
    changes = {"optimizer": preset(name), "preset": name}
    if getattr(args, "steps", None) is not None:
        changes["steps"] = args.steps
    cfg = base.with_changes(**changes)
    flags = {field: getattr(args, flag) for flag, field in RUN_FLAGS.items()
             if getattr(args, flag, None) is not None}  # fmt: skip
    return cfg.with_changes(**flags) if flags else cfg
