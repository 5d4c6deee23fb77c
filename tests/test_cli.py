"""The ``grokkit`` command line, as a user meets it.

Most tests call ``grokkit.cli.main(argv)`` in-process and read stdout/stderr with capsys; one
test runs the real command in a subprocess to check the exit code and that no traceback leaks.
All training runs are tiny (x+y mod 11, one narrow layer, tens of steps, CPU).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_harness import run_cli

from grokkit.cli import main

TINY = [
    "--op",
    "x+y",
    "--modulus",
    "11",
    "--d-model",
    "32",
    "--heads",
    "2",
    "--d-mlp",
    "64",
    "--layers",
    "1",
    "--quiet",
    "--device",
    "cpu",
]
SUMMARY_KEYS = {
    "steps_done",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "best_val_accuracy",
    "steps_to_train_99",
    "steps_to_val_99",
    "wall_seconds",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine the spinning
    worker threads slow every step down badly; restore the setting for the other test files."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def train(capsys, out: Path, *extra: str, steps: int = 20) -> tuple[int, str, str]:
    return run_cli(capsys, "train", *TINY, "--steps", str(steps), "--out", str(out), *extra)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def assert_bad_input(code: int, out: str, err: str, keyword: str) -> None:
    """Exit 2 and exactly one non-empty 'grokkit: error:' line naming the problem."""
    assert code == 2, (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].strip()
    assert lines[0].startswith("grokkit: error:"), err
    assert keyword.lower() in lines[0].lower(), (keyword, err)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One tiny completed run (20 steps), shared; tests using it only try (and fail) to change
    it."""
    out = tmp_path_factory.mktemp("shared") / "run"
    code = main(
        [
            "train",
            *TINY,
            "--steps",
            "20",
            "--eval-every",
            "10",
            "--checkpoint-every",
            "10",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


# ---------------------------------------------------------------- grokkit data


def test_data_division_table_is_complete_and_correct(capsys):
    code, out, err = run_cli(capsys, "data", "--op", "x/y", "--modulus", "7")
    assert code == 0 and err == ""
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["x", "y", "result"]
    body = [tuple(int(v) for v in r) for r in rows[1:]]
    assert len(body) == 7 * 6
    assert {(x, y) for x, y, _ in body} == {(x, y) for x in range(7) for y in range(1, 7)}
    for x, y, result in body:  # independent check: x / y = result  <=>  result * y = x (mod 7)
        assert 0 <= result < 7
        assert (result * y) % 7 == x, (x, y, result)


def test_data_s5_table_has_every_pair(capsys):
    code, out, err = run_cli(capsys, "data", "--op", "s5_xy")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "x,y,result"
    assert len(lines) - 1 == 120 * 120


# ---------------------------------------------------------------- bad input

BAD_TRAIN_FLAGS = [
    pytest.param(["--op", "x^y"], "unknown operation", id="unknown-operation"),
    pytest.param(["--op", "x/y", "--modulus", "96"], "prime", id="composite-modulus"),
    pytest.param(["--modulus", "1"], "modulus", id="modulus-below-2"),
    pytest.param(["--train-fraction", "0"], "train fraction", id="train-fraction-0"),
    pytest.param(["--train-fraction", "1"], "train fraction", id="train-fraction-1"),
    pytest.param(["--train-fraction", "1.5"], "train fraction", id="train-fraction-1.5"),
    pytest.param(["--train-fraction", "-0.1"], "train fraction", id="train-fraction-negative"),
    pytest.param(
        ["--modulus", "3", "--train-fraction", "0.1"], "training set", id="training-set-too-small"
    ),
    pytest.param(["--steps", "-5"], "steps", id="negative-steps"),
    pytest.param(["--optimizer", "sgd"], "optimizer", id="unknown-optimizer"),
    pytest.param(["--lr", "-0.001"], "learning rate", id="negative-lr"),
    pytest.param(["--dropout", "1.5"], "dropout", id="dropout-above-1"),
    pytest.param(["--batch-size", "0"], "batch size", id="batch-size-0"),
    pytest.param(["--batch-size", "abc"], "batch size", id="batch-size-abc"),
    pytest.param(["--outliers", "40"], "outliers", id="too-many-outliers"),
]


@pytest.mark.parametrize("flags, keyword", BAD_TRAIN_FLAGS)
def test_train_bad_input_is_one_line_and_creates_nothing(capsys, tmp_path, flags, keyword):
    out_dir = tmp_path / "run"
    # TINY comes first; later flags override it (argparse keeps the last value).
    code, out, err = run_cli(capsys, "train", *TINY, "--steps", "5", "--out", out_dir, *flags)
    assert_bad_input(code, out, err, keyword)
    assert not out_dir.exists()
    assert list(tmp_path.iterdir()) == []


def test_data_bad_input(capsys):
    assert_bad_input(*run_cli(capsys, "data", "--op", "nope"), "unknown operation")
    assert_bad_input(*run_cli(capsys, "data", "--op", "x/y", "--modulus", "96"), "prime")


def test_resume_missing_folder(capsys, tmp_path):
    missing = tmp_path / "nowhere"
    code, out, err = run_cli(capsys, "train", "--resume", missing, "--quiet", "--device", "cpu")
    assert_bad_input(code, out, err, "resume")
    assert "no such folder" in err
    assert not missing.exists()


def test_resume_folder_that_is_not_a_run(capsys, tmp_path):
    folder = tmp_path / "notarun"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    code, out, err = run_cli(capsys, "train", "--resume", folder, "--quiet", "--device", "cpu")
    assert_bad_input(code, out, err, "resume")
    assert "not a grokkit run" in err
    assert snapshot(folder) == {"notes.txt": b"keep me"}


def test_out_existing_non_empty_folder_is_left_alone(capsys, tmp_path):
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "sentinel.txt").write_text("precious")
    code, out, err = train(capsys, folder)
    assert_bad_input(code, out, err, "already exists")
    assert sorted(p.name for p in folder.iterdir()) == ["sentinel.txt"]
    assert (folder / "sentinel.txt").read_text() == "precious"


def test_out_existing_run_folder_is_not_overwritten(capsys, tmp_path, trained_run):
    before = snapshot(trained_run)
    assert "config.json" in before and "checkpoints/latest.pt" in before
    code, out, err = train(capsys, trained_run, "--seed", "1")
    assert_bad_input(code, out, err, "already exists")
    assert "--resume" in err  # points the user at the right flag
    assert snapshot(trained_run) == before


def test_resume_refuses_run_defining_flags(capsys, trained_run):
    before = snapshot(trained_run)
    code, out, err = run_cli(
        capsys, "train", "--resume", trained_run, "--lr", "0.01", "--quiet", "--device", "cpu"
    )
    assert_bad_input(code, out, err, "resume")
    assert "--lr" in err
    assert snapshot(trained_run) == before


def test_resume_refuses_steps_before_checkpoint(capsys, trained_run):
    before = snapshot(trained_run)
    code, out, err = run_cli(
        capsys, "train", "--resume", trained_run, "--steps", "10", "--quiet", "--device", "cpu"
    )
    assert_bad_input(code, out, err, "steps")
    assert "checkpoint" in err
    assert snapshot(trained_run) == before


def test_out_below_a_file_is_one_line_error(capsys, tmp_path):
    (tmp_path / "afile").write_text("x")
    code, out, err = train(capsys, tmp_path / "afile" / "run")
    assert_bad_input(code, out, err, "--out")
    assert (tmp_path / "afile").read_text() == "x"


def test_real_command_exit_code_and_no_traceback(tmp_path):
    """The installed entry point: exit status 2, one line, no traceback, nothing created."""
    out_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "grokkit.cli",
            "train",
            *TINY,
            "--op",
            "x/y",
            "--modulus",
            "96",
            "--out",
            str(out_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("grokkit: error:") and "prime" in lines[0]
    assert not out_dir.exists()


# ---------------------------------------------------------------- train, then show


def test_train_writes_run_folder_and_show_reports_it(capsys, tmp_path):
    run = tmp_path / "run"
    code, out, err = train(capsys, run, steps=20)
    assert code == 0, err
    assert "Traceback" not in err
    for name in (
        "config.json",
        "metrics.csv",
        "summary.json",
        "checkpoints/latest.pt",
        "curves.png",
    ):
        assert (run / name).is_file(), name
    assert (run / "curves.png").read_bytes()[:8] == PNG_MAGIC

    config = json.loads((run / "config.json").read_text())
    assert config["operation"] == "x+y" and config["modulus"] == 11 and config["steps"] == 20
    summary = json.loads((run / "summary.json").read_text())
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["steps_done"] == 20
    assert summary["status"] == "completed"
    for key in ("train_accuracy", "val_accuracy", "best_val_accuracy"):
        assert 0.0 <= summary[key] <= 1.0

    rows = read_rows(run / "metrics.csv")
    assert int(rows[0]["step"]) == 0
    assert int(rows[-1]["step"]) == 20
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(set(steps))
    assert float(rows[-1]["val_accuracy"]) == pytest.approx(summary["val_accuracy"], rel=1e-5)

    (run / "curves.png").unlink()
    code, out, err = run_cli(capsys, "show", run)
    assert code == 0, err
    assert "steps_done" in out
    assert any(line.split()[:2] == ["steps_done", "20"] for line in out.splitlines())
    assert (run / "curves.png").read_bytes()[:8] == PNG_MAGIC


def test_zero_step_run_trains_and_shows(capsys, tmp_path):
    """--steps 0 records the untrained model; train and show must both succeed."""
    run = tmp_path / "zero"
    code, out, err = train(capsys, run, steps=0)
    assert code == 0, err
    assert json.loads((run / "summary.json").read_text())["steps_done"] == 0
    code, out, err = run_cli(capsys, "show", run)
    assert code == 0, err


def test_show_of_a_folder_that_is_not_a_run(capsys, tmp_path):
    assert_bad_input(*run_cli(capsys, "show", tmp_path), "summary.json")


# ---------------------------------------------------------------- resume


def test_resume_continues_exactly_as_an_uninterrupted_run(capsys, tmp_path):
    sched = ["--eval-every", "10", "--checkpoint-every", "10", "--no-plot"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert train(capsys, a, *sched, steps=40)[0] == 0
    assert train(capsys, b, *sched, steps=20)[0] == 0
    code, out, err = run_cli(
        capsys, "train", "--resume", b, "--steps", "40", "--quiet", "--device", "cpu", "--no-plot"
    )
    assert code == 0, err

    assert json.loads((b / "summary.json").read_text())["steps_done"] == 40
    rows_a, rows_b = read_rows(a / "metrics.csv"), read_rows(b / "metrics.csv")
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b]
    assert rows_b[-1]["step"] == "40"
    for key in ("val_accuracy", "train_loss", "train_accuracy", "val_loss"):
        assert rows_a[-1][key] == rows_b[-1][key], key

    state_a = torch.load(a / "checkpoints" / "latest.pt", map_location="cpu", weights_only=True)
    state_b = torch.load(b / "checkpoints" / "latest.pt", map_location="cpu", weights_only=True)
    assert state_a["step"] == state_b["step"] == 40
    assert torch.equal(state_a["flat"], state_b["flat"])


# ---------------------------------------------------------------- optimiser presets


def test_preset_then_individual_knob_overrides(capsys, tmp_path):
    assert train(capsys, tmp_path / "adam", "--optimizer", "adam", "--no-plot", steps=1)[0] == 0
    cfg = json.loads((tmp_path / "adam" / "config.json").read_text())
    assert cfg["optimizer"]["weight_decay"] == 0
    assert cfg["preset"] == "adam"

    assert (
        train(
            capsys,
            tmp_path / "adam05",
            "--optimizer",
            "adam",
            "--weight-decay",
            "0.5",
            "--no-plot",
            steps=1,
        )[0]
        == 0
    )
    cfg = json.loads((tmp_path / "adam05" / "config.json").read_text())
    assert cfg["optimizer"]["weight_decay"] == 0.5


def test_full_batch(capsys, tmp_path):
    run = tmp_path / "full"
    assert train(capsys, run, "--batch-size", "full", "--no-plot", steps=2)[0] == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["optimizer"]["batch_size"] == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["batch_size"] == summary["n_train"] == round(0.5 * 121)


# ---------------------------------------------------------------- bench


def test_bench_json(capsys):
    code, out, err = run_cli(
        capsys,
        "bench",
        "--json",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--device",
        "cpu",
        "--backend",
        "eager",
    )
    assert code == 0, err
    result = json.loads(out)
    assert isinstance(result, dict)
    assert result["compiled"] is False and result["backend_why"].startswith("eager: as asked")
    assert isinstance(result["ms_per_step"], float) and result["ms_per_step"] > 0
    assert result["member_steps_per_second"] == pytest.approx(
        1000 / result["ms_per_step"], rel=0.01
    )
    assert result["fused_adamw"] is (
        hasattr(torch, "_fused_adamw_")
    )  # the fast optimizer is on by default
    # the roofline: the dense step is forward and backward (3x the forward) over 512 examples,
    # the forward 2 layers x 2 x (4 T d^2 + 2 T^2 d + 2 T d m) + 2 d V FLOPs with T 4, d 128,
    # m 512, V 99; the fast path issues well under half of it
    T, d, m, V = 4, 128, 512, 99
    forward = 2 * 2 * (4 * T * d * d + 2 * T * T * d + 2 * T * d * m) + 2 * d * V
    assert result["dense_flops_per_step"] == 3 * 512 * forward
    assert 0.3 < result["flops_per_step"] / result["dense_flops_per_step"] < 0.5
    seconds, peak = result["ms_per_step"] / 1000, result["peak_gflops"] * 1e9
    assert result["fraction_of_peak"] == pytest.approx(
        result["flops_per_step"] / seconds / peak, rel=0.01, abs=1e-3
    )
    assert result["dense_fraction_of_peak"] == pytest.approx(
        result["dense_flops_per_step"] / seconds / peak, rel=0.01, abs=1e-3
    )
    assert result["peak_gflops"] > 0 and result["peak_gflops_bf16"] > 0


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--population", "0"], "--population"),
        (["--steps", "0"], "--steps"),
        (["--warmup", "-1"], "--warmup"),
    ],
)
def test_bench_bad_input_is_one_line(capsys, flags, message):
    code, out, err = run_cli(capsys, "bench", "--device", "cpu", *flags)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grokkit: error:") and message in lines[0]
    assert "Traceback" not in err
