"""What a newcomer's first afternoon ran into (issue 37): a mistyped flag or name gets a
suggestion, every flag has help, messages name the true state and the way on, a run being written
can be read, a command's cost can be known before it runs."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from cli_harness import SWEEP_TINY, TINY, assert_one_line, run_cli, snapshot
from conftest import tiny_run

from grokkit import runs
from grokkit.cli import build_parser, main
from grokkit.population import Population
from grokkit.train import train_runs


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
    argv = [str(tmp_path / "x") if a == "x" else a for a in argv]
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


# ---------------------------------------------------------------- messages name the true state


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("newcomer") / "run"
    assert main(["train", *TINY, "--steps", "20", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(
    "command", [["sweep", *SWEEP_TINY], ["reproduce", "fig2-right", "--scale", "smoke"]]
)
def test_a_run_folder_as_a_sweeps_out_is_called_a_run_folder(command, small_run, capsys):
    before = snapshot(small_run)
    code, _, err = run_cli(capsys, *command, "--out", small_run)
    assert code == 2
    assert_one_line(err, "is a run folder, not a sweep folder", f"train --resume {small_run}")
    assert "did not write" not in err
    assert snapshot(small_run) == before


def test_a_foreign_file_is_named(tmp_path, capsys):
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "sweep", *SWEEP_TINY, "--out", tmp_path)
    assert code == 2
    assert_one_line(err, "grokkit did not write (such as figs/notes.txt)")


def test_show_of_a_sweep_folder_points_to_compare_and_load_sweep(tmp_path, capsys):
    assert run_cli(capsys, "sweep", *SWEEP_TINY, "--out", tmp_path / "sw")[0] == 0
    code, _, err = run_cli(capsys, "show", tmp_path / "sw")
    assert code == 2
    assert_one_line(err, "is a sweep folder", "grokkit compare", "load_sweep", "/runs/NAME")


def test_show_prints_accuracies_in_percent(small_run, capsys):
    summary = runs.read_summary(small_run)
    code, out, _ = run_cli(capsys, "show", small_run)
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("val_accuracy "))
    assert line.split()[-1] == f"{100 * summary['val_accuracy']:.2f}%"
    assert "steps_to_val_99    not reached" in out


@pytest.fixture
def stopped_early(tmp_path, monkeypatch):
    """A run stopped by --stop-after-val-99 10 at step 40 of 200 (validation accuracy scripted
    to 100 % from step 30)."""
    real_evaluate = Population.evaluate

    def scripted(self):
        out = real_evaluate(self)
        out["val_accuracy"] = torch.full_like(out["val_accuracy"], float(self.step_count >= 30))
        return out

    monkeypatch.setattr(Population, "evaluate", scripted)
    run_dir = tmp_path / "r"
    config = tiny_run(steps=200, eval_every=10, stop_after_val_99=10)
    summary = train_runs([config], [run_dir], progress=False)[0]
    assert summary["status"] == "stopped_early" and summary["steps_done"] == 40
    return run_dir


def test_resuming_a_run_that_stopped_early_says_how_to_train_past_the_rule(stopped_early, capsys):
    before = snapshot(stopped_early)
    code, out, err = run_cli(capsys, "train", "--resume", stopped_early, "--steps", 100)
    assert code == 0, err
    assert "stopped early (validation accuracy stayed >= 99 % for 10 steps)" in out
    assert f"grokkit train --resume {stopped_early} --steps N --stop-after-val-99 0" in out
    assert snapshot(stopped_early) == before


def test_the_way_past_the_stop_rule_trains_on_and_records_it(stopped_early, capsys):
    argv = ["train", "--resume", stopped_early, "--steps", 100, "--quiet", "--no-plot"]
    code, out, err = run_cli(capsys, *argv, "--stop-after-val-99", 0)
    assert code == 0, err
    summary = runs.read_summary(stopped_early)
    assert (summary["status"], summary["steps_done"]) == ("completed", 100)
    assert json.loads((stopped_early / "config.json").read_text())["stop_after_val_99"] == 0
    # A later resume reads the folder as consistent, and load_run's model too.
    code, out, err = run_cli(capsys, *argv[:3], "--steps", 120, "--quiet", "--no-plot")
    assert code == 0, err
    assert runs.read_summary(stopped_early)["steps_done"] == 120


def test_a_resume_still_refuses_other_run_flags(stopped_early, capsys):
    code, _, err = run_cli(capsys, "train", "--resume", stopped_early, "--lr", "0.1")
    assert code == 2
    assert_one_line(err, "drop --lr")


def test_resuming_a_completed_run_says_how_to_train_longer(small_run, capsys):
    code, out, _ = run_cli(capsys, "train", "--resume", small_run)
    assert code == 0
    assert "already completed its budget of 20 steps" in out
    assert f"grokkit train --resume {small_run} --steps N (N > 20)" in out


@pytest.mark.parametrize(
    "command",
    [["train", *TINY, "--steps", "5"], ["sweep", *SWEEP_TINY], ["compare", "RUN"]],
)
def test_a_path_two_missing_folders_deep_creates_nothing(command, small_run, tmp_path, capsys):
    out = tmp_path / "nonexistent" / "dir" / ("c.png" if command[0] == "compare" else "run")
    command = [str(small_run) if a == "RUN" else a for a in command]
    code, _, err = run_cli(capsys, *command, "--out", out)
    assert code == 2
    assert_one_line(err, f"its parent {out.parent} does not exist", "mkdir -p")
    assert not (tmp_path / "nonexistent").exists()


def test_one_missing_folder_is_created_as_in_the_readme(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", *TINY, "--steps", "5", "--out", tmp_path / "runs/a")
    assert code == 0, err


# ---------------------------------------------------------------- reading a run being written

WRITER = """
import sys, torch
torch.set_num_threads(1)
from grokkit.cli import main
sys.exit(main(["train", "--op", "x+y", "--modulus", "11", "--d-model", "16", "--heads", "2",
               "--d-mlp", "32", "--layers", "1", "--quiet", "--no-plot", "--device", "cpu",
               "--eval-every", "1", "--checkpoint-every", "1", "--steps", "100000",
               "--out", sys.argv[1]]))
