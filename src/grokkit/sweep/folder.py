"""The sweep folder: what each run's folder says (fresh, resume or done) and the index of runs.

OUT/runs/<run_name>/   an ordinary run folder per run
OUT/index.csv          one row per run folder in OUT/runs (whichever command wrote it): name,
                       folder, main and method settings, status, summary numbers
OUT/index.json         the same rows as a JSON list
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grokkit import runs
from grokkit.config import METHOD_FIELDS, RunConfig
from grokkit.errors import InputError, warn
from grokkit.experiments import FIGURE_NAMES

# The index's first columns, in the order grokkit 0.1 wrote them (readers may rely on it).
_FIRST_CONFIG_COLUMNS = (
    "operation",
    "modulus",
    "train_fraction",
    "seed",
    "split_seed",
    "preset",
    "outliers",
    "outlier_seed",
    "steps",
    "lr",
    "weight_decay",
    "decay_target",
    "beta1",
    "beta2",
    "warmup_steps",
    "batch_size",
    "update_noise",
    "weight_noise",
    "dropout",
    "n_layers",
    "d_model",
    "n_heads",
    "d_mlp",
    "norm",
    "activation",
    "eval_every",
    "checkpoint_every",
    "stop_after_val_99",
    "arch",
    "eps",
    "snapshot_every",
)
# Then the methods that followed the paper (config.METHOD_FIELDS, in the order of their tags),
# then any other setting: every field of RunConfig.flat_dict has its column, as it is declared.
INDEX_CONFIG_FIELDS = tuple(
    dict.fromkeys((*_FIRST_CONFIG_COLUMNS, *METHOD_FIELDS, *RunConfig().flat_dict()))
)
INDEX_SUMMARY_FIELDS = (
    "status",
    "steps_done",
    "best_val_accuracy",
    "steps_to_train_99",
    "steps_to_val_99",
    "val_accuracy",
    "train_accuracy",
    "val_loss",
    "train_loss",
    "wall_seconds",
)
INDEX_COLUMNS = ("run_name", "folder", *INDEX_CONFIG_FIELDS, *INDEX_SUMMARY_FIELDS)
# The files train_runs writes into a run folder (what a restart may clear; nothing else).
_RUN_FILES = ("config.json", "metrics.csv", "summary.json", "curves.png", "curves.pdf")


class SweepError(runs.RunFolderError):
    """A sweep folder that cannot be used as asked; one line (the CLI shows it, exit code 2)."""


def check_out_dir(out_dir: Path) -> None:
    """Refuse a path that is a file, or a non-empty folder that is neither a sweep (or reproduce)
    folder nor a folder of grokkit's outputs only (``grokkit_outputs_only``: say, one that
    ``grokkit analyze fourier --out OUT/add`` has just created). A sweep writes only OUT/runs/,
    OUT/index.* and, for ``reproduce``, its figures' own files, so nothing there is overwritten."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        runs.check_parents(out_dir)
        return
    if not out_dir.is_dir():
        raise SweepError(f"--out {out_dir} exists and is not a folder; choose a new path")
    if (
        (out_dir / "index.csv").is_file()
        or (out_dir / "runs").is_dir()
        or grokkit_outputs_only(out_dir)  # a failed start's leftovers (lock, temporaries) too
    ):
        return
    if runs.is_run_dir(out_dir):  # one run's folder: its files are grokkit's, but not a sweep's
        raise SweepError(
            f"--out {out_dir} is a run folder, not a sweep folder: give a new "
            f"or empty folder (a sweep keeps its runs in OUT/runs/), or continue that run with "
            f"grokkit train --resume {out_dir}; nothing was touched"
        )
    foreign = _first_foreign_entry(out_dir)
    raise SweepError(
        f"--out {out_dir} is a non-empty folder that is not a sweep folder and holds files "
        f"grokkit did not write (such as {foreign}); give a new or empty folder; nothing was "
        "touched"
    )


