"""The ``grokkit`` command: data | train | show | bench | sweep | reproduce.

Bad input never shows a traceback: every check runs before any work starts and ends in a
one-line message on stderr and exit code 2, with nothing written or overwritten.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grokkit import __version__

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """Bad input from the command line; its message is shown as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise UsageError(message)


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but PyTorch sees no CUDA device")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("--device mps asked for, but PyTorch sees no MPS device")
    return name


def _batch_size(text: str) -> int:
    if text == "full":
        return 0
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch size must be an integer or 'full', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"batch size must be >= 1 or 'full', got {value}")
    return value


# ---------------------------------------------------------------- grokkit data


def cmd_data(args: argparse.Namespace) -> int:
    from grokkit.data import make_table

    make_table(args.op, args.modulus).to_csv(sys.stdout)
    return 0


# ---------------------------------------------------------------- grokkit train

# Flags that change a run's definition; all default to None so that --resume can refuse them.
_RUN_FLAGS = {
    "op": "operation", "modulus": "modulus", "train_fraction": "train_fraction", "seed": "seed",
    "split_seed": "split_seed", "outliers": "outliers", "outlier_seed": "outlier_seed",
    "eval_every": "eval_every", "checkpoint_every": "checkpoint_every",
    "stop_after_val_99": "stop_after_val_99", "layers": "n_layers", "d_model": "d_model",
    "heads": "n_heads", "d_mlp": "d_mlp", "norm": "norm", "activation": "activation",
    "lr": "lr", "weight_decay": "weight_decay", "decay_target": "decay_target", "beta1": "beta1",
    "beta2": "beta2", "warmup_steps": "warmup_steps", "batch_size": "batch_size",
    "update_noise": "update_noise", "weight_noise": "weight_noise", "dropout": "dropout",
}  # fmt: skip


SCHEDULE_FLAGS = ("eval_every", "checkpoint_every", "stop_after_val_99")


def add_run_flags(p: argparse.ArgumentParser, grid: bool = False) -> None:
    """The flags that define a run. With ``grid`` (grokkit sweep) every flag except the schedule's
    takes one or more values."""
    from grokkit.optim import PRESETS

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
    add("--stop-after-val-99", type=int, metavar="N",
        help="stop once validation accuracy has stayed >= 99%% for N steps (default: never)")
    add = group("model")
    add("--layers", type=int, help="transformer layers (default 2)")
    add("--d-model", type=int, help="width (default 128)")
    add("--heads", type=int, help="attention heads (default 4)")
    add("--d-mlp", type=int, help="MLP hidden width (default 512)")
    add("--norm", choices=["pre", "post"], help="LayerNorm placement (default pre)")
    add("--activation", choices=["relu", "gelu"], help="MLP activation (default relu)")
    add = group("optimisation (individual knobs override the preset)")
    add("--optimizer", choices=list(PRESETS), metavar="PRESET",
        help=f"preset of Figure 2 left: {', '.join(PRESETS)} (default adamw)")
    add("--lr", type=float, help="learning rate (default 1e-3)")
    add("--weight-decay", type=float, help="decoupled weight decay (default 1)")
    add("--decay-target", choices=["origin", "init"], help="decay towards (default origin)")
    add("--beta1", type=float, help="Adam beta1 (default 0.9)")
    add("--beta2", type=float, help="Adam beta2 (default 0.98)")
    add("--warmup-steps", type=int, help="linear warm-up updates (default 10)")
    add("--batch-size", type=_batch_size, help="minibatch size or 'full' (default min(512, ceil(N_train/2)))")
    add("--update-noise", type=float, help="std of Gaussian noise on the Adam update")
    add("--weight-noise", type=float, help="std of Gaussian weight noise in the forward pass")
    add("--dropout", type=float, help="residual dropout rate")


def config_from_args(args: argparse.Namespace, base=None):
    """A RunConfig from the preset, then each flag that was given."""
    from grokkit.config import RunConfig
    from grokkit.optim import DEFAULT_PRESET, preset

    base = base or RunConfig()
    name = getattr(args, "optimizer", None) or DEFAULT_PRESET
    changes = {"optimizer": preset(name), "preset": name}
    if getattr(args, "steps", None) is not None:
        changes["steps"] = args.steps
    cfg = base.with_changes(**changes)
    flags = {field: getattr(args, flag) for flag, field in _RUN_FLAGS.items()
             if getattr(args, flag, None) is not None}  # fmt: skip
    return cfg.with_changes(**flags) if flags else cfg


def validate_run(cfg) -> None:
    """Everything that can be checked before training starts (raises ValueError subclasses)."""
    from grokkit.data import DataError, make_table, split_indices

    table = make_table(cfg.operation, cfg.modulus)
    train_idx, _ = split_indices(table.n_equations, cfg.train_fraction, 0)
    n_train = len(train_idx)
    if n_train < 2:
        raise DataError(f"a training set of {n_train} equation cannot be split into batches; raise --train-fraction")
    if 2 * cfg.outliers > n_train:
        raise DataError(f"{cfg.outliers} outliers need {2 * cfg.outliers} training equations; the training set has {n_train}")
    bs = cfg.optimizer.batch_size
    if bs and bs > n_train:
        raise DataError(f"batch size {bs} exceeds the training set ({n_train} equations)")
    cfg.model_config(table.n_elements)


