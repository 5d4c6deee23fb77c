"""Sweeps: grid expansion, run names, grouping, the local and Ray executors, resume, the CLI.

Every run is tiny (x+y or x-y mod 11, width 32, 20 steps, CPU, one thread).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from grokkit import runs
from grokkit.cli import main
from grokkit.config import RunConfig
from grokkit.optim import PRESETS
from grokkit.population import Population
from grokkit.sweep import SweepError, expand_grid, plan, run_name, run_sweep
from grokkit.train import train_runs

BASE = RunConfig(
    operation="x+y",
    modulus=11,
    steps=20,
    eval_every=5,
    checkpoint_every=10,
    d_model=32,
    n_heads=4,
    d_mlp=64,
).with_changes(batch_size=16)
# Two population keys (the operation) x two seeds: four runs, two groups.
GRID = {"operation": ["x+y", "x-y"], "seed": [0, 1]}
TINY_FLAGS = [
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
]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def read_index(out: Path) -> list[dict]:
    with open(out / "index.csv", newline="") as f:
        return list(csv.DictReader(f))


def flat(run_dir: Path) -> torch.Tensor:
    return runs.load_checkpoint(run_dir)["flat"]


@pytest.fixture(scope="module")
def first_sweep(tmp_path_factory):
    """The four-run sweep, trained once in-process (jobs=1); shared by several tests."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("sweep") / "out"
    configs = expand_grid(BASE, GRID)
    results = run_sweep(configs, out, jobs=1, progress=False)
    return configs, out, results


# ---------------------------------------------------------------- grid, names, plan


def test_expand_grid_product_presets_and_order():
    grid = {"preset": ["adam", "adamw"], "lr": [1e-3, 3e-3], "seed": [0, 1, 2]}
    configs = expand_grid(BASE, grid)
    assert len(configs) == 12
    assert configs == expand_grid(BASE, grid)  # deterministic
    assert [(c.preset, c.optimizer.lr, c.seed) for c in configs[:4]] == [
        ("adam", 1e-3, 0),
        ("adam", 1e-3, 1),
        ("adam", 1e-3, 2),
        ("adam", 3e-3, 0),
    ]
    adam = configs[3]
    # The preset replaces the whole optimizer (batch size 16 of BASE is gone), then lr applies.
    assert adam.optimizer == PRESETS["adam"].__class__(**{**PRESETS["adam"].to_dict(), "lr": 3e-3})
    assert adam.optimizer.weight_decay == 0.0 and adam.optimizer.batch_size is None
    assert configs[-1].preset == "adamw" and configs[-1].optimizer.weight_decay == 1.0
    # Keys of RunConfig and OptimizerConfig; a bare value counts as one value.
    one = expand_grid(BASE, {"train_fraction": 0.3, "dropout": [0.0, 0.1]})
    assert [(c.train_fraction, c.optimizer.dropout) for c in one] == [(0.3, 0.0), (0.3, 0.1)]
    assert expand_grid(BASE, {}) == [BASE]
    with pytest.raises(ValueError, match="unknown sweep key"):
        expand_grid(BASE, {"learning_rate": [1e-3]})
    with pytest.raises(ValueError, match="unknown optimizer preset"):
        expand_grid(BASE, {"preset": ["sgd"]})


def test_run_name_readable_unique_stable():
    cfg = RunConfig(operation="x/y", modulus=97, train_fraction=0.3, seed=2)
    name = run_name(cfg)
    assert name.startswith("x_div_y-p97-f0.300-adamw-k0-s2-") and len(name.rsplit("-", 1)[1]) == 8
    assert run_name(RunConfig(operation="x/y", modulus=97, train_fraction=0.3, seed=2)) == name
    assert run_name(RunConfig(operation="s5_xyx^-1")).startswith("s5_xyx_inv-f0.500-")
    assert "^" not in run_name(RunConfig(operation="x^3+xy^2+y"))
    configs = expand_grid(
        BASE,
        {"operation": ["x/y", "x^2+y^2"], "lr": [1e-3, 2e-3], "steps": [20, 40], "seed": [0, 1]},
    )
    names = [run_name(c) for c in configs]
    assert len(set(names)) == len(configs)
    assert all("/" not in n and "^" not in n and " " not in n for n in names)


