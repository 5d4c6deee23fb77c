"""TensorBoard: metrics rows as scalars, the settings as hparams and text, in run_dir/tensorboard.

Scalar tags (global step = the row's step):

- ``loss/train``, ``loss/val``: cross-entropy losses (metrics.csv: train_loss, val_loss)
- ``accuracy/train``, ``accuracy/val``: accuracies in [0, 1] (train_accuracy, val_accuracy)
- ``weight_norm``, ``lr``, ``wall_seconds``, ``softmax_collapse``: as in metrics.csv
- ``weight_norm/embed``, ``weight_norm/block_0``, ..., ``weight_norm/unembed``: the per-part norms
- ``final/<name>`` when the run closes, at its last step: the summary's numbers that are set
  (val_accuracy, best_val_accuracy, steps_to_val_99, ...). They are the metrics of the HParams
  record written at the same time, whose hyperparameters are the flattened run settings.

Text: ``config``, the run's settings as JSON (at step 0 of a fresh run).

Resume: a run resumed from its checkpoint at step S logs again every row after S, rows that a
killed process may already have written. The writer therefore purges everything after S (a
``purge_step`` of S + 1): TensorBoard then hides those events and shows the new ones, so each
step appears once. S must be the checkpoint's step, not the last step of metrics.csv: the two
differ when a checkpoint was damaged and the previous one is used (metrics.csv is ahead, and
purging after its last step would keep stale rows) or when a process died between writing the
checkpoint and metrics.csv (metrics.csv is behind, and purging after it would drop rows the
resumed run never logs again).

Every row is flushed as it is logged, so that the rows a checkpoint covers are on disk before
training goes on: a kill can only lose rows that the resumed run logs again.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from grokkit import runs
from grokkit.config import RunConfig
from grokkit.errors import GrokkitWarning
from grokkit.files import ensure_real_folder
from grokkit.loggers import METRIC_TAGS

LOG_DIR = "tensorboard"

# Summary fields recorded as final metrics (when not None): TensorBoard's HParams table shows them.
FINAL_METRICS = (
    "val_accuracy",
    "best_val_accuracy",
    "val_loss",
    "train_accuracy",
    "train_loss",
    "steps_to_val_99",
    "steps_to_train_99",
    "steps_done",
    "wall_seconds",
)


def resume_step(run_dir: Path) -> int | None:
    """The step of the checkpoint a run resumes from; None when it has none (a fresh start).

    ``runs.load_checkpoint`` picks the same file as the resume does (latest.pt, else
    previous.pt). Its warning about a fallback was already shown by that resume, so it is
    silenced here rather than printed twice.
    """
    if not runs.has_checkpoint(run_dir):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrokkitWarning)
        return runs.load_checkpoint(run_dir)["step"]


def hparam_value(value):
    """A value the HParams plugin accepts: numbers and strings as they are, the rest as text."""
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return value
    return str(value)


def _wait_for_a_later_file_name(log_dir: Path) -> None:
    """TensorBoard reads event files in name order, and the name starts with the second it was
    opened: a file opened in the same second as an earlier one could be read before it, and its
    purge would then miss the events it is meant to hide. Waiting for the next second (only when
    a file of this very second exists, so at most once per quick restart) keeps the order."""
    newest = max((_file_second(p) for p in log_dir.glob("events.out.tfevents.*")), default=-1)
    while int(time.time()) <= newest:
        time.sleep(0.05)


def _file_second(path: Path) -> int:
    parts = path.name.split(".")  # events.out.tfevents.<seconds>.<host>.<pid>.<n>
    return int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else -1


class TensorBoardLogger:
    """A run's rows, settings and final metrics as TensorBoard events in run_dir/tensorboard."""

    def __init__(self, run_dir: Path, config: RunConfig) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.log_dir = self.run_dir / LOG_DIR
        step = resume_step(self.run_dir)
        ensure_real_folder(self.log_dir)  # a link planted at tensorboard/ is replaced, not used
        _wait_for_a_later_file_name(self.log_dir)
        # A fresh run purges from step 0: leftovers of an attempt that died before its first
        # checkpoint are hidden too.
        purge_step = 0 if step is None else step + 1
        self._writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)
        if step is None:
            text = json.dumps(config.to_dict(), indent=2)
            # Four spaces: TensorBoard renders text as Markdown, and this keeps the JSON verbatim.
            verbatim = "\n".join("    " + line for line in text.splitlines())
            self._writer.add_text("config", verbatim, 0)
            self._writer.flush()

    def log_row(self, row: dict) -> None:
        step = row["step"]
        for column, tag in METRIC_TAGS.items():
            value = row.get(column)
            if value is not None:
                self._writer.add_scalar(tag, value, step)
        for column, value in row.items():  # the per-part weight norms, one chart section
            if column.startswith("norm_") and value is not None:
                self._writer.add_scalar("weight_norm/" + column.removeprefix("norm_"), value, step)
        self._writer.flush()

    def close(self, summary: dict) -> None:
        step = summary.get("steps_done", 0)
        metrics = {
            f"final/{name}": float(summary[name])
            for name in FINAL_METRICS
            if isinstance(summary.get(name), (int, float)) and math.isfinite(summary[name])
        }
        for tag, value in metrics.items():
            self._writer.add_scalar(tag, value, step)
        hparam_dict = {k: hparam_value(v) for k, v in self.config.flat_dict().items()}
        # Written through this writer's own file writer: SummaryWriter.add_hparams would put
        # them into a new sub-folder named after the time, a second "run" in TensorBoard.
        file_writer = self._writer.file_writer
        for record in hparams(hparam_dict, metrics):
            file_writer.add_summary(record, step)
        self._writer.close()  # flushes
