"""The operation tables against independent plain-Python computations."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from grokkit.ops import OPERATION_NAMES, PAPER_OPERATIONS, OperationError, get_operation, is_prime

MODULAR = [n for n in OPERATION_NAMES if not n.startswith("s5_")]
S5 = [n for n in OPERATION_NAMES if n.startswith("s5_")]


def brute_inverse(y: int, p: int) -> int:
    return next(v for v in range(p) if (v * y) % p == 1)


def reference_modular(name: str, x: int, y: int, p: int) -> int | None:
    """Plain-Python x ∘ y mod p; None where (x, y) is outside the domain."""
    if name == "x+y":
        return (x + y) % p
    if name == "x-y":
        return (x - y) % p
    if name == "x/y":
        return None if y == 0 else (x * brute_inverse(y, p)) % p
    if name == "x*y":  # Grokfast's table: 0 < y < p
        return None if y == 0 else (x * y) % p
    if name == "x/y_or_x-y":
        return (x * brute_inverse(y, p)) % p if y % 2 == 1 else (x - y) % p
    if name == "x^2+y^2":
        return (x**2 + y**2) % p
    if name == "x^2+xy+y^2":
        return (x**2 + x * y + y**2) % p
    if name == "x^2+xy+y^2+x":
        return (x**2 + x * y + y**2 + x) % p
    if name == "x^3+xy":
        return (x**3 + x * y) % p
    if name == "x^3+xy^2+y":
        return (x**3 + x * y**2 + y) % p
    raise AssertionError(name)


PERMS = list(itertools.permutations(range(5)))


def compose(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """(a·b)(i) = a(b(i)): b first."""
    return tuple(a[b[i]] for i in range(5))


def invert(a: tuple[int, ...]) -> tuple[int, ...]:
    return next(q for q in PERMS if compose(a, q) == (0, 1, 2, 3, 4))


def reference_s5(name: str, x: tuple[int, ...], y: tuple[int, ...]) -> tuple[int, ...]:
    if name == "s5_xy":
        return compose(x, y)
    if name == "s5_xyx^-1":
        return compose(compose(x, y), invert(x))
    if name == "s5_xyx":
        return compose(compose(x, y), x)
    raise AssertionError(name)


def test_names_in_paper_order() -> None:
    assert OPERATION_NAMES == (*PAPER_OPERATIONS, "x*y")
    assert PAPER_OPERATIONS == (
        "x+y",
        "x-y",
        "x/y",
        "x/y_or_x-y",
        "x^2+y^2",
        "x^2+xy+y^2",
        "x^2+xy+y^2+x",
        "x^3+xy",
        "x^3+xy^2+y",
        "s5_xy",
        "s5_xyx^-1",
        "s5_xyx",
    )


@pytest.mark.parametrize("p", [7, 97])
@pytest.mark.parametrize("name", MODULAR)
def test_modular_table_matches_reference(name: str, p: int) -> None:
    op = get_operation(name, p)
    assert op.modulus == p
    assert op.element_names == tuple(str(v) for v in range(p))
    x, y = op.domain()
    assert x.dtype == np.int64 and y.dtype == np.int64
    expected_pairs = [
        (a, b) for a in range(p) for b in range(p) if reference_modular(name, a, b, p) is not None
    ]
    assert list(zip(x.tolist(), y.tolist())) == expected_pairs  # row-major, x then y
    assert len(expected_pairs) == (p * (p - 1) if name in ("x/y", "x*y") else p * p)
    result = op.apply(x, y)
    assert result.tolist() == [reference_modular(name, a, b, p) for a, b in expected_pairs]


@pytest.mark.parametrize("name", S5)
def test_s5_table_matches_reference(name: str) -> None:
    op = get_operation(name)
    assert op.modulus is None
    assert op.element_names == tuple("".join(map(str, q)) for q in PERMS)
    x, y = op.domain()
    assert len(x) == 14400
    result = op.apply(x, y)
    inv_cache = {q: invert(q) for q in PERMS}
    for a, b, c in zip(x.tolist(), y.tolist(), result.tolist()):
        px, py = PERMS[a], PERMS[b]
        if name == "s5_xyx^-1":
            want = compose(compose(px, py), inv_cache[px])
        else:
            want = reference_s5(name, px, py)
        assert PERMS[c] == want


def test_s5_modulus_is_ignored() -> None:
    assert get_operation("s5_xy", 10) == get_operation("s5_xy", 97)


def test_s5_one_line_naming_and_convention() -> None:
    op = get_operation("s5_xy")
    names = op.element_names
    assert names[0] == "01234"  # identity first
    swap01 = names.index("10234")  # 0->1, 1->0
    assert PERMS[swap01] == (1, 0, 2, 3, 4)
    # x = (0 1), y = (1 2): x(y(0)) = x(0) = 1, x(y(1)) = x(2) = 2, x(y(2)) = x(1) = 0.
    x, y = names.index("10234"), names.index("02134")
    assert names[int(op.apply(np.array([x]), np.array([y]))[0])] == "12034"
    # The other order gives a different answer, so the convention is really pinned down.
    assert names[int(op.apply(np.array([y]), np.array([x]))[0])] == "20134"


def test_s5_group_axioms() -> None:
    op = get_operation("s5_xy")
    x, y = op.domain()
    table = op.apply(x, y).reshape(120, 120)
    assert set(table.ravel().tolist()) <= set(range(120))  # closure
    e = 0
    assert (table[e, :] == np.arange(120)).all() and (table[:, e] == np.arange(120)).all()
    for a in range(120):  # every element has a two-sided inverse
        (inverses,) = np.nonzero(table[a] == e)
        assert len(inverses) == 1 and table[inverses[0], a] == e
    for row in table:  # Latin square: each row is a permutation
        assert sorted(row.tolist()) == list(range(120))
    rng = random.Random(0)
    for _ in range(500):
        a, b, c = (rng.randrange(120) for _ in range(3))
        assert table[table[a, b], c] == table[a, table[b, c]]


def test_s5_conjugation_and_xyx_consistent_with_product() -> None:
    xy = get_operation("s5_xy")
    x, y = xy.domain()
    mul = xy.apply(x, y).reshape(120, 120)
    inv = np.array([int(np.nonzero(mul[a] == 0)[0][0]) for a in range(120)])
    conj = get_operation("s5_xyx^-1").apply(x, y)
    assert (conj == mul[mul[x, y], inv[x]]).all()
    xyx = get_operation("s5_xyx").apply(x, y)
    assert (xyx == mul[mul[x, y], x]).all()


def test_composite_modulus_fine_for_non_division() -> None:
    op = get_operation("x+y", 10)
    x, y = op.domain()
    assert len(x) == 100
    assert op.apply(np.array([7]), np.array([5])).tolist() == [2]
    cubic = get_operation("x^3+xy^2+y", 4)
    assert cubic.apply(np.array([3]), np.array([3])).tolist() == [(27 + 27 + 3) % 4]


def test_large_modulus_does_not_overflow() -> None:
    p = 10007
    op = get_operation("x^3+xy^2+y", p)
    a, b = np.array([p - 1, 1234]), np.array([p - 2, p - 1])
    expected = [reference_modular("x^3+xy^2+y", int(u), int(v), p) for u, v in zip(a, b)]
    assert op.apply(a, b).tolist() == expected


def test_unknown_operation() -> None:
    with pytest.raises(
        OperationError,
        match=r"unknown operation 'x%y' \(did you mean 'x/y'\?\); choose one of: x\+y, x-y",
    ):
        get_operation("x%y")


def test_multiplication_is_grokfast_table() -> None:
    """x*y mod 97 as in the Grokfast code: 97 * 96 equations, y from 1, any modulus (even 96)."""
    op = get_operation("x*y", 97)
    x, y = op.domain()
    assert op.n_equations == len(x) == 97 * 96 and y.min() == 1
    assert get_operation("x*y", 96).n_equations == 96 * 95
    with pytest.raises(OperationError, match="x\\*y is defined on 0 < y < p; got y = 0"):
        op.apply(np.array([3]), np.array([0]))


@pytest.mark.parametrize("name", ["x/y", "x/y_or_x-y"])
def test_division_needs_prime(name: str) -> None:
    with pytest.raises(OperationError, match=rf"{name} needs a prime modulus; 96 is not prime"):
        get_operation(name, 96)


@pytest.mark.parametrize("name", ["x+y", "x/y", "x^2+y^2"])
@pytest.mark.parametrize("modulus", [1, 0, -5])
def test_modulus_too_small(name: str, modulus: int) -> None:
    with pytest.raises(OperationError, match=rf"modulus must be >= 2, got {modulus}"):
        get_operation(name, modulus)


def test_errors_are_value_errors_and_one_line() -> None:
    with pytest.raises(ValueError) as info:
        get_operation("nope")
    assert "\n" not in str(info.value)


def test_division_by_zero_rejected_in_apply() -> None:
    with pytest.raises(OperationError):
        get_operation("x/y", 7).apply(np.array([1]), np.array([0]))


def test_is_prime() -> None:
    brute = [n for n in range(200) if n >= 2 and all(n % d for d in range(2, n))]
    assert [n for n in range(200) if is_prime(n)] == brute
