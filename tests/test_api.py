"""Where researchers work: the notebook API (load_run, load_sweep), snapshots, compare, export,
and a sweep's progress across workers."""

from __future__ import annotations

import queue
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import tiny_run

import grokkit
from grokkit import runs
from grokkit.cli import main
from grokkit.config import RunConfig
from grokkit.errors import InputError
from grokkit.model import forward_reference
from grokkit.sweep import config_hash, expand_grid, run_name, run_sweep
from grokkit.sweep.progress import SweepProgress
from grokkit.train import train_runs

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def snapshot_run(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("api") / "run"
    train_runs([tiny_run(steps=20, snapshot_every=5)], [run_dir], progress=False)
    return run_dir


def test_readme_example_runs_as_written(tmp_path, monkeypatch):
    text = README.read_text()
    block = re.search(
        r"<!-- README example: tests/test_api.py runs this block -->\n```python\n(.*?)```",
        text,
        re.S,
    )
    assert block, "the README's notebook example is missing"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    run, model, val = namespace["run"], namespace["model"], namespace["val"]
    # What the example prints is true: the weights give back the run's own final numbers.
    assert model.accuracy(val) == pytest.approx(run.summary["val_accuracy"], abs=1e-6)
    assert run.snapshot_steps == [0, 100, 200, 300]
    assert list(run.metrics["step"]) == [r["step"] for r in runs.read_metrics(run.path)]
    hooked_logits = namespace["logits"][:, -1]
    assert torch.allclose(hooked_logits, model.logits()[:8], atol=1e-5)


def test_load_run_matches_the_files_and_the_weights(snapshot_run):
    run = grokkit.load_run(snapshot_run)
    assert run.config == runs.read_config(snapshot_run)
    assert run.summary == runs.read_summary(snapshot_run)
    assert isinstance(run.metrics, pd.DataFrame)
    rows = runs.read_metrics(snapshot_run)
    assert run.metrics.to_dict("records") == rows
    model = run.model()
    assert model.step == 20
    # The model's logits are the reference forward pass of the checkpoint's weights.
    table = run.table
    params = {k: v.unsqueeze(0) for k, v in model.weights.items()}
    expected = forward_reference(params, model.config, table.tokens().unsqueeze(0))[0]
    assert torch.allclose(model.logits(), expected, atol=1e-5)
    train, val = run.split()
    assert len(train) == run.summary["n_train"] and len(val) == run.summary["n_val"]
    assert model.accuracy(val) == pytest.approx(run.summary["val_accuracy"], abs=1e-6)
    assert model.accuracy(train) == pytest.approx(run.summary["train_accuracy"], abs=1e-6)


def test_snapshots_hold_the_weights_of_their_step(snapshot_run):
    run = grokkit.load_run(snapshot_run)
    assert run.snapshot_steps == [0, 5, 10, 15, 20]
    latest = runs.load_checkpoint(snapshot_run)
    assert torch.equal(runs.load_snapshot(snapshot_run, 20), latest["flat"])
    previous = torch.load(snapshot_run / runs.PREVIOUS_CHECKPOINT, weights_only=True)  # step 10
    assert previous["step"] == 10 and torch.equal(
        runs.load_snapshot(snapshot_run, 10), previous["flat"]
    )
    assert not torch.equal(runs.load_snapshot(snapshot_run, 0), runs.load_snapshot(snapshot_run, 5))
    assert run.model(step=5).step == 5


def test_snapshot_errors_are_one_line(snapshot_run, tmp_path):
    with pytest.raises(InputError, match=r"no snapshot at step 7 \(kept: 0, 5, 10, 15, 20\)"):
        grokkit.load_run(snapshot_run).model(step=7)
    damaged = tmp_path / "run"
    damaged.mkdir()
    for name in ("config.json", "summary.json", "metrics.csv"):
        (damaged / name).write_bytes((snapshot_run / name).read_bytes())
    snap = runs.snapshot_path(damaged, 5)
    snap.parent.mkdir(parents=True)
    snap.write_bytes(b"not a snapshot")
    with pytest.raises(InputError, match="step_00000005.pt is damaged"):
        grokkit.load_run(damaged).model(step=5)


def test_load_run_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(InputError, match="is not a folder"):
        grokkit.load_run(tmp_path / "missing")
    with pytest.raises(InputError, match="is not a run folder"):
        grokkit.load_run(tmp_path)
    with pytest.raises(InputError, match="is not a sweep folder"):
        grokkit.load_sweep(tmp_path)
    (tmp_path / "index.json").write_text('{"not": "a list"}')
    with pytest.raises(InputError, match="index.json is damaged"):
        grokkit.load_sweep(tmp_path)


def test_a_field_added_later_keeps_existing_run_names():
    # Names that grokkit 0.1 (commit 9756eea) gave these runs: re-running an old sweep must find
    # its folders, whatever fields were added since.
    assert config_hash(RunConfig()) == "10fe3bcc"
    assert (
        run_name(RunConfig(operation="s5_xy", train_fraction=0.3, seed=2))
        == "s5_xy-f0.300-adamw-k0-s2-f9a20e1c"
    )
    for changed in (
        {"snapshot_every": 100},
        {"grad_filter": "ema"},
        {"loss": "stablemax"},
        {"orthogonal_grad": True},
        {"init_scale": 2.0},
        {"l2": 0.005},
        {"muon": True},
        {"fixed_norm": True},
    ):
        assert config_hash(RunConfig().with_changes(**changed)) != "10fe3bcc", changed


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory) -> tuple[Path, list]:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("api-sweep") / "sweep"
    configs = expand_grid(tiny_run(steps=10), {"train_fraction": [0.4, 0.6], "seed": [0, 1]})
    return out, run_sweep(configs, out, jobs=1, progress=False)


