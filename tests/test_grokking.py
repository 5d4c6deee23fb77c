"""End to end: a small configuration really groks — memorisation first, generalisation much
later."""

import pytest

from grokkit import runs
from grokkit.config import RunConfig
from grokkit.train import train_runs


def test_a_small_transformer_groks_modular_addition(tmp_path):
    cfg = RunConfig(
        operation="x+y",
        modulus=23,
        train_fraction=0.6,
        seed=0,
        steps=6000,
        eval_every=20,
        stop_after_val_99=20,
        d_model=64,
        n_heads=4,
        d_mlp=256,
    ).with_changes(lr=3e-3)  # groks at ~1,700 steps, 20x after it memorises (~80): ~20 s
    summary = train_runs([cfg], [tmp_path / "run"], progress=False)[0]
    rows = runs.read_metrics(tmp_path / "run")
    chance = 1 / 23

    assert summary["steps_to_train_99"] is not None, "it never fit its training set"
    assert summary["steps_to_val_99"] is not None, "it never generalised within 6000 steps"
    assert rows[0]["val_accuracy"] < 3 * chance, "the untrained model should be near chance"
    # Memorisation comes first: when training accuracy first reaches 99 %, validation is still low.
    at_memorised = next(r for r in rows if r["step"] == summary["steps_to_train_99"])
    assert at_memorised["val_accuracy"] < 0.5
    # ... and generalisation comes several times later in steps.
    assert summary["steps_to_val_99"] >= 4 * summary["steps_to_train_99"]
    assert summary["status"] == "stopped_early" and summary["val_accuracy"] >= 0.99
    assert summary["train_accuracy"] >= 0.99


@pytest.mark.slow
def test_the_paper_recipe_groks_modular_division(tmp_path):
    """The demo's run: x/y mod 97 at 50 % data, every default of the paper (about a minute)."""
    cfg = RunConfig(steps=8000, stop_after_val_99=1)
    summary = train_runs([cfg], [tmp_path / "run"], progress=False)[0]
    assert summary["steps_to_train_99"] is not None and summary["steps_to_val_99"] is not None
    assert summary["steps_to_val_99"] >= 4 * summary["steps_to_train_99"]