"""


def test_a_reader_during_a_write_sees_a_consistent_run_and_never_fails(tmp_path, capsys):
    """load_run, its model, compare and show, over and over while a run checkpoints every step:
    no read fails, warns (no fallback to previous.pt) or mixes two checkpoints' files."""
    import subprocess
    import sys
    import warnings

    import grokkit

    run_dir = tmp_path / "run"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(run_dir)])
    reads = []
    try:
        while len({done for done, _ in reads}) < 6:  # reads at six checkpoints, then stop it
            assert writer.poll() is None, "the writer ended early"
            if not (run_dir / "summary.json").is_file():
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a fallback warning would fail the read
                run = grokkit.load_run(run_dir)
                model = run.model()
            done = run.summary["steps_done"]
            steps = list(run.metrics["step"])
            assert steps[-1] == done  # evaluated and checkpointed every step: the same moment
            assert model.step >= done
            code, out, err = run_cli(capsys, "show", run_dir)
            assert code == 0, err
            if len(reads) < 2:  # a figure costs a second: twice is enough
                code, out, err = run_cli(capsys, "compare", run_dir, "--out", tmp_path / "c.png")
                assert code == 0, err
            reads.append((done, len(steps)))
    finally:
        writer.kill()  # killed outright: a run loses only the steps since its last checkpoint
        writer.wait(timeout=60)
    final = [s for s in grokkit.load_run(run_dir).metrics["step"]]
    for done, count in reads:  # each read held exactly the rows up to its summary's step
        assert count == sum(1 for s in final if s <= done)


# ---------------------------------------------------------------- the cost of a command, before


@pytest.fixture
def free_costs(monkeypatch):
    """Projections without measuring: a step costs 10 ms per member, an evaluation 1 ms."""
    from grokkit.sweep.projection import CostMeter, StepCost

    monkeypatch.setattr(CostMeter, "cost", lambda self, c, m, t: StepCost(1e-2, 1e-3))


