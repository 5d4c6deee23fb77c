"""Run folders: config.json, metrics.csv, summary.json, checkpoints/latest.pt (and previous.pt).

Writes: every file goes to a temporary file in the same folder and is renamed into place, so a run
killed at any moment leaves either the old file or the new one, never half of one. A checkpoint
write first moves the current latest.pt to previous.pt, so a damaged latest (or one lost between
the two renames) falls back to the one before it. A write the machine refuses (a full disk) ends
in one StorageError line and leaves the previous file in place.

Reads: nothing read from disk can run code (checkpoints load with ``weights_only=True``) and
every file is validated, so a damaged one gives one line naming the file and the problem.

Locks: one writer per run folder and per sweep folder (``folder_lock``), an advisory lock the
kernel drops when its process dies, so a lock left by a killed process is simply taken over.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from grokkit.config import RunConfig, validate_run
from grokkit.errors import InputError, warn
from grokkit.files import (  # noqa: F401  (atomic_write_*, write_json: used as runs.* elsewhere)
    TEMPORARY_SUFFIX,
    NotAFileError,
    atomic_write_bytes,
    atomic_write_text,
    guarded_folder,
    open_regular,
    read_regular_bytes,
    remove_stale_temporaries,
    write_json,
)
from grokkit.model_config import count_parameters
from grokkit.ops import get_operation

if TYPE_CHECKING:
    import torch

try:  # advisory locks; POSIX only (Linux, macOS)
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, one writer is then the user's job
    fcntl = None

METRIC_COLUMNS = (
    "step",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "weight_norm",
    "lr",
    "wall_seconds",
    "softmax_collapse",
)
# Columns added after grokkit 0.1: written always, optional when read (older runs lack them).
LATER_METRIC_COLUMNS = ("softmax_collapse",)
CHECKPOINT = Path("checkpoints") / "latest.pt"
PREVIOUS_CHECKPOINT = Path("checkpoints") / "previous.pt"
SNAPSHOTS = (
    Path("checkpoints") / "snapshots"
)  # step_00001000.pt: the weights alone, kept for analysis
LOCK_FILE = ".grokkit.lock"
# summary.json's keys (train._summary writes every one) and the types each may hold: float stands
# for any number (NaN included: a diverged run's loss), None for null.
SUMMARY_KEYS = {
    "status": (str,),
    "message": (str,),
    "steps_done": (int,),
    "train_loss": (float, None),
    "train_accuracy": (float, None),
    "val_loss": (float, None),
    "val_accuracy": (float, None),
    "best_val_accuracy": (float,),
    "steps_to_train_99": (int, None),
    "steps_to_val_99": (int, None),
    "wall_seconds": (float, None),
    "operation": (str,),
    "modulus": (int, None),
    "train_fraction": (float,),
    "seed": (int,),
    "outliers": (int,),
    "preset": (str, None),
    "n_train": (int,),
    "n_val": (int,),
    "batch_size": (int,),
    "population_size": (int,),
}
FINISHED = ("completed", "stopped_early", "diverged")  # statuses after which a run trains no more


class RunFolderError(InputError):
    """A run folder that cannot be used as asked; one line, fit for a CLI error."""


class DamagedFileError(RunFolderError):
    """A file grokkit wrote that no longer reads back as what it should be."""


class FolderLockedError(RunFolderError):
    """Another process is writing this folder."""


# ---------------------------------------------------------------- writing


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    """metrics.csv: METRIC_COLUMNS, then any further columns the rows carry (the per-part weight
    norms ``norm_embed``, ``norm_block_0``, ..., ``norm_unembed``), in the rows' order."""
    extra = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in METRIC_COLUMNS]
    columns = [*METRIC_COLUMNS, *extra]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in columns})
    atomic_write_text(Path(run_dir) / "metrics.csv", buf.getvalue())


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # exact: the CSV and summary.json must agree
    return str(value)


def save_checkpoint(run_dir: Path, state: dict) -> None:
    """latest.pt <- state; the former latest.pt becomes previous.pt."""
    import torch  # in each checkpoint function: metrics and summaries are read without it

    buf = io.BytesIO()
    torch.save(state, buf)
    run_dir = Path(run_dir)
    atomic_write_bytes(run_dir / CHECKPOINT, buf.getvalue(), previous=run_dir / PREVIOUS_CHECKPOINT)