def test_plan_groups_by_population_key_and_size():
    configs = expand_grid(BASE, {"operation": ["x+y", "x-y"], "seed": range(5)})
    groups = plan(configs, max_population=16)
    assert groups == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    groups = plan(configs, max_population=2)
    assert sorted(i for g in groups for i in g) == list(range(10))
    assert all(len(g) <= 2 for g in groups) and len(groups) == 6
    for g in groups:
        assert len({configs[i].operation for i in g}) == 1
    # Batch size is part of the key; the split seed is not.
    mixed = [BASE, BASE.with_changes(batch_size=8), BASE.with_changes(seed=3, train_fraction=0.4)]
    assert plan(mixed, 16) == [[0, 2], [1]]


# ---------------------------------------------------------------- the local executor


def test_sweep_trains_indexes_and_skips_on_rerun(first_sweep):
    configs, out, results = first_sweep
    assert [r.config for r in results] == configs
    folders = sorted(p.name for p in (out / "runs").iterdir())
    assert folders == sorted(run_name(c) for c in configs)
    for r in results:
        assert r.run_dir == out / "runs" / run_name(r.config)
        assert r.summary == runs.read_json(r.run_dir / "summary.json")
        assert r.summary["status"] == "completed" and r.summary["steps_done"] == 20
        assert (r.run_dir / runs.CHECKPOINT).is_file()
    rows = read_index(out)
    assert [row["run_name"] for row in rows] == [run_name(c) for c in configs]
    assert {row["status"] for row in rows} == {"completed"}
    assert (
        rows[0]["operation"] == "x+y" and rows[0]["steps"] == "20" and rows[0]["preset"] == "adamw"
    )
    assert float(rows[0]["val_accuracy"]) == results[0].summary["val_accuracy"]
    assert json.loads((out / "index.json").read_text())[1]["seed"] == 1

    before = {
        r.run_dir: (
            (r.run_dir / runs.CHECKPOINT).stat().st_mtime_ns,
            (r.run_dir / runs.CHECKPOINT).read_bytes(),
        )
        for r in results
    }
    again = run_sweep(configs, out, jobs=1, progress=False)
    assert [r.summary for r in again] == [r.summary for r in results]
    for r in results:
        ckpt = r.run_dir / runs.CHECKPOINT
        assert (ckpt.stat().st_mtime_ns, ckpt.read_bytes()) == before[r.run_dir]


def test_interrupted_sweep_resumes_exactly(tmp_path, monkeypatch):
    configs = expand_grid(BASE, {"seed": [0, 1]})
    original = Population.step

    def dying_step(self):
        if self.step_count == 14:  # the checkpoint at step 10 is on disk; step 15 never happens
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Population, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(configs, tmp_path / "sweep", jobs=1, progress=False)
    monkeypatch.setattr(Population, "step", original)
    run_dir = tmp_path / "sweep" / "runs" / run_name(configs[1])
    assert runs.load_checkpoint(run_dir)["step"] == 10
    assert {r["status"] for r in read_index(tmp_path / "sweep")} == {"running"}

    results = run_sweep(configs, tmp_path / "sweep", jobs=1, progress=False)
    assert [r.summary["status"] for r in results] == ["completed", "completed"]
    # The same population trained straight through (population vs solo is population.py's test).
    straight_dirs = [tmp_path / "straight0", tmp_path / "straight1"]
    for d in straight_dirs:
        d.mkdir()
    train_runs(configs, straight_dirs, progress=False)
    straight = straight_dirs[1]
    assert torch.equal(flat(run_dir), flat(straight))

    def no_wall(folder):
        return [
            {k: v for k, v in row.items() if k != "wall_seconds"}
            for row in runs.read_metrics(folder)
        ]

    assert no_wall(run_dir) == no_wall(straight)


