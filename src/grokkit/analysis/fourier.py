"""Fourier progress measures of modular addition (Nanda et al. 2023, "Progress measures for
grokking via mechanistic interpretability", arXiv 2301.05217), for any run of ``x+y`` that kept
weight snapshots (``--snapshot-every N``).

    >>> measures = progress_measures(grokkit.load_run("runs/add"))
    >>> measures.key_freqs, measures.phases
    >>> measures.curves.plot(x="step", y=["test_loss", "restricted_loss"], logy=True)
    >>> write_progress_measures(measures, Path("runs/add"))   # fourier.csv, .json, .png, .pdf

Definitions (p = the modulus; every projection is computed in float64):

* **Fourier basis of Z_p** (``fourier_basis``): p orthonormal rows over the elements 0..p-1: the
  constant 1/sqrt(p), then for k = 1..(p-1)//2 the unit-normed cos(2πkx/p) and sin(2πkx/p), and
  for even p the cosine of k = p/2 (its sine is zero at every integer x). A frequency's norm of a
  matrix M [p, d] (``frequency_norms``) is sqrt(|cos_k·M|² + |sin_k·M|²); frequency 0 is the
  constant. ``basis_norms`` gives one norm per basis row instead (constant, cos 1, sin 1, ...).
* **Embedding and neuron-to-logit map.** W_E restricted to the p element tokens (token id ==
  element), and W_L = W_out of the last block @ W_U restricted to the p answer columns,
  [d_mlp, p], read along its output axis. ``gini_embed`` and ``gini_neuron_logit`` are the Gini
  coefficients of their ``basis_norms`` (p values each, constant included).
* **Logits** are those of the whole table, p² pairs (x, y) in the table's order, restricted to the
  p element columns (the operator and "=" columns are dropped), [p*p, p]. For a set K of key
  frequencies the directions over the p² inputs are the constant and, for k in K, the unit-normed
  cos(2πk(x+y)/p) and sin(2πk(x+y)/p). They depend on (x + y) mod p alone, so projecting on them
  is projecting the mean logits of each residue class s = x + y on the Fourier basis of Z_p.
* **Restricted logits** = the projection of the logits (each output column separately) on the
  span of the constant and the key directions; the **restricted loss** is the run's own loss
  (softmax or StableMax cross-entropy) of the restricted logits over the whole table, against the
  table's answers.
* **Excluded logits** = the logits minus their projection on the key directions (the constant
  kept); the **excluded loss** is the run's loss of the excluded logits on the training pairs,
  against the answers the run trained on.
* **Key frequencies** (``key_frequencies``), unless given: from the final snapshot's logits, the
  energy of frequency k is the squared norm of the logits' projection on its cos/sin(x+y)
  directions (the constant direction is left out: the energy of the centred logits). Frequencies
  are ranked by energy and the smallest leading set holding at least ``energy`` (default 0.95) of
  the summed energy of all frequencies is kept, returned in increasing order. Logits that are
  exactly a sum of cos(2πk(x+y-z)/p) over a set of k give exactly that set (a test checks it).
* **Total squared weight norm**: the sum of squares of every weight of the model (embeddings,
  biases, LayerNorm gains included): metrics.csv's ``weight_norm`` squared.
* **Losses and accuracies**: training loss and accuracy on the run's own training pairs with the
  answers it was trained on (outlier answers included, as in metrics.csv), test loss and accuracy
  on its validation pairs; all on the p element columns, so they can differ slightly from
  metrics.csv's, whose losses normalise over the whole vocabulary.

Phase boundaries (``phase_boundaries``; None where a boundary is not reached):

* end of memorisation: the step of the smallest excluded loss (it falls with the training loss
  while the network memorises and rises once the Fourier circuit carries the training answers);
  None when that is the last snapshot (the excluded loss never rose).
* start of clean-up: the first step after the end of memorisation at which the test loss is at
  most a tenth of its running maximum since the end of memorisation.
* end of clean-up: the first step from the start of clean-up on from which the test loss stays
  within a factor 2 of its final value; None when only the final snapshot qualifies.

``fall_step`` (when a loss curve falls): where the curve first crosses the geometric mean of its
maximum and its final value downwards (the first step at or below it that follows a step above
it), all taken at or after a given step (``write_progress_measures`` compares it for the
restricted and the test loss after the end of memorisation). A geometric mean, because losses
fall by orders of magnitude; the first crossing rather than the first step after the maximum, so
that a late loss spike (an instability after grokking) moves the threshold a little instead of
moving the fall to after the spike. A curve that does not end lower than it starts (from that
step on) has no fall, whatever its bumps: a loss that rose from 0.28 to 1.45 through a peak of 2
did not fall (``describe_fall`` says so in words).

Where this follows Nanda et al.'s code (``helpers.py`` and ``transformers.py`` of
mechanistic-interpretability-grokking/progress-measures-paper, and the paper's analysis notebook)
and where it departs:

* The basis, its row order and the unit-normed cos/sin(x+y) directions are theirs. Their basis
  also takes a sine at k = p/2 for even p, which is zero and cannot be normalised; we leave it out
  so the basis stays orthonormal.
* Restricted loss: their ``calculate_trig_loss`` (the notebook's ``trig_loss``) sums the
  cos/sin(x+y) components of the logits over the key frequencies and adds a "bias correction",
  the mean over all inputs of the original minus the restricted logits; that correction is exactly
  the projection on the constant direction, so our restricted logits equal theirs. We state it as
  one projection of the logits, which applies to every model grokkit trains (2 layers, LayerNorm):
  nothing in it reads the neurons of a one-layer model.
* Excluded loss: the notebook's ``calculate_excluded_loss_2D_full`` (all key frequencies removed
  together, loss on the training pairs). Their ``transformers.py`` removes one key frequency at a
  time and reports one loss per frequency; the notebook also has a variant over cos(w(x+y-z)); we
  do neither.
* Key frequencies: theirs come from the MLP neurons (for each neuron, the frequency whose
  constant, linear and quadratic 2D Fourier terms explain the most variance of its centred
  activations; the key set is every frequency some neuron picks), taken from one late model in
  the notebook and recomputed at every evaluation in ``transformers.py`` (whose loop also skips
  frequency p//2). Ours come from the logits, which every architecture has, and are fixed for the
  whole run from its final snapshot, so every step is measured against the same frequencies.
* Gini coefficients: the paper follows the Gini coefficient of the norms of the Fourier
  components of W_E and W_L; the published code and notebook hold no Gini function, and the norms
  they plot as those components are one per basis row, (W_E @ B.T).norm(dim=0) and
  (B @ W_L).norm(dim=1), the constant included. We feed those (``basis_norms``), not the
  per-frequency norms. The coefficient is the usual one of non-negative values,
  sum_i (2i - n - 1) x_(i) / (n sum x) over the values sorted increasingly: 0 for equal values,
  (n - 1)/n for a single non-zero one. Their W_L is W_U @ W_out of a model without LayerNorm;
  ours ignores the LayerNorms between the last MLP and the unembedding.
* Losses: they drop the "=" column of the logits and use softmax cross-entropy (in float32,
  although a comment says float64); we drop the operator and "=" columns and use the run's own
  loss in float64. Their sum of squared weights also sums every parameter.
* Phases: the notebook draws the boundaries at fixed epochs of the paper's main run (1.4k, 9.4k
  and 14k); the rules above are ours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from grokkit import runs
from grokkit.api import Run, load_run
from grokkit.errors import InputError
from grokkit.losses import LOSSES
from grokkit.model import ModelConfig

OPERATION = "x+y"
DEFAULT_ENERGY = 0.95
CLEANUP_FALL = 10.0  # clean-up starts once the test loss is this many times below its maximum
CLEANUP_SETTLED = 2.0  # ... and ends once it stays within this factor of its final value
CURVE_COLUMNS = (
    "step",
    "train_loss",
    "test_loss",
    "train_accuracy",
    "test_accuracy",
    "restricted_loss",
    "excluded_loss",
    "gini_embed",
    "gini_neuron_logit",
    "weight_norm_sq",
)
PHASE_KEYS = ("memorisation_end", "cleanup_start", "cleanup_end")


# ---------------------------------------------------------------- the Fourier basis of Z_p


def fourier_basis(p: int) -> tuple[Tensor, list[int]]:
    """(basis [p, p] float64 with orthonormal rows, the frequency of each row). Rows: constant,
    cos 1, sin 1, cos 2, sin 2, ..., and cos p/2 for even p."""
    if p < 2:
        raise ValueError(f"the Fourier basis needs p >= 2, got {p}")
    x = torch.arange(p, dtype=torch.float64)
    rows, frequency_of_row = [torch.ones(p, dtype=torch.float64)], [0]
    for k in range(1, p // 2 + 1):
        angle = 2 * math.pi * k * x / p
        rows.append(torch.cos(angle))
        frequency_of_row.append(k)
        if 2 * k != p:  # at k = p/2 the sine vanishes at every integer x
            rows.append(torch.sin(angle))
            frequency_of_row.append(k)
    basis = torch.stack(rows)
    return basis / basis.norm(dim=1, keepdim=True), frequency_of_row


def _as_rows(M) -> Tensor:
    M = torch.as_tensor(M).detach().to(device="cpu", dtype=torch.float64)
    return M.unsqueeze(1) if M.dim() == 1 else M


def basis_norms(M) -> Tensor:
    """One norm per basis row of M [p, d] (rows indexed by element): [p], in ``fourier_basis``
    order (constant, cos 1, sin 1, ...). What the Gini coefficients are taken of."""
    M = _as_rows(M)
    basis, _ = fourier_basis(M.shape[0])
    return (basis @ M).norm(dim=1)


def frequency_norms(M) -> Tensor:
    """Norm of each frequency of M [p, d] (rows indexed by element): [p//2 + 1], index = the
    frequency k, 0 = the constant; sqrt(|cos_k·M|² + |sin_k·M|²)."""
    M = _as_rows(M)
    basis, frequency_of_row = fourier_basis(M.shape[0])
    squares = (basis @ M).pow(2).sum(dim=1)  # [p]: one per basis row
    per_frequency = torch.zeros(M.shape[0] // 2 + 1, dtype=torch.float64)
    return per_frequency.index_add_(0, torch.tensor(frequency_of_row), squares).sqrt()


def gini(values) -> float:
    """Gini coefficient of non-negative values: 0 when all are equal, (n - 1)/n when one alone is
    non-zero; 0 for all zeros."""
    x = torch.as_tensor(values).detach().to(device="cpu", dtype=torch.float64).flatten()
    if x.numel() == 0:
        raise ValueError("gini needs at least one value")
    if not bool(torch.isfinite(x).all()) or bool((x < 0).any()):
        raise ValueError("gini needs finite, non-negative values")
    total = float(x.sum())
    if total == 0:
        return 0.0
    n = x.numel()
    weights = 2 * torch.arange(1, n + 1, dtype=torch.float64) - n - 1
    return float((weights * x.sort().values).sum() / (n * total))


# ---------------------------------------------------------------- logits over the whole table


def _check_logits(logits, p: int) -> Tensor:
    logits = torch.as_tensor(logits).detach().to(device="cpu", dtype=torch.float64)
    if logits.shape != (p * p, p):
        raise ValueError(
            f"expected the logits of all {p}x{p} pairs over {p} answers, "
            f"[{p * p}, {p}], got {list(logits.shape)}"
        )
    return logits


def _check_key_freqs(key_freqs, p: int) -> list[int]:
    """The key frequencies as a sorted list; one InputError line for a bad one."""
    freqs = list(key_freqs)
    for k in freqs:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise InputError(f"key frequencies must be integers, got {k!r}")
        if not 1 <= k <= p // 2:
            raise InputError(
                f"key frequency {k} is outside 1..{p // 2}, the frequencies of mod {p}"
            )
    if len(set(freqs)) != len(freqs):
        raise InputError(f"key frequencies must differ from each other, got {freqs}")
    return sorted(int(k) for k in freqs)


def _residue_means(logits: Tensor, p: int) -> tuple[Tensor, Tensor]:
    """(mean logits of each residue class s = (x + y) mod p [p, p], s of each row [p*p]).
    Rows enumerate the pairs row-major; s is symmetric in x and y, so either order works."""
    row = torch.arange(p * p)
    s = (row // p + row % p) % p
    sums = torch.zeros(p, logits.shape[1], dtype=torch.float64).index_add_(0, s, logits)
    return sums / p, s  # every residue class holds exactly p pairs


def _projection(logits: Tensor, p: int, frequencies: set[int]) -> Tensor:
    """Projection of every column of the logits on the (x+y)-directions of ``frequencies``
    (0 = the constant): the residue-class means projected on those basis rows, per row."""
    means, s = _residue_means(logits, p)
    basis, frequency_of_row = fourier_basis(p)
    kept = basis[[i for i, k in enumerate(frequency_of_row) if k in frequencies]]  # [r, p]
    return (kept.T @ (kept @ means))[s]


def restricted_logits(logits, p: int, key_freqs) -> Tensor:
    """The logits [p*p, p] projected on the constant and the key frequencies' cos/sin(x+y)
    directions, float64."""
    logits = _check_logits(logits, p)
    return _projection(logits, p, {0, *_check_key_freqs(key_freqs, p)})


def excluded_logits(logits, p: int, key_freqs) -> Tensor:
    """The logits [p*p, p] less their projection on the key frequencies' cos/sin(x+y)
    directions (the constant kept), float64."""
    logits = _check_logits(logits, p)
    return logits - _projection(logits, p, set(_check_key_freqs(key_freqs, p)))


def _frequency_energies(logits: Tensor, p: int) -> Tensor:
    """Energy of each frequency k = 0..p//2 in the logits: the squared norm of their projection
    on its (x+y)-directions. A direction lifted from Z_p to the p² pairs carries p times the
    residue means' squared coefficient."""
    means, _ = _residue_means(logits, p)
    return p * frequency_norms(means).pow(2)


def key_frequencies(logits, p: int, energy: float = DEFAULT_ENERGY) -> list[int]:
    """The key frequencies of logits [p*p, p]: ranked by their energy, the smallest leading set
    holding at least ``energy`` of the energy of all frequencies 1..p//2, in increasing order
    (empty when the logits do not vary with x + y at all)."""
    logits = _check_logits(logits, p)
    if not 0 < energy <= 1:
        raise InputError(f"the energy fraction must be in (0, 1], got {energy}")
    energies = _frequency_energies(logits, p)[1:].tolist()  # frequencies 1..p//2
    total = sum(energies)
    if total <= 1e-24 * float(logits.pow(2).sum()):  # rounding alone: nothing varies with x + y
        return []
    order = sorted(range(len(energies)), key=lambda i: -energies[i])  # ties: lower frequency first
    chosen, held = [], 0.0
    for i in order:
        chosen.append(i + 1)
        held += energies[i]
        if held >= energy * total * (1 - 1e-12):  # with energy 1, rounding noise is never kept
            break
    return sorted(chosen)


def key_energy_fraction(logits, p: int, key_freqs) -> float:
    """Share of the centred logits' energy (all of it, not only the (x+y)-periodic part) that
    lies in the key frequencies' directions: how much of the model the key frequencies explain."""
    logits = _check_logits(logits, p)
    keys = _check_key_freqs(key_freqs, p)
    centred = logits - logits.mean(dim=0, keepdim=True)
    total = float(centred.pow(2).sum())
    return float(_frequency_energies(logits, p)[keys].sum()) / total if total > 0 else 0.0


# ---------------------------------------------------------------- curves over training


@dataclass(frozen=True, eq=False)  # eq=False: a DataFrame has no single truth value
class ProgressMeasures:
    """The progress measures of one run at every kept snapshot."""

    key_freqs: list[int]
    curves: pd.DataFrame  # one row per snapshot step, CURVE_COLUMNS
    phases: dict  # PHASE_KEYS -> step or None
    embed_norms: Tensor  # the final snapshot's W_E norm per frequency, [p//2 + 1]
    modulus: int
    loss: str  # the run's loss: "softmax" or "stablemax"
    key_source: str  # how the key frequencies were chosen, in words
    key_energy_fraction: float  # share of the final centred logits' energy in the key directions

    def fall_steps(self) -> dict:
        """When the restricted and the test loss fall (``fall_step``), after the end of
        memorisation (over the whole run when it has no end)."""
        after = self.phases.get("memorisation_end")
        steps = self.curves["step"]
        return {
            "after": after,
            "restricted_loss": fall_step(steps, self.curves["restricted_loss"], after=after),
            "test_loss": fall_step(steps, self.curves["test_loss"], after=after),
        }


def _neuron_to_logit(weights: dict[str, Tensor], config: ModelConfig) -> Tensor:
    """W_L = W_out of the last block @ W_U over the p answer columns: [d_mlp, p]."""
    answers = weights["W_U"][:, config.element_tokens()].double()
    return weights[f"blocks.{config.n_layers - 1}.W_out"].double() @ answers


def _require_fourier_run(run: Run) -> int:
    if run.config.operation != OPERATION:
        raise InputError(
            f"{run.path} trains {run.config.operation}; the Fourier progress measures "
            f"are defined for modular addition ({OPERATION}) only"
        )
    if not run.snapshot_steps:
        raise InputError(
            f"{run.path} kept no weight snapshots; train it with --snapshot-every N "
            "to measure progress over training"
        )
    return run.config.modulus


def _measures_at(run: Run, model, step: int, p: int, key_freqs) -> dict:
    """One row of the curves: every measure of ``model``, the run's snapshot at ``step``."""
    train_idx, test_idx = run.split()
    answers = run.table.result
    train_answers, test_answers = run.config.trained_answers(answers, train_idx), answers[test_idx]
    loss_fn = LOSSES[run.config.loss]

    def mean_loss(logits: Tensor, labels: Tensor) -> float:
        return float(loss_fn(logits, labels).mean())

    def accuracy(logits: Tensor, labels: Tensor) -> float:
        return float((logits.argmax(dim=-1) == labels).double().mean())

    elements = model.config.element_tokens()
    logits = model.logits()[:, elements].double()  # [p*p, p]: the element answers only
    weights = model.weights
    neuron_to_logit = _neuron_to_logit(weights, model.config)  # [d_mlp, p]
    restricted = restricted_logits(logits, p, key_freqs)
    excluded = excluded_logits(logits, p, key_freqs)
    return {
        "step": step,
        "train_loss": mean_loss(logits[train_idx], train_answers),
        "test_loss": mean_loss(logits[test_idx], test_answers),
        "train_accuracy": accuracy(logits[train_idx], train_answers),
        "test_accuracy": accuracy(logits[test_idx], test_answers),
        "restricted_loss": mean_loss(restricted, answers),
        "excluded_loss": mean_loss(excluded[train_idx], train_answers),
        "gini_embed": gini(basis_norms(weights["W_E"][elements])),
        "gini_neuron_logit": gini(basis_norms(neuron_to_logit.T)),
        "weight_norm_sq": sum(float(w.double().pow(2).sum()) for w in weights.values()),
    }


def progress_measures(
    run: Run | str | Path, key_freqs=None, energy: float = DEFAULT_ENERGY
) -> ProgressMeasures:
    """Every progress measure at every snapshot of an ``x+y`` run (a Run or its folder).

    ``key_freqs``: the frequencies to restrict to and exclude; None finds them from the final
    snapshot's logits (``key_frequencies`` with ``energy``).
    """
    run = run if isinstance(run, Run) else load_run(run)
    p = _require_fourier_run(run)
    steps = run.snapshot_steps
    final = run.model(steps[-1])
    final_logits = final.logits()[:, final.config.element_tokens()].double()
    if key_freqs is None:
        key_freqs = key_frequencies(final_logits, p, energy)
        share = f"{100 * energy:g}%" if energy < 1 else "all"
        key_source = f"from the final snapshot (step {steps[-1]}): {share} of its (x+y) energy"
    else:
        key_freqs = _check_key_freqs(key_freqs, p)
        key_source = "given"

    rows = [
        _measures_at(run, final if step == steps[-1] else run.model(step), step, p, key_freqs)
        for step in steps
    ]
    curves = pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
    return ProgressMeasures(
        key_freqs=key_freqs,
        curves=curves,
        phases=phase_boundaries(curves),
        embed_norms=frequency_norms(final.weights["W_E"][final.config.element_tokens()]),
        modulus=p,
        loss=run.config.loss,
        key_source=key_source,
        key_energy_fraction=key_energy_fraction(final_logits, p, key_freqs),
    )


# ---------------------------------------------------------------- phases


def phase_boundaries(curves: pd.DataFrame) -> dict:
    """{memorisation_end, cleanup_start, cleanup_end}: steps (int) or None, by the rules of the
    module docstring, from the ``step``, ``excluded_loss`` and ``test_loss`` columns."""
    phases: dict = dict.fromkeys(PHASE_KEYS)
    steps = curves["step"].to_numpy()
    excluded = curves["excluded_loss"].to_numpy(dtype=np.float64)
    test = curves["test_loss"].to_numpy(dtype=np.float64)
    if not np.isfinite(excluded).any():
        return phases
    end = int(np.nanargmin(excluded))
    if end == len(steps) - 1:  # the excluded loss never rose: memorisation has not visibly ended
        return phases
    phases["memorisation_end"] = int(steps[end])

    running_max = np.fmax.accumulate(test[end:])
    fallen = np.nonzero(test[end + 1 :] <= running_max[1:] / CLEANUP_FALL)[0]
    if fallen.size == 0:
        return phases
    start = end + 1 + int(fallen[0])
    phases["cleanup_start"] = int(steps[start])

    final, later = test[-1], test[start:]
    within = (later <= CLEANUP_SETTLED * final) & (later >= final / CLEANUP_SETTLED)
    # settled[i]: the loss stays within the factor from start + i to the end
    settled = np.logical_and.accumulate(within[::-1])[::-1]
    first = int(np.argmax(settled))  # True at the last point, unless the final loss is not finite
    if settled[-1] and start + first < len(steps) - 1:
        phases["cleanup_end"] = int(steps[start + first])
    return phases


def fall_step(steps, values, after=None) -> int | None:
    """Where ``values`` first cross the geometric mean of their maximum and their final value
    downwards: the first step at or below it after one above it. Only points at or after
    ``after`` count (non-finite ones never). None when the curve ends no lower than its maximum
    or no lower than its first point: then it did not fall, though it may have bumped."""
    steps = np.asarray(steps)
    values = np.asarray(values, dtype=np.float64)
    if steps.shape != values.shape or steps.ndim != 1:
        raise ValueError(
            f"steps and values must be 1-D of one length, got {steps.shape} and {values.shape}"
        )
    keep = np.isfinite(values) & (steps >= after if after is not None else True)
    steps, values = steps[keep], values[keep]
    if values.size < 2:
        return None
    if (values < 0).any():
        raise ValueError("fall_step needs non-negative values (losses)")
    top, final = values.max(), values[-1]
    if not (final < top and final < values[0]):
        return None
    threshold = math.sqrt(top * final)
    above = int(np.argmax(values > threshold))  # the maximum at the latest
    return int(steps[above + int(np.argmax(values[above:] <= threshold))])  # the end at the latest


def describe_fall(steps, values, after=None, name: str = "loss") -> str:
    """Whether the curve fell, in words, from its direction (``fall_step``): "test loss fell from
    4.6 to 0.012 (half-way at step 2000)" or "restricted loss did not fall (rose from 0.28 to
    1.45)"; only points at or after ``after`` count."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values) & (steps >= after if after is not None else True)
    kept = values[keep]
    if kept.size < 2:
        return f"{name}: too few finite points to tell whether it fell"
    first, last = kept[0], kept[-1]
    step = fall_step(steps, values, after=after)
    if step is not None:
        return f"{name} fell from {first:.3g} to {last:.3g} (half-way at step {step})"
    moved = (
        f"rose from {first:.3g} to {last:.3g}"
        if last > first
        else f"ended where it started, at {last:.3g}"
    )
    return f"{name} did not fall ({moved})"


def describe_phases(phases: dict) -> str:
    """The phase boundaries in words, each one not reached said so ("clean-up did not start")."""
    end, start, done = (phases.get(k) for k in PHASE_KEYS)
    if end is None:
        return "memorisation did not visibly end (the excluded loss did not rise after its minimum)"
    text = f"memorisation ends at step {end}"
    if start is None:
        return text + "; clean-up did not start"
    text += f", clean-up starts at step {start}"
    return text + (
        f" and ends at step {done}" if done is not None else " and did not end by the last snapshot"
    )


# ---------------------------------------------------------------- figure and files

PHASE_SPANS = (  # (label, start key or None for the first step, end key or None for the last)
    ("memorisation", None, "memorisation_end"),
    ("circuit formation", "memorisation_end", "cleanup_start"),
    ("clean-up", "cleanup_start", "cleanup_end"),
)
PHASE_COLORS = ("tab:gray", "tab:blue", "tab:orange")


def _phase_spans(phases: dict, first: float, last: float) -> list[tuple[str, float, float, str]]:
    """(label, start, end, colour) of each phase a found boundary delimits: one that began at a
    boundary and has not ended runs to ``last`` ("not over"). Nothing is shaded before the first
    boundary is found: memorisation is known only once it has visibly ended, so a run in which
    no boundary was found is not painted as memorising throughout."""
    spans = []
    for (label, start_key, end_key), color in zip(PHASE_SPANS, PHASE_COLORS):
        start = first if start_key is None else phases.get(start_key)
        end = phases.get(end_key)
        if start is None or (start_key is None and end is None):
            continue
        label += " (phase)" if end is not None else " (phase, not over at the last snapshot)"
        spans.append((label, start, last if end is None else end, color))
    return spans


def _shade_phases(axis, phases: dict, steps: np.ndarray, legend: bool) -> None:
    """The phases as shaded spans (named in the legend when ``legend``) and their boundaries;
    where no boundary was found, the legend says so in words."""
    spans = _phase_spans(phases, steps[0], steps[-1])
    for label, start, end, color in spans:
        name = label if legend else "_nolegend_"
        axis.axvspan(start, end, color=color, alpha=0.08, label=name)
    if legend and not spans:
        axis.plot(
            [], [], color="none", label="no phase boundary found:\nmemorisation did not visibly end"
        )
    for key in PHASE_KEYS:
        if phases.get(key) is not None:
            axis.axvline(phases[key], color="black", linestyle="--", linewidth=0.8, alpha=0.6)
    axis.set_xlabel("step")


def _draw_key_frequencies(axis, measures: ProgressMeasures) -> None:
    """The final W_E norm per frequency, the key frequencies in red."""
    norms = measures.embed_norms.numpy()
    keys = set(measures.key_freqs)
    colors = ["tab:red" if k in keys else "tab:gray" for k in range(len(norms))]
    axis.bar(np.arange(len(norms)), norms, color=colors)
    axis.set_xlabel("frequency k (0: constant); key frequencies in red")
    axis.set_ylabel("norm of W_E (final snapshot)")
    axis.set_title(f"key frequencies: {', '.join(map(str, measures.key_freqs)) or 'none'}")


def plot_progress_measures(measures: ProgressMeasures, path: Path, title: str = "") -> list[Path]:
    """One figure: the four losses (log y), the two Gini coefficients, the total squared weight
    norm against the step with the phases shaded, and the final W_E norm per frequency with the
    key frequencies highlighted. Writes ``path`` (.png) and a PDF beside it; returns both."""
    # Imported here: matplotlib costs ~0.4 s, which the measures themselves should not pay.
    import matplotlib.pyplot as plt

    from grokkit.plots import TRAIN_COLOR, VALIDATION_COLOR, apply_style, save_figure

    path = Path(path)
    curves = measures.curves
    steps = curves["step"].to_numpy(dtype=np.float64)
    apply_style()
    fig, axes = plt.subplots(2, 2, figsize=(11.0, 7.5), layout="constrained")
    loss_axis, gini_axis, norm_axis, bar_axis = axes.flat

    series = (
        ("train_loss", "train", TRAIN_COLOR),
        ("test_loss", "test", VALIDATION_COLOR),
        ("restricted_loss", "restricted", "tab:blue"),
        ("excluded_loss", "excluded", "tab:purple"),
    )
    positive = False
    for column, label, color in series:
        values = curves[column].to_numpy(dtype=np.float64)
        values = np.where(values > 0, values, np.nan)  # a log axis cannot show zeros
        positive |= bool(np.isfinite(values).any())
        loss_axis.plot(steps, values, color=color, label=label)
    if positive:
        loss_axis.set_yscale("log")
    loss_axis.set_ylabel("loss")
    gini_axis.plot(steps, curves["gini_embed"], color="tab:green", label="W_E")
    gini_axis.plot(
        steps, curves["gini_neuron_logit"], color="tab:brown", label="W_L (neuron to logit)"
    )
    gini_axis.set_ylim(0, 1)
    gini_axis.set_ylabel("Gini of Fourier norms")
    norm_axis.plot(steps, curves["weight_norm_sq"], color="black", label="all weights")
    norm_axis.set_ylabel("total squared weight norm")

    if len(steps):
        for axis in (loss_axis, gini_axis, norm_axis):
            _shade_phases(axis, measures.phases, steps, legend=axis is loss_axis)
    loss_axis.legend(fontsize=7, ncol=2, frameon=True, framealpha=0.8)
    gini_axis.legend(fontsize=8)

    _draw_key_frequencies(bar_axis, measures)
    if title:
        fig.suptitle(title)
    png = save_figure(fig, path)
    return [png, png.with_suffix(".pdf")]


def summary_json(measures: ProgressMeasures) -> dict:
    """What fourier.json holds: key frequencies, phases and fall steps, with how they were got."""
    return {
        "operation": OPERATION,
        "modulus": measures.modulus,
        "loss": measures.loss,
        "key_freqs": measures.key_freqs,
        "key_source": measures.key_source,
        "key_energy_fraction": measures.key_energy_fraction,
        "phases": measures.phases,
        "fall_steps": measures.fall_steps(),
        "snapshot_steps": [int(s) for s in measures.curves["step"]],
        "embed_norms": [float(v) for v in measures.embed_norms],
    }


def write_progress_measures(measures: ProgressMeasures, out_dir: Path) -> list[Path]:
    """``out_dir``/fourier.csv (the curves), fourier.json (``summary_json``), fourier.png and
    fourier.pdf (``plot_progress_measures``); returns their paths."""
    out_dir = Path(out_dir)
    csv_path, json_path = out_dir / "fourier.csv", out_dir / "fourier.json"
    runs.atomic_write_text(csv_path, measures.curves.to_csv(index=False))
    runs.write_json(json_path, summary_json(measures))
    title = f"{OPERATION} mod {measures.modulus}: Fourier progress measures"
    return [csv_path, json_path, *plot_progress_measures(measures, out_dir / "fourier.png", title)]
