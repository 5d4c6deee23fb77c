"""Equation tables, train/validation splits and label outliers (Power et al. 2022, A.1.1 and A.4).

A :class:`Table` holds every equation ``x ∘ y = result`` of one operation as index tensors. The
model reads the four tokens ``x, ∘, y, =`` and predicts ``result`` at the ``=`` position; every
element, the operator and ``=`` are separate tokens with no internal structure.

Splits and outliers draw from their own ``torch.Generator`` seeded explicitly, never from the
global RNG, so that the data a run sees depends only on its split seed (the paper keeps the split
separate from initialisation and batch order) and not on what else ran in the process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

import numpy as np

if TYPE_CHECKING:
    import torch

from grokkit.errors import InputError, warn
from grokkit.ops import (
    S5_OPERATIONS,
    SLOW_TABLE_EQUATIONS,
    Operation,
    get_operation,
    s5_tables,
    table_size_text,
)

OPERATOR_TOKEN = "∘"
EQUALS_TOKEN = "="


class DataError(InputError):
    """Bad split or outlier request; the message is one line, fit for a CLI error."""


@dataclass(frozen=True)
class Table:
    """Every equation of one operation; row i is ``x[i] ∘ y[i] = result[i]`` (element indices)."""

    operation: Operation
    x: torch.Tensor  # int64 [N]
    y: torch.Tensor  # int64 [N]
    result: torch.Tensor  # int64 [N]

    @property
    def n_equations(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_elements(self) -> int:
        return len(self.operation.element_names)

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """Token names: the elements (token id == element index), then the operator, then '='."""
        return (*self.operation.element_names, OPERATOR_TOKEN, EQUALS_TOKEN)

    @property
    def op_token(self) -> int:
        return self.n_elements

    @property
    def eq_token(self) -> int:
        return self.n_elements + 1

    @property
    def vocab_size(self) -> int:
        return self.n_elements + 2

    def tokens(self) -> torch.Tensor:
        """int64 [N, 4]: ``x, op_token, y, eq_token``; the answer is predicted at column 3."""
        import torch

        n = self.n_equations
        op = torch.full((n,), self.op_token, dtype=torch.int64)
        eq = torch.full((n,), self.eq_token, dtype=torch.int64)
        return torch.stack([self.x, op, self.y, eq], dim=1)

    def to_csv(self, stream: TextIO) -> None:
        write_csv(self.operation, self.x.numpy(), self.y.numpy(), self.result.numpy(), stream)


def write_csv(
    operation: Operation, x: np.ndarray, y: np.ndarray, result: np.ndarray, stream: TextIO
) -> None:
    """Write ``x,y,result`` and one row per equation, with element names (no quoting needed:
    names are digits only)."""
    names = operation.element_names
    stream.write("x,y,result\n")
    rows = zip(x.tolist(), y.tolist(), result.tolist())
    stream.writelines(f"{names[a]},{names[b]},{names[c]}\n" for a, b, c in rows)


def make_table(operation_name: str, modulus: int = 97, arch: str = "grokkit") -> Table:
    """Build the full table; raises grokkit.ops.OperationError for a bad name or modulus.

    ``arch="openai-grok"`` takes the authors' S5 products (grokkit.openai_grok: the left operand
    acts first); the modular tables are the same under both."""
    import torch  # here: `grokkit data` writes the table from table_arrays without waiting for it

    operation, x, y, result = table_arrays(operation_name, modulus, arch)
    return Table(operation, torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(result))


def table_arrays(
    operation_name: str, modulus: int = 97, arch: str = "grokkit"
) -> tuple[Operation, np.ndarray, np.ndarray, np.ndarray]:
    """``make_table``'s operation and its x, y and result columns, as int64 numpy arrays."""
    operation = get_operation(operation_name, modulus)  # refuses a table that cannot fit
    if operation.n_equations > SLOW_TABLE_EQUATIONS:
        warn(
            f"{table_size_text(operation.name, operation.modulus)}; every evaluation covers the "
            "whole table, so training will be slow"
        )
    x, y = operation.domain()
    if arch == "openai-grok" and operation.name in S5_OPERATIONS:
        from grokkit.openai_grok import s5_results

        _, compose, inverse = s5_tables()
        result = s5_results(operation.name, x, y, compose, inverse)
    else:
        result = operation.apply(x, y)
    return operation, x, y, result


def _generator(seed: int) -> torch.Generator:
    import torch

    return torch.Generator(device="cpu").manual_seed(int(seed))


def split_indices(
    n_equations: int, train_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random split of ``range(n_equations)`` into (train_idx, val_idx), each sorted, int64.

    ``n_train = round(train_fraction * n_equations)``; both parts must be non-empty, because a run
    without training data or without validation data cannot show grokking.
    """
    fraction = float(train_fraction)
    if math.isnan(fraction) or not 0.0 < fraction < 1.0:
        raise DataError(f"train fraction must be in (0, 1), got {train_fraction}")
    n_train = round(fraction * n_equations)
    if n_train < 1:
        raise DataError(
            f"train fraction {train_fraction} of {n_equations} equations"
            " leaves no training equations"
        )
    if n_train >= n_equations:
        raise DataError(
            f"train fraction {train_fraction} of {n_equations} equations"
            " leaves no validation equations"
        )
    import torch  # here, like every use of torch in this module: `grokkit data` needs none

    perm = torch.randperm(n_equations, generator=_generator(seed), dtype=torch.int64)
    return perm[:n_train].sort().values, perm[n_train:].sort().values


def outlier_pairs(n_train: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(victims, donors): 2k distinct training positions drawn with a private generator.

    Victim ``victims[i]`` receives the answer of ``donors[i]``.
    """
    if k < 0:
        raise DataError(f"number of outliers must be >= 0, got {k}")
    if 2 * k > n_train:
        raise DataError(
            f"{k} outliers need {2 * k} training equations; the training set has {n_train}"
        )
    import torch

    chosen = torch.randperm(n_train, generator=_generator(seed), dtype=torch.int64)[: 2 * k]
    return chosen[:k], chosen[k:]


def add_outliers(labels: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """Appendix A.4: give k random training equations the answers of k other training equations.

    ``labels`` are the training answers (1-D). Victims and donors are 2k distinct equations, drawn
    by :func:`outlier_pairs`; the result is a new tensor and ``labels`` is left untouched.

    A victim's new answer can equal its true answer (when the donor happens to share it). The
    paper's procedure allows this and we follow it literally, so fewer than k labels may actually
    change; validation labels are never touched.
    """
    if labels.dim() != 1:
        raise DataError(f"labels must be 1-D, got shape {tuple(labels.shape)}")
    victims, donors = outlier_pairs(int(labels.shape[0]), k, seed)
    noisy = labels.clone()
    noisy[victims] = labels[donors]
    return noisy