def snapshot_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / SNAPSHOTS / f"step_{step:08d}.pt"


def save_snapshot(run_dir: Path, step: int, flat: torch.Tensor) -> None:
    """The weights at ``step`` (RunConfig.snapshot_every); a snapshot cannot resume training."""
    import torch  # in each checkpoint function: metrics and summaries are read without it

    buf = io.BytesIO()
    torch.save({"step": step, "flat": flat}, buf)
    atomic_write_bytes(snapshot_path(run_dir, step), buf.getvalue())


# ---------------------------------------------------------------- reading, validated


def _damaged(path: Path, problem: str) -> DamagedFileError:
    return DamagedFileError(f"{path} is damaged: {problem}")


def _read_text(path: Path) -> str:
    try:
        return read_regular_bytes(path).decode("utf-8")
    except NotAFileError as e:
        raise RunFolderError(str(e)) from None
    except FileNotFoundError:
        raise RunFolderError(f"{path} does not exist") from None
    except UnicodeDecodeError:
        raise _damaged(path, "not UTF-8 text") from None
    except OSError as e:
        raise RunFolderError(f"cannot read {path}: {e.strerror}") from None


def read_json(path: Path):
    """A JSON file grokkit wrote; one-line errors for a missing, unreadable or invalid file."""
    path = Path(path)
    text = _read_text(path)
    too_deep = _damaged(path, f"its JSON is nested more than {MAX_JSON_NESTING} levels deep")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise _damaged(
            path, f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
        ) from None
    except RecursionError:  # the decoder recurses once per level: "[[[[..." ten thousand deep
        raise too_deep from None
    if _nesting(obj) > MAX_JSON_NESTING:  # refused once, here: show, compare, a resume and
        raise too_deep  # load_run would each recurse into it (printing, comparing, copying)
    return obj


MAX_JSON_NESTING = 32  # grokkit's own files nest 3 levels (config.json's optimizer, derived)


def _nesting(obj) -> int:
    """How deep lists and objects nest in ``obj``, counted without recursion (deeper than the
    limit: the limit + 1, found without walking the rest)."""
    depth, level = 0, [obj]
    while level:
        children = [
            c
            for o in level
            if isinstance(o, (list, dict))
            for c in (o.values() if isinstance(o, dict) else o)
        ]
        if not any(isinstance(o, (list, dict)) for o in level):
            break
        depth += 1
        if depth > MAX_JSON_NESTING:
            break
        level = children
    return depth


def _json_object(path: Path) -> dict:
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise _damaged(path, f"expected a JSON object, found {type(obj).__name__}")
    return obj


def config_from_dict(d: dict, source: Path) -> RunConfig:
    """A RunConfig from a stored dict, validated; errors name ``source``."""
    if not isinstance(d, dict) or not isinstance(d.get("optimizer", {}), dict):
        raise _damaged(source, "the run configuration is not a mapping")
    d = {k: v for k, v in d.items() if k != "derived"}
    try:
        config = RunConfig.from_dict(d)
        validate_run(config)
    except InputError as e:
        raise _damaged(source, str(e)) from None
    except (TypeError, ValueError, AttributeError) as e:
        raise _damaged(source, f"a setting has the wrong type ({e})") from None
    return config


def read_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / "config.json"
    return config_from_dict(_json_object(path), path)


def read_summary(run_dir: Path) -> dict:
    path = Path(run_dir) / "summary.json"
    summary = _json_object(path)
    for key, kinds in SUMMARY_KEYS.items():
        if key not in summary:
            raise _damaged(path, f"{key!r} is missing")
        value = summary[key]
        if not any(_summary_fits(value, kind) for kind in kinds) or (
            key == "steps_done" and value < 0
        ):
            expected = " or ".join(
                {int: "an integer", float: "a number", str: "text", None: "null"}[k] for k in kinds
            )
            expected = "an integer >= 0" if key == "steps_done" else expected
            raise _damaged(path, f"{key!r} is {json.dumps(value)[:40]}, not {expected}")
    return summary


def _summary_fits(value, kind) -> bool:
    if kind is None:
        return value is None
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) if kind is float else isinstance(value, kind)


