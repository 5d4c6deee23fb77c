"""Each run setting is declared once, on its field (grokkit.settings): the flags of ``train`` and
``sweep``, their help and the README's flag table are made from the declarations."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from grokkit.cli import run_flags
from grokkit.cli.run_flags import GRID_FLAGS, SETTINGS, SINGLE_FLAGS, add_run_flags
from grokkit.config import RunConfig
from grokkit.optim import OptimizerConfig

README = Path(__file__).resolve().parents[1] / "README.md"


def _actions(grid: bool) -> dict[str, argparse.Action]:
    p = argparse.ArgumentParser()
    add_run_flags(p, grid=grid)
    return {a.dest: a for a in p._actions}


def test_the_readme_flag_table_is_the_one_the_declarations_give():
    text = README.read_text()
    start, end = text.find(run_flags.TABLE_START), text.find(run_flags.TABLE_END)
    assert 0 <= start < end, "the README's flag table markers are missing"
    table = text[start + len(run_flags.TABLE_START) : end].strip("\n") + "\n"
    assert table == run_flags.markdown_table(), (
        "the README's flag table differs from the settings' declarations; "
        "run: python -m grokkit.cli.run_flags --readme README.md"
    )


def test_the_table_is_printed_and_written_by_the_module(tmp_path, capsys):
    assert run_flags.main(["--markdown"]) == 0
    assert capsys.readouterr().out == run_flags.markdown_table()
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{run_flags.TABLE_START}\nold\n{run_flags.TABLE_END}\nafter\n")
    assert run_flags.main(["--readme", str(readme)]) == 0
    table = run_flags.markdown_table()
    expected = f"before\n{run_flags.TABLE_START}\n{table}{run_flags.TABLE_END}\nafter\n"
    assert readme.read_text() == expected


def test_every_setting_a_user_gives_is_declared():
    fields = {f.name for cls in (RunConfig, OptimizerConfig) for f in dataclasses.fields(cls)}
    undeclared = fields - {s.name for s in SETTINGS}
    assert undeclared == {"optimizer", "eps"}, "a new field needs setting(...): its flag and help"


def test_help_shows_each_default_from_the_declaration_never_typed_by_hand():
    for grid in (False, True):
        actions = _actions(grid)
        for s in SETTINGS:
            assert "(default" not in s.help, f"{s.name}: the help shows the default itself"
            assert s.default == getattr(s.owner(), s.name)
            assert f"default: {s.default_text})" in actions[s.dest].help, s.name


def test_each_flag_has_its_declared_type_choices_and_grid_behaviour():
    one, grid = _actions(False), _actions(True)
    for s in SETTINGS:
        assert one[s.dest].option_strings == grid[s.dest].option_strings == [s.flag]
        assert one[s.dest].default is None and grid[s.dest].default is None  # unset: None
        assert one[s.dest].nargs == (0 if s.kind is bool else None), s.name
        assert grid[s.dest].nargs == ("+" if s.axis else None), s.name
        if s.kind is bool:
            assert one[s.dest].const is True and grid[s.dest].choices == [True, False]
        elif s.choices:
            assert one[s.dest].choices == grid[s.dest].choices == list(s.choices)


def test_a_sweep_varies_its_axes_in_the_order_it_always_has():
    # The last axis varies fastest: this order fixes a sweep's run order and so its populations.
    assert list(GRID_FLAGS.items()) == [
        ("optimizer", "preset"),
        ("op", "operation"),
        ("modulus", "modulus"),
        ("train_fraction", "train_fraction"),
        ("seed", "seed"),
        ("split_seed", "split_seed"),
        ("outliers", "outliers"),
        ("outlier_seed", "outlier_seed"),
        ("layers", "n_layers"),
        ("d_model", "d_model"),
        ("heads", "n_heads"),
        ("d_mlp", "d_mlp"),
        ("norm", "norm"),
        ("activation", "activation"),
        ("lr", "lr"),
        ("weight_decay", "weight_decay"),
        ("l2", "l2"),
        ("decay_target", "decay_target"),
        ("beta1", "beta1"),
        ("beta2", "beta2"),
        ("warmup_steps", "warmup_steps"),
        ("batch_size", "batch_size"),
        ("update_noise", "update_noise"),
        ("weight_noise", "weight_noise"),
        ("dropout", "dropout"),
        ("muon", "muon"),  # an optimizer setting: in their declared order
        ("update_rule", "update_rule"),  # likewise (a new axis: no existing sweep varies it)
        ("init", "init"),
        ("init_scale", "init_scale"),
        ("grad_filter", "grad_filter"),
        ("grad_filter_alpha", "grad_filter_alpha"),
        ("grad_filter_lambda", "grad_filter_lambda"),
        ("grad_filter_window", "grad_filter_window"),
        ("loss", "loss"),
        ("orthogonal_grad", "orthogonal_grad"),
        ("tf32", "tf32"),
        ("arch", "arch"),
        ("fixed_norm", "fixed_norm"),
        ("bf16", "bf16"),
    ]
    single = ["steps", "eval_every", "checkpoint_every", "snapshot_every", "stop_after_val_99"]
    assert list(SINGLE_FLAGS) == single
