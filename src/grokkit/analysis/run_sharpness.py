"""Sharpness φ (Keskar et al., Appendix A.5) of a run's weights, on its own training set: at its
last checkpoint, or at a snapshot kept with ``--snapshot-every`` (the paper measures every seed at
one common step)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from grokkit import runs
from grokkit.analysis.sharpness import keskar_sharpness
from grokkit.model import forward_fast
from grokkit.population import Population

CACHE = "sharpness.json"


def training_loss_fn(run_dir: Path, step: int | None = None):
    """(loss_fn, flat weights): full-training-set cross-entropy of the run as a function of its
    flat weight vector, on the run's own split (outlier answers included), as it was trained.
    The weights are the last checkpoint's, or the snapshot's kept at ``step``."""
    state = runs.load_checkpoint(run_dir)  # the split and the answers; a snapshot holds weights only
    pop = Population.from_member_states([state])
    n_train = pop.members[0].n_train
    equations = pop.train_equations[0, :n_train]
    labels = pop.train_labels[0, :n_train]
    x, y = pop.x[equations].unsqueeze(0), pop.y[equations].unsqueeze(0)  # [1, n_train]

    def loss_fn(flat: torch.Tensor) -> torch.Tensor:
        logits = forward_fast(pop.views(flat.unsqueeze(0)), pop.model_config, x, y)  # [1, n, V]
        return F.cross_entropy(logits[0], labels)

    flat = pop.flat[0].clone() if step is None else runs.load_snapshot(run_dir, step).to(pop.flat.dtype)
    return loss_fn, flat


def run_sharpness(run_dir: Path, epsilon: float = 1e-3, max_iterations: int = 10, seed: int = 0,
                  step: int | None = None) -> float:
    """φ in percent at the last checkpoint (or at the snapshot of ``step``), cached in the run
    folder (``sharpness.json``) per (ε, iterations, seed, step)."""
    run_dir = Path(run_dir)
    # "solver=2": L-BFGS-B with its convergence tests off (values cached before that can be 0).
    key = (f"eps={epsilon!r},iters={max_iterations},seed={seed},solver=2"
           + ("" if step is None else f",snapshot={step}"))
    cache_path = run_dir / CACHE
    try:
        cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    except ValueError:  # a damaged cache is only a cache: measure again and rewrite it
        cache = {}
    if not isinstance(cache, dict):
        cache = {}
    state_step = runs.load_checkpoint(run_dir)["step"] if step is None else step
    entry = cache.get(key)
    if entry is not None and entry.get("step") == state_step:
        return float(entry["sharpness"])
    loss_fn, flat = training_loss_fn(run_dir, step)
    phi = keskar_sharpness(loss_fn, flat, epsilon=epsilon, max_iterations=max_iterations, seed=seed)
    cache[key] = {"step": state_step, "sharpness": phi}
    runs.write_json(cache_path, cache)
    return phi