def _first_foreign_entry(folder: Path, depth: int = 3) -> str:
    """The first entry (by name) that ``grokkit_outputs_only`` does not accept, as a path
    relative to ``folder``, for the message refusing it."""
    for entry in sorted(Path(folder).iterdir()):
        if grokkit_outputs_only_entry(entry, depth):
            continue
        if entry.is_dir() and not entry.is_symlink() and depth > 0 and not runs.is_run_dir(entry):
            inner = _first_foreign_entry(entry, depth - 1)
            if inner:
                return f"{entry.name}/{inner}"
        return entry.name
    return ""


# Files grokkit writes into an output folder, besides run folders: a sweep's index, reproduce's
# report and figures (<figure>.png/.pdf/.csv/.json), analyze fourier's files, compare's figure.
_OUTPUT_FILES = {
    "index.csv",
    "index.json",
    "REPORT.md",
    "benchmark-costs.json",  # the benchmark's step costs measured alone, kept for re-analysis
    runs.LOCK_FILE,
    *(
        f"{stem}.{ext}"
        for stem in (*FIGURE_NAMES, "fourier", "compare", "curves")
        for ext in ("png", "pdf", "csv", "json")
    ),
}


def grokkit_outputs_only(folder: Path, depth: int = 3) -> bool:
    """Whether every entry of ``folder`` is something grokkit writes: the files of
    ``_OUTPUT_FILES`` (and their temporaries), run folders, and subfolders holding only such
    outputs (``depth`` levels down)."""
    return all(grokkit_outputs_only_entry(entry, depth) for entry in Path(folder).iterdir())


def grokkit_outputs_only_entry(entry: Path, depth: int = 3) -> bool:
    """One entry of ``grokkit_outputs_only``'s folder: a file grokkit writes, a run folder, or a
    subfolder of such outputs."""
    name = entry.name
    if entry.is_dir() and not entry.is_symlink():
        return runs.is_run_dir(entry) or (depth > 0 and grokkit_outputs_only(entry, depth - 1))
    return entry.is_file() and (
        name in _OUTPUT_FILES or (name.startswith(".") and name.endswith(".tmp"))
    )


def _stored_config(run_dir: Path) -> RunConfig | None:
    return runs.read_config(run_dir) if (run_dir / "config.json").is_file() else None


def _differences(a: RunConfig, b: RunConfig) -> list[str]:
    da, db = a.to_dict(), b.to_dict()
    diff = [k for k in da if k != "optimizer" and da[k] != db.get(k)]
    diff += [k for k in da["optimizer"] if da["optimizer"][k] != db["optimizer"].get(k)]
    return diff


def untagged_folder(runs_dir: Path, name: str, untagged: str, config: RunConfig) -> Path | None:
    """The folder an earlier grokkit gave this run before its method settings were in run names
    (``untagged``: its name without them, the same hash), when that one exists, holds this run
    and the run's own folder ``name`` does not exist; else None."""
    own, old = Path(runs_dir) / name, Path(runs_dir) / untagged
    if untagged == name or own.exists() or not old.is_dir():
        return None
    try:
        return old if _stored_config(old) == config else None
    except InputError:  # a damaged config.json: not adopted; the index lists it as unreadable
        return None


def adopt_untagged_folders(
    runs_dir: Path, runs_named: Sequence[tuple[str, str, RunConfig]]
) -> None:
    """Rename each ``untagged_folder`` of (name, untagged name, config) to its run's name, saying
    so, so that a sweep or reproduce started before method settings were in run names resumes or
    skips its runs instead of training them again. Nothing in the folders changes."""
    for name, untagged, config in runs_named:
        old = untagged_folder(runs_dir, name, untagged, config)
        if old is not None:
            old.rename(Path(runs_dir) / name)
            warn(f"{old} is now {Path(runs_dir) / name}: run names now carry their method settings")


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
            f"{run_dir}/config.json differs from the sweep's run "
            f"({', '.join(_differences(config, stored))}); "
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
                f"({', '.join(_differences(config, ckpt_config))}); "
                "move that folder away or use another --out"
            )
        return RunState("resume", step=int(state["step"]), summary=summary)
    return RunState("fresh", clear=True)


