"""Notebook entry points: a run folder or a sweep folder as Python objects.

    >>> run = grokkit.load_run("runs/demo")
    >>> run.metrics.plot(x="step", y=["train_accuracy", "val_accuracy"], logx=True)
    >>> model = run.model()                 # the last checkpoint; run.model(step) for a snapshot
    >>> model.accuracy(run.split()[1])      # validation accuracy, recomputed from the weights
    >>> sweep = grokkit.load_sweep("runs/fig2")   # the index, one row per run

Everything is read through ``grokkit.runs``, so a damaged file is one ``InputError`` line naming
it, and checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from grokkit import runs
from grokkit.checkpoint_check import config_differences
from grokkit.config import RunConfig
from grokkit.data import Table, make_table
from grokkit.errors import InputError, unknown
from grokkit.fast_path import forward_fast, forward_openai_fast
from grokkit.model import ModelConfig, unflatten
from grokkit.openai_grok import EOS_TOKEN
from grokkit.runs import RunFolderError

INDEX_FILE = "index.json"


@dataclass(frozen=True)
class TrainedModel:
    """A run's weights at one step, as a model of the whole operation table."""

    config: ModelConfig
    weights: dict[str, Tensor]  # one member's weights by name (W_E, blocks.0.W_Q, ..., W_U)
    step: int
    table: Table

    def __repr__(self) -> str:  # the dataclass's would print every weight tensor and the table
        c, op = self.config, self.table.operation
        mod = f" mod {op.modulus}" if op.modulus else ""
        n_params = sum(w.numel() for w in self.weights.values())
        return (
            f"TrainedModel(step={self.step}, {op.name}{mod}: {self.table.n_equations} equations, "
            f"{c.n_elements} answers; arch {c.arch}, {c.n_layers} layers, d_model {c.d_model}, "
            f"{c.n_heads} heads, d_mlp {c.d_mlp}, norm {c.norm}; {len(self.weights)} weights, "
            f"{n_params:,} parameters, vocabulary {c.vocab_size})"
        )

    @torch.no_grad()
    def logits(self, x: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        """Logits at the answer position ("="), [N, vocab], over the *whole vocabulary*, as the
        model computes them (and as its TransformerLens export does): of the equations ``x op y``
        (element indices), or of the whole table in its order when none are given. Columns
        ``config.element_tokens()`` are the answers (the elements); the others are the operator
        and ``=`` (openai-grok: its whole shared vocabulary). ``answer_logits`` keeps only the
        answers."""
        x = self.table.x if x is None else torch.as_tensor(x)
        y = self.table.y if y is None else torch.as_tensor(y)
        params = {name: w.unsqueeze(0) for name, w in self.weights.items()}  # a population of one
        if self.config.openai:  # the logits at "=" do not depend on the answer token after it
            return forward_openai_fast(
                params, self.config, x.view(1, -1), y.view(1, -1), torch.zeros_like(x).view(1, -1)
            )[0, :, 0]
        return forward_fast(params, self.config, x.view(1, -1), y.view(1, -1))[0]

    def answer_logits(self, x: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        """The logits of the answers only, [N, n_elements]: column j is element j (``logits``'s
        columns ``config.element_tokens()``)."""
        return self.logits(x, y)[:, self.config.element_tokens()]

    def predictions(self) -> Tensor:
        """The predicted answer (element index) of every equation of the table, [N]; -1 where
        the most likely token is not an element (possible in openai-grok's shared vocabulary)."""
        token = self.logits().argmax(dim=-1) - self.config.element_offset
        return torch.where((token >= 0) & (token < self.config.n_elements), token, -1)

    @torch.no_grad()
    def correct(self) -> Tensor:
        """Whether each equation of the table is answered correctly, [N] bool: the answer, and
        for openai-grok also the closing <eos> predicted after the true answer, as training
        scores it."""
        hit = self.predictions() == self.table.result
        if self.config.openai:
            params = {name: w.unsqueeze(0) for name, w in self.weights.items()}
            t = self.table
            after = forward_openai_fast(
                params, self.config, t.x.view(1, -1), t.y.view(1, -1), t.result.view(1, -1)
            )
            hit &= after[0, :, 1].argmax(dim=-1) == EOS_TOKEN
        return hit

    def accuracy(self, indices: Tensor | None = None) -> float:
        """Fraction of the table's equations (or of ``indices`` into it) answered correctly."""
        hit = self.correct().float()
        return float(hit.mean() if indices is None else hit[indices].mean())

    def to_hooked_transformer(self):
        """This model as a TransformerLens ``HookedTransformer`` with equal logits
        (needs ``pip install 'grokkit[transformer-lens]'``; see grokkit.export)."""
        # Imported here: TransformerLens is optional and slow to import.
        from grokkit.export import to_hooked_transformer

        return to_hooked_transformer(self.config, self.weights)


@dataclass(frozen=True)
class Run:
    """One run folder: its configuration, summary, metrics and weights."""

    path: Path
    config: RunConfig
    summary: dict
    metrics: pd.DataFrame  # one row per evaluation: step, losses, accuracies, weight_norm, lr, ...

    def __repr__(self) -> str:  # the dataclass's would print the whole metrics table
        return (
            f"Run({str(self.path)!r}: {self.summary.get('status')} "
            f"at step {self.summary.get('steps_done')}, "
            f"{len(self.metrics)} evaluations)"
        )

    @functools.cached_property
    def table(self) -> Table:
        return make_table(self.config.operation, self.config.modulus, self.config.arch)

    @property
    def model_config(self) -> ModelConfig:
        return self.config.model_config(self.table.n_elements)

    @property
    def snapshot_steps(self) -> list[int]:
        """Steps whose weights were kept (``--snapshot-every``)."""
        return runs.snapshot_steps(self.path)

    def split(self) -> tuple[Tensor, Tensor]:
        """(train, validation) indices into the table, exactly as the run drew them."""
        return self.config.split(self.table.n_equations)

    def model(self, step: int | None = None) -> TrainedModel:
        """The weights of the last checkpoint, or of the snapshot kept at ``step``."""
        if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 0):
            raise InputError(f"step must be a whole number >= 0 (or None), got {step!r}")
        if step is None:
            state = runs.load_checkpoint(self.path)
            flat, step = state["flat"], state["step"]
            differences = config_differences(self.config, RunConfig.from_dict(state["config"]))
            if differences:  # config.json edited by hand: its model would not be these weights'
                raise runs.DamagedFileError(
                    f"{self.path / 'config.json'} is damaged: it does not describe the "
                    f"run's checkpoint ({'; '.join(differences[:3])})"
                )
        else:
            flat = runs.load_snapshot(self.path, step)
        return TrainedModel(self.model_config, unflatten(flat, self.model_config), step, self.table)

    def to_hooked_transformer(self, step: int | None = None):
        """``self.model(step)`` as a TransformerLens HookedTransformer (see grokkit.export)."""
        return self.model(step).to_hooked_transformer()

    def field(self, name: str):
        """A configuration field by name, optimizer fields included (``lr``, ``weight_decay``)."""
        fields = self.config.flat_dict()
        if not isinstance(name, str) or name not in fields:
            raise InputError(unknown("field", str(name), sorted(fields)))
        return fields[name]


def folder_argument(path) -> Path:
    """A folder given to the API, as a Path; InputError for anything that is not a path."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"expected a folder (a str or Path), got {type(path).__name__}")
    return Path(path)


def load_run(path: str | Path) -> Run:
    """A run folder (``grokkit train --out``, or one of a sweep's ``runs/*``)."""
    path = folder_argument(path)
    if not path.is_dir():
        raise RunFolderError(f"{path} is not a folder")
    if not runs.is_run_dir(path):
        hint = (
            ": it is a sweep folder, read it with grokkit.load_sweep"
            if (path / INDEX_FILE).is_file()
            else ""
        )
        raise RunFolderError(f"{path} is not a run folder (no config.json){hint}")
    if not os.path.lexists(path / "summary.json"):  # anything else there: read_summary says what
        raise RunFolderError(
            f"{path} has no summary.json yet: its training has not reached its first "
            "checkpoint (every checkpoint_every steps); load it again then"
        )
    # No lock: a run being trained is read as of its last checkpoint. Every file is replaced
    # whole by a rename, and the trainer writes metrics.csv before summary.json, so the rows read
    # after the summary reach at least its step; those beyond it (a newer checkpoint's) are left
    # out, and the metrics and the summary describe the same moment.
    summary = runs.read_summary(path)
    rows = [r for r in runs.read_metrics(path) if r["step"] <= summary["steps_done"]]
    # Every column metrics.csv has (the per-part norms too), in its order; empty: the contract's.
    metrics = pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(runs.METRIC_COLUMNS))
    return Run(path, runs.read_config(path), summary, metrics)


def load_sweep(path: str | Path) -> pd.DataFrame:
    """A sweep's (or a reproduction's) index: one row per run with its main settings and summary
    numbers, plus ``path``, the run folder (give it to ``load_run``)."""
    path = folder_argument(path)
    index = path / INDEX_FILE
    if not index.is_file():
        raise RunFolderError(f"{path} is not a sweep folder (no {INDEX_FILE})")
    rows = runs.read_json(index)
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "folder" in r for r in rows):
        raise runs.DamagedFileError(
            f"{index} is damaged: expected a list of runs with their folders"
        )
    frame = pd.DataFrame(rows)
    frame["path"] = [str(path / r["folder"]) for r in rows]
    return frame


def load_runs(paths: list[str | Path]) -> list[Run]:
    """Run folders and sweep folders (each standing for all of its runs), in the order given."""
    if not isinstance(paths, (list, tuple)):  # a lone string would be read letter by letter
        raise InputError(f"load_runs takes a list of folders, got {type(paths).__name__}")
    found: list[Run] = []
    for path in map(folder_argument, paths):
        if (path / INDEX_FILE).is_file() and not runs.is_run_dir(path):
            # Runs not started yet have no folder content, runs before their first checkpoint
            # no summary: there is nothing of theirs to read yet.
            found += [
                load_run(p)
                for p in load_sweep(path)["path"]
                if runs.is_run_dir(Path(p)) and (Path(p) / "summary.json").is_file()
            ]
        else:
            found.append(load_run(path))
    return found