def is_finished(summary: dict, steps: int) -> bool:
    """A run is over: it stopped early or diverged, or completed a budget of at least ``steps``."""
    status = summary.get("status")
    return status in FINISHED and (status != "completed" or summary.get("steps_done", 0) >= steps)


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.csv"
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    try:
        return _metric_rows(path, reader)
    except csv.Error as e:  # a field past the csv module's limit (131072 characters), a NUL byte
        raise _damaged(path, f"line {reader.line_num}: not a CSV row ({e})") from None


def _metric_rows(path: Path, reader: csv.DictReader) -> list[dict]:
    required = [c for c in METRIC_COLUMNS if c not in LATER_METRIC_COLUMNS]
    missing = [c for c in required if c not in (reader.fieldnames or ())]
    if missing:
        raise _damaged(path, f"the header lacks {', '.join(missing)}")
    rows, last = [], -1
    for line, raw in enumerate(reader, start=2):
        if None in raw or any(raw.get(c, "") is None for c in METRIC_COLUMNS):
            raise _damaged(path, f"line {line} has the wrong number of fields")
        row = {}
        try:
            for k, v in raw.items():
                row[k] = None if v == "" else (int(v) if k == "step" else float(v))
        except ValueError:
            raise _damaged(path, f"line {line}: {k} is not a number ({v[:40]!r})") from None
        if row["step"] is None or row["step"] <= last:
            raise _damaged(path, f"line {line}: steps must increase")
        last = row["step"]
        rows.append(row)
    return rows


def load_tensors(path: Path, what: str = "checkpoint"):
    """``torch.load`` of an untrusted file: ``weights_only=True``, so a file holding anything but
    tensors and plain containers is refused unread (loading it could run code), and whatever goes
    wrong is one RunFolderError line naming the file."""
    import torch  # in each checkpoint function: metrics and summaries are read without it

    try:
        with warnings.catch_warnings():
            # On a plain pickle (not torch.save's format) PyTorch warns about its protocol before
            # refusing it; the refusal below is the one line the user needs.
            warnings.filterwarnings(
                "ignore", message="Detected pickle protocol", category=UserWarning
            )
            with open_regular(path) as f:
                return torch.load(f, map_location="cpu", weights_only=True)
    except NotAFileError as e:
        raise RunFolderError(str(e)) from None
    except FileNotFoundError:
        raise RunFolderError(f"{path} does not exist") from None
    except Exception as e:  # whatever the unpickler raises on untrusted bytes means: damaged
        text = str(e)
        if "GLOBAL" in text or "Unsupported global" in text:
            raise _damaged(
                path,
                "it holds Python objects other than tensors and plain containers "
                "(refused: loading them could run code)",
            ) from None
        first = text.strip().splitlines()[0] if text.strip() else ""
        detail = (
            type(e).__name__ if not first or first.startswith("Weights only load failed") else first
        )
        raise _damaged(path, f"not a readable {what} ({detail[:120]})") from None


def _read_checkpoint(path: Path) -> dict:
    """One checkpoint file, loaded without running code and checked for shape and content."""
    import torch  # in each checkpoint function: metrics and summaries are read without it

    from grokkit.checkpoint_check import CheckpointProblem, check_training_state

    # The checkpoint's top-level keys and what each must be (tensors, plain containers, numbers).
    keys = {
        "config": dict,
        "step": int,
        "flat": torch.Tensor,
        "optimizer": dict,
        "batch_generator": torch.Tensor,
        "noise_generator": torch.Tensor,
        "position": int,
        "tracker": dict,
    }
    state = load_tensors(path, "checkpoint")
    if not isinstance(state, dict):
        raise _damaged(
            path, f"expected a dictionary of training state, found {type(state).__name__}"
        )
    for key, kind in keys.items():
        if key not in state:
            raise _damaged(path, f"the key {key!r} is missing")
        if not isinstance(state[key], kind) or (kind is int and isinstance(state[key], bool)):
            raise _damaged(
                path, f"{key!r} should be a {kind.__name__}, found {type(state[key]).__name__}"
            )
    if state["step"] < 0:
        raise _damaged(path, f"negative step {state['step']}")
    config = config_from_dict(state["config"], path)
    flat = state["flat"]
    _check_weights(path, flat, config)
    if not isinstance(state["optimizer"].get("step_count"), int):
        raise _damaged(path, "the optimizer's 'step_count' is missing")
    if not isinstance(state["tracker"].get("rows"), list):
        raise _damaged(path, "the tracker's metric rows are missing")
    try:  # every other field: type, shape, range, finiteness (grokkit.checkpoint_check)
        check_training_state(state, config)
    except CheckpointProblem as e:
        raise _damaged(path, str(e)) from None
    return state


