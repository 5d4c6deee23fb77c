"""Loggers: what TensorBoard and W&B read back equals metrics.csv, also across a resume."""

from __future__ import annotations

import json
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_run

from grokkit import runs
from grokkit.errors import GrokkitWarning, InputError
from grokkit.loggers import METRIC_TAGS, logger_factory
from grokkit.train import train_runs

# ---------------------------------------------------------------- TensorBoard


def _accumulator(log_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _assert_scalars_equal_metrics(acc, run_dir: Path) -> None:
    """Every series: the steps of metrics.csv, once each, with its values rounded to float32
    (TensorBoard stores scalars as float32)."""
    rows = runs.read_metrics(run_dir)
    for column, tag in METRIC_TAGS.items():
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [r["step"] for r in rows], tag
        assert [e.value for e in events] == [float(np.float32(r[column])) for r in rows], tag


def _hparams(acc) -> tuple:
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    def plugin_data(tag):
        return HParamsPluginData.FromString(acc.SummaryMetadata(tag).plugin_data.content)

    experiment = plugin_data("_hparams_/experiment").experiment
    start = plugin_data("_hparams_/session_start_info").session_start_info
    return experiment, start


def test_tensorboard_reads_back_as_metrics_csv(tmp_path):
    config = tiny_run(steps=40)
    run_dir = tmp_path / "run"
    [summary] = train_runs(
        [config], [run_dir], progress=False, loggers=[logger_factory("tensorboard")]
    )
    log_dir = run_dir / "tensorboard"
    assert [p for p in log_dir.iterdir() if p.is_dir()] == []  # hparams too: no sub-folder
    acc = _accumulator(log_dir)
    _assert_scalars_equal_metrics(acc, run_dir)

    experiment, start = _hparams(acc)
    hparams = {
        k: v.number_value if v.HasField("number_value") else v.string_value
        for k, v in start.hparams.items()
    }
    flat = config.flat_dict()
    assert hparams["lr"] == flat["lr"] and hparams["batch_size"] == 16
    assert hparams["operation"] == "x+y" and hparams["split_seed"] == "None"
    assert set(hparams) == set(flat)
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert {"final/val_accuracy", "final/steps_done"} <= metric_tags
    assert ("final/steps_to_val_99" in metric_tags) == (summary["steps_to_val_99"] is not None)
    [final] = acc.Scalars("final/val_accuracy")
    assert (final.step, final.value) == (40, float(np.float32(summary["val_accuracy"])))

    [text] = acc.Tensors("config/text_summary")
    shown = "\n".join(line[4:] for line in text.tensor_proto.string_val[0].decode().splitlines())
    assert json.loads(shown) == config.to_dict()


class _CopyFolderAt:
    """A logger that copies the run folder (all but tensorboard/) when the row of ``step``
    arrives: the files as a process killed at that moment would have left them."""

    def __init__(self, run_dir: Path, step: int, into: Path) -> None:
        self.run_dir, self.step, self.into = run_dir, step, into

    def log_row(self, row: dict) -> None:
        if row["step"] == self.step:
            skip = shutil.ignore_patterns("tensorboard", runs.LOCK_FILE)
            shutil.copytree(self.run_dir, self.into, ignore=skip)

    def close(self, summary: dict) -> None:
        pass


@pytest.mark.parametrize("kill", ["after_checkpoint", "damaged_latest"])
def test_tensorboard_resume_after_kill_shows_each_step_once(tmp_path, kill):
    """The killed process logged rows (and even its final record) up to step 40, but the run
    resumes from the checkpoint at step 20: rows 25-40 come again, with other wall seconds.

    after_checkpoint: killed at the row of step 30 (checkpoints at 20 and 10, metrics.csv to 20).
    damaged_latest: killed at the row of step 40 (checkpoints at 30 and 20, metrics.csv to 30),
    then latest.pt was damaged: the resume falls back to previous.pt (step 20) while metrics.csv
    goes on to step 30, so purging after metrics.csv's last step would leave 25 and 30 twice.
    """
    config = tiny_run(steps=40)
    run_dir, saved = tmp_path / "run", tmp_path / "saved"
    kill_step = 30 if kill == "after_checkpoint" else 40
    copy = lambda d, c: _CopyFolderAt(d, kill_step, saved)  # noqa: E731
    train_runs([config], [run_dir], progress=False, loggers=[logger_factory("tensorboard"), copy])
    first = {e.step: e.value for e in _accumulator(run_dir / "tensorboard").Scalars("wall_seconds")}
    assert max(first) == 40

    for name in ("checkpoints", "metrics.csv", "summary.json"):  # back to the state at the kill
        target = run_dir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        (shutil.copytree if (saved / name).is_dir() else shutil.copy)(saved / name, target)
    if kill == "damaged_latest":
        (run_dir / runs.CHECKPOINT).write_bytes(b"damaged")
        with pytest.warns(GrokkitWarning, match="previous.pt"):
            state = runs.load_checkpoint(run_dir)
        assert runs.read_metrics(run_dir)[-1]["step"] == 30
    else:
        state = runs.load_checkpoint(run_dir)
    assert state["step"] == 20

    train_runs(
        [config], [run_dir], states=[state], progress=False, loggers=[logger_factory("tensorboard")]
    )
    acc = _accumulator(run_dir / "tensorboard")
    _assert_scalars_equal_metrics(acc, run_dir)
    again = {e.step: e.value for e in acc.Scalars("wall_seconds")}
    assert all(again[s] == first[s] for s in again if s <= 20)  # kept from the first process
    assert any(again[s] != first[s] for s in again if s > 20)  # replaced by the resumed one
    assert [e.step for e in acc.Scalars("final/val_accuracy")] == [40]


# ---------------------------------------------------------------- Weights & Biases


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B offline and silent, with every file it writes (settings, caches, logs) under
    tmp_path, and no credentials of the machine in sight."""
    wandb = pytest.importorskip("wandb")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("DIR", "CONFIG_DIR", "CACHE_DIR", "DATA_DIR", "ARTIFACT_DIR"):
        monkeypatch.setenv(f"WANDB_{name}", str(tmp_path / f"wandb_{name.lower()}"))
    for name in (
        "WANDB_API_KEY",
        "WANDB_IDENTITY_TOKEN_FILE",
        "WANDB_BASE_URL",
        "WANDB_PROJECT",
        "WANDB_ENTITY",
        "WANDB_RUN_ID",
        "WANDB_RESUME",
        "NETRC",
        "GROKKIT_WANDB_PROJECT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    wandb.teardown()  # W&B reads its environment once per process: start from this one
    yield wandb
    wandb.teardown()


_BLOCK = 32 * 1024


def _wandb_records(path: Path):
    """The records of a .wandb file (W&B's transaction log, which wandb 0.31 can write but has no
    Python reader for): a 7-byte header, then LevelDB-style log records in 32 KiB blocks, each
    a checksummed chunk of a serialised ``wandb_internal_pb2.Record``."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:7] == b":W&B" + struct.pack("<HB", 0xBEE1, 0)
    pos, pending = 7, b""
    while len(data) - pos >= 7:
        if _BLOCK - pos % _BLOCK < 7:  # too little left in this block for a header: padding
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        assert zlib.crc32(bytes([kind]) + chunk) == crc and len(chunk) == length
        pos += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk  # full/first, middle/last
        if kind in (1, 4):
            yield wandb_internal_pb2.Record.FromString(pending)


def _read_wandb_session(session_dir: Path) -> dict:
    """One offline session: its run record, history rows {key: value} and merged summary."""
    [path] = session_dir.glob("*.wandb")
    run, history, summary = None, [], {}
    for record in _wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
        elif kind == "history":
            history.append(
                {
                    "/".join(i.nested_key) or i.key: json.loads(i.value_json)
                    for i in record.history.item
                }
            )
        elif kind == "summary":
            for item in record.summary.update:
                summary["/".join(item.nested_key) or item.key] = json.loads(item.value_json)
    return {"run": run, "history": history, "summary": summary}


def _assert_history_equals_metrics(history: list[dict], run_dir: Path) -> None:
    rows = runs.read_metrics(run_dir)
    assert [h["_step"] for h in history] == [r["step"] for r in rows]
    for h, r in zip(history, rows):
        assert {tag: h[tag] for tag in METRIC_TAGS.values()} == {
            tag: r[column] for column, tag in METRIC_TAGS.items()
        }


def _sessions(run_dir: Path) -> list[Path]:
    """The offline sessions of a run folder. Read them only after ``wandb.teardown()``: W&B's
    service process writes the .wandb files, and ``Run.finish`` can return before it has flushed
    them (a CI run read a session without its run record)."""
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def test_wandb_offline_population_reads_back_as_metrics_csv(tmp_path, offline_wandb):
    """Two runs in one population: two W&B runs open at once in this process."""
    configs = [tiny_run(steps=20, seed=0), tiny_run(steps=20, seed=1, lr=3e-3)]
    dirs = [tmp_path / "seed_0", tmp_path / "seed_1"]
    summaries = train_runs(configs, dirs, progress=False, loggers=[logger_factory("wandb")])
    offline_wandb.teardown()  # see _sessions
    ids = set()
    for config, run_dir, summary in zip(configs, dirs, summaries):
        [session] = _sessions(run_dir)
        read = _read_wandb_session(session)
        run_id = (run_dir / "wandb" / "grokkit-run-id").read_text().strip()
        ids.add(run_id)
        assert read["run"].run_id == run_id and read["run"].display_name == run_dir.name
        assert read["run"].project == "grokkit"
        logged_config = {u.key: json.loads(u.value_json) for u in read["run"].config.update}
        assert {k: logged_config[k] for k in config.flat_dict()} == config.flat_dict()
        _assert_history_equals_metrics(read["history"], run_dir)
        for key in ("status", "val_accuracy", "steps_done", "steps_to_val_99", "best_val_accuracy"):
            assert read["summary"][key] == summary[key]
    assert len(ids) == 2


def test_wandb_resume_continues_the_same_run(tmp_path, offline_wandb, monkeypatch):
    """A budget extended from 20 to 30 steps: a second offline session with the same id logs the
    rows after the checkpoint (step 20), and the two sessions together equal metrics.csv."""
    monkeypatch.setenv("GROKKIT_WANDB_PROJECT", "grokkit-test")
    run_dir = tmp_path / "run"
    train_runs([tiny_run(steps=20)], [run_dir], progress=False, loggers=[logger_factory("wandb")])
    config = tiny_run(steps=30)
    train_runs(
        [config],
        [run_dir],
        states=[runs.load_checkpoint(run_dir)],
        progress=False,
        loggers=[logger_factory("wandb")],
    )
    offline_wandb.teardown()  # see _sessions
    first, second = (_read_wandb_session(s) for s in _sessions(run_dir))
    assert first["run"].run_id == second["run"].run_id
    assert second["run"].project == "grokkit-test"
    assert max(h["_step"] for h in first["history"]) == 20
    assert min(h["_step"] for h in second["history"]) > 20
    _assert_history_equals_metrics(first["history"] + second["history"], run_dir)
    assert second["summary"]["steps_done"] == 30


def test_wandb_is_offline_unless_configured(tmp_path, offline_wandb, monkeypatch):
    from grokkit.loggers.wandb import default_mode

    monkeypatch.delenv("WANDB_MODE")
    offline_wandb.teardown()
    assert default_mode() == "offline"  # no mode, no key, no login: never the network

    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    assert default_mode() is None
    monkeypatch.delenv("WANDB_API_KEY")

    # `wandb login` writes the key into .netrc, for the host W&B talks to.
    from urllib.parse import urlsplit

    from wandb.sdk import wandb_setup

    offline_wandb.teardown()
    host = urlsplit(wandb_setup.singleton().settings.base_url).netloc
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {host}\n  login user\n  password {'b' * 40}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert default_mode() is None


# ---------------------------------------------------------------- the registry


def test_logger_factory_names_and_missing_packages(monkeypatch):
    with pytest.raises(InputError, match="unknown logger 'nonsense'; choose from tensorboard"):
        logger_factory("nonsense")
    for name, title in (("tensorboard", "TensorBoard"), ("wandb", "Weights & Biases")):
        assert callable(logger_factory(name))
        with monkeypatch.context() as m:
            m.setitem(sys.modules, name, None)  # what Python does for a package not installed
            with pytest.raises(InputError) as e:
                logger_factory(name)
        assert str(e.value) == f"--log {name} needs {title}: pip install 'grokkit[{name}]'"


# ---------------------------------------------------------------- the --log flag of the commands

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
    "--steps",
    "20",
    "--eval-every",
    "5",
    "--checkpoint-every",
    "10",
    "--device",
    "cpu",
    "--quiet",
]