def clear_run_dir(run_dir: Path) -> None:
    """Remove what grokkit wrote into a run folder (and leftover temporaries); nothing else."""

    def ours(folder: Path, names: tuple[str, ...]) -> None:
        if not folder.is_dir():
            return
        for p in folder.iterdir():
            if p.is_file() and (
                p.name in names
                or any(p.name.startswith(f".{n}.") and p.name.endswith(".tmp") for n in names)
            ):
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


def folder_row(run_dir: Path) -> dict | None:
    """The index row of a run folder, read from the folder itself: its config.json and its
    summary.json (status "pending" without one, "unreadable" when a file is damaged); None when
    ``run_dir`` holds no run (no config.json)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not runs.is_run_dir(run_dir):
        return None
    try:
        config = runs.read_config(run_dir)
    except InputError:
        return {
            **dict.fromkeys(INDEX_COLUMNS),
            "run_name": run_dir.name,
            "folder": f"runs/{run_dir.name}",
            "status": "unreadable",
        }
    try:
        summary = runs.read_summary(run_dir) if (run_dir / "summary.json").is_file() else None
    except InputError:
        summary = {"status": "unreadable"}
    return index_row(run_dir.name, config, summary)


class SweepIndex:
    """OUT/index.csv and OUT/index.json: one row for every run folder in OUT/runs, whichever
    command wrote it (an earlier sweep with other settings, another figure of ``reproduce``, a
    ``grokkit train --out OUT/runs/NAME``), plus the runs of this command not started yet.

    The rows of this command's runs come from ``write``'s argument; every other run folder is
    read once, here (its config.json and summary.json: the folder is locked while the sweep runs,
    so they cannot change). Order: the previous index's, then this command's runs, then any other
    run folder by name, so a folder's rows keep their places from one command to the next."""

    def __init__(self, out_dir: Path, names: Sequence[str]):
        self.out_dir = Path(out_dir)
        self.previous = previous_index_names(self.out_dir)
        runs_dir = self.out_dir / "runs"
        ours = set(names)
        others = (
            sorted(p for p in runs_dir.iterdir() if p.name not in ours) if runs_dir.is_dir() else []
        )
        self.others = {p.name: row for p in others if (row := folder_row(p)) is not None}

    def rows(self, current: Sequence[dict]) -> list[dict]:
        by_name = {**self.others, **{r["run_name"]: r for r in current}}
        order = list(
            dict.fromkeys(
                [
                    *(n for n in self.previous if n in by_name),
                    *(r["run_name"] for r in current),
                    *self.others,
                ]
            )
        )
        return [by_name[n] for n in order]

    def write(self, current: Sequence[dict]) -> None:
        write_index(self.out_dir, self.rows(current))


def previous_index_names(out_dir: Path) -> list[str]:
    """The run names of OUT/index.json in its order; none when it is missing or damaged (the index
    is rebuilt from the run folders then)."""
    path = Path(out_dir) / "index.json"
    if not path.is_file():
        return []
    try:
        rows = runs.read_json(path)
    except (InputError, OSError):
        return []
    if not isinstance(rows, list):
        return []
    return [
        r["run_name"] for r in rows if isinstance(r, dict) and isinstance(r.get("run_name"), str)
    ]


def write_index(out_dir: Path, rows: list[dict]) -> None:
    """index.csv and index.json, each replaced atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=INDEX_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: "" if row[k] is None else (repr(row[k]) if isinstance(row[k], float) else row[k])
                for k in INDEX_COLUMNS
            }
        )
    runs.atomic_write_text(Path(out_dir) / "index.csv", buf.getvalue())
    runs.write_json(Path(out_dir) / "index.json", rows)
