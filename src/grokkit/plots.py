"""One matplotlib style for every figure, and the training-curve figure (paper, Figure 1 left)."""

from __future__ import annotations

import csv
import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; never open a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import LogFormatterSciNotation

from grokkit.config import BUDGET_FIELDS, SETTINGS  # noqa: E402
from grokkit.files import atomic_write_bytes, open_regular  # noqa: E402
from grokkit.optim_config import RECIPES, OptimizerConfig  # noqa: E402
from grokkit.plot_style import (  # noqa: F401  (re-exported: ``from grokkit.plots import X``)
    CAPTION_GID,
    CATEGORY_COLORS,
    MARKERS,
    TRAIN_COLOR,
    VALIDATION_COLOR,
)

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


def _on_log_steps(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The rows of ``data`` a log step axis can show: those with step > 0."""
    keep = data["step"] > 0
    return {name: values[keep] for name, values in data.items()}


def _finite_losses(data: dict[str, np.ndarray]) -> np.ndarray:
    """Every finite train and validation loss in ``data``."""
    losses = np.concatenate([data["train_loss"], data["val_loss"]])
    return losses[np.isfinite(losses)]


def _plot_series(axis: plt.Axes, step: np.ndarray, values: np.ndarray, **style) -> None:
    keep = np.isfinite(values)  # train and validation may be logged at different steps
    axis.plot(step[keep], values[keep], **style)


def _plot_curves(
    accuracy_axis: plt.Axes,
    loss_axis: plt.Axes,
    data: dict[str, np.ndarray],
    styles: Sequence[tuple[str, dict]],
) -> None:
    """One run's accuracy (in %) on ``accuracy_axis`` and loss on ``loss_axis`` against the step:
    a curve per (split, line style) in ``styles``, split "train" or "val", drawn in that order."""
    for axis, scale, metric in ((accuracy_axis, 100, "accuracy"), (loss_axis, 1, "loss")):
        for split, style in styles:
            _plot_series(axis, data["step"], scale * data[f"{split}_{metric}"], **style)


def _style_curve_axes(
    accuracy_axis: plt.Axes, loss_axis: plt.Axes, step_label: str, log_loss: bool
) -> None:
    """Axis scales and labels shared by the curve figures: log step axes, accuracy in %."""
    # A little headroom so that curves sitting at 0 % or 100 % are not hidden by the frame.
    accuracy_axis.set_ylim(-2, 102)
    accuracy_axis.set_ylabel("accuracy (%)")
    loss_axis.set_ylabel("loss")
    if log_loss:
        loss_axis.set_yscale("log")
    for axis in (accuracy_axis, loss_axis):
        axis.set_xscale("log")
        axis.set_xlabel(step_label)


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
    data = _on_log_steps(_load_metrics(metrics))
    if not data["step"].size:
        raise ValueError("metrics have no rows with step > 0 to draw on a log step axis")

    apply_style()
    fig, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(10.0, 4.0))
    styles = (
        ("train", {"color": TRAIN_COLOR, "label": "train"}),
        ("val", {"color": VALIDATION_COLOR, "label": "validation"}),
    )
    _plot_curves(accuracy_axis, loss_axis, data, styles)
    losses = _finite_losses(data)
    log_loss = bool(losses.size) and bool(np.all(losses > 0))
    _style_curve_axes(accuracy_axis, loss_axis, "optimization step (step 0 omitted)", log_loss)
    accuracy_axis.set_yticks(range(0, 101, 20))
    _mark_99_steps((accuracy_axis, loss_axis), data)
    for axis in (accuracy_axis, loss_axis):
        axis.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, Path(out_png))


GROKKING_THRESHOLD = 0.99  # the accuracy whose first steps define grokking (train.THRESHOLD)


def first_step_at(data: dict[str, np.ndarray], column: str) -> float | None:
    """The first step whose ``column`` is at or above the 99 % threshold, or None."""
    reached = np.flatnonzero(data[column] >= GROKKING_THRESHOLD)
    return float(data["step"][reached[0]]) if reached.size else None


def _mark_99_steps(axes: Sequence[plt.Axes], data: dict[str, np.ndarray]) -> None:
    """The two steps that define grokking, as dotted lines on every panel: where training and
    where validation accuracy first reached 99 %, each in its curve's colour and named with its
    step (and the delay between them) in the legend; one not reached is said there in words."""
    train, val = first_step_at(data, "train_accuracy"), first_step_at(data, "val_accuracy")
    marks = [("train", train, TRAIN_COLOR), ("validation", val, VALIDATION_COLOR)]
    for split, step, color in marks:
        if step is None:
            axes[0].plot([], [], color="none", label=f"{split} 99%: not reached")
            continue
        for axis in axes:  # named once, in the first panel's legend
            label = "_" if axis is not axes[0] else f"{split} 99% at step {step:,.0f}"
            axis.axvline(step, color=color, linestyle=":", linewidth=1.2, label=label)
    if train is not None and val is not None and val > train:
        axes[0].plot([], [], color="none", label=f"delay {val - train:,.0f} steps")


_TRAINING_LINE = {"linestyle": "--", "linewidth": 1.0}  # training curves beside validation ones


def _label_colors(labels: Sequence[str]) -> dict[str, object]:
    """A colour per label: the category colours, or viridis when there are more labels."""
    if len(labels) > len(CATEGORY_COLORS):
        cmap = plt.get_cmap("viridis")
        return {lab: cmap(0.9 * i / max(1, len(labels) - 1)) for i, lab in enumerate(labels)}
    return dict(zip(labels, CATEGORY_COLORS))


def _label_styles(labels: Sequence[str]) -> dict[str, dict]:
    """A line style per label: its colour and, so that curves lying on top of each other (runs
    that learned alike) still show each one, a marker of its own every tenth of the axis and a
    width that shrinks in drawing order (the first drawn shows around the later ones)."""
    colors = _label_colors(labels)
    n = len(labels)
    styles = {}
    for i, label in enumerate(labels):
        style = {"color": colors[label], "linewidth": 1.2 + 1.2 * (n - 1 - i) / max(1, n - 1)}
        if n <= len(MARKERS):
            style |= {"marker": MARKERS[i], "markevery": (0.02 + 0.1 * i / n, 0.1)}
            style |= {"markersize": 5, "markerfacecolor": "none"}
        styles[label] = style
    return styles


def _comparison_legend(axis: plt.Axes, styles: dict[str, dict], legend_title: str) -> None:
    """A legend right of ``axis``: a line per label in ``styles`` (a note instead when there are
    too many to name), then the line styles of validation and training."""
    if len(styles) > MAX_LEGEND_ENTRIES:  # a legend taller than the figure names nothing readably
        note = f"{len(styles)} runs: too many to name;\ngroup them with --by FIELD"
        handles = [plt.Line2D([], [], color="none", label=note)]
    else:
        handles = [
            plt.Line2D([], [], label=lab, **{k: v for k, v in st.items() if k != "markevery"})
            for lab, st in styles.items()
        ]
    handles += [
        plt.Line2D([], [], color="0.3", label="validation"),
        plt.Line2D([], [], color="0.3", label="training", **_TRAINING_LINE),
    ]
    axis.legend(
        handles=handles,
        title=legend_title or None,
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
    )


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
    styles = _label_styles(list(dict.fromkeys(label for label, _ in curves)))
    if not styles:
        raise ValueError("no runs to compare")
    alpha = 0.9 if len(curves) == len(styles) else 0.6  # grouped runs overlap: fainter
    runs = [(label, _on_log_steps(_load_metrics(rows))) for label, rows in curves]
    apply_style()
    fig, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(11.0, 4.2))
    for label, data in runs:
        style = styles[label] | {"alpha": alpha}
        training = style | _TRAINING_LINE | {"linewidth": 0.6 * style["linewidth"]}
        _plot_curves(accuracy_axis, loss_axis, data, (("val", style), ("train", training)))
    losses = np.concatenate([_finite_losses(data) for _, data in runs])
    log_loss = bool(losses.size) and bool(np.all(losses > 0))  # no losses past step 0: linear
    _style_curve_axes(accuracy_axis, loss_axis, "optimization step", log_loss)
    _comparison_legend(loss_axis, styles, legend_title)
    if title:
        fig.suptitle(textwrap.fill(title, 110))
    fig.tight_layout()
    return save_figure(fig, Path(out_png))


# Settings that change how a run is recorded, not what it learns: never the difference a
# comparison names.
_BOOKKEEPING = tuple(s.name for s in SETTINGS if s.group == "schedule" and not s.budget)
# How long a run may train: its curves show where each ended, so a comparison names a budget
# only when nothing else tells the runs apart.
_BUDGET = BUDGET_FIELDS
# Optimizer settings a preset fixes (every one --optimizer's recipes set): named through the
# preset when the presets differ.
_PRESET_FIELDS = tuple(
    f.name
    for f in fields(OptimizerConfig)
    if len({getattr(r, f.name) for r in RECIPES.values()}) > 1
)


MAX_NAMED_SETTINGS = 4  # more settings than this differing: labels are the run names
MAX_LEGEND_ENTRIES = 24  # more runs (or groups) than this: the legend names none of them


def _value_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _set_by_preset(settings: Sequence[dict], key: str) -> bool:
    """Whether ``key`` is an optimizer setting the runs' presets decide: runs with the same
    preset agree on it."""
    return key in _PRESET_FIELDS and len(
        {(s.get("preset"), repr(s.get(key))) for s in settings}
    ) <= len({s.get("preset") for s in settings})


def _differing_settings(settings: Sequence[dict]) -> list[str]:
    """The settings a comparison names, in first-seen order: those that differ between the runs,
    bookkeeping left out, optimizer settings left to the preset when presets differ, and the
    modulus left to the task's name when operations differ."""
    keys = list(dict.fromkeys(k for s in settings for k in s))
    differ = [
        k for k in keys if k not in _BOOKKEEPING and len({repr(s.get(k)) for s in settings}) > 1
    ]
    if "preset" in differ:  # presets fix their optimizer settings: name the preset alone
        differ = [k for k in differ if not _set_by_preset(settings, k)]
    if "operation" in differ and "modulus" in differ:
        differ.remove("modulus")  # the task's name carries it
    if any(k not in _BUDGET for k in differ):
        differ = [k for k in differ if k not in _BUDGET]
    return differ


def _shared_settings_text(first: dict, differ: list[str]) -> str:
    """What every run shares (task, data fraction, optimizer preset), read from the first run's
    settings: ``x/y mod 97, 50% data, adamw``; "" when the runs share none of these."""
    shared = []
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
    return ", ".join(shared)


def _listing(keys: list[str]) -> str:
    """Setting names for a title: all of them, or the first few and a count of the others."""
    if len(keys) <= MAX_NAMED_SETTINGS:
        return ", ".join(keys)
    return (
        f"{', '.join(keys[: MAX_NAMED_SETTINGS - 1])} "
        f"and {len(keys) - MAX_NAMED_SETTINGS + 1} other settings"
    )


def _compared_text(n: int, differ: list[str], by: str) -> str:
    """What a comparison of ``n`` runs compares: ``4 runs differing in seed, lr``."""
    if by:
        others = [k for k in differ if k != by]
        return f"{n} runs by {by}" + (f" (also differing: {_listing(others)})" if others else "")
    if differ:
        return f"{n} runs differing in {_listing(differ)}"
    return f"{n} runs with the same settings"


def _run_labels(
    settings: Sequence[dict], names: Sequence[str], differ: list[str], by: str
) -> list[str]:
    """One legend label per run: ``by = value``, else the differing settings and their values,
    else (too many settings differ, or none) the folder name; folders whose labels would be
    equal have their names added."""
    if by:
        return [f"{by} = {_value_text(s.get(by))}" for s in settings]
    if differ and len(differ) <= MAX_NAMED_SETTINGS:
        labels = [", ".join(f"{k} {_value_text(s.get(k))}" for k in differ) for s in settings]
    else:  # no setting differs, or too many for a label: the run names carry them
        labels = list(names)
    if len(set(labels)) < len(labels):  # equal settings in several folders
        labels = [f"{lab} ({name})" for lab, name in zip(labels, names)]
    return labels


def comparison_labels(
    settings: Sequence[dict], names: Sequence[str], by: str = ""
) -> tuple[str, list[str]]:
    """(title, one legend label per run) for runs compared in one figure: the title names what
    every run shares (task, data fraction, optimizer preset) and what is compared; each label
    gives the settings that differ between the runs (``train_fraction 0.3, seed 1``), or the
    folder name where the runs' settings are the same. ``settings``: each run's
    ``RunConfig.flat_dict()``; ``names``: its folder name; ``by``: the field runs are grouped by
    (then the label is ``by = value`` and the title lists the other settings that differ)."""
    differ = _differing_settings(settings)
    head = _shared_settings_text(settings[0], differ)
    what = _compared_text(len(settings), differ, by)
    return (f"{head}: {what}" if head else what), _run_labels(settings, names, differ, by)