def test_load_sweep_is_the_index(sweep_folder):
    out, results = sweep_folder
    frame = grokkit.load_sweep(out)
    index = runs.read_json(out / "index.json")
    assert frame.drop(columns="path").to_dict("records") == index
    assert [Path(p) for p in frame["path"]] == [r.run_dir for r in results]
    assert sorted(frame["train_fraction"]) == [0.4, 0.4, 0.6, 0.6]
    assert grokkit.load_run(frame["path"][0]).summary == results[0].summary


def test_compare_writes_one_figure_grouped_by_a_field(sweep_folder, snapshot_run, tmp_path, capsys):
    out, _ = sweep_folder
    png = tmp_path / "by-fraction.png"
    assert main(["compare", str(out), "--by", "train_fraction", "--out", str(png)]) == 0
    assert "4 runs" in capsys.readouterr().out
    assert png.stat().st_size > 10_000 and png.with_suffix(".pdf").is_file()
    assert main(["compare", str(snapshot_run), str(out), "--out", str(tmp_path / "all.png")]) == 0
    assert "5 runs" in capsys.readouterr().out


def test_compare_bad_input_is_one_line(sweep_folder, tmp_path, capsys):
    out, _ = sweep_folder
    assert main(["compare", str(out), "--by", "colour", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown field 'colour'" in err and "train_fraction" in err
    assert not (tmp_path / "x.png").exists()
    assert main(["compare", str(tmp_path / "nothing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_export_cli_writes_a_model_with_equal_logits(snapshot_run, tmp_path, capsys):
    pytest.importorskip("transformer_lens")
    from grokkit.export import load_hooked_transformer

    out = tmp_path / "tl"
    assert (
        main(["export", str(snapshot_run), "--to", "transformer-lens", str(out), "--step", "10"])
        == 0
    )
    assert "step 10" in capsys.readouterr().out
    hooked = load_hooked_transformer(out)
    model = grokkit.load_run(snapshot_run).model(step=10)
    tokens = model.table.tokens()
    assert torch.allclose(hooked(tokens)[:, -1], model.logits(), atol=1e-5)
    # OUT is never overwritten.
    assert main(["export", str(snapshot_run), "--to", "transformer-lens", str(out)]) == 2
    assert "not an empty folder" in capsys.readouterr().err


def test_progress_counts_every_step_and_drops_what_an_early_stop_leaves():
    ended = []
    progress = SweepProgress(
        {"a": ("run-a", 0, 100), "b": ("run-b", 20, 120)},
        on_run_ended=lambda n, s: ended.append(n),
        description="t",
        enabled=False,
        runs_done=1,
        runs_total=3,
    )
    progress.advanced(2)  # a population of two took a step
    progress.drain(
        _Queue([("steps", 58), ("ended", "a", {"steps_done": 30, "status": "stopped_early"})])
    )
    assert progress.steps_done == 60 and progress.steps_total == 200 - (100 - 30)
    progress.run_ended("a", {"steps_done": 30})  # reported again at the group's end: once only
    assert ended == ["run-a"] and progress.runs_done == 2
    progress.close()


class _Queue:
    def __init__(self, items):
        self.items = list(items)

    def get_nowait(self):
        if not self.items:
            raise queue.Empty
        return self.items.pop(0)


@pytest.mark.slow
def test_sweep_progress_across_worker_processes(tmp_path, capsys):
    configs = expand_grid(tiny_run(steps=30), {"operation": ["x+y", "x-y"]})
    configs.append(
        tiny_run(steps=30, operation="x-y", seed=1, stop_after_val_99=1, train_fraction=0.9)
    )
    results = run_sweep(configs, tmp_path / "sweep", jobs=2, progress=True)
    err = capsys.readouterr().err
    for r in results:  # a line per run as it ends
        assert f"done {r.run_dir.name}:" in err
    trained = sum(r.summary["steps_done"] for r in results)
    # The bar ends at the steps actually trained, out of a total that dropped the unused ones.
    assert re.search(rf"\b{trained}/{trained}\b", err), err[-2000:]
    assert "runs 3/3" in err
