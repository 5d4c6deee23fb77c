"""Bad input and damaged files, as a corpus: each case asserts the exit code, one line on stderr
naming the problem, no traceback, and that no file was lost or overwritten.

Classes: damaged checkpoints (and the fallback to previous.pt), damaged JSON and CSV files,
sizes that cannot fit, concurrent writers and stale locks, Ctrl-C, write failures, and resuming
a finished run. The command-line values already covered in test_cli.py, test_sweep.py and
test_experiments.py count towards the corpus too; the property test below feeds random values to
every numeric flag of ``train``.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from cli_harness import SWEEP_TINY, TINY, assert_one_line, run_cli, snapshot

from grokkit import runs
from grokkit.cli import main
from grokkit.population import Population


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny run trained to 20 steps (checkpoints at 10 and 20, so previous.pt exists)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("faults") / "run"
    assert main(["train", *TINY, "--steps", "20", "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path):
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


# ---------------------------------------------------------------- damaged checkpoints


class Exploit:
    """Unpickling calls os.system: a checkpoint must never be able to do this."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious(path: Path, marker: Path) -> None:
    torch.save({"step": 10, "payload": Exploit(marker)}, path)


def _truncated(path: Path, marker: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _empty(path: Path, marker: Path) -> None:
    path.write_bytes(b"")


def _random_bytes(path: Path, marker: Path) -> None:
    path.write_bytes(os.urandom(4096))


def _missing_key(path: Path, marker: Path) -> None:
    state = torch.load(path, weights_only=True)
    del state["optimizer"]
    torch.save(state, path)


def _wrong_type(path: Path, marker: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["step"] = "ten"
    torch.save(state, path)


def _wrong_shape(path: Path, marker: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["flat"] = state["flat"][:-5]
    torch.save(state, path)


def _non_finite(path: Path, marker: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["flat"][3] = float("nan")
    torch.save(state, path)


def _not_a_dict(path: Path, marker: Path) -> None:
    torch.save([torch.zeros(3)], path)


def _zip_without_data(path: Path, marker: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/version", "3\n")
    path.write_bytes(buf.getvalue())


def _config_of_another_model(path: Path, marker: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["config"]["d_model"] = 64
    torch.save(state, path)


DAMAGES = {
    "malicious pickle": (_malicious, "could run code"),
    "truncated": (_truncated, "not a readable checkpoint"),
    "empty": (_empty, "not a readable checkpoint"),
    "random bytes": (_random_bytes, "not a readable checkpoint"),
    "missing key": (_missing_key, "'optimizer' is missing"),
    "wrong type": (_wrong_type, "'step' should be a int"),
    "wrong shape": (_wrong_shape, "weights have shape"),
    "non-finite weights": (_non_finite, "non-finite"),
    "not a dictionary": (_not_a_dict, "expected a dictionary"),
    "zip without data": (_zip_without_data, "not a readable checkpoint"),
    "another model": (_config_of_another_model, "weights have shape"),
}


def _damage_both(run_dir: Path, damage, marker: Path) -> None:
    for name in ("latest.pt", "previous.pt"):
        damage(run_dir / "checkpoints" / name, marker)


@pytest.mark.parametrize("case", list(DAMAGES))
def test_damaged_checkpoint_is_one_line_and_nothing_changes(case, run_copy, tmp_path, capsys):
    damage, keyword = DAMAGES[case]
    marker = tmp_path / "pwned"
    _damage_both(run_copy, damage, marker)
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--quiet", "--steps", 30)
    assert code == 2
    assert_one_line(err, "latest.pt", keyword)
    assert not marker.exists(), "loading a checkpoint ran code"
    assert snapshot(run_copy) == before


def test_malicious_checkpoint_never_runs_code_through_the_library(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "checkpoints").mkdir()
    _malicious(tmp_path / "checkpoints" / "latest.pt", marker)
    with pytest.raises(runs.DamagedFileError, match="could run code"):
        runs.load_checkpoint(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("case", ["truncated", "random bytes", "missing key"])
def test_damaged_latest_falls_back_to_previous_and_says_so(
    case, run_copy, finished_run, tmp_path, capsys
):
    damage, _ = DAMAGES[case]
    damage(run_copy / "checkpoints" / "latest.pt", tmp_path / "m")
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--quiet", "--steps", 20)
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("grokkit: warning:")]
    assert len(warnings) == 1 and "previous.pt (step 10)" in warnings[0]
    # Resumed from step 10 and retrained to 20: exactly the uninterrupted run's weights.
    a = runs.load_checkpoint(run_copy)
    b = runs.load_checkpoint(finished_run)
    assert a["step"] == 20 and torch.equal(a["flat"], b["flat"])
    assert runs.read_metrics(run_copy) == [
        {**r, "wall_seconds": x["wall_seconds"]}
        for r, x in zip(runs.read_metrics(finished_run), runs.read_metrics(run_copy))
    ]


def test_latest_lost_between_the_two_renames_resumes_from_previous(run_copy, capsys):
    (run_copy / "checkpoints" / "latest.pt").unlink()
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--quiet", "--steps", 20)
    assert code == 0 and "previous.pt (step 10)" in err
    assert runs.load_checkpoint(run_copy)["step"] == 20


# ---------------------------------------------------------------- damaged JSON and CSV files

JSON_DAMAGES = {
    "not JSON": (b"{not json", "not valid JSON"),
    "empty": (b"", "not valid JSON"),
    "not an object": (b"[1, 2, 3]", "expected a JSON object"),
    "binary": (b"\xff\xfe\x00garbage", "not UTF-8"),
}


@pytest.mark.parametrize("case", list(JSON_DAMAGES))
def test_damaged_config_json_on_resume(case, run_copy, capsys):
    data, keyword = JSON_DAMAGES[case]
    (run_copy / "config.json").write_bytes(data)
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--quiet", "--steps", 30)
    assert code == 2
    assert_one_line(err, "config.json", keyword)
    assert snapshot(run_copy) == before


@pytest.mark.parametrize(
    "change, keyword",
    [
        ({"operation": "x%y"}, "unknown operation"),
        ({"steps": "many"}, "wrong type"),
        ({"train_fraction": 2.0}, "train fraction"),
        ({"optimizer": "adamw"}, "not a mapping"),
        ({"d_model": 30, "n_heads": 4}, "config.json"),
    ],
)
def test_config_json_with_bad_settings_on_resume(change, keyword, run_copy, capsys):
    config = json.loads((run_copy / "config.json").read_text())
    config.update(change)
    (run_copy / "config.json").write_text(json.dumps(config))
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--quiet", "--steps", 30)
    assert code == 2
    assert_one_line(err, "config.json", keyword)
    assert snapshot(run_copy) == before


def test_checkpoint_of_another_run_is_refused(run_copy, capsys):
    config = json.loads((run_copy / "config.json").read_text())
    config["seed"] = 7
    (run_copy / "config.json").write_text(json.dumps(config))
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--quiet", "--steps", 30)
    assert code == 2
    assert_one_line(err, "describe different runs")
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("case", list(JSON_DAMAGES) + ["missing status"])
def test_damaged_summary_json_on_show(case, run_copy, capsys):
    data, keyword = JSON_DAMAGES.get(case, (b'{"steps_done": 3}', "'status' is missing"))
    (run_copy / "summary.json").write_bytes(data)
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, "show", run_copy)
    assert code == 2
    assert_one_line(err, "summary.json", keyword)
    assert snapshot(run_copy) == before


@pytest.mark.parametrize(
    "text, keyword",
    [
        ("step,train_loss\n1,2\n", "header lacks"),
        (
            "step,train_loss,train_accuracy,val_loss,val_accuracy,weight_norm,lr,wall_seconds\n0,x,1,1,1,1,0,0\n",
            "not a number",
        ),
        (
            "step,train_loss,train_accuracy,val_loss,val_accuracy,weight_norm,lr,wall_seconds\n5,1,1,1,1,1,0,0\n"
            "5,1,1,1,1,1,0,0\n",
            "steps must increase",
        ),
        (
            "step,train_loss,train_accuracy,val_loss,val_accuracy,weight_norm,lr,wall_seconds\n0,1,1\n",
            "wrong number of fields",
        ),
    ],
)
def test_damaged_metrics_csv_names_the_file_and_line(text, keyword, tmp_path):
    (tmp_path / "metrics.csv").write_text(text)
    with pytest.raises(runs.DamagedFileError, match=keyword) as e:
        runs.read_metrics(tmp_path)
    assert "metrics.csv" in str(e.value) and "\n" not in str(e.value)


def test_show_with_damaged_metrics_csv_is_one_line(run_copy, capsys):
    (run_copy / "metrics.csv").write_text("step,train_loss\n1,2\n")
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, "show", run_copy)
    assert code == 2
    assert_one_line(err, "metrics.csv", "header lacks")
    assert snapshot(run_copy) == before


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("faults") / "sweep"
    assert main(["sweep", *SWEEP_TINY, "--seed", "0", "1", "--out", str(out)]) == 0
    return out


@pytest.fixture
def sweep_copy(finished_sweep, tmp_path):
    return Path(shutil.copytree(finished_sweep, tmp_path / "sweep"))


@pytest.mark.parametrize(
    "target, data, keyword",
    [
        ("config.json", b"{broken", "not valid JSON"),
        ("summary.json", b"[]", "expected a JSON object"),
    ],
)
def test_sweep_with_a_damaged_run_file_is_one_line_and_touches_nothing(
    target, data, keyword, sweep_copy, capsys
):
    run_dir = sorted((sweep_copy / "runs").iterdir())[0]
    (run_dir / target).write_bytes(data)
    before = snapshot(sweep_copy)
    code, _, err = run_cli(capsys, "sweep", *SWEEP_TINY, "--seed", "0", "1", "--out", sweep_copy)
    assert code == 2
    assert_one_line(err, target, keyword)
    assert snapshot(sweep_copy) == before


def test_sweep_with_damaged_checkpoints_of_an_unfinished_run_is_one_line(sweep_copy, capsys):
    run_dir = sorted((sweep_copy / "runs").iterdir())[0]
    (run_dir / "summary.json").unlink()  # unfinished: the sweep must read its checkpoint
    _damage_both(run_dir, _random_bytes, sweep_copy / "m")
    before = snapshot(sweep_copy)
    code, _, err = run_cli(capsys, "sweep", *SWEEP_TINY, "--seed", "0", "1", "--out", sweep_copy)
    assert code == 2
    assert_one_line(err, "latest.pt", "not a readable checkpoint")
    assert snapshot(sweep_copy) == before


def test_damaged_index_csv_is_rebuilt_from_the_run_folders(sweep_copy, capsys):
    good = (sweep_copy / "index.csv").read_text()
    (sweep_copy / "index.csv").write_bytes(os.urandom(300))
    code, _, err = run_cli(capsys, "sweep", *SWEEP_TINY, "--seed", "0", "1", "--out", sweep_copy)
    assert code == 0 and "Traceback" not in err
    assert (sweep_copy / "index.csv").read_text() == good


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "--op", "x+y", "--modulus", "100003"],
        ["data", "--op", "x/y", "--modulus", "1000003"],
        ["train", "--op", "x^2+y^2", "--modulus", "1000000", "--steps", "1"],
    ],
)
def test_tables_that_cannot_fit_are_refused_before_allocating(argv, tmp_path, capsys):
    code, out, err = run_cli(
        capsys, *argv, *(["--out", tmp_path / "r"] if argv[0] == "train" else [])
    )
    assert code == 2
    assert_one_line(err, "equations", "GB", "choose a smaller modulus")
    assert out == "" and not (tmp_path / "r").exists()


def test_a_large_table_that_fits_warns_in_one_line(capsys):
    code, out, err = run_cli(capsys, "data", "--op", "x+y", "--modulus", "1009")
    assert code == 0
    assert_one_line(err, "warning", "1,018,081 equations", "slow")
    assert out.count("\n") == 1009 * 1009 + 1


# ---------------------------------------------------------------- one writer per folder

HOLD = """
import sys, time
from pathlib import Path
from grokkit import runs
with runs.folder_lock(Path(sys.argv[1]), "folder"):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()
    proc.stdout.close()


def test_second_writer_of_a_run_folder_stops_with_one_line(run_copy, capsys):
    proc = _holder(run_copy)
    try:
        before = snapshot(run_copy)
        code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--quiet", "--steps", 30)
        assert code == 2
        assert_one_line(err, "being written by another grokkit process", f"pid {proc.pid}")
        assert snapshot(run_copy) == before
    finally:
        _stop(proc)


def test_second_sweep_on_the_same_folder_stops_with_one_line(sweep_copy, capsys):
    proc = _holder(sweep_copy)
    try:
        before = snapshot(sweep_copy)
        code, _, err = run_cli(
            capsys, "sweep", *SWEEP_TINY, "--seed", "0", "1", "2", "--out", sweep_copy
        )
        assert code == 2
        assert_one_line(err, "sweep folder", "another grokkit process")
        assert snapshot(sweep_copy) == before
    finally:
        _stop(proc)


def test_a_lock_left_by_a_killed_process_is_taken_over(run_copy, capsys):
    proc = _holder(run_copy)
    _stop(proc)  # SIGKILL: the process cannot release anything itself
    assert (run_copy / runs.LOCK_FILE).read_text() == str(proc.pid)  # the stale file is still there
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--quiet", "--steps", 30)
    assert code == 0, err
    assert runs.read_summary(run_copy)["steps_done"] == 30


# ---------------------------------------------------------------- Ctrl-C


def _interrupt_at(monkeypatch, step: int) -> None:
    original = Population.step

    def step_then_interrupt(self):
        losses = original(self)
        if self.step_count == step:
            os.kill(os.getpid(), signal.SIGINT)
        return losses

    monkeypatch.setattr(Population, "step", step_then_interrupt)


def test_ctrl_c_in_train_checkpoints_the_step_and_resume_equals_a_straight_run(
    finished_run, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    _interrupt_at(monkeypatch, 13)
    code, _, err = run_cli(capsys, "train", *TINY, "--steps", "20", "--out", out)
    monkeypatch.undo()
    assert code == 130
    assert_one_line(err, "interrupted at step 13", f"grokkit train --resume {out}")
    assert runs.load_checkpoint(out)["step"] == 13
    assert runs.read_summary(out)["status"] == "interrupted"
    code, _, err = run_cli(capsys, "train", "--resume", out, "--quiet")
    assert code == 0, err
    assert torch.equal(
        runs.load_checkpoint(out)["flat"], runs.load_checkpoint(finished_run)["flat"]
    )
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]  # noqa: E731
    assert strip(runs.read_metrics(out)) == strip(runs.read_metrics(finished_run))


def test_ctrl_c_in_a_sweep_checkpoints_and_a_rerun_finishes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "sweep"
    _interrupt_at(monkeypatch, 12)
    code, _, err = run_cli(capsys, "sweep", *SWEEP_TINY, "--seed", "0", "1", "--out", out)
    monkeypatch.undo()
    assert code == 130
    assert_one_line(err, "interrupted at step 12", "run the same grokkit sweep command again")
    steps = {runs.load_checkpoint(d)["step"] for d in (out / "runs").iterdir()}
    assert steps == {12}
    code, _, err = run_cli(capsys, "sweep", *SWEEP_TINY, "--seed", "0", "1", "--out", out)
    assert code == 0
    assert all(runs.read_summary(d)["status"] == "completed" for d in (out / "runs").iterdir())


def test_ctrl_c_of_a_real_train_process_exits_130_without_traceback(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "grokkit.cli",
            "train",
            *TINY,
            "--steps",
            "100000",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (out / "checkpoints" / "latest.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert_one_line(err, "interrupted at step", "grokkit train --resume")
    step = int(err.split("interrupted at step ")[1].split(";")[0])
    assert runs.load_checkpoint(out)["step"] == step > 0  # the step the message names
    assert runs.read_summary(out)["status"] == "interrupted"


# ---------------------------------------------------------------- write failures


def _fail_writes_of(monkeypatch, name: str) -> None:
    """Every write of a file whose temporary name contains ``name`` fails as on a full disk."""
    original = os.fsync

    def fsync(fd):
        if name in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell files apart")
@pytest.mark.parametrize("name", ["latest.pt", "metrics.csv"])
def test_full_disk_during_a_write_keeps_the_previous_file(name, run_copy, capsys, monkeypatch):
    before = snapshot(run_copy)
    _fail_writes_of(monkeypatch, name)
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--quiet", "--steps", 30)
    monkeypatch.undo()
    assert code == 1
    assert_one_line(err, name, "no space left on the device", "previous version is kept")
    kept = "checkpoints/latest.pt" if name == "latest.pt" else "metrics.csv"
    assert snapshot(run_copy)[kept] == before[kept]
    assert runs.load_checkpoint(run_copy)["step"] in (20, 30)  # a whole, loadable checkpoint
    assert not [p for p in run_copy.rglob("*") if p.name.endswith((".tmp", ".staged"))]


# ---------------------------------------------------------------- a missing optional dependency


@pytest.mark.parametrize(
    "argv",
    [
        ["sweep", *SWEEP_TINY, "--executor", "ray"],
        ["reproduce", "fig4", "--scale", "smoke", "--executor", "ray", "--quiet"],
    ],
)
def test_ray_executor_without_ray_is_one_line(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    code, _, err = run_cli(capsys, *argv, "--out", tmp_path / "out")
    assert code == 2
    assert_one_line(err, "pip install 'grokkit[ray]'")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- resuming a finished run


def test_resuming_a_finished_run_to_its_own_budget_changes_nothing(run_copy, capsys):
    before = snapshot(run_copy)
    for argv in (["--steps", "20"], []):
        code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--no-plot", *argv)
        assert code == 0, err
        assert snapshot(run_copy) == before


def test_resume_with_a_lost_summary_writes_it_again_without_a_duplicate_row(
    run_copy, finished_run, capsys
):
    (run_copy / "summary.json").unlink()
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--no-plot", "--steps", "20")
    assert code == 0, err
    steps = [r["step"] for r in runs.read_metrics(run_copy)]
    assert len(steps) == len(set(steps))
    assert steps == [r["step"] for r in runs.read_metrics(finished_run)]


# ------------------------------------------------------------- random values for every numeric flag

from hypothesis import (  # noqa: E402
    HealthCheck,
    given,
    settings,
    strategies as st,
)

# Every numeric flag of `train`, with values around and far outside its valid range. Budgets stay
# small so that a valid draw trains in well under a second.
ints = lambda lo, hi: st.one_of(st.integers(lo, hi), st.sampled_from([-1, 0, 2**31, -(2**63)]))  # noqa: E731
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1, 2))
NUMERIC_FLAGS = {
    "--modulus": ints(-3, 40),
    "--train-fraction": floats,
    "--seed": ints(-5, 10**12),
    "--split-seed": ints(-5, 10**12),
    "--outliers": ints(-3, 30),
    "--outlier-seed": ints(-5, 10**6),
    "--steps": st.integers(-3, 12),
    "--eval-every": ints(-2, 20),
    "--checkpoint-every": ints(-2, 20),
    "--stop-after-val-99": ints(-2, 20),
    "--layers": st.integers(-1, 2),
    "--d-model": st.integers(-2, 24),
    "--heads": st.integers(-1, 5),
    "--d-mlp": st.integers(-2, 24),
    "--lr": floats,
    "--weight-decay": floats,
    "--beta1": floats,
    "--beta2": floats,
    "--warmup-steps": ints(-3, 20),
    "--batch-size": ints(-2, 64),
    "--update-noise": floats,
    "--weight-noise": floats,
    "--dropout": floats,
}


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_numeric_flags_train_or_fail_in_one_line(data, tmp_path_factory, capsys):
    # One to three flags per example, the rest valid: every flag is reached, alone and in pairs.
    flags = data.draw(
        st.lists(st.sampled_from(list(NUMERIC_FLAGS)), min_size=1, max_size=3, unique=True)
    )
    values = {flag: data.draw(NUMERIC_FLAGS[flag], label=flag) for flag in flags}
    out = tmp_path_factory.mktemp("prop") / "run"
    argv = ["train", "--op", "x+y", "--quiet", "--no-plot", "--device", "cpu", "--out", str(out)]
    defaults = {
        "--modulus": 7,
        "--steps": 5,
        "--d-model": 8,
        "--heads": 2,
        "--d-mlp": 8,
        "--layers": 1,
    }
    for flag, value in {**defaults, **values}.items():
        argv += [flag, repr(value) if isinstance(value, float) else str(value)]
    code, _, err = run_cli(capsys, *argv)
    assert "Traceback" not in err
    if code == 0:
        assert runs.read_summary(out)["status"] in ("completed", "stopped_early")
    elif code == 1:  # a valid run whose loss stopped being finite (a huge learning rate, say)
        assert_one_line(err, "non-finite")
    else:
        assert code == 2, err
        assert_one_line(err, "error")
        assert not out.exists() or not any(out.iterdir())


# ---------------------------------------------------------------- the library's doors


def _tiny_config():
    from conftest import tiny_run

    return tiny_run(steps=20)


def _folder_calls(run_copy: Path, tmp_path: Path):
    """(train_runs arguments, the folders that must not appear or change) per case."""
    new_a, new_b = tmp_path / "a", tmp_path / "b"
    c = _tiny_config()
    return {
        "a finished run folder": (([c], [run_copy]), "not empty"),
        "one folder twice": (([c, c.with_changes(seed=1)], [new_a, new_a]), "given twice"),
        "more folders than configs": (([c], [new_a, new_b]), "one folder per run"),
        "a string for a config": ((["x+y"], [new_a]), "not a RunConfig"),
        "a config for a list": ((c, [new_a]), "must be a list"),
        "a folder that is a number": (([c], [7]), "not a path"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "a finished run folder",
        "one folder twice",
        "more folders than configs",
        "a string for a config",
        "a config for a list",
        "a folder that is a number",
    ],
)
def test_train_runs_refuses_in_one_inputerror_and_touches_nothing(case, run_copy, tmp_path):
    from grokkit.errors import InputError
    from grokkit.train import train_runs

    (args, keyword) = _folder_calls(run_copy, tmp_path)[case]
    before = snapshot(run_copy)
    with pytest.raises(InputError, match=keyword):
        train_runs(*args, progress=False)
    assert snapshot(run_copy) == before  # not overwritten, not even the lock's pid
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # no lock-only folder


def test_the_command_line_refuses_a_finished_run_folder_as_the_library_does(run_copy, capsys):
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, "train", *TINY, "--steps", "20", "--out", run_copy)
    assert code == 2
    assert_one_line(err, "not empty", "--resume")
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("step", ["x", 2.5, -1, True])
def test_load_run_model_with_a_bad_step_is_one_inputerror(step, run_copy):
    from grokkit import load_run
    from grokkit.errors import InputError

    with pytest.raises(InputError, match="step must be a whole number"):
        load_run(run_copy).model(step=step)


@pytest.mark.parametrize(
    ("call", "keyword"),
    [
        (lambda: __import__("grokkit").load_run(3), "expected a folder"),
        (lambda: __import__("grokkit.api").api.load_runs("runs/x"), "list of folders"),
        (lambda: __import__("grokkit.sweep").sweep.run_sweep(["x+y"], "s"), "not a RunConfig"),
    ],
    ids=["load_run(3)", "load_runs(str)", "run_sweep(str configs)"],
)
def test_the_api_refuses_arguments_of_the_wrong_kind_in_one_inputerror(
    call, keyword, tmp_path, monkeypatch
):
    from grokkit.errors import InputError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=keyword):
        call()
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- hostile bytes in a run's files

DEEP_JSON = "[" * 100_000 + "]" * 100_000


def _deep_config(run_dir: Path) -> None:
    (run_dir / "config.json").write_text(DEEP_JSON)


def _deep_summary(run_dir: Path) -> None:
    (run_dir / "summary.json").write_text(DEEP_JSON)


def _deep_key_in_summary(run_dir: Path) -> None:  # parses, but printing it would recurse
    summary = json.loads((run_dir / "summary.json").read_text())
    text = json.dumps(summary)[:-1] + ', "extra": ' + "[" * 5000 + "]" * 5000 + "}"
    (run_dir / "summary.json").write_text(text)


def _huge_metrics_line(run_dir: Path) -> None:
    with open(run_dir / "metrics.csv", "a") as f:
        f.write("1" * 200_000 + "\n")


HOSTILE = {
    "config.json nested 10^5 deep": (_deep_config, "config.json", "nested more than"),
    "summary.json nested 10^5 deep": (_deep_summary, "summary.json", "nested more than"),
    "summary.json with a 5000-deep key": (_deep_key_in_summary, "summary.json", "nested more than"),
    "metrics.csv with a 200 kB line": (_huge_metrics_line, "metrics.csv", "not a CSV row"),
}
HOSTILE_COMMANDS = {
    "show": lambda d: ["show", d],
    "compare": lambda d: ["compare", d, "--out", d.parent / "c.png"],
    "resume": lambda d: ["train", "--resume", d, "--steps", "30", "--quiet", "--no-plot"],
}


@pytest.mark.parametrize(
    ("case", "command"),
    [
        (case, command)
        for case in HOSTILE
        for command in HOSTILE_COMMANDS
        # a resume reads config.json and the checkpoint; it writes the others anew
        if command != "resume" or HOSTILE[case][1] == "config.json"
    ],
)
def test_hostile_bytes_in_a_run_file_are_one_line(case, command, run_copy, capsys):
    damage, name, keyword = HOSTILE[case]
    damage(run_copy)
    before = snapshot(run_copy)
    code, _, err = run_cli(capsys, *HOSTILE_COMMANDS[command](run_copy))
    assert code == 2, err
    assert_one_line(err, name, keyword)
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_bytes_in_a_run_file_are_one_inputerror_in_load_run(case, run_copy):
    from grokkit import load_run
    from grokkit.errors import InputError

    damage, name, keyword = HOSTILE[case]
    damage(run_copy)
    with pytest.raises(InputError, match=keyword):
        load_run(run_copy)


ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[31m\x9b1m"


def test_show_never_prints_a_run_files_terminal_escapes(run_copy, capsys):
    summary = json.loads((run_copy / "summary.json").read_text())
    summary["message"] = f"all fine{ESCAPES}"
    summary["note" + ESCAPES] = ESCAPES
    (run_copy / "summary.json").write_text(json.dumps(summary))
    code, out, err = run_cli(capsys, "show", run_copy)
    assert code == 0, err
    assert not any(c in out + err for c in "\x1b\x07\x9b")
    assert "all fine\\x1b]0;owned" in out  # shown, escaped: the user sees what is there


def test_an_error_quoting_a_run_file_never_prints_its_terminal_escapes(run_copy, capsys):
    lines = (run_copy / "metrics.csv").read_text().splitlines()
    lines[0] += f",norm{ESCAPES}"  # a column the error names, holding a value that is no number
    lines[1:] = [line + ",oops" for line in lines[1:]]
    (run_copy / "metrics.csv").write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(capsys, "show", run_copy)
    assert code == 2
    assert_one_line(err, "metrics.csv", "is not a number")
    assert not any(c in err for c in "\x1b\x07\x9b")