def test_run_killed_before_its_first_checkpoint_restarts(tmp_path, monkeypatch):
    config = BASE.with_changes(seed=5)
    original = Population.step

    def dying_step(self):
        if self.step_count == 3:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Population, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run_sweep([config], tmp_path, jobs=1, progress=False)
    monkeypatch.setattr(Population, "step", original)
    run_dir = tmp_path / "runs" / run_name(config)
    assert (run_dir / "config.json").is_file() and not (run_dir / runs.CHECKPOINT).exists()
    (run_dir / "notes.txt").write_text("mine")  # not grokkit's: must survive the restart
    (result,) = run_sweep([config], tmp_path, jobs=1, progress=False)
    assert result.summary["status"] == "completed"
    assert (run_dir / "notes.txt").read_text() == "mine"
    assert runs.read_metrics(run_dir)[0]["step"] == 0


def test_folder_of_another_run_is_refused(tmp_path):
    config = BASE.with_changes(steps=10)
    (result,) = run_sweep([config], tmp_path, jobs=1, progress=False)
    stored = runs.read_json(result.run_dir / "config.json")
    stored["optimizer"]["lr"] = 0.5
    runs.write_json(result.run_dir / "config.json", stored)
    with pytest.raises(ValueError, match="differs from the sweep's run \\(lr\\)"):
        run_sweep([config], tmp_path, jobs=1, progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("x")
    with pytest.raises(SweepError, match="not a sweep folder"):
        run_sweep([config], tmp_path / "other", jobs=1, progress=False)


@pytest.mark.slow
def test_two_worker_processes_match_one(first_sweep, tmp_path):
    configs, _, results = first_sweep
    parallel = run_sweep(configs, tmp_path, jobs=2, progress=False)
    for a, b in zip(results, parallel):
        assert b.run_dir.name == a.run_dir.name and b.summary["status"] == "completed"
        assert b.summary["val_accuracy"] == pytest.approx(a.summary["val_accuracy"], abs=1e-5)
        assert torch.allclose(flat(b.run_dir), flat(a.run_dir), atol=1e-5, rtol=0)


# ---------------------------------------------------------------- Ray


@pytest.mark.slow
def test_ray_executor_matches_local(first_sweep, tmp_path, capsys):
    ray = pytest.importorskip("ray")
    configs, _, results = first_sweep
    # run_sweep starts a local instance (ray.init(num_cpus=2, include_dashboard=False)) and
    # shuts it down again. Progress comes back from the Ray workers through a Ray queue.
    remote = run_sweep(configs, tmp_path, executor="ray", jobs=2, progress=True)
    assert not ray.is_initialized()
    err = capsys.readouterr().err
    assert (
        all(f"done {r.run_dir.name}:" in err for r in remote)
        and "80/80" in err
        and "runs 4/4" in err
    )
    for a, b in zip(results, remote):
        assert b.summary["status"] == "completed"
        assert b.summary["val_accuracy"] == pytest.approx(a.summary["val_accuracy"], abs=1e-5)
    assert len(read_index(tmp_path)) == 4


# ---------------------------------------------------------------- grokkit sweep


def test_cli_sweep_writes_index_and_table(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "sweep",
            "--op",
            "x+y",
            "x-y",
            "--seed",
            "0",
            "1",
            "--optimizer",
            "adamw",
            "adam",
            *TINY_FLAGS,
            "--jobs",
            "1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = read_index(out)
    assert len(rows) == 8 and {r["status"] for r in rows} == {"completed"}
    assert {r["preset"] for r in rows} == {"adamw", "adam"}
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1 + 8 + 1 and lines[-1] == f"index: {out / 'index.csv'}"
    assert captured.err == ""


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--op", "x+y", "nope"], "nope"),
        (["--train-fraction", "0.5", "1.5"], "train fraction"),
        (["--optimizer", "sgd"], "invalid choice"),
        (["--batch-size", "500"], "batch size"),
    ],
)
def test_cli_sweep_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "bad"
    code = main(["sweep", *TINY_FLAGS, *flags, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("grokkit: error:") and err.count("\n") == 1 and message in err
    assert not out.exists()


def test_cli_sweep_refuses_a_non_sweep_folder(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep")
    code = main(["sweep", *TINY_FLAGS, "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "not a sweep folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]
