"""Files and processes that could be turned against the user, as a corpus (issue 24): links and
non-regular files at every name grokkit reads or writes, sweeps killed or interrupted with
workers running, full disks and impossible sizes before the first step, and what ``show``,
``analyze`` and a finished resume may touch.

Each case asserts the exit code, one line on stderr when there is an error, and that every file
present before is byte-identical after (a link's target above all).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_harness import SWEEP_TINY, TINY, assert_one_line, run_cli
from test_faults import _fail_writes_of, _holder, _stop

from grokkit import runs
from grokkit.experiments.common import write_csv

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX links, FIFOs and signals")


def everything(folder: Path) -> dict[str, bytes | str]:
    """Every entry below ``folder``, lock files included: a file's bytes, a link's target."""
    found = {}
    for p in sorted(folder.rglob("*")):
        key = str(p.relative_to(folder))
        if p.is_symlink():
            found[key] = "-> " + os.readlink(p)
        elif p.is_file():
            found[key] = p.read_bytes()
    return found


@pytest.fixture(scope="module")
def half_run(tmp_path_factory):
    """A tiny run trained to 20 of 30 steps (checkpoints at 10 and 20), with its curves."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("disk") / "run"
    argv = [a for a in TINY if a != "--no-plot"]
    assert run_main(["train", *argv, "--steps", "20", "--out", str(out)]) == 0
    return out


def run_main(argv):
    from grokkit.cli import main

    return main([str(a) for a in argv])


@pytest.fixture
def run_copy(half_run, tmp_path):
    return Path(shutil.copytree(half_run, tmp_path / "run", symlinks=True))


@pytest.fixture
def victim(tmp_path):
    """A file outside the run folder that a planted link points at: it must never change."""
    path = tmp_path / "outside" / "precious.txt"
    path.parent.mkdir()
    path.write_bytes(b"the user's own file\n")
    return path


@contextlib.contextmanager
def no_hang(seconds: int = 30):
    """Fail (instead of hanging the suite) if the body blocks, as a read of a FIFO would."""

    def alarm(signum, frame):
        raise TimeoutError(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------- writes never follow a link

WRITTEN_BY_RESUME = [
    runs.LOCK_FILE,
    "metrics.csv",
    "summary.json",
    "curves.png",
    "curves.pdf",
    "checkpoints/previous.pt",
]


@pytest.mark.parametrize("name", WRITTEN_BY_RESUME)
def test_resume_replaces_a_planted_link_and_never_writes_through_it(name, run_copy, victim, capsys):
    target = run_copy / name
    target.unlink()
    target.symlink_to(victim)
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--steps", 30, "--quiet")
    assert code == 0, err
    assert victim.read_bytes() == b"the user's own file\n"
    assert not target.is_symlink() and target.is_file()
    assert runs.read_summary(run_copy)["steps_done"] == 30


def test_a_latest_checkpoint_linked_elsewhere_falls_back_and_is_not_written_through(
    run_copy, victim, capsys
):
    latest = run_copy / runs.CHECKPOINT
    latest.unlink()
    latest.symlink_to(victim)
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--steps", 30, "--quiet")
    assert code == 0, err
    assert "previous.pt" in err  # the fallback is said, in one warning line
    assert victim.read_bytes() == b"the user's own file\n"
    assert runs.load_checkpoint(run_copy)["step"] == 30


@pytest.mark.parametrize("name", ["curves.png", "curves.pdf"])
def test_show_replaces_a_linked_plot(name, run_copy, victim, capsys):
    (run_copy / name).unlink()
    (run_copy / name).symlink_to(victim)
    code, _, err = run_cli(capsys, "show", run_copy)
    assert code == 0, err
    assert victim.read_bytes() == b"the user's own file\n"
    assert (run_copy / name).is_file() and not (run_copy / name).is_symlink()


@pytest.mark.parametrize("name", ["index.csv", "index.json"])
def test_a_sweep_replaces_a_linked_index(name, tmp_path, victim, capsys):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / name).symlink_to(victim)
    code, _, err = run_cli(capsys, "sweep", *SWEEP_TINY, "--out", out)
    assert code == 0, err
    assert victim.read_bytes() == b"the user's own file\n"
    assert not (out / name).is_symlink()


