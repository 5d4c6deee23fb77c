"""Sharpness φ (Appendix A.5) of a run's weights, on its own training set: at its last
checkpoint, or at a snapshot kept with ``--snapshot-every`` (the paper measures every seed at one
common step), by any of grokkit.analysis.sharpness's definitions.

The loss is the run's own: its population's logits (``Population.logits``, evaluation mode, for
either architecture: for openai-grok the model also reads the answer to predict the closing
<eos>) scored by its own per-equation loss (``Population.example_losses``) on its training split,
outlier answers included, as it was trained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from grokkit import runs
from grokkit.analysis.sharpness import sharpness, sharpness_definition
from grokkit.analysis.sharpness_torch import TorchMeanLoss
from grokkit.population import Population

CACHE = "sharpness.json"
SOLVER_VERSION = 3  # 3: the population's own loss, named definitions (keys before it are ignored)


def training_objective(run_dir: Path, step: int | None = None) -> tuple[TorchMeanLoss, np.ndarray]:
    """(objective, flat weights as float64): the run's mean training loss over any subset of its
    training equations (grokkit.analysis.sharpness.Objective) as a function of its flat weight
    vector, and the weights of its last checkpoint, or of the snapshot kept at ``step``."""
    state = runs.load_checkpoint(
        run_dir
    )  # the split and the answers; a snapshot holds weights only
    pop = Population.from_member_states([state])
    n_train = pop.members[0].n_train
    equations = pop.train_equations[0, :n_train]
    answers = pop.train_labels[0, :n_train]

    def loss_fn(flat: torch.Tensor, examples: torch.Tensor | None) -> torch.Tensor:
        eq, c = (
            (equations, answers) if examples is None else (equations[examples], answers[examples])
        )
        x, y, c = pop.x[eq].unsqueeze(0), pop.y[eq].unsqueeze(0), c.unsqueeze(0)  # [1, b]
        logits = pop.logits(pop.views(flat.unsqueeze(0)), x, y, train=False, c=c)
        return pop.example_losses(logits, c)[0].mean()

    flat = (
        pop.flat[0].clone()
        if step is None
        else runs.load_snapshot(run_dir, step).to(pop.flat.dtype)
    )
    objective = TorchMeanLoss(loss_fn, n_train, dtype=pop.flat.dtype, device=pop.device)
    return objective, flat.detach().double().cpu().numpy()


def run_sharpness(
    run_dir: Path,
    epsilon: float = 1e-3,
    max_iterations: int = 10,
    seed: int = 0,
    step: int | None = None,
    definition: str = "keskar",
) -> float:
    """φ in percent by ``definition`` (grokkit.analysis.sharpness.SHARPNESS_DEFINITIONS) at the
    last checkpoint (or at the snapshot of ``step``), cached in the run folder
    (``sharpness.json``) per (definition, ε, iterations, seed, step). ``seed`` seeds the
    definition's numpy generator (its subspace, its epoch orders, its random start)."""
    sharpness_definition(definition)  # an unknown name fails before any work
    run_dir = Path(run_dir)
    key = (
        f"def={definition},eps={epsilon!r},iters={max_iterations},seed={seed},solver={SOLVER_VERSION}"
        + ("" if step is None else f",snapshot={step}")
    )
    cache_path = run_dir / CACHE
    try:
        cache = json.loads(runs.read_regular_bytes(cache_path)) if cache_path.is_file() else {}
    except (OSError, ValueError):  # a damaged cache is only a cache: measure again and rewrite it
        cache = {}
    if not isinstance(cache, dict):
        cache = {}
    state_step = runs.load_checkpoint(run_dir)["step"] if step is None else step
    entry = cache.get(key)
    if isinstance(entry, dict) and entry.get("step") == state_step and "sharpness" in entry:
        return float(entry["sharpness"])
    objective, flat = training_objective(run_dir, step)
    phi = sharpness(
        definition, objective, flat, seed, epsilon=epsilon, max_iterations=max_iterations
    )
    cache[key] = {"step": state_step, "sharpness": phi}
    runs.write_json(cache_path, cache)
    return phi