def test_train_plan_projects_the_run_and_writes_nothing(free_costs, tmp_path, capsys):
    out = tmp_path / "run"
    code, text, err = run_cli(capsys, "train", *TINY, "--steps", 1000, "--plan", "--out", out)
    assert code == 0, err
    assert not out.exists()
    row, total = text.splitlines()[1], text.splitlines()[-1]
    assert row.split()[:2] == ["x+y", "11"] and "1000" in row and "new" in row
    assert total.startswith("projected training time 10 s (10-10 s) for 1 of 1 runs")
    assert "every run using its whole budget" in total


def test_train_plan_refuses_the_out_the_command_would_refuse(free_costs, small_run, capsys):
    code, _, err = run_cli(capsys, "train", *TINY, "--plan", "--out", small_run)
    assert code == 2
    assert_one_line(err, "already exists and is not empty (it holds a run: use --resume")


def test_a_plan_with_a_stop_rule_says_it_is_an_upper_bound(free_costs, capsys):
    argv = ["train", *TINY, "--steps", 1000, "--stop-after-val-99", 200, "--plan", "--json"]
    code, text, _ = run_cli(capsys, *argv)
    plan = json.loads(text)
    assert plan["stops_early"] and plan["runs"][0]["stop_after_val_99"] == 200
    code, text, _ = run_cli(capsys, *argv[:-1])
    assert "at most: a run with --stop-after-val-99 ends once it has generalised" in text


def test_train_plan_of_a_resume_counts_the_steps_left(free_costs, small_run, capsys):
    before = snapshot(small_run)
    code, text, err = run_cli(capsys, "train", "--resume", small_run, "--steps", 520, "--plan")
    assert code == 0, err
    assert "20->520" in text and "resume" in text
    assert text.splitlines()[-1].startswith("projected training time 5 s")
    assert snapshot(small_run) == before
    code, text, err = run_cli(capsys, "train", "--resume", small_run, "--plan")  # over: done
    assert code == 0, err
    assert " done " in text and text.splitlines()[-1].startswith("projected training time 0 s")


def test_sweep_plan_tells_done_runs_from_new_ones_and_shows_lr_and_decay(
    free_costs, tmp_path, capsys
):
    out = tmp_path / "sw"
    assert run_cli(capsys, "sweep", *SWEEP_TINY, "--out", out)[0] == 0
    before = snapshot(out)
    argv = ["sweep", *SWEEP_TINY, "--seed", 0, 1, "--lr", "1e-3", "3e-3", "--plan", "--json"]
    code, text, err = run_cli(capsys, *argv, "--out", out)
    assert code == 0, err
    plan = json.loads(text)
    status = {(r["seed"], r["lr"]): r["status"] for r in plan["runs"]}
    assert status == {(0, 1e-3): "done", (1, 1e-3): "new", (0, 3e-3): "new", (1, 3e-3): "new"}
    assert {r["weight_decay"] for r in plan["runs"]} == {1.0}
    assert snapshot(out) == before
    code, text, err = run_cli(capsys, *argv[:-1])  # no --out: a new folder, every run new
    assert code == 0 and text.count(" new ") == 4 and "3e-03" in text


def test_json_and_remeasure_go_with_plan(capsys):
    code, _, err = run_cli(capsys, "train", *TINY, "--json", "--out", "x")
    assert code == 2
    assert_one_line(err, "--json goes with --plan")


def _scripted_val(monkeypatch, from_step: int) -> None:
    """Validation accuracy 100 % from ``from_step`` on, 0 before."""
    real_evaluate = Population.evaluate

    def scripted(self):
        out = real_evaluate(self)
        ok = float(self.step_count >= from_step)
        out["val_accuracy"] = torch.full_like(out["val_accuracy"], ok)
        return out

    monkeypatch.setattr(Population, "evaluate", scripted)


