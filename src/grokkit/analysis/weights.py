"""A trained run's weights by name, read back from its run folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from grokkit.config import RunConfig
from grokkit.data import make_table
from grokkit.model_config import ModelConfig

if TYPE_CHECKING:
    from torch import Tensor


def load_run_weights(run_dir: Path) -> tuple[RunConfig, ModelConfig, dict[str, Tensor]]:
    """(run config, model config, {name: tensor}) of the run's latest checkpoint.

    The checkpoint stores one flat vector; ``grokkit.model.unflatten`` names its parts, so W_U
    comes back as [d_model, vocab] and its element rows are W_U[:, model_config.element_tokens()].T
    (tokens 0..n-1 for grokkit's vocabulary, a later range for openai-grok's shared one).
    """
    # Imported here: fig3 imports this module, and `reproduce --list` imports fig3 without PyTorch.
    from grokkit import runs
    from grokkit.checkpoint_check import config_differences
    from grokkit.model import unflatten

    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)
    model_config = config.model_config(
        make_table(config.operation, config.modulus, config.arch).n_elements
    )
    state = runs.load_checkpoint(run_dir)
    differences = config_differences(config, RunConfig.from_dict(state["config"]))
    if differences:  # config.json edited by hand: its model would not be these weights'
        raise runs.DamagedFileError(
            f"{run_dir / 'config.json'} is damaged: it does not describe the "
            f"run's checkpoint ({'; '.join(differences[:3])})"
        )
    flat = state["flat"]
    try:
        weights = unflatten(flat, model_config)
    except ValueError as e:
        raise ValueError(f"{run_dir}: {e}") from None
    return config, model_config, weights
