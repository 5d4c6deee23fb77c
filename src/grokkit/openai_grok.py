"""The authors' released experiment (github.com/openai/grok), as ``--arch openai-grok`` runs it.

grokkit's default model follows the paper's text; this module holds what the authors' code does
differently outside the network itself (the network is ``grokkit.model``'s ``openai-grok`` arch).
Read from grok/data.py and grok/training.py:

* **Tokens.** Every equation is ``<|eos|> x op y = c <|eos|>``. The model reads the first six
  tokens and is scored on every token after ``=``: the answer ``c`` and the closing ``<|eos|>``;
  an equation is correct only when both are. One vocabulary serves every operation:
  ``<|eos|>``, ``=``, the twenty operator strings of their ``VALID_OPERATORS`` in sorted order,
  the numbers ``0 .. 96`` and the 120 permutations of S5 in ``itertools.permutations`` order, 239
  tokens. Their modulus is fixed at 97; for another p grokkit writes the numbers ``0 .. p-1``.
* **S5.** Their ``s5`` is ``c = b[a]`` on one-line arrays: ``c(i) = b(a(i))``, the *left* operand
  acts first, the opposite of grokkit's ``x(y(i))``. Their ``s5conj`` is sympy's ``a*b*~a``, and
  sympy multiplies left to right (``(p*q)(i) = q(p(i))``), so ``c = a^-1 ∘ b ∘ a``; ``s5aba`` is
  ``a ∘ b ∘ a`` in either convention.
* **Split.** The equations listed in their order (operands in ``itertools.product`` order; for
  division the list runs over (answer, divisor) pairs and writes ``b*c / b = c``), shuffled by
  ``np.random.RandomState(seed).shuffle``, the first ``round(N * fraction)`` trained on. Their code
  always uses seed 0, whatever the run's seed; grokkit uses the run's split seed (0 reproduces
  their split exactly).
* **Batches.** ``min(512, ceil(N_train / 2))`` (grokkit's rule too), but each epoch is a fresh
  permutation cut into batches with a smaller last batch, not an endless stream of equal batches.
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from grokkit.errors import ConfigError

if TYPE_CHECKING:
    import torch

ARCH = "openai-grok"
SEQUENCE_LENGTH = 6  # <eos> x op y = c  (the closing <eos> is only ever a target)
ANSWER_POSITIONS = (4, 5)  # the logits read: at "=" (predicts c) and at c (predicts <eos>)
EOS_TOKEN, EQ_TOKEN = 0, 1

# grok/data.py VALID_OPERATORS keys: tokens of the shared vocabulary, in their file's order.
_THEIR_OPERATORS = (
    "+",
    "-",
    "*",
    "/",
    "**2+",
    "**3+",
    "x**2+y**2_mod_97",
    "x**2+y**2+x*y_mod_97",
    "x**2+y**2+x*y+x_mod_97",
    "x**3+x*y_mod_97",
    "x**3+x*y**2+y_mod_97",
    "(x._value//y)if(y._value%2==1)else(x-y)_mod_97",
    "s5",
    "s5conj",
    "s5aba",
    "+*",
    "+-",
    "sort",
    "reverse",
    "copy",
)
OPERATOR_TOKENS = tuple(sorted(_THEIR_OPERATORS))

# grokkit's operation -> the operator string their dataset uses for it.
THEIR_OPERATOR = {
    "x+y": "+",
    "x-y": "-",
    "x/y": "/",
    "x*y": "*",
    "x/y_or_x-y": "(x._value//y)if(y._value%2==1)else(x-y)_mod_97",
    "x^2+y^2": "x**2+y**2_mod_97",
    "x^2+xy+y^2": "x**2+y**2+x*y_mod_97",
    "x^2+xy+y^2+x": "x**2+y**2+x*y+x_mod_97",
    "x^3+xy": "x**3+x*y_mod_97",
    "x^3+xy^2+y": "x**3+x*y**2+y_mod_97",
    "s5_xy": "s5",
    "s5_xyx^-1": "s5conj",
    "s5_xyx": "s5aba",
}
THEIR_MODULUS = 97
N_PERMUTATIONS = 120


def numbers_in_vocabulary(modulus: int | None) -> int:
    """How many number tokens the vocabulary holds: their 97, or p for another modulus."""
    return THEIR_MODULUS if modulus is None else max(modulus, 1)


def vocabulary(operation: str, modulus: int | None) -> tuple[str, ...]:
    """Every token name, in id order (239 tokens for p = 97)."""
    numbers = [
        str(i)
        for i in range(numbers_in_vocabulary(None if operation.startswith("s5") else modulus))
    ]
    perms = ["".join(map(str, p)) for p in itertools.permutations(range(5))]
    return ("<|eos|>", "=", *OPERATOR_TOKENS, *numbers, *perms)


def token_layout(operation: str, modulus: int | None) -> tuple[int, int, int]:
    """(vocabulary size, id of element 0, id of the operator) for one operation: element i is
    token ``first + i`` (numbers for modular operations, permutations for S5)."""
    if operation not in THEIR_OPERATOR:
        raise ConfigError(f"--arch {ARCH} has no token for the operation {operation!r}")
    n_numbers = numbers_in_vocabulary(None if operation.startswith("s5") else modulus)
    first_number = 2 + len(OPERATOR_TOKENS)
    size = first_number + n_numbers + N_PERMUTATIONS
    first = first_number + n_numbers if operation.startswith("s5") else first_number
    return size, first, 2 + OPERATOR_TOKENS.index(THEIR_OPERATOR[operation])


def position_encoding(length: int, d_model: int) -> torch.Tensor:
    """grok/transformer.py ``_position_encoding``: sin(pos / 10000^(i/d)) at even i,
    cos(pos / 10000^((i-1)/d)) at odd i; computed in float64 and cast to float32 as their
    ``.float()`` does. [length, d_model]."""
    pos = np.arange(length, dtype=np.float64)[:, None]
    i = np.arange(d_model)
    even = i - (i % 2)
    angle = pos / np.power(10000.0, even / d_model)
    table = np.where(i % 2 == 0, np.sin(angle), np.cos(angle))
    import torch  # here, not at the top: grokkit.config reads this module without PyTorch

    return torch.from_numpy(table).float()


def s5_results(
    operation: str, x: np.ndarray, y: np.ndarray, compose: np.ndarray, inverse: np.ndarray
) -> np.ndarray:
    """Their S5 tables on grokkit's element indices. ``compose[a, b]`` is a∘b (b first)."""
    if operation == "s5_xy":  # c = b[a]: c(i) = b(a(i)) = (y ∘ x)(i)
        return compose[y, x]
    if operation == "s5_xyx^-1":  # sympy a*b*~a: a first, then b, then a^-1
        return compose[compose[inverse[x], y], x]
    return compose[compose[x, y], x]  # s5aba: a ∘ b ∘ a


