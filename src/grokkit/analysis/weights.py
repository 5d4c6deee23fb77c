"""A trained run's weights by name, read back from its run folder."""

from __future__ import annotations

import math
from pathlib import Path

from torch import Tensor

from grokkit import runs
from grokkit.config import RunConfig
from grokkit.data import make_table
from grokkit.model import ModelConfig, parameter_shapes


def load_run_weights(run_dir: Path) -> tuple[RunConfig, ModelConfig, dict[str, Tensor]]:
    """(run config, model config, {name: tensor}) of the run's latest checkpoint.

    The checkpoint stores one flat vector; ``parameter_shapes`` gives its layout (names in
    order), so W_U comes back as [d_model, vocab] and its element rows are W_U[:, :n_elements].T.
    """
    run_dir = Path(run_dir)
    config = RunConfig.from_dict(runs.read_json(run_dir / "config.json"))
    model_config = config.model_config(make_table(config.operation, config.modulus).n_elements)
    flat = runs.load_checkpoint(run_dir)["flat"]
    shapes = parameter_shapes(model_config)
    total = sum(math.prod(s) for s in shapes.values())
    if flat.numel() != total:
        raise ValueError(f"{run_dir}: checkpoint has {flat.numel()} weights, the config needs {total}")
    weights, offset = {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        weights[name] = flat[offset : offset + size].view(shape)
        offset += size
    return config, model_config, weights


def output_rows(run_dir: Path) -> tuple[RunConfig, Tensor]:
    """The output layer's row vector of every element token: [n_elements, d_model] (Figure 3)."""
    config, model_config, weights = load_run_weights(run_dir)
    return config, weights["W_U"][:, : model_config.n_elements].T.contiguous()