def snapshot_steps(run_dir: Path) -> list[int]:
    """Steps of the run's kept snapshots, in order (file names only: nothing is loaded)."""
    folder = Path(run_dir) / SNAPSHOTS
    steps = []
    for path in folder.glob("step_*.pt") if folder.is_dir() else ():
        digits = path.stem.removeprefix("step_")
        if digits.isdigit():
            steps.append(int(digits))
    return sorted(steps)


def load_snapshot(run_dir: Path, step: int) -> torch.Tensor:
    """The flat weights kept at ``step``, validated like a checkpoint's."""
    import torch  # in each checkpoint function: metrics and summaries are read without it

    path = snapshot_path(run_dir, step)
    config = read_config(run_dir)
    if not path.is_file():
        kept = snapshot_steps(run_dir)
        raise RunFolderError(
            f"{run_dir} has no snapshot at step {step}"
            + (f" (kept: {_step_list(kept)})" if kept else " (it kept none)")
        )
    state = load_tensors(path, "snapshot")
    if (
        not isinstance(state, dict)
        or not isinstance(state.get("flat"), torch.Tensor)
        or state.get("step") != step
    ):
        raise _damaged(path, "expected the step and the flat weights")
    _check_weights(path, state["flat"], config)
    return state["flat"]


def _step_list(steps: list[int]) -> str:
    shown = ", ".join(map(str, steps[:5]))
    return shown + (f", ... {steps[-1]}" if len(steps) > 5 else "")


def _check_weights(path: Path, flat: torch.Tensor, config: RunConfig) -> None:
    import torch  # in each checkpoint function: metrics and summaries are read without it

    n_elements = get_operation(config.operation, config.modulus).n_elements
    n_params = count_parameters(config.model_config(n_elements))
    from grokkit.checkpoint_check import WEIGHT_DTYPE

    if flat.dim() != 1 or flat.numel() != n_params:
        raise _damaged(
            path, f"the weights have shape {tuple(flat.shape)}, the model needs ({n_params},)"
        )
    if flat.dtype != WEIGHT_DTYPE:  # cast, the resumed run would differ from a straight one
        raise _damaged(path, f"the weights are {flat.dtype}, the model's are {WEIGHT_DTYPE}")
    if not bool(torch.isfinite(flat).all()):
        raise _damaged(path, "the weights hold non-finite values")


def load_checkpoint(run_dir: Path) -> dict:
    """The run's latest checkpoint; if it is missing or damaged, the previous one (with a
    warning saying so). Raises DamagedFileError naming the file when neither is usable."""
    run_dir = Path(run_dir)
    latest, previous = run_dir / CHECKPOINT, run_dir / PREVIOUS_CHECKPOINT
    try:
        return _read_checkpoint(latest)
    except RunFolderError as latest_error:
        if not previous.is_file():
            raise
        try:
            state = _read_checkpoint(previous)
        except RunFolderError:
            raise latest_error from None
        warn(f"{latest_error}; using {previous} (step {state['step']}) instead")
        return state


def has_checkpoint(run_dir: Path) -> bool:
    return (Path(run_dir) / CHECKPOINT).is_file() or (Path(run_dir) / PREVIOUS_CHECKPOINT).is_file()


def is_run_dir(path: Path) -> bool:
    return (Path(path) / "config.json").is_file()


# ---------------------------------------------------------------- folders


def check_parents(path: Path, flag: str = "--out") -> None:
    """Refuse a new ``path`` more than one missing folder deep (``runs/s5`` may create ``runs``;
    ``/nonexistent/dir/run`` creates nothing), so that a mistyped path, which a user allowed to
    write there (root) would otherwise get silently, is said before anything is created."""
    path = Path(path)
    missing = [p for p in path.parents if not os.path.lexists(p)]
    if len(missing) > 1:
        raise RunFolderError(
            f"{flag} {path}: its parent {path.parent} does not exist, nor does {missing[-1]}; "
            f"grokkit creates at most one missing folder above it, so check the path or create "
            f"the folders first (mkdir -p {path.parent}); nothing was created"
        )


