"""One matplotlib style for every figure, and the training-curve figure (paper, Figure 1 left)."""

from __future__ import annotations

import csv
import io
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; never open a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import LogFormatterSciNotation

from grokkit.files import atomic_write_bytes, open_regular  # noqa: E402

TRAIN_COLOR = "tab:red"
VALIDATION_COLOR = "tab:green"
# Categories (cosets, operations, optimisers): colours that stand out on white, red left out (the
# figures use it for highlights), then three darker ones; beyond 9, markers tell them apart too.
CATEGORY_COLORS = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:cyan",
    "tab:olive",
    "tab:gray",
    "black",
    "darkgoldenrod",
    "navy",
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p")
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


# Tick labels of a log axis that spans about one decade or less are written as plain decimals
# (2.5, 2.55, 2.6): matplotlib's default writes them 2.5×10⁰, 2.55×10⁰. Wider axes keep 10^k.
PLAIN_TICK_RANGE = (1e-4, 1e5)


def plain_number(x: float) -> str:
    """A tick value as a plain decimal with at most 4 significant digits: 2.475, 0.003, 20000."""
    return np.format_float_positional(
        float(x), precision=4, unique=True, fractional=False, trim="-"
    )


class ReadableLogFormatter(LogFormatterSciNotation):
    """matplotlib's log-axis labels, except that an axis spanning at most one decade boundary (whose
    ticks between the decades are labelled too) gets plain decimals, every tick labelled when the
    axis spans at most a factor of 4 (at most 8 ticks, none crowded), and no label is ever written
    "×10⁰"."""

    def __call__(self, x, pos=None):
        label = super().__call__(x, pos)
        narrow = self._narrow()
        if narrow == "all" or (
            label and (narrow or r"\times10^{0}" in label or r"\times 10^{0}" in label)
        ):
            return plain_number(x)
        return label

    def _narrow(self) -> str:
        """ "all" (at most a factor of 4: label every tick), "plain" (at most one decade boundary:
        plain decimals) or "" (a wider axis: matplotlib's labels)."""
        if self.axis is None:
            return ""
        low, high = sorted(self.axis.get_view_interval())
        if not (PLAIN_TICK_RANGE[0] <= low < high <= PLAIN_TICK_RANGE[1]):
            return ""
        if high / low <= 4:
            return "all"
        boundaries = math.floor(math.log10(high)) - math.floor(
            math.nextafter(math.log10(low), -math.inf)
        )
        return "plain" if boundaries <= 1 else ""


def readable_log_ticks(fig: plt.Figure) -> None:
    """Give every log-scaled axis of ``fig`` a ``ReadableLogFormatter`` (major and minor ticks)."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() != "log":
                continue
            for formatter, setter in (
                (axis.get_major_formatter(), axis.set_major_formatter),
                (axis.get_minor_formatter(), axis.set_minor_formatter),
            ):
                if isinstance(formatter, LogFormatterSciNotation) and not isinstance(
                    formatter, ReadableLogFormatter
                ):
                    setter(
                        ReadableLogFormatter(
                            base=getattr(formatter, "_base", 10.0),
                            labelOnlyBase=formatter.labelOnlyBase,
                            minor_thresholds=formatter.minor_thresholds,
                        )
                    )


CAPTION_GID = "grokkit-caption"  # a figure text that ``fit_captions`` wraps to the panels' width


def _panels_right_edge(fig: plt.Figure, renderer) -> float:
    """The right edge, in display pixels, of everything but the captions: axes with their labels
    and legends, the suptitle and the figure's legends."""
    boxes = [ax.get_tightbbox(renderer) for ax in fig.axes if ax.get_visible()]
    boxes += [
        t.get_window_extent(renderer)
        for t in fig.texts
        if t.get_gid() != CAPTION_GID and t.get_text()
    ]
    boxes += [legend.get_window_extent(renderer) for legend in fig.legends]
    boxes = [b for b in boxes if b is not None and b.width > 0]
    return max(b.x1 for b in boxes) if boxes else fig.bbox.x1


