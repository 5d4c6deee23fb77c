"""Run folders: config.json, metrics.csv, summary.json, checkpoints/latest.pt.

Every write goes to a temporary file in the same folder and is renamed into place, so a run killed
at any moment leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import torch

from grokkit.errors import InputError

METRIC_COLUMNS = (
    "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "weight_norm", "lr",
    "wall_seconds",
)  # fmt: skip
CHECKPOINT = Path("checkpoints") / "latest.pt"


class RunFolderError(InputError):
    """A run folder that cannot be used as asked; one line, fit for a CLI error."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in METRIC_COLUMNS})
    atomic_write_text(Path(run_dir) / "metrics.csv", buf.getvalue())


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # exact: the CSV and summary.json must agree
    return str(value)


def read_metrics(run_dir: Path) -> list[dict]:
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        rows = []
        for raw in csv.DictReader(f):
            row = {}
            for k, v in raw.items():
                row[k] = None if v in ("", None) else (int(v) if k == "step" else float(v))
            rows.append(row)
        return rows


def save_checkpoint(run_dir: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(Path(run_dir) / CHECKPOINT, buf.getvalue())


def load_checkpoint(run_dir: Path) -> dict:
    return torch.load(Path(run_dir) / CHECKPOINT, map_location="cpu", weights_only=False)


def is_run_dir(path: Path) -> bool:
    return (Path(path) / "config.json").is_file()


def prepare_new_run_dir(path: Path) -> Path:
    """Create a fresh run folder; refuse anything that exists and is not empty."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise RunFolderError(f"--out {path} exists and is not a folder; choose a new path")
        if any(path.iterdir()):
            hint = " (it holds a run: use --resume to continue it)" if is_run_dir(path) else ""
            raise RunFolderError(f"--out {path} already exists and is not empty{hint}; nothing was overwritten")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunFolderError(f"--out {path} cannot be created: {e.strerror}; choose another path") from None
    return path


def require_resumable(path: Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise RunFolderError(f"cannot resume {path}: no such folder")
    if not is_run_dir(path):
        raise RunFolderError(f"cannot resume {path}: it is not a grokkit run folder (no config.json)")
    if not (path / CHECKPOINT).is_file():
        raise RunFolderError(f"cannot resume {path}: it has no checkpoint ({CHECKPOINT})")
    return path