@lru_cache(maxsize=8)
def _their_order(operation: str, n_elements: int) -> np.ndarray:
    """grokkit table rows in the order their ``_make_binary_operation_data`` lists equations."""
    n = n_elements
    if operation in ("x/y", "x*y"):
        # grokkit's table: x in 0..p-1, y in 1..p-1, row x*(p-1) + (y-1).
        c, b = np.divmod(np.arange(n * n, dtype=np.int64), n)
        keep = b != 0
        c, b = c[keep], b[keep]
        if operation == "x/y":  # "b*c / b = c": the dividend is b*c
            x = (b * c) % n
        else:  # theirs has no x*y table on 0 < y; list the product order (c = x here)
            x = c
        return x * (n - 1) + (b - 1)
    return np.arange(n * n, dtype=np.int64)


def split_indices(
    operation: str, n_elements: int, n_equations: int, train_fraction: float, seed: int
):
    """(train_idx, val_idx) as their ``ArithmeticDataset.splits`` draws them, sorted, int64."""
    order = _their_order(operation, n_elements)
    if len(order) != n_equations:
        raise ValueError(
            f"{operation}: {len(order)} equations in their order, the table has {n_equations}"
        )
    shuffled = order.copy()
    np.random.RandomState(seed).shuffle(shuffled)
    n_train = round(n_equations * train_fraction)  # theirs: round(len * (pct / 100.0))
    import torch  # here, not at the top: grokkit.config reads this module without PyTorch

    train = torch.from_numpy(np.sort(shuffled[:n_train]))
    val = torch.from_numpy(np.sort(shuffled[n_train:]))
    return train, val
