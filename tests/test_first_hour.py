"""A new user's first hour (issue 25): a sweep folder's index lists every run folder in it,
whichever command wrote it; runs that differ only in a method setting read apart in their names,
the plan and the index; texts say in words what did not happen; a model's repr is one line;
``compare --by`` takes a flag's name; ``reproduce --out`` takes a folder of grokkit's outputs.

Every run is tiny (x+y or x*y mod 11, width 32, at most 40 steps, CPU, one thread).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_run

import grokkit
from grokkit import experiments, runs
from grokkit.analysis import fourier
from grokkit.cli import main
from grokkit.cli.reproduce_figures import print_plan
from grokkit.cli.train import summary_line
from grokkit.config import METHOD_FIELDS, RunConfig
from grokkit.experiments import fig1_left, fig2_right, fig6, progress_measures
from grokkit.experiments.common import planned_runs
from grokkit.experiments.reproduce import figure_runs, plan_figure
from grokkit.sweep import SweepResult, config_hash, expand_grid, run_name, run_sweep
from grokkit.sweep.folder import INDEX_COLUMNS, SweepError, check_out_dir, index_row
from grokkit.sweep.progress import describe
from grokkit.sweep.projection import CostMeter, StepCost
from grokkit.train import train_runs

TINY_FLAGS = [
    "--op",
    "x+y",
    "--modulus",
    "11",
    "--d-model",
    "32",
    "--heads",
    "4",
    "--d-mlp",
    "64",
    "--batch-size",
    "16",
    "--eval-every",
    "5",
    "--checkpoint-every",
    "10",
    "--device",
    "cpu",
]
# One value that differs from the default for every method setting.
METHOD_VALUES = {
    "grad_filter": "ema",
    "grad_filter_alpha": 0.9,
    "grad_filter_lambda": 3.0,
    "grad_filter_window": 50,
    "l2": 0.01,
    "loss": "stablemax",
    "orthogonal_grad": True,
    "init": "nanda",
    "init_scale": 2.0,
    "tf32": True,
    "muon": True,
    "fixed_norm": True,
    "bf16": True,
    "update_rule": "lion",
}


@pytest.fixture(scope="module", autouse=True)
def no_gemm_measurement():
    """PyTorch's GEMM for these tiny runs: choosing by measurement times the paper's model, seconds
    that this module's tests need not pay (tests/test_backend.py tests the choice)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GROKKIT_ONEDNN", "0")
        yield


def stem(name: str) -> str:
    """A run name less its hash: what a reader tells runs apart by."""
    return name.rsplit("-", 1)[0]