def cmd_train(args: argparse.Namespace) -> int:
    from grokkit import runs
    from grokkit.config import RunConfig
    from grokkit.train import train_runs

    if args.steps is not None and args.steps < 0:
        raise UsageError(f"--steps must be >= 0, got {args.steps}")
    device = resolve_device(args.device)
    if args.resume:
        given = [f"--{f.replace('_', '-')}" for f in (*_RUN_FLAGS, "optimizer", "out")
                 if getattr(args, f, None) is not None]  # fmt: skip
        if given:
            raise UsageError(f"--resume continues a run as it was configured; drop {', '.join(given)}")
        run_dir = runs.require_resumable(Path(args.resume))
        state = runs.load_checkpoint(run_dir)
        cfg = RunConfig.from_dict(runs.read_json(run_dir / "config.json"))
        if args.steps is not None:
            if args.steps < state["step"]:
                raise UsageError(f"--steps {args.steps} is before the checkpoint (step {state['step']})")
            cfg = cfg.with_changes(steps=args.steps)
        summary = train_runs([cfg], [run_dir], states=[state], device=device,
                             progress=not args.quiet, description=str(run_dir))[0]  # fmt: skip
    else:
        if not args.out:
            raise UsageError("train needs --out DIR (or --resume DIR)")
        cfg = config_from_args(args)
        validate_run(cfg)
        run_dir = runs.prepare_new_run_dir(Path(args.out))
        summary = train_runs([cfg], [run_dir], device=device, progress=not args.quiet,
                             description=str(run_dir))[0]  # fmt: skip
    if not args.no_plot:
        _plot_curves(run_dir, summary)
    print(_summary_line(summary, run_dir))
    if summary["status"] == "diverged":
        print(f"grokkit: error: {summary['message']}", file=sys.stderr)
        return 1
    return 0


def _title(summary: dict) -> str:
    mod = f" mod {summary['modulus']}" if summary.get("modulus") else ""
    return (f"{summary['operation']}{mod}, {100 * summary['train_fraction']:.0f}% data, "
            f"{summary.get('preset') or 'custom'}, seed {summary['seed']}")  # fmt: skip


def _fmt_steps(v) -> str:
    return "never" if v is None else str(v)


def _summary_line(s: dict, run_dir: Path) -> str:
    return (
        f"{run_dir}: {s['status']} at step {s['steps_done']}: train {100 * s['train_accuracy']:.1f}% "
        f"val {100 * s['val_accuracy']:.1f}% (best {100 * s['best_val_accuracy']:.1f}%); "
        f"99% train at step {_fmt_steps(s['steps_to_train_99'])}, 99% val at step "
        f"{_fmt_steps(s['steps_to_val_99'])}; {s['wall_seconds']:.1f} s"
    )


# ---------------------------------------------------------------- grokkit show


def cmd_show(args: argparse.Namespace) -> int:
    from grokkit import runs

    run_dir = Path(args.run)
    if not (run_dir / "summary.json").is_file():
        raise UsageError(f"{run_dir} is not a grokkit run folder with a summary.json")
    summary = runs.read_json(run_dir / "summary.json")
    width = max(len(k) for k in summary)
    for k, v in summary.items():
        print(f"{k:<{width}}  {v}")
    _plot_curves(run_dir, summary)
    return 0


def _plot_curves(run_dir: Path, summary: dict) -> None:
    from grokkit.plots import plot_run_curves

    if not summary.get("steps_done"):
        print("curves: skipped (the run has no steps yet)")
        return
    png = plot_run_curves(run_dir / "metrics.csv", run_dir / "curves.png", title=_title(summary))
    print(f"curves: {png}")


# ---------------------------------------------------------------- grokkit bench


def cmd_bench(args: argparse.Namespace) -> int:
    from grokkit.bench import benchmark

    for flag, value, least in (("--population", args.population, 1), ("--steps", args.steps, 1),
                               ("--warmup", args.warmup, 0)):  # fmt: skip
        if value < least:
            raise UsageError(f"{flag} must be >= {least}, got {value}")
    result = benchmark(device=resolve_device(args.device), population=args.population,
                       steps=args.steps, warmup=args.warmup)  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


# ---------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="grokkit", description="Grokking (Power et al., 2022), reproduced.")
    p.add_argument("--version", action="version", version=f"grokkit {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("data", help="print an operation's whole table as CSV (x,y,result)")
    d.add_argument("--op", required=True, help="operation name, e.g. x/y or s5_xy")
    d.add_argument("--modulus", type=int, default=97)
    d.set_defaults(func=cmd_data)

    t = sub.add_parser("train", help="train one run into a run folder, or resume one")
    t.add_argument("--out", help="new run folder")
    t.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its checkpoint")
    t.add_argument("--steps", type=int, help="budget of updates (default 100000)")
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--no-plot", action="store_true", help="do not write curves.png")
    add_run_flags(t)
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("show", help="print a run's summary and write its curves as PNG")
    s.add_argument("run", help="run folder")
    s.set_defaults(func=cmd_show)

    b = sub.add_parser("bench", help="time a training step of the paper's configuration")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    b.add_argument("--population", type=int, default=1, help="members trained together (E)")
    b.add_argument("--steps", type=int, default=30, help="timed steps")
    b.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    b.set_defaults(func=cmd_bench)

    # Sub-commands that live with their own modules register themselves here.
    from grokkit.sweep import add_sweep_command

    add_sweep_command(sub)
    from grokkit.experiments.reproduce import add_reproduce_command

    add_reproduce_command(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from grokkit.errors import InputError

    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (UsageError, InputError) as e:
        print(f"grokkit: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("grokkit: interrupted; the last checkpoint is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
