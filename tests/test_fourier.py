"""Fourier progress measures (grokkit.analysis.fourier, Nanda et al. 2023) and ``grokkit analyze
fourier``: the definitions on constructed logits and curves whose answers are known, then the
measures of tiny real runs (x+y mod 11, tens of steps) checked against the weights they come from.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from cli_harness import run_cli
from conftest import tiny_run

from grokkit.analysis.fourier import (
    CURVE_COLUMNS,
    basis_norms,
    excluded_logits,
    fall_step,
    fourier_basis,
    frequency_norms,
    gini,
    key_frequencies,
    phase_boundaries,
    progress_measures,
    restricted_logits,
    write_progress_measures,
)
from grokkit.api import load_run
from grokkit.errors import InputError
from grokkit.losses import LOSSES
from grokkit.train import train_runs

P = 13
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def answer_offsets(p: int) -> torch.Tensor:
    """A constant per answer column: the part of the logits that does not depend on (x, y)."""
    return torch.linspace(-1.0, 2.0, p, dtype=torch.float64)


def fourier_logits(amplitudes: dict[int, float], p: int = P) -> torch.Tensor:
    """Logits [p*p, p] of all pairs (x slowest) that are exactly sum_k a_k cos(2πk(x+y-z)/p), plus
    a constant per answer z."""
    x = torch.arange(p, dtype=torch.float64)
    X, Y, Z = torch.meshgrid(x, x, x, indexing="ij")
    logits = sum(a * torch.cos(2 * math.pi * k * (X + Y - Z) / p) for k, a in amplitudes.items())
    return logits.reshape(p * p, p) + answer_offsets(p)


def answers(p: int = P) -> torch.Tensor:
    row = torch.arange(p * p)
    return (row // p + row % p) % p


# ---------------------------------------------------------------- the basis and its norms


@pytest.mark.parametrize("p", [2, 7, 10, 13])
def test_the_fourier_basis_is_orthonormal_for_odd_and_even_p(p):
    basis, frequency_of_row = fourier_basis(p)
    assert basis.shape == (p, p)
    assert torch.allclose(basis @ basis.T, torch.eye(p, dtype=torch.float64), atol=1e-12)
    pairs = [k for k in range(1, (p - 1) // 2 + 1) for _ in "cs"]  # a cosine and a sine each
    expected = [0, *pairs] + ([p // 2] if p % 2 == 0 else [])  # even p: the cosine of p/2 alone
    assert frequency_of_row == expected


def test_frequency_norms_sit_at_the_frequency_a_matrix_is_built_from():
    x = torch.arange(P, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 5, generator=g, dtype=torch.float64)
    angle = 2 * math.pi * 3 * x / P
    M = torch.outer(torch.cos(angle), a) + torch.outer(torch.sin(angle), b)
    norms = frequency_norms(M)
    assert norms.shape == (P // 2 + 1,)
    assert norms[3] == pytest.approx(float(M.norm()), rel=1e-12)
    assert float(norms[torch.arange(len(norms)) != 3].abs().max()) < 1e-12
    assert float(frequency_norms(torch.ones(P, 4, dtype=torch.float64))[1:].abs().max()) < 1e-12


def test_basis_norms_keep_the_cosine_and_the_sine_of_a_frequency_apart():
    x = torch.arange(P, dtype=torch.float64)
    norms = basis_norms(torch.sin(2 * math.pi * 2 * x / P))
    sine_of_2 = 4  # rows: constant, cos 1, sin 1, cos 2, sin 2, ...
    assert norms[sine_of_2] == pytest.approx(math.sqrt(P / 2), rel=1e-12)
    assert float(norms[torch.arange(P) != sine_of_2].max()) < 1e-12


def test_gini_is_zero_for_equal_values_and_n_minus_1_over_n_for_a_single_one():
    assert gini([2.5] * 8) == pytest.approx(0.0, abs=1e-15)
    assert gini([0, 0, 3.0, 0, 0, 0, 0, 0]) == pytest.approx(7 / 8)
    assert gini(torch.tensor([1.0, 2.0, 3.0])) == pytest.approx(gini([10, 20, 30]))  # scale-free
    assert gini([0.0, 0.0]) == 0.0
    with pytest.raises(ValueError):
        gini([1.0, -1.0])


# ---------------------------------------------------------------- key, restricted and excluded


@pytest.mark.parametrize("amplitudes", [{2: 3.0, 5: 1.0}, {1: 1.0, 4: 1.0, 6: 1.0}])
def test_key_frequencies_are_exactly_those_the_logits_are_built_from(amplitudes):
    assert key_frequencies(fourier_logits(amplitudes), P) == sorted(amplitudes)


def test_the_energy_fraction_keeps_the_fewest_strongest_frequencies():
    logits = fourier_logits({2: 3.0, 5: 1.0})  # energies 9 : 1
    assert key_frequencies(logits, P, energy=0.5) == [2]
    assert key_frequencies(logits, P, energy=0.95) == [2, 5]
    assert key_frequencies(logits, P, energy=1.0) == [2, 5]  # rounding noise is no frequency
    assert key_frequencies(answer_offsets(P).expand(P * P, P), P) == []  # nothing varies with x+y


@pytest.mark.parametrize("loss", ["softmax", "stablemax"])
def test_restricting_a_pure_fourier_model_to_its_frequencies_changes_nothing(loss):
    logits, keys = fourier_logits({2: 3.0, 5: 1.0}), [2, 5]
    restricted = restricted_logits(logits, P, keys)
    assert torch.allclose(restricted, logits, atol=1e-12)
    full, kept = LOSSES[loss](logits, answers()).mean(), LOSSES[loss](restricted, answers()).mean()
    assert float(kept) == pytest.approx(float(full), rel=1e-12)


def test_excluding_its_frequencies_leaves_a_pure_fourier_model_its_constant_part():
    excluded = excluded_logits(fourier_logits({2: 3.0, 5: 1.0}), P, [2, 5])
    assert torch.allclose(excluded, answer_offsets(P).expand(P * P, P), atol=1e-12)


def test_restricted_and_excluded_logits_add_up_to_the_logits_plus_their_mean():
    logits = torch.randn(P * P, P, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    both = restricted_logits(logits, P, [1, 3]) + excluded_logits(logits, P, [1, 3])
    assert torch.allclose(both, logits + logits.mean(dim=0), atol=1e-12)


@pytest.mark.parametrize("keys", [[0], [P // 2 + 1], [2, 2], [2.5]])
def test_bad_key_frequencies_are_refused(keys):
    with pytest.raises(InputError):
        restricted_logits(fourier_logits({2: 1.0}), P, keys)


# ---------------------------------------------------------------- phases and falls


def curves(excluded, test) -> pd.DataFrame:
    return pd.DataFrame(
        {"step": [10 * i for i in range(len(test))], "excluded_loss": excluded, "test_loss": test}
    )


def test_phase_boundaries_follow_the_excluded_and_the_test_loss():
    #          step:  0    10   20   30   40   50   60   70    80    90    100
    excluded = [2.5, 1.0, 0.2, 0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    test = [2.5, 5.0, 8.0, 10.0, 9.0, 4.0, 0.9, 0.1, 0.015, 0.012, 0.01]
    assert phase_boundaries(curves(excluded, test)) == {
        "memorisation_end": 20,  # the smallest excluded loss
        "cleanup_start": 60,  # first at most a tenth of the running maximum (10 at step 30)
        "cleanup_end": 80,  # within 2x of the final 0.01 from here on
    }
    dipped = test[:8] + [0.002, 0.012, 0.01]  # below half the final value counts as unsettled too
    assert phase_boundaries(curves(excluded, dipped))["cleanup_end"] == 90


def test_phase_boundaries_not_reached_are_none():
    falling = [3.0, 2.0, 1.0, 0.5, 0.2]
    assert phase_boundaries(curves(falling, [3.0] * 5)) == dict.fromkeys(
        ["memorisation_end", "cleanup_start", "cleanup_end"]
    )  # excluded loss never rose
    never_falls = phase_boundaries(curves([3.0, 1.0, 2.0, 3.0, 3.0], [3.0, 4.0, 5.0, 2.0, 1.0]))
    assert never_falls == {"memorisation_end": 10, "cleanup_start": None, "cleanup_end": None}
    still_falling = phase_boundaries(curves([3.0, 1.0, 2.0, 3.0, 3.0], [3.0, 5.0, 0.4, 0.1, 0.01]))
    assert still_falling == {"memorisation_end": 10, "cleanup_start": 20, "cleanup_end": None}


def test_fall_step_is_where_a_curve_crosses_the_geometric_mean_of_its_peak_and_end():
    steps = [0, 10, 20, 30, 40, 50]
    assert fall_step(steps, [1.0, 4.0, 4.0, 2.0, 1.0, 0.25]) == 40  # sqrt(4 * 0.25) = 1: a start
    assert fall_step(steps, [9.0, 4.0, 4.0, 2.0, 1.0, 0.25], after=10) == 40  # at 1 is no fall
    assert fall_step(steps, [1.0, 2.0, 3.0, 3.0, 3.0, 3.0]) is None  # never fell
    assert fall_step(steps, [4.0, 4.0, 0.5, 0.25, 16.0, 0.25]) == 20  # a late spike: threshold 2


# ---------------------------------------------------------------- tiny real runs


def train_tiny(folder, **changes):
    config = tiny_run(**{"steps": 40, "eval_every": 10, "checkpoint_every": 20, **changes})
    train_runs([config], [folder], progress=False)
    return folder


@pytest.fixture(scope="module")
def addition_run(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("fourier") / "add", snapshot_every=10)


@pytest.fixture(scope="module")
def measures(addition_run):
    return progress_measures(load_run(addition_run))


def test_the_curves_have_one_row_per_snapshot(addition_run, measures):
    assert list(measures.curves.columns) == list(CURVE_COLUMNS)
    steps = measures.curves["step"].tolist()
    assert steps == load_run(addition_run).snapshot_steps == [0, 10, 20, 30, 40]
    assert measures.embed_norms.shape == (11 // 2 + 1,)
    assert set(measures.phases) == {"memorisation_end", "cleanup_start", "cleanup_end"}


def test_losses_and_weight_norm_equal_those_recomputed_from_the_weights(addition_run, measures):
    run = load_run(addition_run)
    model = run.model(40)
    logits = model.logits()[:, :11].double()  # the element answers
    train, test = run.split()
    result = run.table.result
    last = measures.curves.iloc[-1]
    train_loss = float(F.cross_entropy(logits[train], result[train]))
    test_loss = float(F.cross_entropy(logits[test], result[test]))
    assert last["train_loss"] == pytest.approx(train_loss, rel=1e-9)
    assert last["test_loss"] == pytest.approx(test_loss, rel=1e-9)
    hits = (logits[test].argmax(dim=1) == result[test]).double()
    assert last["test_accuracy"] == pytest.approx(float(hits.mean()))
    weights_sq = sum(float(w.double().pow(2).sum()) for w in model.weights.values())
    assert last["weight_norm_sq"] == pytest.approx(weights_sq, rel=1e-12)
    logged = run.metrics.set_index("step").loc[40, "weight_norm"]  # metrics.csv records its root
    assert last["weight_norm_sq"] == pytest.approx(float(logged) ** 2, rel=1e-5)


def test_given_key_frequencies_are_the_ones_restricted_to(addition_run):
    run = load_run(addition_run)
    given = progress_measures(run, key_freqs=[4, 1])
    assert given.key_freqs == [1, 4] and given.key_source == "given"
    logits = run.model(40).logits()[:, :11].double()
    restricted = F.cross_entropy(restricted_logits(logits, 11, [1, 4]), run.table.result)
    assert given.curves.iloc[-1]["restricted_loss"] == pytest.approx(float(restricted), rel=1e-9)


def test_the_files_hold_the_curves_the_key_frequencies_and_the_phases(measures, tmp_path):
    paths = write_progress_measures(measures, tmp_path / "out")
    assert [p.name for p in paths] == ["fourier.csv", "fourier.json", "fourier.png", "fourier.pdf"]
    pd.testing.assert_frame_equal(pd.read_csv(paths[0]), measures.curves, check_dtype=False)
    saved = json.loads(paths[1].read_text())
    assert saved["key_freqs"] == measures.key_freqs and saved["phases"] == measures.phases
    assert set(saved["fall_steps"]) == {"after", "restricted_loss", "test_loss"}
    assert paths[2].read_bytes().startswith(PNG_MAGIC) and paths[3].stat().st_size > 0


# ---------------------------------------------------------------- the command


def assert_one_line_error(code: int, err: str, keyword: str) -> None:
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("grokkit: error:"), err
    assert keyword in lines[0], (keyword, err)


def test_the_command_writes_the_measures_and_says_what_it_found(capsys, addition_run, tmp_path):
    code, out, err = run_cli(
        capsys,
        "analyze",
        "fourier",
        addition_run,
        "--key-freqs",
        "2,5",
        "--out",
        tmp_path / "measures",
    )
    assert code == 0, err
    assert "key frequencies: 2, 5 (given" in out and "phases:" in out and "falls:" in out
    for name in ("fourier.csv", "fourier.json", "fourier.png", "fourier.pdf"):
        assert (tmp_path / "measures" / name).is_file(), name
    assert json.loads((tmp_path / "measures" / "fourier.json").read_text())["key_freqs"] == [2, 5]


@pytest.mark.parametrize(
    "flag, keyword",
    [("0", "outside 1..5"), ("6", "outside 1..5"), ("a,b", "integers"), ("3,3", "differ")],
)
def test_the_command_refuses_bad_key_frequencies_in_one_line(
    capsys, addition_run, tmp_path, flag, keyword
):
    code, _, err = run_cli(
        capsys, "analyze", "fourier", addition_run, "--key-freqs", flag, "--out", tmp_path
    )
    assert_one_line_error(code, err, keyword)
    assert not (tmp_path / "fourier.csv").exists()


def test_the_command_refuses_runs_it_cannot_measure_in_one_line(capsys, tmp_path):
    subtraction = train_tiny(tmp_path / "sub", operation="x-y", steps=10, snapshot_every=10)
    no_snapshots = train_tiny(tmp_path / "plain", steps=10)
    for folder, keyword in [
        (subtraction, "x+y"),
        (no_snapshots, "--snapshot-every"),
        (tmp_path / "missing", "missing"),
    ]:
        code, _, err = run_cli(capsys, "analyze", "fourier", folder)
        assert_one_line_error(code, err, keyword)
    assert not any(tmp_path.rglob("fourier.*"))
