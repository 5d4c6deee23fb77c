"""Tables, splits and outliers."""

from __future__ import annotations

import io
from collections import Counter

import pytest
import torch

from grokkit.data import DataError, add_outliers, make_table, outlier_pairs, split_indices
from grokkit.ops import OperationError


def test_table_tokens_and_vocabulary() -> None:
    table = make_table("x+y", 7)
    assert table.n_equations == 49 and table.n_elements == 7
    assert table.op_token == 7 and table.eq_token == 8 and table.vocab_size == 9
    assert len(table.vocabulary) == 9 and len(set(table.vocabulary)) == 9
    assert table.vocabulary[:7] == tuple(str(v) for v in range(7))
    assert table.vocabulary[8] == "="
    tokens = table.tokens()
    assert tokens.dtype == torch.int64 and tokens.shape == (49, 4)
    assert (tokens[:, 0] == table.x).all() and (tokens[:, 2] == table.y).all()
    assert (tokens[:, 1] == 7).all() and (tokens[:, 3] == 8).all()
    assert tokens[3 * 7 + 5].tolist() == [3, 7, 5, 8]
    assert int(table.result[3 * 7 + 5]) == 1  # 3 + 5 = 8 = 1 mod 7
    for t in (table.x, table.y, table.result):
        assert t.dtype == torch.int64


def test_table_sizes() -> None:
    assert make_table("x/y").n_equations == 97 * 96
    assert make_table("x-y").n_equations == 97 * 97
    s5 = make_table("s5_xyx")
    assert s5.n_equations == 14400 and s5.vocab_size == 122


def test_make_table_bad_input() -> None:
    with pytest.raises(OperationError):
        make_table("x/y", 12)


def test_csv_modular() -> None:
    table = make_table("x/y", 7)
    buf = io.StringIO()
    table.to_csv(buf)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "x,y,result"
    assert len(lines) == 1 + 7 * 6
    assert "3,5,2" in lines  # 5^-1 = 3 mod 7, 3 * 3 = 9 = 2
    assert "6,1,6" in lines
    assert not any(line.split(",")[1] == "0" for line in lines[1:])


def test_csv_s5() -> None:
    buf = io.StringIO()
    make_table("s5_xy").to_csv(buf)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "x,y,result" and len(lines) == 14401
    assert lines[1] == "01234,01234,01234"
    assert "10234,02134,12034" in lines  # (x·y)(i) = x(y(i))


@pytest.mark.parametrize("n, fraction", [(9409, 0.3), (100, 0.5), (10, 0.05 + 0.1)])
def test_split_partition(n: int, fraction: float) -> None:
    train, val = split_indices(n, fraction, seed=3)
    assert train.dtype == torch.int64 and val.dtype == torch.int64
    assert len(train) == round(fraction * n) and len(val) == n - len(train)
    assert (train[1:] > train[:-1]).all() and (val[1:] > val[:-1]).all()
    assert sorted(torch.cat([train, val]).tolist()) == list(range(n))


def test_split_deterministic_and_seeded() -> None:
    a = split_indices(1000, 0.4, seed=7)
    torch.manual_seed(123)
    torch.rand(10)
    b = split_indices(1000, 0.4, seed=7)
    torch.manual_seed(999)
    c = split_indices(1000, 0.4, seed=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_split_does_not_touch_global_rng() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    split_indices(1000, 0.4, seed=7)
    add_outliers(torch.arange(100), 10, seed=1)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.1, float("nan")])
def test_split_bad_fraction(fraction: float) -> None:
    with pytest.raises(DataError, match=r"train fraction must be in \(0, 1\)"):
        split_indices(100, fraction, seed=0)


def test_split_empty_side() -> None:
    with pytest.raises(DataError, match="no training"):
        split_indices(10, 0.01, seed=0)
    with pytest.raises(DataError, match="no validation"):
        split_indices(10, 0.99, seed=0)


def test_outlier_semantics() -> None:
    table = make_table("x+y", 97)
    train, _ = split_indices(table.n_equations, 0.5, seed=0)
    labels = table.result[train]
    original = labels.clone()
    k = 100
    noisy = add_outliers(labels, k, seed=5)
    assert torch.equal(labels, original)  # input untouched
    victims, donors = outlier_pairs(len(labels), k, seed=5)
    assert len(victims) == len(donors) == k
    assert len(set(victims.tolist()) | set(donors.tolist())) == 2 * k
    assert torch.equal(noisy[victims], original[donors])
    assert Counter(noisy[victims].tolist()) == Counter(original[donors].tolist())
    others = torch.ones(len(labels), dtype=torch.bool)
    others[victims] = False
    assert torch.equal(noisy[others], original[others])
    changed = int((noisy != original).sum())
    assert changed == int((original[victims] != original[donors]).sum()) <= k


def test_outliers_change_exactly_k_when_answers_differ() -> None:
    labels = torch.arange(50)  # all distinct, so every victim really changes
    assert int((add_outliers(labels, 20, seed=1) != labels).sum()) == 20
    assert int((add_outliers(labels, 25, seed=2) != labels).sum()) == 25  # 2k == n_train


def test_outliers_deterministic() -> None:
    labels = torch.arange(200) % 13
    torch.manual_seed(1)
    a = add_outliers(labels, 30, seed=4)
    torch.manual_seed(2)
    b = add_outliers(labels, 30, seed=4)
    assert torch.equal(a, b)
    assert not torch.equal(outlier_pairs(200, 30, 4)[0], outlier_pairs(200, 30, 5)[0])


def test_outliers_zero_is_copy() -> None:
    labels = torch.arange(10)
    out = add_outliers(labels, 0, seed=0)
    assert torch.equal(out, labels) and out.data_ptr() != labels.data_ptr()


def test_outliers_bad_k() -> None:
    message = "6 outliers need 12 training equations; the training set has 11"
    with pytest.raises(DataError, match=message):
        add_outliers(torch.arange(11), 6, seed=0)
    with pytest.raises(DataError):
        add_outliers(torch.arange(11), -1, seed=0)