def prepare_new_run_dir(path: Path, config: RunConfig | None = None) -> Path:
    """Create a fresh run folder for ``config``; refuse anything that exists and holds more than
    what an earlier start of this same run left before its first checkpoint."""
    path = Path(path)
    check_new_run_dir(path, config)
    return make_out_folder(path)


def make_out_folder(path: Path, error: type[RunFolderError] = RunFolderError) -> Path:
    """``path`` created with its parents (kept if it exists); ``error`` in one line when the
    file system refuses."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise error(f"--out {path} cannot be created: {e.strerror}; choose another path") from None
    return path


def check_new_run_dir(
    path: Path, config: RunConfig | None, flag: str = "--out", others_allowed: bool = False
) -> None:
    """RunFolderError, saying what the folder holds, unless a new run of ``config`` may start in
    ``path``: it does not exist, or holds only leftovers (``holds_only_leftovers``). Reads only.
    ``others_allowed``: files under names a run never writes do not count (the library's rule, as
    a sweep's: a user's notes beside a run are never touched, so they do not stand in its way)."""
    path = Path(path)
    if flag == "--out":  # a mistyped path on the command line creates nothing
        check_parents(path, flag)
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        raise RunFolderError(f"{flag} {path} exists and is not a folder; choose a new path")
    if holds_only_leftovers(path, config, others_allowed):
        return
    if has_checkpoint(path) or os.path.lexists(path / "summary.json"):
        hint = "use --resume to continue it" if flag == "--out" else "resume it from its checkpoint"
        what = f"is not empty (it holds a run: {hint})"
    elif started_without_checkpoint(path):
        what = (
            "holds the start of another run, with no checkpoint yet"
            f"{_differing(path, config)}; delete it or choose another path"
        )
    else:
        what = "is not empty"
    raise RunFolderError(f"{flag} {path} already exists and {what}; nothing was overwritten")


def _differing(path: Path, config: RunConfig | None) -> str:
    try:
        stored = read_config(path).flat_dict()
    except InputError:
        return " (its config.json is unreadable)"
    ours = config.flat_dict() if config is not None else {}
    keys = [k for k in ours if k != "steps" and ours[k] != stored.get(k)][:4]
    return f" (config.json differs in {', '.join(keys)})" if keys else ""


# Folders grokkit makes in a run before its first checkpoint (the viewers' files).
_EARLY_FOLDERS = ("tensorboard", "wandb")


# The names a run writes at the top of its folder.
RUN_NAMES = (
    "config.json",
    "metrics.csv",
    "summary.json",
    CHECKPOINT.parent.name,
    "curves.png",
    "curves.pdf",
    "tensorboard",
    "wandb",
)


def holds_only_leftovers(
    folder: Path, config: RunConfig | None = None, others_allowed: bool = False
) -> bool:
    """``folder`` holds nothing but what a start of a run that ended before its first checkpoint
    (a full disk, a kill, a Ctrl-C) leaves: its lock file, temporaries, a checkpoints folder with
    no checkpoint in it, the viewers' folders, and the config.json of this same run (``config``;
    the budget may differ). A new run of ``config`` may then take it over: nothing trained is
    lost, and what it overwrites it writes again the same."""
    folder = Path(folder)
    same_run = config is not None and _holds_start_of(folder, config)
    for p in folder.iterdir():
        if p.name == LOCK_FILE or _is_temporary(p.name):
            continue
        if others_allowed and p.name not in RUN_NAMES:
            continue
        if p.name == "config.json" and same_run:
            continue
        real_folder = p.is_dir() and not p.is_symlink()
        if real_folder and p.name == CHECKPOINT.parent.name and _no_checkpoint_in(p):
            continue
        if real_folder and p.name in _EARLY_FOLDERS:
            continue
        return False
    return True


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMPORARY_SUFFIX)


def _no_checkpoint_in(checkpoints: Path) -> bool:
    """A checkpoints folder holding only temporaries and snapshots (no latest.pt, previous.pt)."""
    for p in checkpoints.iterdir():
        if _is_temporary(p.name):
            continue
        if p.name == SNAPSHOTS.name and p.is_dir() and not p.is_symlink():
            continue
        return False
    return True


def started_without_checkpoint(path: Path) -> bool:
    """``path`` holds a run's config.json and nothing that its first checkpoint brings
    (checkpoints, metrics.csv, summary.json): a run stopped (killed, a full disk) before it."""
    path = Path(path)
    return (
        os.path.lexists(path / "config.json")
        and not any(os.path.lexists(path / p) for p in (CHECKPOINT, PREVIOUS_CHECKPOINT))
        and not any(os.path.lexists(path / name) for name in ("metrics.csv", "summary.json"))
    )


def _holds_start_of(folder: Path, config: RunConfig) -> bool:
    if not started_without_checkpoint(folder):
        return False
    try:
        stored = read_config(folder)
    except InputError:
        return False
    return stored.with_changes(steps=config.steps) == config


def require_resumable(path: Path) -> Path:
    """``path`` if it holds a run to resume: one with a checkpoint, or one stopped before its
    first (``started_without_checkpoint``: the caller starts it from its config.json)."""
    path = Path(path)
    if not path.is_dir():
        raise RunFolderError(f"cannot resume {path}: no such folder")
    if not os.path.lexists(path / "config.json"):
        raise RunFolderError(
            f"cannot resume {path}: it is not a grokkit run folder (no config.json)"
        )
    if not any(os.path.lexists(path / p) for p in (CHECKPOINT, PREVIOUS_CHECKPOINT)):
        if started_without_checkpoint(path):
            return path
        raise RunFolderError(f"cannot resume {path}: it has no checkpoint ({CHECKPOINT})")
    return path  # what stands at those names is read, validated, and reported, by the caller


_HELD: dict[Path, list] = {}  # folder -> [file descriptor, depth]: re-entrant within a process


@contextlib.contextmanager
def folder_lock(folder: Path, what: str = "folder") -> Iterator[None]:
    """Hold the folder's advisory lock, or raise FolderLockedError at once (no waiting).

    Re-entrant within a process (a sweep with jobs=1 trains its runs in its own process). The
    kernel releases the lock when its process ends, however it ends, so a lock file left by a
    killed process is taken over; the file records the holder's pid for the message. While it is
    held the folder is guarded (files.guarded_folder): no write goes through a linked subfolder."""
    given = Path(folder)
    folder = given.resolve()
    if folder in _HELD:
        _HELD[folder][1] += 1
    else:
        _HELD[folder] = [_acquire(folder, what), 1]
    try:
        with guarded_folder(given):
            yield
    finally:
        _HELD[folder][1] -= 1
        if _HELD[folder][1] == 0:
            fd, _ = _HELD.pop(folder)
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


def _acquire(folder: Path, what: str) -> int | None:
    if fcntl is None:
        return None
    fd = _open_lock_file(folder)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise FolderLockedError(
            f"{what} {folder} is being written by another grokkit process (pid {holder}); "
            "wait for it to finish, or use another folder"
        ) from None
    try:  # the holder's pid, for the message above; a full disk must not stop the lock itself
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    except OSError:
        pass
    # Holding the lock, no write of ours is in progress here: what a killed write left goes.
    for sub in (Path(), CHECKPOINT.parent, SNAPSHOTS):
        if not any((folder / part).is_symlink() for part in _prefixes(sub)):  # never through a link
            remove_stale_temporaries(folder / sub)
    return fd


def _prefixes(relative: Path) -> list[Path]:
    """checkpoints/snapshots -> [checkpoints, checkpoints/snapshots]."""
    return [Path(*relative.parts[: i + 1]) for i in range(len(relative.parts))]


def _open_lock_file(folder: Path) -> int:
    """The folder's lock file, opened without following a link: a link planted in its place is
    replaced by a file of our own (its target is never written), and anything else that is not
    a regular file (a FIFO, a folder) is refused in one line."""
    path = folder / LOCK_FILE
    flags = (
        os.O_RDWR
        | os.O_CREAT
        | os.O_NONBLOCK
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    for attempt in range(2):
        try:
            fd = os.open(path, flags, 0o666)
        except OSError as e:
            if path.is_symlink() and attempt == 0:
                _replace_link(path)
                continue
            raise RunFolderError(f"cannot lock {folder}: {e.strerror}") from None
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.set_blocking(fd, True)
            return fd
        os.close(fd)
        raise RunFolderError(f"{path} is not a regular file; remove it, then run the command again")
    raise RunFolderError(f"cannot lock {folder}: {path} keeps being replaced by a link")


def _replace_link(path: Path) -> None:
    try:
        atomic_write_bytes(path, b"")  # the rename replaces the link itself
    except OSError as e:
        raise RunFolderError(f"cannot lock {path.parent}: {e.strerror}") from None