def read_index(out: Path) -> list[dict]:
    with open(out / "index.csv", newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- the index lists every run folder


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory) -> tuple[Path, list[str]]:
    """One sweep folder written by four different commands, in this order: a sweep of two seeds
    (10 steps), the CLI sweep with another --steps and --optimizer, a run trained by hand into
    OUT/runs/by-hand, a sweep of a Grokfast run. Returns the folder and the run names in the
    index's order."""
    out = tmp_path_factory.mktemp("mixed") / "sweep"
    first = [
        r.run_dir.name
        for r in run_sweep(
            expand_grid(tiny_run(steps=10), {"seed": [0, 1]}), out, jobs=1, progress=False
        )
    ]
    assert (
        main(
            [
                "sweep",
                *TINY_FLAGS,
                "--steps",
                "20",
                "--optimizer",
                "adam",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    (second,) = [p.name for p in (out / "runs").iterdir() if p.name not in first]
    train_runs([tiny_run(steps=10, seed=5)], [out / "runs" / "by-hand"], progress=False)
    (out / "runs" / "notes").mkdir()  # not a run folder: no config.json
    (out / "runs" / "notes" / "todo.txt").write_text("look at seed 5")
    (last,) = run_sweep([tiny_run(steps=10, grad_filter="ema")], out, jobs=1, progress=False)
    return out, [*first, second, last.run_dir.name, "by-hand"]


def test_the_index_lists_every_run_folder_whichever_command_wrote_it(mixed_folder, capsys):
    out, names = mixed_folder
    rows = read_index(out)
    # The runs of earlier sweeps first, in their order, then the last sweep's, then folders no
    # sweep indexed before (by name).
    assert [r["run_name"] for r in rows] == names
    assert {r["status"] for r in rows} == {"completed"}  # read from each folder's summary.json
    by_name = {r["run_name"]: r for r in rows}
    assert by_name["by-hand"]["seed"] == "5" and by_name["by-hand"]["folder"] == "runs/by-hand"
    assert by_name[names[2]]["steps"] == "20" and by_name[names[2]]["preset"] == "adam"
    assert by_name[names[3]]["grad_filter"] == "ema" and by_name["by-hand"]["grad_filter"] == "none"
    assert json.loads((out / "index.json").read_text()) == runs.read_json(out / "index.json")
    assert len(runs.read_json(out / "index.json")) == 5

    # Re-running the first command (all done) keeps every row, in the same order.
    run_sweep(expand_grid(tiny_run(steps=10), {"seed": [0, 1]}), out, jobs=1, progress=False)
    assert [r["run_name"] for r in read_index(out)] == names

    frame = grokkit.load_sweep(out)
    assert len(frame) == 5 and sorted(Path(p).name for p in frame["path"]) == sorted(names)
    assert main(["compare", str(out), "--out", str(out.parent / "all.png")]) == 0
    assert "(5 runs)" in capsys.readouterr().out


def test_compare_by_a_flags_name(mixed_folder, capsys):
    out, _ = mixed_folder
    from grokkit.cli.compare import field_name

    fields = RunConfig().flat_dict()
    assert [
        field_name(n, fields)
        for n in ("optimizer", "--optimizer", "train-fraction", "--heads", "lr")
    ] == ["preset", "preset", "train_fraction", "n_heads", "lr"]
    for by in ("optimizer", "--train-fraction"):
        assert (
            main(["compare", str(out), f"--by={by}", "--out", str(out.parent / "by.png")]) == 0
        ), by
        assert "(5 runs)" in capsys.readouterr().out
    assert main(["compare", str(out), "--by", "nonsense", "--out", str(out.parent / "by.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown field 'nonsense'" in err


# ---------------------------------------------------------------- runs that differ only in a method


def test_every_method_setting_is_in_the_name_the_index_and_the_title():
    assert set(METHOD_VALUES) == set(METHOD_FIELDS)
    base = RunConfig()
    # The paper's runs keep the names (and hashes) they always had.
    assert (
        run_name(base) == "x_div_y-p97-f0.500-adamw-k0-s0-10fe3bcc"
        and config_hash(base) == "10fe3bcc"
    )
    assert base.method_tags() == [] and base.method_description() == ""
    configs = {f: base.with_changes(**{f: v}) for f, v in METHOD_VALUES.items()}
    stems = {f: stem(run_name(c)) for f, c in configs.items()}
    assert len({stem(run_name(base)), *stems.values()}) == len(configs) + 1, stems
    base_row = index_row(run_name(base), base, None)
    for f, c in configs.items():
        assert set(c.method_tags()) and all("/" not in t and " " not in t for t in c.method_tags())
        row = index_row(run_name(c), c, None)
        assert f in INDEX_COLUMNS and row[f] == METHOD_VALUES[f] != base_row[f], f
    assert configs["grad_filter"].method_description() == "Grokfast-EMA (α 0.98, λ 2)"
    assert "L2 0.01" in configs["l2"].method_description()
    # A Grokfast run's curve title names its filter.
    from grokkit.cli.common import run_title

    summary = {
        "operation": "x*y",
        "modulus": 97,
        "train_fraction": 0.5,
        "preset": "adam",
        "seed": 0,
    }
    grokfast = base.with_changes(grad_filter="ema", grad_filter_lambda=2.0, l2=0.005)
    assert run_title(summary, grokfast).endswith("Grokfast-EMA (α 0.98, λ 2), L2 0.005")


def test_a_method_run_trained_before_the_tags_is_adopted_not_trained_again(tmp_path):
    config = tiny_run(steps=10, loss="stablemax")
    (done,) = run_sweep([config], tmp_path, jobs=1, progress=False)
    untagged = tmp_path / "runs" / run_name(config, method_tags=False)
    assert untagged.name == stem(stem(done.run_dir.name)) + "-" + config_hash(config)
    done.run_dir.rename(untagged)  # the folder an earlier grokkit wrote
    checkpoint = (untagged / runs.CHECKPOINT).read_bytes()
    with pytest.warns(UserWarning, match="run names now carry their method settings"):
        (again,) = run_sweep([config], tmp_path, jobs=1, progress=False)
    assert again.run_dir == done.run_dir and not untagged.exists()
    assert (
        again.summary == done.summary
        and (again.run_dir / runs.CHECKPOINT).read_bytes() == checkpoint
    )
    assert [r["run_name"] for r in read_index(tmp_path)] == [done.run_dir.name]


class FreeMeter(CostMeter):
    """A projection without measuring: every step and evaluation costs a millisecond."""

    def cost(self, config, members, threads):
        return StepCost(1e-3, 1e-3)


def test_plan_rows_tell_method_runs_apart(monkeypatch, capsys):
    base = tiny_run()
    configs = [
        base,
        *(base.with_changes(**{f: v}) for f, v in METHOD_VALUES.items()),
        base.with_changes(outliers=3),
    ]
    fake = types.SimpleNamespace(runs=lambda scale: configs, OPTIONS=())
    monkeypatch.setitem(experiments.FIGURES, "methods", fake)
    p = plan_figure("methods", "smoke", None, jobs=1, meter=FreeMeter())
    assert len({(tuple(r["methods"]), r["outliers"]) for r in p["runs"]}) == len(configs)
    plan = {
        "runs": p["runs"],
        "figures": {"methods": p},
        "estimated_seconds": p["estimated_seconds"],
        "scale": "smoke",
        "device": "cpu",
        "hardware": "test",
        "load_average": None,
    }
    for compact in (False, True):
        print_plan(plan, compact=compact)
        lines = capsys.readouterr().out.splitlines()[1 : len(configs) + 1]
        assert len(set(lines)) == len(configs) and all(ln.startswith("methods") for ln in lines)
        assert any("grokfast_ema" in ln for ln in lines) and any(
            ln.split()[5] == "3" for ln in lines
        )


# -------------------------------------------------------------- analyze, then reproduce, one folder


@pytest.fixture(scope="module")
def snapshot_run(tmp_path_factory) -> Path:
    """x+y mod 11 for 40 steps with a snapshot every 10: it does not generalise."""
    path = tmp_path_factory.mktemp("fourier") / "run"
    train_runs([tiny_run(steps=40, eval_every=10, snapshot_every=10)], [path], progress=False)
    return path


def test_reproduce_into_a_folder_analyze_just_wrote(snapshot_run, tmp_path, capsys):
    figs = tmp_path / "figs"
    assert main(["analyze", "fourier", str(snapshot_run), "--out", str(figs / "add")]) == 0
    said = capsys.readouterr().out
    assert "None" not in said and "at step never" not in said and "not reached" not in said
    # The fall claims follow each loss's direction over the window they speak of.
    curves = pd.read_csv(figs / "add" / "fourier.csv")
    after = json.loads((figs / "add" / "fourier.json").read_text())["phases"]["memorisation_end"]
    for name in ("restricted", "test"):
        values = curves[f"{name}_loss"][curves["step"] >= (after or 0)].tolist()
        if values[-1] >= values[0]:
            assert f"{name} loss did not fall" in said, said
        elif f"{name} loss fell" in said:
            assert values[-1] < max(values)

    check_out_dir(figs)  # only grokkit's outputs: accepted
    assert (
        main(["reproduce", "grokfast", "--scale", "smoke", "--out", str(figs), "--jobs", "1"]) == 0
    )
    _, err = capsys.readouterr()
    # The plan first, as --plan prints it, one line per setting.
    assert "setting" in err.splitlines()[0] and "projected training time" in err
    assert (
        sum("grokfast " in ln for ln in err.splitlines()[1:4]) == 3
        and "grokfast_ema,lambda2" in err
    )
    assert (
        main(
            ["reproduce", "fig4", "--scale", "smoke", "--out", str(figs), "--jobs", "1", "--quiet"]
        )
        == 0
    )
    capsys.readouterr()
    rows = read_index(figs)
    grokfast_runs = {run_name(c) for c in figure_runs("grokfast", "smoke")}
    assert {r["run_name"] for r in rows} == grokfast_runs | {
        run_name(c) for c in figure_runs("fig4", "smoke")
    }
    assert len({stem(n) for n in grokfast_runs}) == 3  # told apart without the hash
    assert {r["grad_filter"] for r in rows} == {"none", "ema", "ma"} and {
        r["l2"] for r in rows
    } >= {"0.005", "0.01"}
    for figure in ("grokfast", "fig4"):
        verdict = json.loads((figs / f"{figure}.json").read_text())["verdict"]
        assert_says_it_in_words(verdict)

    # A folder holding a file grokkit did not write is still refused.
    with pytest.raises(SweepError, match="not a sweep folder"):
        check_out_dir(_fresh_folder_with(tmp_path, "notes.txt"))
    (figs / "add" / "notes.txt").write_text("mine")
    check_out_dir(figs)  # a sweep folder now (index.csv, runs/): accepted as before


def _fresh_folder_with(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / "user"
    (folder / "add").mkdir(parents=True)
    (folder / "add" / "fourier.csv").write_text("step\n")
    (folder / name).write_text("mine")
    return folder


def test_repr_is_one_line_and_answer_logits_are_the_answers(snapshot_run):
    run = grokkit.load_run(snapshot_run)
    model = run.model()
    text = repr(model)
    assert "\n" not in text and len(text) < 300 and "tensor" not in text
    assert "step=40" in text and "x+y mod 11" in text
    assert "\n" not in repr(run) and len(repr(run)) < 200
    answers = model.answer_logits()
    assert answers.shape == (121, 11)
    assert (answers == model.logits()[:, :11]).all() and model.logits().shape == (121, 13)
    assert (answers.argmax(-1) == model.predictions()).all()


# --------------------------------------------------------------- texts that say what did not happen


def _results(configs, **summary) -> list[SweepResult]:
    base = {
        "best_val_accuracy": 0.1,
        "train_accuracy": 0.5,
        "steps_to_train_99": None,
        "steps_to_val_99": None,
        "n_train": 10,
        "status": "completed",
    }
    return [SweepResult(c, Path("unused"), {**base, **summary}) for c in configs]


def assert_says_it_in_words(text: str) -> None:
    for bad in ("None", "at step never", "at fraction never", ": never", "step not reached"):
        assert bad not in text, (bad, text)


UNREACHED = {
    "status": "completed",
    "steps_done": 10,
    "train_accuracy": 0.5,
    "val_accuracy": 0.1,
    "best_val_accuracy": 0.1,
    "steps_to_train_99": None,
    "steps_to_val_99": None,
    "wall_seconds": 1.0,
}


def test_verdicts_say_what_did_not_happen_in_words():
    texts = [
        fig1_left.describe(
            fig1_left.Curve(
                [
                    fig1_left.SeedCurve(
                        RunConfig(), [[0, 0.1, 0.0, 3.0, 3.0], [100, 0.5, 0.0, 2, 4]]
                    )
                ],
                "laptop",
            )
        ),
        fig1_left.describe(
            fig1_left.Curve(
                [fig1_left.SeedCurve(RunConfig(), [[0, 0.1, 0.0, 3.0, 3.0], [10, 1.0, 0.4, 0, 4]])],
                "laptop",
            )
        ),
        fig2_right.describe(
            fig2_right.measure(_results(figure_runs("fig2-right", "smoke")), "smoke")
        ),
        fig6.describe(fig6.measure(_results(figure_runs("fig6", "smoke")), "smoke")),
        fourier.describe_phases(dict.fromkeys(fourier.PHASE_KEYS)),
        fourier.describe_phases(
            {"memorisation_end": 10, "cleanup_start": None, "cleanup_end": None}
        ),
        fourier.describe_phases({"memorisation_end": 10, "cleanup_start": 20, "cleanup_end": None}),
        summary_line(UNREACHED, Path("run")),
        describe({"status": "completed", "val_accuracy": 0.1, "steps_to_val_99": None}),
    ]
    assert "at fraction 0.8" not in texts[2] and "at no fraction tried" in texts[2]
    # The progress-measures verdict of a run with no phases and losses that rose.
    steps = [0, 10, 20, 30]
    curves = pd.DataFrame(
        {
            "step": steps,
            "restricted_loss": [0.28, 2.0, 1.6, 1.45],
            "test_loss": [2.5, 2.6, 2.7, 2.8],
            "excluded_loss": [3.0, 2.0, 1.0, 0.5],
            "test_accuracy": [0.0, 0.0, 0.1, 0.1],
        }
    )
    measures = types.SimpleNamespace(
        curves=curves, phases=fourier.phase_boundaries(curves), key_freqs=[1, 2]
    )
    progress = progress_measures.Progress(measures, config=None, scale="smoke")
    texts.append(progress_measures.describe(progress))
    assert "memorisation did not visibly end" in texts[-1] and "did not fall" in texts[-1]
    for text in texts:
        assert_says_it_in_words(text)


def test_a_loss_that_rose_did_not_fall():
    # The case: up from 0.28 through a peak, ending at 1.45, is no fall.
    steps = [0, 1000, 2000]
    assert fourier.fall_step(steps, [0.28, 2.0, 1.45]) is None
    assert (
        fourier.describe_fall(steps, [0.28, 2.0, 1.45], name="restricted loss")
        == "restricted loss did not fall (rose from 0.28 to 1.45)"
    )
    assert (
        fourier.describe_fall(steps, [4.0, 0.5, 0.01], name="test loss")
        == "test loss fell from 4 to 0.01 (half-way at step 2000)"
    )


# ---------------------------------------------------------------- threads on a shared machine


@pytest.mark.parametrize(
    ("busy", "threads", "said"), [(0, 2, False), (1, 1, True), (5, 1, True), (None, 2, False)]
)
def test_default_threads_are_the_free_cores_and_say_so(busy, threads, said, monkeypatch, capsys):
    import argparse

    from grokkit import devices
    from grokkit.cli.common import chosen_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(devices, "cpu_count", lambda: 2)
    monkeypatch.setattr(devices, "other_runnable", lambda: busy)
    assert chosen_threads(argparse.Namespace(threads=None)) == threads
    err = capsys.readouterr().err
    assert bool(err) == said
    if said:
        assert (
            len(err.splitlines()) == 1
            and f"training with {threads} thread(s)" in err
            and "--threads" in err
        )
    assert chosen_threads(argparse.Namespace(threads=3)) == 3  # asked for: used as given, silently
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert chosen_threads(argparse.Namespace(threads=None)) is None  # the user's choice: left alone
    assert capsys.readouterr().err == ""


def test_the_busy_count_reads_this_machine():
    from grokkit import devices

    busy = devices.other_runnable()
    assert busy is None or 0 <= busy < 10_000


@pytest.mark.parametrize("command", ["train", "sweep", "reproduce", "bench"])
def test_threads_below_one_are_refused_before_anything_is_written(command, tmp_path, capsys):
    argv = {
        "train": ["train", *TINY_FLAGS, "--out", tmp_path / "o"],
        "sweep": ["sweep", "--op", "x+y", "--modulus", "11", "--out", tmp_path / "o"],
        "reproduce": ["reproduce", "fig4", "--scale", "smoke", "--out", tmp_path / "o"],
        "bench": ["bench"],
    }[command]
    capsys.readouterr()
    assert main([str(a) for a in argv] + ["--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--threads must be >= 1" in err
    assert not (tmp_path / "o").exists()


def test_a_sweep_shares_its_threads_among_its_workers(monkeypatch):
    import torch

    from grokkit.sweep import default_jobs
    from grokkit.sweep.executors import worker_threads

    monkeypatch.setattr("grokkit.sweep.executors.cpu_count", lambda: 8)
    torch.set_num_threads(4)  # what --threads 4 does in the command's process
    assert default_jobs("cpu", n_groups=10, jobs=None) == 4
    assert worker_threads(2) == 2 and worker_threads(4) == 1
    torch.set_num_threads(1)
    assert default_jobs("cpu", n_groups=10, jobs=None) == 1


# ---------------------------------------------------------------- the API from a plain script

PLAIN_SCRIPT = """
from grokkit.config import RunConfig
from grokkit.sweep import run_sweep

configs = [RunConfig(operation="x+y", modulus=11, steps=20, seed=s, d_model=32, n_heads=2, d_mlp=64,
                     n_layers=1, checkpoint_every=10) for s in range(2)]
results = run_sweep(configs, OUT, jobs=2, progress=False)
print(",".join(r.summary["status"] for r in results))
"""


@pytest.mark.slow
def test_run_sweep_with_workers_from_a_script_without_a_main_guard(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "plain.py"
    script.write_text(f"OUT = {str(tmp_path / 'out')!r}\n" + PLAIN_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=180, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "completed,completed"
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- commands that answer at once

# What made `grokkit --help` and `reproduce --list` take seconds: importing these (PyTorch alone
# takes 1.5-2 s). The time follows from the imports, so the imports are what is tested: a timing
# would depend on the machine and its load.
_HEAVY = ("torch", "matplotlib", "scipy", "sklearn", "pandas")


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["reproduce", "--list"], ["data", "--op", "x+y", "--modulus", "5"]],
    ids=["help", "reproduce-list", "data"],
)
def test_listings_and_help_start_without_the_heavy_libraries(argv):
    code = (
        "import contextlib, io, sys\n"
        "from grokkit.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(%r)))\n" % (_HEAVY,)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"grokkit {' '.join(argv)} imported {out.stdout.strip()}"


def test_reproduce_list_counts_every_figures_runs(capsys):
    assert main(["reproduce", "--list"]) == 0
    rows = {line.split()[0]: line.split()[1:4] for line in capsys.readouterr().out.splitlines()[1:]}
    assert list(rows) == list(experiments.FIGURES)
    for name, module in experiments.FIGURES.items():
        # the runs, and a figure's second-stage runs (the benchmark's tuned runs) as planned
        runs_per_scale = [len(planned_runs(module, scale)) for scale in experiments.SCALES]
        assert [int(n) for n in rows[name]] == runs_per_scale, name


def test_the_torch_free_setting_names_match_the_functions():
    from grokkit.config import LOSS_NAMES
    from grokkit.losses import LOSSES
    from grokkit.model import ACTIVATIONS
    from grokkit.model_config import ACTIVATION_NAMES

    assert tuple(LOSSES) == LOSS_NAMES
    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES
