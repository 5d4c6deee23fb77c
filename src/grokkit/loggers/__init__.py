"""Loggers: viewers fed from the same metrics rows the run folder records.

The run folder (metrics.csv, summary.json) stays the single source of truth; a logger is a copy
for a viewer. ``train_runs(..., loggers=[factory, ...])`` calls ``factory(run_dir, config)`` once
per run as it starts (or resumes), ``log_row`` with every row written to metrics.csv, and
``close`` with the summary once the run has finished.

``logger_factory(name)`` turns a name from ``LOGGER_NAMES`` into a factory:
``"tensorboard"`` (grokkit.loggers.tensorboard) or ``"wandb"`` (grokkit.loggers.wandb).
Both viewers name the metric columns the same way (``METRIC_TAGS``) and record the same
flattened settings (``RunConfig.flat_dict``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from grokkit.config import RunConfig
from grokkit.errors import InputError


class RunLogger(Protocol):
    def log_row(self, row: dict) -> None:
        """One metrics row: step, losses, accuracies, weight norm, lr, wall seconds."""

    def close(self, summary: dict) -> None:
        """The run has finished (summary.json has been written)."""


LoggerFactory = Callable[[Path, RunConfig], RunLogger]

# metrics.csv column -> the name a viewer shows. "loss/..." and "accuracy/..." put train and
# validation side by side in one section of TensorBoard and of W&B.
METRIC_TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "train_accuracy": "accuracy/train",
    "val_accuracy": "accuracy/val",
    "weight_norm": "weight_norm",
    "lr": "lr",
    "wall_seconds": "wall_seconds",
    "softmax_collapse": "softmax_collapse",
}

LOGGER_NAMES = ("tensorboard", "wandb")

# name -> (module, class, the package it needs, how the package is called, the extra to install)
_LOGGERS = {
    "tensorboard": (
        "grokkit.loggers.tensorboard",
        "TensorBoardLogger",
        "tensorboard",
        "TensorBoard",
        "tensorboard",
    ),
    "wandb": ("grokkit.loggers.wandb", "WandbLogger", "wandb", "Weights & Biases", "wandb"),
}


def logger_factory(name: str) -> LoggerFactory:
    """The factory of the logger called ``name`` (one of LOGGER_NAMES).

    The viewer's module is imported only here, when it is asked for: TensorBoard and W&B are
    optional extras, and importing them costs a second or so that a run without them should not
    pay. Raises InputError (one line) for an unknown name or a package that is not installed.
    """
    if name not in _LOGGERS:
        raise InputError(f"unknown logger {name!r}; choose from {', '.join(LOGGER_NAMES)}")
    module_name, class_name, package, title, extra = _LOGGERS[name]
    try:
        # The package first: our own module may already be imported (and cached) even when the
        # package has since become unimportable.
        importlib.import_module(package)
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] != package:
            raise  # something else is missing: a bug or a broken install, keep the traceback
        raise InputError(f"--log {name} needs {title}: pip install 'grokkit[{extra}]'") from None
    except ImportError as e:  # installed but broken (a wrong version of one of its dependencies)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        problem = f"{title} is installed but cannot be imported ({first})"
        raise InputError(f"--log {name}: {problem}") from None
    return getattr(module, class_name)
