"""The sweep folder: what each run's folder says (fresh, resume or done) and the index of runs.

    OUT/runs/<run_name>/   an ordinary run folder per run
    OUT/index.csv          one row per run: name, folder, main settings, status, summary numbers
    OUT/index.json         the same rows as a JSON list
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from grokkit import runs
from grokkit.config import RunConfig

INDEX_CONFIG_FIELDS = (
    "operation", "modulus", "train_fraction", "seed", "split_seed", "preset", "outliers",
    "outlier_seed", "steps", "lr", "weight_decay", "decay_target", "beta1", "beta2",
    "warmup_steps", "batch_size", "update_noise", "weight_noise", "dropout", "n_layers",
    "d_model", "n_heads", "d_mlp", "norm", "activation", "eval_every", "checkpoint_every",
    "stop_after_val_99", "arch",
)  # fmt: skip
INDEX_SUMMARY_FIELDS = (
    "status", "steps_done", "best_val_accuracy", "steps_to_train_99", "steps_to_val_99",
    "val_accuracy", "train_accuracy", "val_loss", "train_loss", "wall_seconds",
)  # fmt: skip
INDEX_COLUMNS = ("run_name", "folder", *INDEX_CONFIG_FIELDS, *INDEX_SUMMARY_FIELDS)
# The files train_runs writes into a run folder (what a restart may clear; nothing else).
_RUN_FILES = ("config.json", "metrics.csv", "summary.json", "curves.png", "curves.pdf")


class SweepError(runs.RunFolderError):
    """A sweep folder that cannot be used as asked; one line (the CLI shows it, exit code 2)."""


def check_out_dir(out_dir: Path) -> None:
    """Refuse a path that is a file, or a non-empty folder that is not a sweep folder."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise SweepError(f"--out {out_dir} exists and is not a folder; choose a new path")
    if any(out_dir.iterdir()) and not ((out_dir / "index.csv").is_file() or (out_dir / "runs").is_dir()):
        raise SweepError(f"--out {out_dir} is a non-empty folder that is not a sweep folder; nothing was touched")


def _stored_config(run_dir: Path) -> RunConfig | None:
    return runs.read_config(run_dir) if (run_dir / "config.json").is_file() else None


def _differences(a: RunConfig, b: RunConfig) -> list[str]:
    da, db = a.to_dict(), b.to_dict()
    diff = [k for k in da if k != "optimizer" and da[k] != db.get(k)]
    diff += [k for k in da["optimizer"] if da["optimizer"][k] != db["optimizer"].get(k)]
    return diff


@dataclass
class RunState:
    kind: str  # "done", "resume" or "fresh"
    step: int = 0  # checkpoint step of a run to resume
    summary: dict | None = None
    clear: bool = False  # a fresh run whose folder holds files of an earlier, unfinished start


def inspect_run(config: RunConfig, run_dir: Path) -> RunState:
    """What to do with one run, given its folder; raises SweepError when the folder holds
    another run. Reads only."""
    if not run_dir.exists():
        return RunState("fresh")
    if not run_dir.is_dir():
        raise SweepError(f"{run_dir} exists and is not a folder; move it away")
    stored = _stored_config(run_dir)
    if stored is not None and stored != config:
        raise SweepError(
            f"{run_dir}/config.json differs from the sweep's run ({', '.join(_differences(config, stored))}); "
            "move that folder away or use another --out"
        )
    summary = runs.read_summary(run_dir) if (run_dir / "summary.json").is_file() else None
    if summary and runs.is_finished(summary, config.steps):
        return RunState("done", summary=summary)
    if runs.has_checkpoint(run_dir):
        state = runs.load_checkpoint(run_dir)
        ckpt_config = RunConfig.from_dict(state["config"])
        if ckpt_config != config:
            raise SweepError(
                f"{run_dir}/{runs.CHECKPOINT} belongs to another run "
                f"({', '.join(_differences(config, ckpt_config))}); move that folder away or use another --out"
            )
        return RunState("resume", step=int(state["step"]), summary=summary)
    return RunState("fresh", clear=True)


def clear_run_dir(run_dir: Path) -> None:
    """Remove what grokkit wrote into a run folder (and leftover temporaries); nothing else."""
    def ours(folder: Path, names: tuple[str, ...]) -> None:
        if not folder.is_dir():
            return
        for p in folder.iterdir():
            if p.is_file() and (p.name in names or any(
                p.name.startswith(f".{n}.") and p.name.endswith(".tmp") for n in names
            )):  # fmt: skip
                p.unlink()

    ours(run_dir, _RUN_FILES)
    ckpt_dir = run_dir / runs.CHECKPOINT.parent
    ours(ckpt_dir, (runs.CHECKPOINT.name, runs.PREVIOUS_CHECKPOINT.name))
    if ckpt_dir.is_dir() and not any(ckpt_dir.iterdir()):
        ckpt_dir.rmdir()


def index_row(name: str, config: RunConfig, summary: dict | None) -> dict:
    flat = config.flat_dict()
    row = {"run_name": name, "folder": f"runs/{name}"}
    row.update({k: flat[k] for k in INDEX_CONFIG_FIELDS})
    summary = summary or {"status": "pending"}
    row.update({k: summary.get(k) for k in INDEX_SUMMARY_FIELDS})
    return row


def write_index(out_dir: Path, rows: list[dict]) -> None:
    """index.csv and index.json, each replaced atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=INDEX_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row[k] is None else (repr(row[k]) if isinstance(row[k], float) else row[k])
                         for k in INDEX_COLUMNS})  # fmt: skip
    runs.atomic_write_text(Path(out_dir) / "index.csv", buf.getvalue())
    runs.write_json(Path(out_dir) / "index.json", rows)
