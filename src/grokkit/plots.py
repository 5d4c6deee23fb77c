"""One matplotlib style for every figure, and the training-curve figure (paper, Figure 1 left)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; never open a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from grokkit.files import atomic_write_bytes, open_regular  # noqa: E402

TRAIN_COLOR = "tab:red"
VALIDATION_COLOR = "tab:green"
REQUIRED_COLUMNS = ("step", "train_loss", "train_accuracy", "val_loss", "val_accuracy")


def apply_style() -> None:
    """Set the rcParams shared by all grokkit figures."""
    matplotlib.rcParams.update(
        {
            "figure.figsize": (10.0, 4.0),
            "figure.dpi": 100,
            "savefig.bbox": "tight",
            "font.size": 10,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "axes.grid": True,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "grid.alpha": 0.3,
            "grid.linestyle": "-",
            "legend.frameon": False,
            "lines.linewidth": 1.5,
            "pdf.fonttype": 42,  # embed TrueType so text in PDFs stays editable
        }
    )


def save_figure(fig: plt.Figure, out_png: Path) -> Path:
    """Save ``fig`` as PNG (150 dpi) and as a PDF with the same stem, close it, return the PNG."""
    out_png = Path(out_png)
    if out_png.suffix.lower() != ".png":
        raise ValueError(f"out_png must end in .png, got {out_png}")
    # Rendered in memory, then written like every grokkit file: a full disk keeps the previous
    # plot, and a link planted at either name is replaced rather than written through.
    try:
        png, pdf = io.BytesIO(), io.BytesIO()
        fig.savefig(png, format="png", dpi=150)
        fig.savefig(pdf, format="pdf")
    finally:
        plt.close(fig)
    atomic_write_bytes(out_png, png.getvalue())
    atomic_write_bytes(out_png.with_suffix(".pdf"), pdf.getvalue())
    return out_png


def _as_float(value: object) -> float:
    if value is None or value == "":
        return math.nan
    return float(value)


def _load_metrics(metrics: Sequence[dict] | str | Path) -> dict[str, np.ndarray]:
    """Columns of ``REQUIRED_COLUMNS`` as float arrays; missing cells become NaN."""
    if isinstance(metrics, (str, Path)):
        with io.TextIOWrapper(open_regular(Path(metrics)), newline="") as handle:
            reader = csv.DictReader(handle)
            columns = set(reader.fieldnames or [])
            rows = list(reader)
        source = str(metrics)
    else:
        rows = list(metrics)
        columns = set().union(*(row.keys() for row in rows)) if rows else set()
        source = "metrics"
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise ValueError(
            f"{source} lacks required columns {missing}; needs {list(REQUIRED_COLUMNS)}"
        )
    return {
        name: np.array([_as_float(row.get(name)) for row in rows], dtype=np.float64)
        for name in REQUIRED_COLUMNS
    }


def _plot_series(axis: plt.Axes, step: np.ndarray, values: np.ndarray, **style) -> None:
    keep = np.isfinite(values)  # train and validation may be logged at different steps
    axis.plot(step[keep], values[keep], **style)


def plot_run_curves(
    metrics: Sequence[dict] | str | Path,
    out_png: Path,
    title: str = "",
) -> Path:
    """Accuracy and loss against optimization step, train in red and validation in green.

    ``metrics`` is a list of row dicts or the path of a metrics.csv with columns step,
    train_loss, train_accuracy, val_loss, val_accuracy (accuracy in [0, 1]). The step axis is
    logarithmic, so rows at step 0 are omitted. Loss is drawn on a log axis when all values are
    positive. Writes ``out_png`` and a PDF beside it; returns ``out_png``.
    """
    data = _load_metrics(metrics)
    on_log_axis = data["step"] > 0
    if not np.any(on_log_axis):
        raise ValueError("metrics have no rows with step > 0 to draw on a log step axis")
    step = data["step"][on_log_axis]
    series = {name: data[name][on_log_axis] for name in REQUIRED_COLUMNS[1:]}

    apply_style()
    fig, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(10.0, 4.0))

    train_percent, validation_percent = 100 * series["train_accuracy"], 100 * series["val_accuracy"]
    _plot_series(accuracy_axis, step, train_percent, color=TRAIN_COLOR, label="train")
    _plot_series(
        accuracy_axis, step, validation_percent, color=VALIDATION_COLOR, label="validation"
    )
    # A little headroom so that curves sitting at 0 % or 100 % are not hidden by the frame.
    accuracy_axis.set_ylim(-2, 102)
    accuracy_axis.set_yticks(range(0, 101, 20))
    accuracy_axis.set_ylabel("accuracy (%)")

    _plot_series(loss_axis, step, series["train_loss"], color=TRAIN_COLOR, label="train")
    _plot_series(loss_axis, step, series["val_loss"], color=VALIDATION_COLOR, label="validation")
    losses = np.concatenate([series["train_loss"], series["val_loss"]])
    losses = losses[np.isfinite(losses)]
    if losses.size and np.all(losses > 0):
        loss_axis.set_yscale("log")
    loss_axis.set_ylabel("loss")

    for axis in (accuracy_axis, loss_axis):
        axis.set_xscale("log")
        axis.set_xlabel("optimization step (step 0 omitted)")
        axis.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, Path(out_png))


def plot_comparison(
    curves: Sequence[tuple[str, Sequence[dict]]],
    out_png: Path,
    title: str = "",
    legend_title: str = "",
) -> Path:
    """Several runs' curves overlaid: accuracy (left) and loss (right) against the step,
    validation solid and training dashed. ``curves``: (label, metrics rows) per run; runs that
    share a label share a colour and one legend entry (a sweep's runs grouped by a field).
    Writes ``out_png`` and a PDF beside it; returns ``out_png``."""
    labels = list(dict.fromkeys(label for label, _ in curves))
    if not labels:
        raise ValueError("no runs to compare")
    cmap = plt.get_cmap("viridis" if len(labels) > 10 else "tab10")
    colors = {lab: cmap(i / max(1, len(labels) - 1) if len(labels) > 10 else i) for i, lab in enumerate(labels)}
    apply_style()
    fig, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(11.0, 4.2))
    positive_loss = True
    for label, rows in curves:
        data = _load_metrics(rows)
        keep = data["step"] > 0  # log step axis
        step = data["step"][keep]
        color = colors[label]
        alpha = 0.9 if len(curves) == len(labels) else 0.6
        _plot_series(accuracy_axis, step, 100 * data["val_accuracy"][keep], color=color, alpha=alpha)
        _plot_series(accuracy_axis, step, 100 * data["train_accuracy"][keep], color=color,
                     alpha=alpha, linestyle="--", linewidth=1.0)  # fmt: skip
        _plot_series(loss_axis, step, data["val_loss"][keep], color=color, alpha=alpha)
        _plot_series(loss_axis, step, data["train_loss"][keep], color=color, alpha=alpha,
                     linestyle="--", linewidth=1.0)  # fmt: skip
        losses = np.concatenate([data["val_loss"][keep], data["train_loss"][keep]])
        positive_loss &= bool(np.all(losses[np.isfinite(losses)] > 0))
    accuracy_axis.set_ylim(-2, 102)
    accuracy_axis.set_ylabel("accuracy (%)  (validation solid, training dashed)")
    loss_axis.set_ylabel("loss")
    if positive_loss:
        loss_axis.set_yscale("log")
    for axis in (accuracy_axis, loss_axis):
        axis.set_xscale("log")
        axis.set_xlabel("optimization step")
    handles = [plt.Line2D([], [], color=colors[lab], label=lab) for lab in labels]
    accuracy_axis.legend(handles=handles, title=legend_title or None, fontsize=8,
                         loc="upper left")  # fmt: skip
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, Path(out_png))
