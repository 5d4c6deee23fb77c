"""What a newcomer's first afternoon ran into (issue 37): a mistyped flag or name gets a
suggestion, every flag has help, messages name the true state and the way on, a run being written
can be read, a command's cost can be known before it runs."""

from __future__ import annotations

import argparse

import pytest
from cli_harness import assert_one_line, run_cli

from grokkit.cli import build_parser


@pytest.mark.parametrize(
    ("argv", "meant"),
    [
        (["train", "--trian-fraction", "0.4", "--out", "x"], "'--train-fraction'"),
        (["sweep", "--train-fractoin", "0.4", "--out", "x"], "'--train-fraction'"),
        (["train", "--norm", "prre"], "'pre'"),
        (["trian", "--out", "x"], "'train'"),
        (["reproduce", "fig1", "--scale", "lapto"], "'laptop'"),
        (["reproduce", "fig1-lef", "--plan"], "'fig1-left'"),
        (["data", "--op", "x/z"], "'x/y'"),
        (["train", "--op", "x+y", "--device", "cpuu", "--out", "x"], "'cpu'"),
    ],
)
def test_a_misspelt_flag_choice_or_name_gets_a_suggestion(argv, meant, tmp_path, capsys):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert_one_line(err, f"did you mean {meant}?")
    assert not (tmp_path / "x").exists()


def test_a_flag_nothing_resembles_gets_no_guess(capsys):
    code, _, err = run_cli(capsys, "train", "--zzzzqqq", "1")
    assert code == 2
    assert_one_line(err, "unrecognized arguments: --zzzzqqq")
    assert "did you mean" not in err


def _actions(parser: argparse.ArgumentParser, name: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                yield from _actions(sub, f"{name} {command}")
        elif action.dest != "help":
            yield name, action


def test_every_flag_of_every_command_has_help_and_names_its_choices():
    for name, action in _actions(build_parser(), "grokkit"):
        flag = f"{name} {'/'.join(action.option_strings) or action.dest}"
        assert action.help, f"{flag} has no help"
        if action.choices and action.metavar and not isinstance(action.choices, dict):
            shown = [str(c) for c in action.choices if not isinstance(c, bool)]
            assert all(c in action.help for c in shown), f"{flag} hides its choices"