def test_the_eta_under_a_stop_rule_is_an_upper_bound_then_bounded_by_the_streak(
    tmp_path, monkeypatch, capsys
):
    _scripted_val(monkeypatch, 30)
    config = tiny_run(steps=500, eval_every=10, stop_after_val_99=50)
    capsys.readouterr()
    summary = train_runs([config], [tmp_path / "r"], progress=True)[0]
    bar = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line]
    assert summary["steps_done"] == 80
    assert "0/500 [00:00<at most " in bar[0]  # before the streak: the budget, as a bound
    streak = [line for line in bar if "30/80 [" in line]  # from step 30, aimed at 30 + 50
    assert streak and "at most" not in streak[0]
    assert " 80/80 [" in bar[-1]  # ends full, where it stopped


def test_expected_end_follows_the_streak():
    from grokkit.train import Tracker, _Run, expected_end

    def run(steps, stop, since):
        return _Run(
            tiny_run(steps=steps, stop_after_val_99=stop), None, Tracker(val_99_since=since), [], {}
        )

    assert expected_end([run(1000, 0, None)]) == (1000, False)
    assert expected_end([run(1000, 200, None)]) == (1000, True)
    assert expected_end([run(1000, 200, 300)]) == (500, False)
    assert expected_end([run(1000, 200, 300), run(1000, 200, None)]) == (1000, True)
    assert expected_end([run(400, 200, 300)]) == (400, False)


def test_the_sweep_bar_shows_the_populations_latest_and_best_validation_accuracy():
    import queue

    from grokkit.sweep.progress import QueueWatcher, SweepProgress

    sink = queue.Queue()
    worker = QueueWatcher(sink)
    for run, val in [("a", 0.10), ("b", 0.30), ("a", 0.42), ("c", 0.995)]:
        worker.evaluated(run, val)  # batched: only each run's latest is sent
    worker.run_ended("c", {"steps_done": 50, "best_val_accuracy": 0.995, "steps_to_val_99": 40})
    progress = SweepProgress(
        {k: (f"run-{k}", 0, 100) for k in "abc"},
        on_run_ended=lambda n, s: None,
        description="t",
        enabled=False,
        runs_done=0,
        runs_total=3,
        stops_early={"c"},
    )
    assert progress.stopping == {"c"}  # c, with a stop rule, may end early: "at most"
    progress.drain(sink)
    assert progress.postfix_text() == "runs 1/3, val now 30-42%, best 99.5%, >=99% in 1"
    assert not progress.stopping  # c ended: a and b train to their budgets, no "at most"
    progress.close()


def test_the_benchmarks_tuning_rows_read_apart_by_lr_and_weight_decay(free_costs, capsys):
    from grokkit.experiments import benchmark_design, benchmark_spaces

    code, text, err = run_cli(capsys, "reproduce", "benchmark", "--scale", "smoke", "--plan")
    assert code == 0, err
    header, *rows = [line for line in text.splitlines() if line.startswith(("figure", "bench"))]
    assert header.split()[6:8] == ["lr", "wd"]
    adamw = [r.split()[1:9] for r in rows if r.endswith(" adamw")]
    assert len(adamw) == len({tuple(r) for r in adamw})  # no two rows alike
    tuning_seed = str(benchmark_spaces.TUNING_BASE)
    trials = benchmark_spaces.trials("adamw", benchmark_design.SCALES["smoke"]["trials"])
    # each trial's learning rate and weight decay, as the plan prints them (three digits)
    assert {(r[5], r[6]) for r in adamw if r[3] == tuning_seed} == {
        (f"{t['lr']:.3g}", f"{t['weight_decay']:g}") for t in trials
    }


# ---------------------------------------------------------------- figures


def _captured_figure(monkeypatch):
    """The figure a plot function saves, kept open for the test to read."""
    import grokkit.plots

    held = {}

    def keep(fig, out_png):
        held["fig"] = fig
        return out_png

    monkeypatch.setattr(grokkit.plots, "save_figure", keep)
    return held