def test_train_log_tensorboard_from_the_command_line(tmp_path, capsys):
    from grokkit.cli import main

    out = tmp_path / "run"
    assert main(["train", *TINY_FLAGS, "--no-plot", "--log", "tensorboard", "--out", str(out)]) == 0
    _assert_scalars_equal_metrics(_accumulator(out / "tensorboard"), out)


@pytest.mark.slow
def test_sweep_workers_log_each_run_under_its_own_folder(tmp_path, capsys):
    from grokkit.cli import main

    out = tmp_path / "sweep"
    # Two operations: two populations, trained by two worker processes.
    flags = [f for f in TINY_FLAGS if f != "x+y"]
    flags[flags.index("--op") + 1 : flags.index("--op") + 1] = ["x+y", "x-y"]
    assert main(["sweep", *flags, "--jobs", "2", "--log", "tensorboard", "--out", str(out)]) == 0
    run_dirs = sorted((out / "runs").iterdir())
    assert len(run_dirs) == 2
    for run_dir in run_dirs:
        _assert_scalars_equal_metrics(_accumulator(run_dir / "tensorboard"), run_dir)


def test_log_without_the_package_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    from grokkit.cli import main

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    out = tmp_path / "run"
    assert main(["train", *TINY_FLAGS, "--log", "tensorboard", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        err == "grokkit: error: --log tensorboard needs TensorBoard: "
        "pip install 'grokkit[tensorboard]'\n"
    )
    assert not out.exists()
    assert main(["train", *TINY_FLAGS, "--log", "nonsense", "--out", str(out)]) == 2
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err