def test_figure_files_replace_links(tmp_path, victim):
    import matplotlib.pyplot as plt

    from grokkit.plots import save_figure

    for name in ("fig.png", "fig.pdf", "fig.csv"):
        (tmp_path / name).symlink_to(victim)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    save_figure(fig, tmp_path / "fig.png")
    write_csv(tmp_path / "fig.csv", ["a"], [[1.5]])
    assert victim.read_bytes() == b"the user's own file\n"
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "fig.pdf").read_bytes()[:4] == b"%PDF"
    assert (tmp_path / "fig.csv").read_text() == "a\n1.5\n"


# ---------------------------------------------------------------- reads only of regular files

# Each file with a command that must read it (a resume rebuilds metrics.csv and summary.json from
# the checkpoint, replacing whatever stands at those names).
READ_FILES = [
    ("metrics.csv", "show"),
    ("summary.json", "show"),
    ("config.json", "train"),
    ("checkpoints/latest.pt", "train"),
]


def _plant(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
@pytest.mark.parametrize(("name", "command"), READ_FILES)
def test_a_non_regular_file_is_refused_in_one_line_without_blocking(
    name, command, kind, run_copy, capsys
):
    _plant(run_copy / name, kind)
    (run_copy / runs.PREVIOUS_CHECKPOINT).unlink()  # no fallback: the refusal itself is the answer
    before = everything(run_copy)
    argv = (
        ["show", run_copy]
        if command == "show"
        else ["train", "--resume", run_copy, "--steps", 30, "--quiet"]
    )
    with no_hang():
        code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert_one_line(err, name.split("/")[-1])
    assert "regular file" in err or "damaged" in err or "does not exist" in err
    assert everything(run_copy) == before


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_show_refuses_a_non_regular_metrics_file(kind, run_copy, capsys):
    _plant(run_copy / "metrics.csv", kind)
    before = everything(run_copy)
    with no_hang():
        code, _, err = run_cli(capsys, "show", run_copy)
    assert code == 2
    assert_one_line(err, "metrics.csv", "not a regular file")
    assert everything(run_copy) == before


def test_a_lock_file_that_is_a_fifo_is_refused_in_one_line(run_copy, capsys):
    _plant(run_copy / runs.LOCK_FILE, "fifo")
    before = everything(run_copy)
    with no_hang():
        code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--steps", 30, "--quiet")
    assert code == 2
    assert_one_line(err, runs.LOCK_FILE, "not a regular file")
    assert everything(run_copy) == before


# ---------------------------------------------------------------- what a command may touch


def test_resuming_a_finished_run_changes_nothing_at_all(run_copy, capsys):
    assert run_cli(capsys, "train", "--resume", run_copy, "--steps", 30, "--quiet")[0] == 0
    before = everything(run_copy)  # lock file and curves included
    time.sleep(0.01)
    for argv in (["--steps", "30"], []):
        code, out, err = run_cli(capsys, "train", "--resume", run_copy, "--quiet", *argv)
        assert code == 0, err
        assert "nothing was changed" in out
        assert everything(run_copy) == before


def test_analyze_refuses_a_folder_being_trained(run_copy, capsys):
    proc = _holder(run_copy)
    try:
        before = everything(run_copy)
        code, _, err = run_cli(capsys, "analyze", "fourier", run_copy)
        assert code == 2
        assert_one_line(err, "being written by another grokkit process")
        assert everything(run_copy) == before
    finally:
        _stop(proc)


def test_show_reads_a_folder_being_trained_and_leaves_its_curves_to_the_trainer(run_copy, capsys):
    proc = _holder(run_copy)
    try:
        before = everything(run_copy)
        code, out, err = run_cli(capsys, "show", run_copy)
        assert code == 0, err
        assert "steps_done         20" in out
        assert f"curves: not written: another grokkit process is training {run_copy}" in out
        assert f"grokkit compare {run_copy}" in out  # the way to see them now
        assert everything(run_copy) == before
    finally:
        _stop(proc)


def test_temporaries_of_a_killed_write_are_removed_by_the_next_writer(run_copy, capsys):
    stale = [
        run_copy / ".metrics.csv.k1ll3d.tmp",
        run_copy / "checkpoints" / ".latest.pt.k1ll3d.tmp",
    ]
    for p in stale:
        p.write_bytes(b"half a file")
    keep = run_copy / "notes.tmp"  # not one of ours: left alone
    keep.write_text("mine")
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--steps", 30, "--quiet")
    assert code == 0, err
    assert not any(p.exists() for p in stale)
    assert keep.read_text() == "mine"


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_follow_the_umask(umask, tmp_path):
    # A process's umask, as a user's shell sets it (grokkit reads it once, at import).
    write = f"from grokkit import files; files.write_json({str(tmp_path / 'a.json')!r}, {{'x': 1}})"
    done = subprocess.run(
        [sys.executable, "-c", write], preexec_fn=lambda: os.umask(umask), capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~umask


# ---------------------------------------------------------------- full disks, impossible sizes


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell files apart")
def test_a_full_disk_at_start_is_one_line_and_the_same_command_then_works(
    tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    argv = ["train", *TINY, "--steps", "10", "--out", out]
    _fail_writes_of(monkeypatch, "config.json")
    monkeypatch.setattr(os, "pwrite", _no_space)  # the lock's pid cannot be written either
    code, _, err = run_cli(capsys, *argv)
    monkeypatch.undo()
    assert code == 1
    assert_one_line(err, "config.json", "no space left on the device", "was not written")
    code, _, err = run_cli(capsys, *argv)  # the disk has room again: the same command takes over
    assert code == 0, err
    assert runs.read_summary(out)["steps_done"] == 10


def _no_space(*args):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell files apart")
def test_a_full_disk_while_plotting_keeps_the_previous_plot(run_copy, capsys, monkeypatch):
    before = everything(run_copy)
    _fail_writes_of(monkeypatch, "curves.png")
    code, _, err = run_cli(capsys, "show", run_copy)
    monkeypatch.undo()
    assert code == 1
    assert_one_line(err, "curves.png", "no space left on the device", "previous version is kept")
    assert everything(run_copy) == before


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_a_model_that_cannot_fit_is_refused_before_anything_is_created(command, tmp_path, capsys):
    tiny = TINY if command == "train" else SWEEP_TINY
    argv = [a for a in tiny if a not in ("--no-plot",)]
    i = argv.index("--d-model")
    argv[i + 1] = "1000000"
    code, _, err = run_cli(capsys, command, *argv, "--steps", 5, "--out", tmp_path / "big")
    assert code == 2
    assert_one_line(err, "parameters", "more than half of this machine's", "--d-model")
    assert not (tmp_path / "big").exists()


# ---------------------------------------------------------------- sweeps killed or interrupted

SWEEP = [
    "-m",
    "grokkit.cli",
    "sweep",
    "--op",
    "x+y",
    "--modulus",
    "23",
    "--seed",
    "0",
    "1",
    "--train-fraction",
    "0.5",
    "--steps",
    "1000000",
    "--jobs",
    "2",
    "--checkpoint-every",
    "20",
    "--d-model",
    "32",
    "--heads",
    "2",
    "--d-mlp",
    "64",
    "--layers",
    "1",
    "--quiet",
]


def _start_sweep(out: Path) -> tuple[subprocess.Popen, list[int]]:
    """A two-worker sweep, once both of its runs have a checkpoint; with its workers' pids."""
    proc = subprocess.Popen(
        [sys.executable, *SWEEP, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while (
        len(list(out.glob("runs/*/checkpoints/latest.pt"))) < 2 or "pending" in _index(out).values()
    ):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sweep never checkpointed"
        time.sleep(0.2)
    return proc, _descendants(proc.pid)


def _descendants(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (alive := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def _states(out: Path) -> dict[str, tuple[str, int, int]]:
    """Per run: (summary status, summary steps_done, checkpoint step)."""
    found = {}
    for d in sorted(out.glob("runs/*")):
        s = runs.read_summary(d)
        found[d.name] = (s["status"], s["steps_done"], runs.load_checkpoint(d)["step"])
    return found


def _index(out: Path) -> dict[str, str]:
    if not (out / "index.csv").is_file():
        return {"": "pending"}
    with open(out / "index.csv", newline="") as f:
        return {row["run_name"]: row["status"] for row in csv.DictReader(f)}


pytest_proc = pytest.mark.skipif(
    not Path("/proc").is_dir() or shutil.which("pgrep") is None,
    reason="needs /proc and pgrep to find the workers",
)


@pytest_proc
@pytest.mark.parametrize("target", ["group", pytest.param("main", marks=pytest.mark.slow)])
def test_ctrl_c_of_a_two_worker_sweep_exits_within_seconds(target, tmp_path):
    out = tmp_path / "sweep"
    proc, workers = _start_sweep(out)
    assert len(workers) >= 2
    started = time.monotonic()
    if target == "group":  # as a terminal sends it
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == 130
    assert_one_line(err, "interrupted", "run the same grokkit sweep command again")
    assert took < 10, f"took {took:.1f} s to exit"
    assert not _wait_gone(workers, 5)
    states = _states(out)
    assert all(
        status == "interrupted" and done == ckpt for status, done, ckpt in states.values()
    ), states
    assert set(_index(out).values()) == {"interrupted"}


@pytest_proc
def test_a_sweep_killed_outright_leaves_no_worker_alive(tmp_path):
    out = tmp_path / "sweep"
    proc, workers = _start_sweep(out)
    proc.kill()  # SIGKILL: nothing in the sweep's process runs again
    _, err = proc.communicate(timeout=30)
    assert not _wait_gone(workers, 15), "workers outlived their sweep"
    assert "Traceback" not in err and "leaked" not in err
    states = _states(out)  # each worker checkpointed the step it was on as it left
    assert all(
        status == "interrupted" and done == ckpt for status, done, ckpt in states.values()
    ), states
    assert "pending" not in _index(out).values()  # both runs had checkpointed before the kill
    for folder in (out, *out.glob("runs/*")):  # no orphan holds a lock: a re-run can start
        with runs.folder_lock(folder):
            pass


def test_ctrl_c_while_starting_is_one_line(tmp_path):
    """A Ctrl-C during the imports (seconds of torch) or at any moment after: one line, 130."""
    for delay in (0.3, 1.5):
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
                str(tmp_path / f"run{delay}"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"a Ctrl-C {delay} s after the start was lost: {err}")
        if proc.returncode == -signal.SIGINT:  # before Python itself had started: killed, silent
            assert err == ""
            continue
        assert proc.returncode == 130, err
        assert_one_line(err, "interrupted")


@pytest.mark.slow
@pytest_proc
def test_ctrl_c_while_sweep_workers_start_is_one_line(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, *SWEEP, "--out", str(tmp_path / "sweep")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while len(workers := _descendants(proc.pid)) < 2:  # spawned: now importing torch
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert_one_line(err, "interrupted")
    assert time.monotonic() - started < 15
    assert not _wait_gone(workers, 5)


# -------------------------------------------------------- writes never follow a linked folder


def _victim_folder(tmp_path: Path) -> Path:
    """A folder outside the run folder that a planted link points at: it must never change."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "latest.pt").write_bytes(b"the user's own file\n")
    return folder


def _link_folder(run_dir: Path, name: str, target: Path) -> None:
    """``run_dir/name`` (a folder, moved aside if there) replaced by a link to ``target``."""
    folder = run_dir / name
    if folder.is_dir():
        folder.rename(run_dir.parent / f"{name}-moved-aside")
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.symlink_to(target, target_is_directory=True)


@pytest.mark.parametrize("name", ["checkpoints", "tensorboard"])
def test_resume_replaces_a_linked_folder_and_never_writes_through_it(
    name, run_copy, tmp_path, capsys
):
    elsewhere = _victim_folder(tmp_path)
    if name == "checkpoints":  # the run's checkpoints are read through the link, then replaced
        shutil.rmtree(elsewhere)
        shutil.copytree(run_copy / name, elsewhere)
    before = everything(elsewhere)
    _link_folder(run_copy, name, elsewhere)
    log = ["--log", "tensorboard"] if name == "tensorboard" else []
    code, _, err = run_cli(capsys, "train", "--resume", run_copy, "--steps", 30, "--quiet", *log)
    assert code == 0, err
    assert everything(elsewhere) == before  # no byte written, moved or removed there
    assert (run_copy / name).is_dir() and not (run_copy / name).is_symlink()
    if name == "checkpoints":
        assert runs.load_checkpoint(run_copy)["step"] == 30
    else:
        assert list((run_copy / name).glob("events.out.tfevents.*"))


def test_a_checkpoints_folder_swapped_for_a_link_while_training_is_not_followed(tmp_path):
    """Library: train_runs with ``checkpoints/`` replaced by a link between two checkpoints."""
    from conftest import tiny_run

    from grokkit.population import Population
    from grokkit.train import train_runs

    elsewhere = _victim_folder(tmp_path)
    before = everything(elsewhere)
    run_dir = tmp_path / "run"
    original = Population.step

    def step_then_swap(self):
        losses = original(self)
        if self.step_count == 15:  # after the checkpoint at 10, before the one at 20
            _link_folder(run_dir, "checkpoints", elsewhere)
        return losses

    with pytest.MonkeyPatch.context() as m:
        m.setattr(Population, "step", step_then_swap)
        train_runs([tiny_run(steps=20, snapshot_every=20)], [run_dir], progress=False)
    assert everything(elsewhere) == before
    assert not (run_dir / "checkpoints").is_symlink()
    assert runs.load_checkpoint(run_dir)["step"] == 20
    assert runs.snapshot_steps(run_dir) == [20]


# ---------------------------------------- a start stopped before its first checkpoint


def _dead_end(tmp_path: Path, half_run: Path) -> Path:
    """What a kill during the first checkpoint leaves: config.json, the lock, and checkpoints/
    holding only the temporary file of the checkpoint being written."""
    out = tmp_path / "dead-end"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copy(half_run / "config.json", out / "config.json")
    (out / runs.LOCK_FILE).write_text("12345")
    (out / "checkpoints" / ".latest.pt.x1y2z3.tmp").write_bytes(b"half a checkpoint")
    return out


def _config_argv(run_dir: Path) -> list[str]:
    """The tiny command line that made ``half_run``, with its budget."""
    return [a for a in TINY if a != "--no-plot"] + ["--no-plot", "--steps", "20"]


@pytest.mark.parametrize("how", ["same command", "resume"])
def test_a_run_killed_during_its_first_checkpoint_is_taken_over(how, half_run, tmp_path, capsys):
    out = _dead_end(tmp_path, half_run)
    if how == "same command":
        code, _, err = run_cli(capsys, "train", *_config_argv(half_run), "--out", out)
    else:
        code, _, err = run_cli(capsys, "train", "--resume", out, "--quiet", "--no-plot")
    assert code == 0, err
    assert runs.read_summary(out)["status"] == "completed"
    assert runs.load_checkpoint(out)["step"] == 20
    assert not list((out / "checkpoints").glob(".*.tmp"))


def test_another_run_into_a_dead_end_of_a_different_run_is_one_line(half_run, tmp_path, capsys):
    out = _dead_end(tmp_path, half_run)
    before = everything(out)
    argv = _config_argv(half_run) + ["--seed", "7"]
    code, _, err = run_cli(capsys, "train", *argv, "--out", out)
    assert code == 2
    assert_one_line(err, "start of another run", "no checkpoint yet", "seed")
    assert everything(out) == before


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell files apart")
def test_a_full_disk_at_the_first_checkpoint_says_what_is_on_disk_and_a_rerun_works(
    tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    argv = ["train", *TINY, "--steps", "20", "--out", out]
    _fail_writes_of(monkeypatch, "latest.pt")
    code, _, err = run_cli(capsys, *argv)
    monkeypatch.undo()
    assert code == 1
    assert_one_line(err, "latest.pt", "no space left", "no checkpoint yet", "same command")
    assert "nothing was written" not in err  # config.json was
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert runs.read_summary(out)["steps_done"] == 20


def test_the_library_takes_over_a_dead_end_of_the_same_run_only(half_run, tmp_path):
    from grokkit.errors import InputError
    from grokkit.train import train_runs

    out = _dead_end(tmp_path, half_run)
    config = runs.read_config(out)
    before = everything(out)
    with pytest.raises(InputError, match="start of another run"):
        train_runs([config.with_changes(seed=7)], [out], progress=False)
    assert everything(out) == before
    (summary,) = train_runs([config], [out], progress=False)
    assert summary["status"] == "completed" and summary["steps_done"] == 20


# ---------------------------------------------------------------- resources: memory limits, threads

# ~108 M parameters: about 2.2 GB to train, a fifth of this machine's memory but more than a
# process limited to 3 GB of address space can get.
LARGE = ["--d-model", "3000", "--d-mlp", "12000", "--heads", "4", "--layers", "1"]


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux's rlimits")
def test_a_model_over_the_processs_memory_limit_is_refused_before_anything_is_created(tmp_path):
    import resource

    from grokkit.ops import physical_memory

    if (physical_memory() or 0) < 8 * 2**30:
        pytest.skip("the model must fit in half of this machine's memory")
    out = tmp_path / "big"
    argv = [a for a in TINY if a not in ("--d-model", "32", "--heads", "2", "--d-mlp", "64")]
    argv = [a for a in argv if a not in ("--layers", "1")] + LARGE

    def limit():  # what `ulimit -v 3000000` in the user's shell does
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, resource.RLIM_INFINITY))

    done = subprocess.run(
        [sys.executable, "-m", "grokkit.cli", "train", *argv, "--steps", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert_one_line(done.stderr, "parameters", "memory limit (ulimit -v)", "--d-model")
    assert not out.exists()


def test_the_library_refuses_a_model_over_the_processs_memory_limit(tmp_path, monkeypatch):
    import resource

    from conftest import tiny_run

    from grokkit.errors import InputError
    from grokkit.train import train_runs

    real = resource.getrlimit
    mapped = 1024 * _vm_size_kb()
    monkeypatch.setattr(
        resource,
        "getrlimit",
        lambda which: (mapped + 2**20, -1) if which == resource.RLIMIT_AS else real(which),
    )
    with pytest.raises(InputError, match="memory limit"):
        train_runs([tiny_run(d_model=256, d_mlp=1024)], [tmp_path / "run"], progress=False)
    assert not (tmp_path / "run").exists()


def _vm_size_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1])
    pytest.skip("no /proc/self/status")


@pytest.mark.parametrize("command", ["train", "sweep", "bench"])
@pytest.mark.parametrize("threads", ["1000", "100000"])
def test_threads_beyond_four_per_core_are_refused_in_one_line(command, threads, tmp_path, capsys):
    argv = {
        "train": ["train", *TINY, "--steps", "5", "--out", tmp_path / "run"],
        "sweep": ["sweep", *SWEEP_TINY, "--out", tmp_path / "run"],
        "bench": ["bench", "--json"],
    }[command]
    started = time.monotonic()
    code, _, err = run_cli(capsys, *argv, "--threads", threads)
    assert code == 2
    assert_one_line(err, "--threads", threads, "per core")
    assert time.monotonic() - started < 10
    assert not (tmp_path / "run").exists()


# ------------------------------------------------ SIGTERM, and signals a script ignored


def _terminate_at(monkeypatch, step: int) -> None:
    """SIGTERM to this process right after update ``step``, as ``kill PID`` would send it. (The
    tests take ``half_run`` first: the GEMM tuning it measures takes steps of its own.)"""
    from grokkit.population import Population

    original = Population.step

    def step_then_terminate(self):
        losses = original(self)
        if self.step_count == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return losses

    monkeypatch.setattr(Population, "step", step_then_terminate)


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_sigterm_checkpoints_like_ctrl_c_and_exits_143(
    command, half_run, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "out"
    argv = {
        "train": ["train", *TINY, "--steps", "20", "--out", out],
        "sweep": ["sweep", *SWEEP_TINY, "--seed", "0", "1", "--out", out],
    }[command]
    _terminate_at(monkeypatch, 12)
    handler = signal.getsignal(signal.SIGTERM)
    code, _, err = run_cli(capsys, *argv)
    monkeypatch.undo()
    assert code == 143
    assert_one_line(err, "interrupted (SIGTERM) at step 12")
    folders = [out] if command == "train" else sorted((out / "runs").iterdir())
    for d in folders:
        assert runs.read_summary(d)["status"] == "interrupted"
        assert runs.load_checkpoint(d)["step"] == runs.read_summary(d)["steps_done"] == 12
    assert signal.getsignal(signal.SIGTERM) == handler  # main restored the caller's handler


def test_sigterm_in_the_library_checkpoints_and_raises_training_interrupted(tmp_path, monkeypatch):
    from conftest import tiny_run

    from grokkit.train import TrainingInterrupted, train_runs

    _terminate_at(monkeypatch, 13)
    with pytest.raises(TrainingInterrupted, match="SIGTERM"):
        train_runs([tiny_run(steps=20)], [tmp_path / "run"], progress=False)
    assert runs.read_summary(tmp_path / "run")["status"] == "interrupted"
    assert runs.load_checkpoint(tmp_path / "run")["step"] == 13


def _start(argv: list[str], out: Path, ignore_sigint: bool = False) -> subprocess.Popen:
    """``grokkit ARGV`` in a process of its own, once ``out`` holds a checkpoint."""

    def ignore():  # what `grokkit ... &` in a non-interactive shell script inherits
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen(
        [sys.executable, "-m", "grokkit.cli", *map(str, argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ignore if ignore_sigint else None,
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("**/checkpoints/latest.pt")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "never checkpointed"
        time.sleep(0.1)
    return proc


def _finish(proc: subprocess.Popen, seconds: float = 30) -> str:
    try:
        return proc.communicate(timeout=seconds)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"still running {seconds} s after the signal")


def test_sigterm_of_a_real_train_process_exits_143_with_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = _start(["train", *TINY, "--steps", "1000000", "--out", out], out)
    proc.send_signal(signal.SIGTERM)
    err = _finish(proc)
    assert proc.returncode == 143, err
    assert_one_line(err, "interrupted (SIGTERM) at step", "grokkit train --resume")
    step = int(err.split("at step ")[1].split(";")[0])
    assert runs.read_summary(out)["status"] == "interrupted"
    assert runs.load_checkpoint(out)["step"] == step > 0


def test_a_sweep_started_with_sigint_ignored_still_stops_on_ctrl_c(tmp_path):
    out = tmp_path / "sweep"
    argv = ["sweep", *SWEEP_TINY, "--seed", "0", "1", "--out", out]
    argv[argv.index("--steps") + 1] = "1000000"
    argv[argv.index("--jobs") + 1] = "2"  # the sweep's own process waits on two workers
    proc = _start(argv, out, ignore_sigint=True)
    while len(list(out.glob("runs/*/checkpoints/latest.pt"))) < 2:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    err = _finish(proc)
    assert proc.returncode == 130, err
    assert_one_line(err, "interrupted")
    for run_dir in (out / "runs").iterdir():
        assert runs.read_summary(run_dir)["status"] == "interrupted"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_sweep_replaces_a_linked_runs_folder_and_never_writes_through_it(jobs, tmp_path, capsys):
    elsewhere = _victim_folder(tmp_path)
    before = everything(elsewhere)
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "runs").symlink_to(elsewhere, target_is_directory=True)
    argv = [*SWEEP_TINY, "--seed", "0", "1", "--out", out]
    argv[argv.index("--jobs") + 1] = jobs
    code, _, err = run_cli(capsys, "sweep", *argv)
    assert code == 0, err
    assert everything(elsewhere) == before
    assert not (out / "runs").is_symlink() and len(list(out.glob("runs/*/summary.json"))) == 2