def _rows(train_at: int, val_at: int | None) -> list[dict]:
    return [
        {
            "step": s,
            "train_loss": 1.0,
            "val_loss": 1.0,
            "train_accuracy": 1.0 if s >= train_at else 0.5,
            "val_accuracy": 1.0 if val_at is not None and s >= val_at else 0.1,
        }
        for s in (0, 1, 10, 50, 100, 500, 1000)
    ]


def test_curves_mark_the_two_99_steps_that_define_grokking(monkeypatch, tmp_path):
    from grokkit.plots import plot_run_curves

    held = _captured_figure(monkeypatch)
    plot_run_curves(_rows(50, 500), tmp_path / "c.png")
    accuracy_axis, loss_axis = held["fig"].axes
    for axis in (accuracy_axis, loss_axis):
        dotted = [line.get_xdata()[0] for line in axis.lines if line.get_linestyle() == ":"]
        assert dotted == [50, 500]
    legend = [t.get_text() for t in accuracy_axis.get_legend().get_texts()]
    assert "train 99% at step 50" in legend and "validation 99% at step 500" in legend
    assert "delay 450 steps" in legend
    plot_run_curves(_rows(50, None), tmp_path / "c.png")
    legend = [t.get_text() for t in held["fig"].axes[0].get_legend().get_texts()]
    assert "validation 99%: not reached" in legend


def test_compare_names_what_differs_that_matters_not_the_budget():
    from grokkit.plots import comparison_labels

    a = {"operation": "x/y", "modulus": 97, "lr": 1e-3, "steps": 20000, "preset": "adamw"}
    b = {**a, "lr": 3e-3, "steps": 100000}
    title, labels = comparison_labels([a, b], ["r1", "r2"])
    assert labels == ["lr 0.001", "lr 0.003"] and "steps" not in title
    _, labels = comparison_labels([a, {**a, "steps": 100000}], ["r1", "r2"])
    assert labels == ["steps 20000", "steps 100000"]  # the budget, when nothing else differs


def test_compare_keeps_runs_that_learned_alike_distinguishable(monkeypatch, tmp_path):
    from grokkit.plots import plot_comparison

    held = _captured_figure(monkeypatch)
    same = _rows(50, 500)
    plot_comparison([("seed 0", same), ("seed 1", same)], tmp_path / "c.png")
    validation = [line for line in held["fig"].axes[0].lines if line.get_linestyle() == "-"]
    assert len(validation) == 2
    first, second = validation
    assert first.get_marker() != second.get_marker()  # each run's markers show on the other
    assert first.get_linewidth() > second.get_linewidth()  # the first shows around the second
    assert first.get_markevery() != second.get_markevery()  # at different places


def test_the_fourier_plot_shades_only_phases_a_boundary_delimits():
    from grokkit.analysis.fourier import _phase_spans

    none = {"memorisation_end": None, "cleanup_start": None, "cleanup_end": None}
    assert _phase_spans(none, 0, 1000) == []
    ended = _phase_spans({**none, "memorisation_end": 300}, 0, 1000)
    assert [(label, a, b) for label, a, b, _ in ended] == [
        ("memorisation (phase)", 0, 300),
        ("circuit formation (phase, not over at the last snapshot)", 300, 1000),
    ]


def test_a_plan_of_a_resume_refuses_run_flags_as_the_resume_does(small_run, capsys):
    code, _, err = run_cli(capsys, "train", "--resume", small_run, "--lr", "0.1", "--plan")
    assert code == 2
    assert_one_line(err, "drop --lr")


def test_load_run_says_what_a_folder_is_when_it_is_not_a_run_to_read(tmp_path):
    import grokkit

    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "index.json").write_text("[]")
    with pytest.raises(runs.RunFolderError, match="sweep folder, read it with grokkit.load_sweep"):
        grokkit.load_run(tmp_path / "sw")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text("{}")  # a run before its first checkpoint
    with pytest.raises(runs.RunFolderError, match="no summary.json yet"):
        grokkit.load_run(tmp_path / "r")