def fit_captions(fig: plt.Figure) -> None:
    """Wrap every caption (a figure text with gid CAPTION_GID, left-aligned) so that it ends at the
    right edge of the panels: a longer line would widen the saved image and leave blank space
    beside the axes; a shorter one would waste the width."""
    captions = [t for t in fig.texts if t.get_gid() == CAPTION_GID]
    if not captions:
        return
    fig.draw_without_rendering()  # lays the figure out (constrained layout too)
    renderer = fig.canvas.get_renderer()
    right = _panels_right_edge(fig, renderer)
    for text in captions:
        words = " ".join(text.get_text().split("\n")).split()
        left = text.get_window_extent(renderer).x0
        width = max(right - left, 200.0)
        props = text.get_fontproperties()
        lines, line = [], ""
        for word in words:
            trial = f"{line} {word}" if line else word
            if (
                line
                and renderer.get_text_width_height_descent(trial, props, ismath=False)[0] > width
            ):
                lines.append(line)
                trial = word
            line = trial
        text.set_text("\n".join([*lines, line]))
        text.set_wrap(False)


def save_figure(fig: plt.Figure, out_png: Path) -> Path:
    """Save ``fig`` as PNG (150 dpi) and as a PDF with the same stem, close it, return the PNG.
    Log axes get readable tick labels and captions are wrapped to the panels' width first
    (``readable_log_ticks``, ``fit_captions``)."""
    out_png = Path(out_png)
    if out_png.suffix.lower() != ".png":
        raise ValueError(f"out_png must end in .png, got {out_png}")
    readable_log_ticks(fig)
    fit_captions(fig)
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
    share a label share a colour and one legend entry (a sweep's runs grouped by a field). The
    legend stands right of the panels, so it never hides a curve.
    Writes ``out_png`` and a PDF beside it; returns ``out_png``."""
    labels = list(dict.fromkeys(label for label, _ in curves))
    if not labels:
        raise ValueError("no runs to compare")
    if len(labels) > len(CATEGORY_COLORS):
        cmap = plt.get_cmap("viridis")
        colors = {lab: cmap(0.9 * i / max(1, len(labels) - 1)) for i, lab in enumerate(labels)}
    else:
        colors = dict(zip(labels, CATEGORY_COLORS))
    apply_style()
    fig, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(11.0, 4.2))
    positive_loss = True
    for label, rows in curves:
        data = _load_metrics(rows)
        keep = data["step"] > 0  # log step axis
        step = data["step"][keep]
        color = colors[label]
        alpha = 0.9 if len(curves) == len(labels) else 0.6
        _plot_series(
            accuracy_axis, step, 100 * data["val_accuracy"][keep], color=color, alpha=alpha
        )
        _plot_series(
            accuracy_axis,
            step,
            100 * data["train_accuracy"][keep],
            color=color,
            alpha=alpha,
            linestyle="--",
            linewidth=1.0,
        )
        _plot_series(loss_axis, step, data["val_loss"][keep], color=color, alpha=alpha)
        _plot_series(
            loss_axis,
            step,
            data["train_loss"][keep],
            color=color,
            alpha=alpha,
            linestyle="--",
            linewidth=1.0,
        )
        losses = np.concatenate([data["val_loss"][keep], data["train_loss"][keep]])
        positive_loss &= bool(np.all(losses[np.isfinite(losses)] > 0))
    accuracy_axis.set_ylim(-2, 102)
    accuracy_axis.set_ylabel("accuracy (%)")
    loss_axis.set_ylabel("loss")
    if positive_loss:
        loss_axis.set_yscale("log")
    for axis in (accuracy_axis, loss_axis):
        axis.set_xscale("log")
        axis.set_xlabel("optimization step")
    handles = [plt.Line2D([], [], color=colors[lab], label=lab) for lab in labels]
    if len(labels) > MAX_LEGEND_ENTRIES:  # a legend taller than the figure names nothing readably
        handles = [
            plt.Line2D(
                [],
                [],
                color="none",
                label=f"{len(labels)} runs: too many to name;\ngroup them with --by FIELD",
            )
        ]
    handles += [
        plt.Line2D([], [], color="0.3", label="validation"),
        plt.Line2D([], [], color="0.3", linestyle="--", linewidth=1.0, label="training"),
    ]
    loss_axis.legend(
        handles=handles,
        title=legend_title or None,
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
    )
    if title:
        fig.suptitle(textwrap.fill(title, 110))
    fig.tight_layout()
    return save_figure(fig, Path(out_png))


# Settings that change how a run is recorded, not what it learns: never the difference a
# comparison names.
_BOOKKEEPING = ("eval_every", "checkpoint_every", "snapshot_every")
# Optimizer settings a preset fixes: named through the preset when the presets differ.
_PRESET_FIELDS = (
    "lr",
    "weight_decay",
    "l2",
    "decay_target",
    "beta1",
    "beta2",
    "eps",
    "warmup_steps",
    "batch_size",
    "update_noise",
    "weight_noise",
    "dropout",
)


MAX_NAMED_SETTINGS = 4  # more settings than this differing: labels are the run names
MAX_LEGEND_ENTRIES = 24  # more runs (or groups) than this: the legend names none of them


def _value_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def comparison_labels(
    settings: Sequence[dict], names: Sequence[str], by: str = ""
) -> tuple[str, list[str]]:
    """(title, one legend label per run) for runs compared in one figure: the title names what
    every run shares (task, data fraction, optimizer preset) and what is compared; each label
    gives the settings that differ between the runs (``train_fraction 0.3, seed 1``), or the
    folder name where the runs' settings are the same. ``settings``: each run's
    ``RunConfig.flat_dict()``; ``names``: its folder name; ``by``: the field runs are grouped by
    (then the label is ``by = value`` and the title lists the other settings that differ)."""
    keys = list(dict.fromkeys(k for s in settings for k in s))
    differ = [
        k for k in keys if k not in _BOOKKEEPING and len({repr(s.get(k)) for s in settings}) > 1
    ]
    if "preset" in differ:  # presets fix their optimizer settings: name the preset alone
        differ = [
            k
            for k in differ
            if k not in _PRESET_FIELDS
            or len({(s.get("preset"), repr(s.get(k))) for s in settings})
            > len({s.get("preset") for s in settings})
        ]
    if "operation" in differ and "modulus" in differ:
        differ.remove("modulus")  # the task's name carries it
    shared = []
    first = settings[0]
    if "operation" not in differ:
        op = first.get("operation", "?")
        shared.append(
            op
            if str(op).startswith("s5") or "modulus" in differ
            else f"{op} mod {first.get('modulus')}"
        )
    if "train_fraction" not in differ and first.get("train_fraction") is not None:
        shared.append(f"{100 * first['train_fraction']:.0f}% data")
    if "preset" not in differ and first.get("preset"):
        shared.append(str(first["preset"]))
    head = ", ".join(shared)
    n = len(settings)

    def listing(keys: list[str]) -> str:
        if len(keys) <= MAX_NAMED_SETTINGS:
            return ", ".join(keys)
        return (
            f"{', '.join(keys[: MAX_NAMED_SETTINGS - 1])} "
            f"and {len(keys) - MAX_NAMED_SETTINGS + 1} other settings"
        )

    if by:
        others = [k for k in differ if k != by]
        what = f"{n} runs by {by}" + (f" (also differing: {listing(others)})" if others else "")
        labels = [f"{by} = {_value_text(s.get(by))}" for s in settings]
    elif differ:
        what = f"{n} runs differing in {listing(differ)}"
        if len(differ) <= MAX_NAMED_SETTINGS:
            labels = [", ".join(f"{k} {_value_text(s.get(k))}" for k in differ) for s in settings]
        else:  # too many settings for a label: the run names carry them
            labels = list(names)
    else:
        what = f"{n} runs with the same settings"
        labels = list(names)
    if not by and len(set(labels)) < len(labels):  # equal settings in several folders
        labels = [f"{lab} ({name})" for lab, name in zip(labels, names)]
    return (f"{head}: {what}" if head else what), labels
