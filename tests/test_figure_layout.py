"""Every figure read as a reviewer would: each plot function, fed with constructed results (fake run
folders and synthetic analyses: nothing trains), must save an image in which every title, label,
legend and caption lies inside what is saved, no text runs into another, no legend inside a panel
covers plotted points, the caption is no wider than the panels (no blank margin beside them), no
tick label reads "×10⁰", and no p-value reads "p = 0". Figure-specific checks follow the review of
issue 25 (fig1-center's censored markers, fig2-right's twelve operations, fig3's colour key, fig6's
colours, fig7's legend, compare's title and legend).

Set GROKKIT_LAYOUT_DIR to keep the PNGs there for a look."""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgb
from matplotlib.transforms import Bbox

from grokkit import plots
from grokkit.analysis import fourier
from grokkit.analysis.sharpness import SHARPNESS_DEFINITIONS
from grokkit.experiments import (
    common,
    fig1_center,
    fig1_left,
    fig2_left,
    fig2_right,
    fig3,
    fig4,
    fig6,
    fig7,
    grokfast,
    stablemax,
)
from grokkit.runs import METRIC_COLUMNS
from grokkit.sweep import SweepResult

P_ZERO = re.compile(r"\bp\s*=\s*0(?![.\d])")  # "p = 0", "permutation p = 0", not "p = 0.03"
TIMES_TEN_TO_ZERO = ("\\times10^{0}", "\\times 10^{0}", "×10^0", "×10⁰", "× 10⁰")


# ---------------------------------------------------------------- reading a drawn figure


@pytest.fixture
def drawn(monkeypatch, tmp_path, request):
    """The figures the plot functions save, kept when save_figure closes them."""
    figures = []
    close = plt.close

    def keep(fig=None):
        if isinstance(fig, matplotlib.figure.Figure):
            figures.append(fig)
        close(fig)

    monkeypatch.setattr(plt, "close", keep)
    keep_dir = os.environ.get("GROKKIT_LAYOUT_DIR")
    if (
        not keep_dir
    ):  # the checks draw the figure themselves: rendering the files would only cost time
        monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *args, **kwargs: None)
    out = (
        Path(keep_dir) / re.sub(r"[^\w.-]+", "_", request.node.name)
        if keep_dir
        else tmp_path / "figures"
    )
    out.mkdir(parents=True, exist_ok=True)
    return SimpleNamespace(figures=figures, out=out)


def _texts(fig) -> list[tuple[str, object]]:
    """(what, artist) for every non-tick text: suptitle and super labels, figure texts (the
    caption), figure legends, and each visible axes' title, axis labels, legend and texts."""
    out = []
    for what in ("_suptitle", "_supxlabel", "_supylabel"):
        t = getattr(fig, what, None)
        if t is not None and t.get_visible() and t.get_text():
            out.append((what.strip("_"), t))
    named = {id(t) for _, t in out}
    out += [
        (f"figure text {t.get_text()[:40]!r}", t)
        for t in fig.texts
        if t.get_visible() and t.get_text() and id(t) not in named
    ]
    out += [(f"figure legend {i}", legend) for i, legend in enumerate(fig.legends)]
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        for kind, t in (
            ("title", ax.title),
            ("x label", ax.xaxis.label),
            ("y label", ax.yaxis.label),
        ):
            if t.get_visible() and t.get_text():
                out.append((f"axes {i} {kind} {t.get_text()[:40]!r}", t))
        if ax.get_legend() is not None:
            out.append((f"axes {i} legend", ax.get_legend()))
        out += [
            (f"axes {i} text {t.get_text()[:40]!r}", t)
            for t in ax.texts
            if t.get_visible() and t.get_text()
        ]
    return out


def _tick_labels(fig) -> list[tuple[str, object]]:
    """(what, text) for every labelled tick inside its axis' view."""
    out = []
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            low, high = sorted(axis.get_view_interval())
            slack = 1e-9 * max(abs(low), abs(high), 1e-300)
            for locs, labels in (
                (axis.get_majorticklocs(), axis.get_majorticklabels()),
                (axis.get_minorticklocs(), axis.get_minorticklabels()),
            ):
                for loc, label in zip(locs, labels):
                    if (
                        label.get_visible()
                        and label.get_text()
                        and low - slack <= loc <= high + slack
                    ):
                        out.append((f"axes {i} {name} tick {label.get_text()!r}", label))
    return out


def _overlap(a: Bbox, b: Bbox, tolerance: float = 1.0) -> bool:
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > tolerance) and (
        min(a.y1, b.y1) - max(a.y0, b.y0) > tolerance
    )


def _data_points(ax) -> np.ndarray:
    """Display coordinates of every plotted vertex and scatter point of ``ax``."""
    chunks = []
    for line in ax.lines:
        if line.get_visible():
            chunks.append(line.get_transform().transform(line.get_xydata()))
    for coll in ax.collections:
        if isinstance(coll, PathCollection) and coll.get_visible() and len(coll.get_offsets()):
            chunks.append(coll.get_offset_transform().transform(coll.get_offsets()))
    points = np.concatenate(chunks) if chunks else np.zeros((0, 2))
    return points[np.isfinite(points).all(axis=1)]


def layout_problems(fig) -> list[str]:
    """What a reviewer would send back about the saved image of ``fig`` (empty: nothing)."""
    if not isinstance(fig.canvas, FigureCanvasAgg):  # a closed figure keeps no canvas of its own
        FigureCanvasAgg(fig)
    fig.draw_without_rendering()  # lays out and labels every tick, as a save would, without pixels
    renderer = fig.canvas.get_renderer()
    pad = matplotlib.rcParams["savefig.pad_inches"]
    saved = (
        fig.get_tightbbox(renderer).padded(pad).transformed(fig.dpi_scale_trans)
    )  # what savefig keeps
    texts = [(what, artist, artist.get_window_extent(renderer)) for what, artist in _texts(fig)]
    ticks = [
        (what, artist, artist.get_window_extent(renderer)) for what, artist in _tick_labels(fig)
    ]
    # A figure legend placed by constrained layout lands elsewhere once saved with
    # bbox_inches="tight" (over the caption, in stablemax's case): the checks could not see it.
    problems = [f"figure legend {i}: use an axes legend" for i, _ in enumerate(fig.legends)]
    for what, _, box in texts:
        if (
            box.x0 < saved.x0 - 1
            or box.x1 > saved.x1 + 1
            or box.y0 < saved.y0 - 1
            or box.y1 > saved.y1 + 1
        ):
            problems.append(f"{what} lies outside the saved image")
    for i, (what, _, box) in enumerate(texts):
        for other, _, other_box in texts[i + 1 :]:
            if _overlap(box, other_box):
                problems.append(f"{what} overlaps {other}")
        for other, _, other_box in ticks:
            if _overlap(box, other_box):
                problems.append(f"{what} overlaps {other}")
    for i, (what, _, box) in enumerate(ticks):  # tick labels of one axis running into each other
        axis = what.split(" tick ")[0]
        for other, _, other_box in ticks[i + 1 :]:
            if other.split(" tick ")[0] == axis and _overlap(box, other_box):
                problems.append(f"{what} overlaps {other}")
    for what, artist, _ in ticks:
        if any(bad in artist.get_text() for bad in TIMES_TEN_TO_ZERO):
            problems.append(f"{what} is written with ×10⁰")
    for what, artist, _ in texts:
        strings = (
            [artist.get_text()]
            if hasattr(artist, "get_text")
            else [t.get_text() for t in artist.get_texts()]
        )
        if hasattr(artist, "get_title"):
            strings.append(artist.get_title().get_text())
        for s in strings:
            if P_ZERO.search(s):
                problems.append(f"{what} writes a p-value as 0: {s!r}")
    # Legends inside a panel must not cover its points; the caption must not be wider than the
    # panels (a wider one leaves blank space beside them in the saved image).
    for i, ax in enumerate(fig.axes):
        legend = ax.get_legend()
        if legend is None or not ax.get_visible():
            continue
        box = legend.get_window_extent(renderer)
        if _overlap(box, ax.bbox):
            inner = box.padded(-2)
            covered = [p for p in _data_points(ax) if inner.contains(*p)]
            if covered:
                problems.append(f"axes {i} legend covers {len(covered)} plotted point(s)")
    captions = [t for t in fig.texts if t.get_gid() == plots.CAPTION_GID]
    panels = [ax.get_tightbbox(renderer) for ax in fig.axes if ax.get_visible()]
    panels += [
        t.get_window_extent(renderer) for t in fig.texts if t not in captions and t.get_text()
    ]
    panels += [legend.get_window_extent(renderer) for legend in fig.legends]
    right = Bbox.union(panels).x1
    for t in captions:
        box = t.get_window_extent(renderer)
        if box.x1 > right + 0.1 * fig.dpi:
            problems.append(
                f"the caption {t.get_text()[:40]!r} runs {(box.x1 - right) / fig.dpi:.2f} in past "
                "the panels: blank space beside them"
            )
    return problems


def assert_reads_well(fig) -> None:
    problems = layout_problems(fig)
    assert not problems, "\n".join(problems)


def contrast_with_white(color) -> float:
    """WCAG contrast ratio of ``color`` against white (1: invisible, 21: black)."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(color)]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return 1.05 / (luminance + 0.05)


# ---------------------------------------------------------------- constructed results


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def metrics_rows(
    steps: int, eval_every: int, train_at: float, val_at: float, narrow: bool
) -> list[dict]:
    """Grokking-like curves: accuracies rising at ``train_at`` and ``val_at`` (log steps). Narrow:
    losses within 2.47-2.65, as a smoke run's 20 steps leave them (the ×10⁰ case)."""
    rows = []
    grid = sorted({0, 1, *range(eval_every, steps + 1, eval_every)})
    for s in grid:
        t = _sigmoid(4 * (math.log(s + 1) - math.log(train_at)))
        v = _sigmoid(4 * (math.log(s + 1) - math.log(val_at)))
        if narrow:
            train_loss, val_loss = 2.6 - 0.12 * s / steps, 2.65 - 0.07 * s / steps
        else:
            train_loss = 4.6 * (1 - t) + 1e-5
            val_loss = 4.6 + 3 * t * (1 - v) - 4.6 * v + 4e-4
        rows.append(
            {
                "step": s,
                "train_loss": train_loss,
                "train_accuracy": t,
                "val_loss": val_loss,
                "val_accuracy": v,
                "weight_norm": 40.0,
                "lr": 1e-3,
                "wall_seconds": 0.01 * s,
                "softmax_collapse": 0.5 * t * (1 - v),
            }
        )
    return rows


class Runs:
    """Fake run folders: a metrics.csv where a figure reads one, the summary in memory."""

    def __init__(self, root: Path):
        self.root = root
        self.n = 0

    def result(
        self, config, summary: dict | None = None, metrics: list[dict] | None = None
    ) -> SweepResult:
        self.n += 1
        run_dir = self.root / f"run{self.n}"
        run_dir.mkdir(parents=True)
        if metrics is not None:
            with open(run_dir / "metrics.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS)
                writer.writeheader()
                writer.writerows(metrics)
        return SweepResult(config, run_dir, {"steps_done": config.steps, **(summary or {})})

    def curves(self, configs, scale: str, spread: float = 1.0) -> list[SweepResult]:
        out = []
        for i, c in enumerate(configs):
            budget = c.steps
            train_at = (
                0.05 * budget * (1 + 0.3 * i)
                if scale == "smoke"
                else min(300 * (1 + i), budget / 4)
            )
            val_at = min(budget * 0.4 * spread * (1 + 0.5 * i), 50 * budget)
            out.append(
                self.result(
                    c,
                    metrics=metrics_rows(
                        budget,
                        c.eval_every if scale != "smoke" else 1,
                        train_at,
                        val_at,
                        narrow=scale == "smoke",
                    ),
                )
            )
        return out


@pytest.fixture
def fake(tmp_path) -> Runs:
    return Runs(tmp_path / "runs")


def best_val(config, i: int) -> float:
    """A best validation accuracy that grows with the data fraction, different per run."""
    rng = np.random.default_rng(i)
    return float(
        np.clip(_sigmoid(12 * (config.train_fraction - 0.55)) + rng.normal(0, 0.05), 0.005, 1.0)
    )


# The larger scales' layouts are slow to draw: the default suite checks smoke, -m slow the rest.
SCALES = ("smoke", pytest.param("laptop", marks=pytest.mark.slow))
ALL_SCALES = (*SCALES, pytest.param("paper", marks=pytest.mark.slow))


# ---------------------------------------------------------------- the figures


@pytest.mark.parametrize("scale", ALL_SCALES)
def test_fig1_left_and_fig4(scale, fake, drawn):
    results = fake.curves(fig1_left.runs(scale), scale)
    fig1_left.plot(fig1_left.measure(results, scale), drawn.out)
    fig4.plot(fig4.measure(results, scale), drawn.out)
    left, loss = drawn.figures
    assert_reads_well(left)
    assert_reads_well(loss)


@pytest.mark.parametrize("scale", ALL_SCALES)
def test_fig1_center_markers_apart_and_budget_named(scale, fake, drawn):
    configs = fig1_center.runs(scale)
    fractions = sorted({c.train_fraction for c in configs})
    results = []
    for i, c in enumerate(configs):
        smallest = c.train_fraction == fractions[0]  # neither median within the budget there
        low = c.train_fraction < fractions[len(fractions) // 2]
        results.append(
            fake.result(
                c,
                {
                    "steps_to_val_99": None if low else int(c.steps * (1 - c.train_fraction) / 2),
                    "steps_to_train_99": None if smallest else int(c.steps * c.train_fraction / 10),
                },
            )
        )
    fig1_center.plot(fig1_center.measure(results, scale), drawn.out)
    (fig,) = drawn.figures
    assert_reads_well(fig)
    (ax,) = fig.axes
    beyond = [line for line in ax.lines if line.get_marker() == "^"]
    assert len(beyond) == 2  # validation's and training's
    points = np.concatenate([line.get_transform().transform(line.get_xydata()) for line in beyond])
    gaps = [np.hypot(*(a - b)) for i, a in enumerate(points) for b in points[i + 1 :]]
    width = max(line.get_markersize() for line in beyond) * fig.dpi / 72  # points to pixels
    assert min(gaps) >= width, "two '> budget' markers are drawn on top of each other"
    assert any("budget (" in t.get_text() for t in ax.get_legend().get_texts()), (
        "the budget line is not in the legend"
    )


@pytest.mark.parametrize("scale", SCALES)
def test_fig2_left(scale, fake, drawn):
    results = [
        fake.result(c, {"best_val_accuracy": best_val(c, i)})
        for i, c in enumerate(fig2_left.runs(scale))
    ]
    fig2_left.plot(fig2_left.measure(results, scale), drawn.out)
    (fig,) = drawn.figures
    assert_reads_well(fig)
    lines = [line for line in fig.axes[0].lines if not line.get_label().startswith("_")]
    assert len({(line.get_color(), line.get_marker()) for line in lines}) == len(lines) == 9
    assert min(contrast_with_white(line.get_color()) for line in lines) >= 2


@pytest.mark.parametrize("scale", SCALES)
def test_fig2_right_one_panel_per_operation(scale, fake, drawn):
    results = [
        fake.result(c, {"best_val_accuracy": best_val(c, i)})
        for i, c in enumerate(fig2_right.runs(scale))
    ]
    fig2_right.plot(fig2_right.measure(results, scale), drawn.out)
    (fig,) = drawn.figures
    assert_reads_well(fig)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert len(titles) == len(fig2_right.OPERATIONS) == 12
    assert all(
        any(t == op or t.startswith(f"{op} (mod") for t in titles) for op in fig2_right.OPERATIONS
    )


@pytest.mark.parametrize("scale", ALL_SCALES)
def test_fig6_colours_stand_out_on_white(scale, fake, drawn):
    results = [
        fake.result(
            c,
            {
                "best_val_accuracy": best_val(c, i),
                "train_accuracy": 1.0,
                "steps_to_train_99": 100,
                "n_train": 10,
            },
        )
        for i, c in enumerate(fig6.runs(scale))
    ]
    fig6.plot(fig6.measure(results, scale), drawn.out)
    (fig,) = drawn.figures
    assert_reads_well(fig)
    lines = [line for line in fig.axes[0].lines if line.get_label().startswith("k = ")]
    assert len(lines) >= 3
    assert min(contrast_with_white(line.get_color()) for line in lines) >= 3, (
        "a k is drawn too pale to see"
    )
    assert len({line.get_marker() for line in lines}) == len(lines)


def _fake_fig3(monkeypatch):
    """fig3's per-run analysis and per-group tests, synthetic (no weights, no t-SNE)."""

    def analyse(result, shuffle_seed=0):
        cfg = result.config
        rng = np.random.default_rng(cfg.seed + 10 * shuffle_seed)
        s5 = cfg.operation.startswith("s5")
        n = 120 if s5 else cfg.modulus
        labels = np.arange(n) % (12 if s5 else 8)
        paper = {
            "name": "x<(0,3)(1,4), (1,2)(3,4)>" if s5 else "x -> x+8",
            "stat": 0.3,
            "chance": 0.08,
            "null": np.full(10, 0.1),
            "p": 1 / 1001,
            "best_chance_95": 0.12,
            "labels": labels,
            "h_labels": labels,
            "paper_h_agreement": 0.05,
        }
        own = {
            "name": "x·(0,1,3,2)" if s5 else "x+54",
            "rate": 0.6,
            "p": 1 / 1001,
            "chance": 0.04,
            "map": rng.permutation(n),
            "null": np.full(10, 0.1),
        }
        if s5:
            own["cosets"] = {
                "name": "x<(0,1,3,2)>",
                "order": 4,
                "labels": labels,
                "agreement": 0.4,
                "chance": 0.03,
            }
        return {
            "points": rng.normal(size=(n, 2)) * 20,
            "names": [str(i) for i in range(n)],
            "s5": s5,
            "paper": paper,
            "own": own,
        }

    def group_stats(members, analyses=None):
        cfg, n = members[0].config, len(members)
        s5 = cfg.operation.startswith("s5")
        paper = {
            "names": ["x<(0,3)(1,4), (1,2)(3,4)>" if s5 else "x -> x+8"] * n,
            "stats": [0.05, 0.06, 0.01][:n],
            "ps": [1.0, 1 / 1001, 0.86][:n],
            "chance": 0.08,
            "p": 1 / 1001 if not s5 else 1.0,
            "holds": not s5,
            "null_mean": 0.1,
            "paper_h": [0.05] * n,
        }
        own = {
            "names": ["x·(0,1,3,2)" if s5 else "x+54", "x·(0,2)", "(0,4)·x"][:n],
            "stats": [0.75, 0.8, 1.0][:n],
            "ps": [1 / 1001] * n,
            "chance": 0.04,
            "p": 1 / 1001,
            "holds": True,
            "null_mean": 0.11,
            "cosets": [{"name": "x<(0,1,3,2)>", "order": 4, "agreement": 0.42, "chance": 0.03}] * n,
        }
        return {
            "label": common.op_label(cfg),
            "arch": cfg.arch,
            "s5": s5,
            "seeds": [r.config.seed for r in members],
            "best_vals": [1.0] * n,
            "paper": paper,
            "own": own,
            "paper_rows": {k: paper[k] for k in ("stats", "ps", "p")},
            "own_rows": {k: own[k] for k in ("stats", "ps", "p")},
        }

    monkeypatch.setattr(fig3, "analyse", analyse)
    monkeypatch.setattr(fig3, "group_stats", group_stats)


@pytest.mark.parametrize(
    ("scale", "arch"),
    [("smoke", "grokkit"), pytest.param("laptop", "both", marks=pytest.mark.slow)],
)
def test_fig3_titles_apart_and_colours_named(scale, arch, fake, drawn, monkeypatch):
    _fake_fig3(monkeypatch)
    results = [fake.result(c, {"best_val_accuracy": 1.0}) for c in fig3.runs(scale, arch)]
    fig3.plot(fig3.measure(results, scale, arch), drawn.out)
    (fig,) = drawn.figures
    assert_reads_well(fig)
    for ax in fig.axes:
        legend = ax.get_legend()
        assert legend is not None and legend.get_title().get_text().startswith("colour:"), (
            "no colour key"
        )
        classes = [
            c for c in ax.collections if isinstance(c, PathCollection)
        ]  # one scatter per colour
        assert len(classes) > 1 and len(legend.get_texts()) > len(classes)  # and the lines' meaning


def _fake_fig7_table(rs, measured=None):
    n, T = len(rs), max(rs[0].config.steps // 2, 1)
    rng = np.random.default_rng(n)
    steps = sorted({1, *np.unique(np.geomspace(1, rs[0].config.steps, 40).astype(int))})
    # Seeds that reach 100 % early sit where an upper-left legend would go.
    curves = [
        [(s, float(_sigmoid(5 * (math.log(s) - math.log(T * (0.1 + 0.3 * i)))))) for s in steps]
        for i in range(n)
    ]
    stats = {
        "keskar": {
            "rho": 1.0,
            "p": 0.0,
            "perm_p": 1 / (fig7.PERMUTATIONS + 1),
            "ci": (1.0, 1.0),
            "dropped": 0,
        },
        "keskar-subspace": {
            "rho": -0.5,
            "p": 0.031,
            "perm_p": 0.04,
            "ci": (-0.9, 0.2),
            "dropped": 3,
        },
        "openai-grok": {
            "rho": math.nan,
            "p": math.nan,
            "perm_p": math.nan,
            "ci": (math.nan, math.nan),
            "dropped": 0,
        },
    }
    stats = {d: stats[d] for d in SHARPNESS_DEFINITIONS}
    phis = {d: list(rng.uniform(100, 1500, n)) for d in SHARPNESS_DEFINITIONS}
    vals = list(rng.uniform(0, 1, n))
    rows = [[r.config.arch, r.config.seed, T, *[None] * (len(fig7.CSV_HEADER) - 3)] for r in rs]
    return {
        "rows": rows,
        "T": T,
        **stats[fig7.PRIMARY],
        "stats": stats,
        "phis": phis,
        "vals": vals,
        "n": n,
        "grokked_at_T": n // 2,
        "curves": curves,
    }


@pytest.mark.parametrize("scale", ["laptop"])
def test_fig7_titles_apart_no_legend_on_curves_no_p_zero(scale, fake, drawn, monkeypatch):
    monkeypatch.setattr(fig7, "measured_phis", lambda groups: dict.fromkeys(groups))
    monkeypatch.setattr(fig7, "table", _fake_fig7_table)
    results = [fake.result(c) for c in fig7.runs(scale)]
    fig7.plot(fig7.measure(results, scale), drawn.out)
    (fig,) = drawn.figures
    assert_reads_well(fig)
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "perm. p = 0.0001" in titles and "ρ undefined" in titles  # the floor, never 0
    assert max(len(ax.get_title().splitlines()) for ax in fig.axes) <= 2
    text = " ".join(
        fig7._numbers_of(a, _fake_fig7_table(rs)) for a, rs in fig7.by_arch(results).items()
    )
    assert not P_ZERO.search(text) and "permutation p = 0.0001" in text


def test_p_values_are_never_written_as_zero():
    floor = 1 / (fig7.PERMUTATIONS + 1)
    for p in (0.0, 1e-300, floor / 2):
        assert fig7.format_p(p) == "p < 0.0001"
        assert fig7.format_p(p, "permutation p") == "permutation p < 0.0001"
    assert fig7.format_p(floor) == "p = 0.0001"
    assert fig7.format_p(0.0312) == "p = 0.031"
    assert fig7.format_p(math.nan) == "p undefined"
    text = fig7._stats_text({"rho": 1.0, "p": 0.0, "perm_p": floor, "ci": (1.0, 1.0)}, 3)
    assert not P_ZERO.search(text), text


@pytest.mark.parametrize("scale", SCALES)
def test_grokfast_and_stablemax(scale, fake, drawn):
    fast = fake.curves(grokfast.runs(scale), scale)
    grokfast.plot(grokfast.measure(fast, scale), drawn.out)
    stable = fake.curves(stablemax.runs(scale), scale, spread=3.0)
    stablemax.plot(stablemax.measure(stable, scale), drawn.out)
    for fig in drawn.figures:
        assert_reads_well(fig)


def _measures(narrow: bool):
    steps = np.arange(0, 21) if narrow else np.arange(0, 15_001, 100)
    x = steps / steps[-1]
    if narrow:
        losses = {
            name: 2.5 - 0.1 * x + 0.05 * i
            for i, name in enumerate(("train", "test", "restricted", "excluded"))
        }
    else:
        losses = {
            "train": 4.6 * np.exp(-40 * x) + 1e-7,
            "test": 4.6 + 6 * x * (1 - _sigmoid(40 * (x - 0.5))),
            "restricted": 4.6 * (1 - _sigmoid(30 * (x - 0.4))) + 0.5,
            "excluded": 4.6 * (1 + 50 * x),
        }
    curves = pd.DataFrame(
        {
            "step": steps,
            **{f"{k}_loss": v for k, v in losses.items()},
            "test_accuracy": _sigmoid(30 * (x - 0.5)),
            "gini_embed": 0.2 + 0.6 * x,
            "gini_neuron_logit": 0.1 + 0.7 * x,
            "weight_norm_sq": 3000 * (1 - 0.8 * x),
        }
    )
    phases = (
        {"memorisation_end": None, "cleanup_start": None, "cleanup_end": None}
        if narrow
        else {"memorisation_end": 1500, "cleanup_start": 7200, "cleanup_end": 13800}
    )
    return SimpleNamespace(
        curves=curves,
        phases=phases,
        key_freqs=[1, 2, 3, 5] if narrow else [14, 35, 41, 52],
        embed_norms=torch.linspace(1, 5, 6 if narrow else 57),
    )


@pytest.mark.parametrize("narrow", [True, False], ids=["smoke", "laptop"])
def test_progress_measures(narrow, drawn):
    fourier.plot_progress_measures(
        _measures(narrow),
        drawn.out / "progress-measures.png",
        title="x+y mod 113, 30% data, 1 layer, 15,000 full-batch updates (laptop scale)",
    )
    (fig,) = drawn.figures
    assert_reads_well(fig)


@pytest.mark.parametrize("scale", SCALES)
def test_run_curves(scale, drawn):
    config = fig1_left.runs(scale)[0]
    rows = metrics_rows(
        config.steps, 1 if scale == "smoke" else config.eval_every, 30, 300, narrow=scale == "smoke"
    )
    plots.plot_run_curves(
        rows,
        drawn.out / "curves.png",
        title="x/y mod 97, 50% data, adamw, seed 0\nGrokfast-EMA (α 0.98, λ 2), L2 0.005",
    )
    (fig,) = drawn.figures
    assert_reads_well(fig)


def test_compare_names_what_differs(drawn):
    base = fig1_left.runs("laptop")[0]
    configs = [base.with_changes(lr=lr, seed=s) for lr in (1e-3, 3e-3) for s in (0, 1)]
    names = [f"x_y-p97-f0.500-adamw-k0-s{c.seed}-{i:08x}" for i, c in enumerate(configs)]
    title, labels = plots.comparison_labels([c.flat_dict() for c in configs], names)
    assert title == "x/y mod 97, 50% data, adamw: 4 runs differing in seed, lr"
    assert labels == [
        "seed 0, lr 0.001",
        "seed 1, lr 0.001",
        "seed 0, lr 0.003",
        "seed 1, lr 0.003",
    ]
    title, _ = plots.comparison_labels([c.flat_dict() for c in configs], names, by="lr")
    assert title == "x/y mod 97, 50% data, adamw: 4 runs by lr (also differing: seed)"
    # Presets differ: the preset names them, not every optimizer field it sets.
    presets = [base.with_changes(preset="adam", weight_decay=0.0), base]
    title, labels = plots.comparison_labels([c.flat_dict() for c in presets], names[:2])
    assert title == "x/y mod 97, 50% data: 2 runs differing in preset" and labels == [
        "preset adam",
        "preset adamw",
    ]
    # More settings differ than a label can hold: the run names are the labels, the title counts.
    mixed = [
        base.with_changes(
            lr=1e-3 * (i + 1),
            seed=i,
            train_fraction=0.3 + 0.1 * i,
            dropout=0.1 * i,
            weight_noise=0.01 * i,
        )
        for i in range(3)
    ]
    title, labels = plots.comparison_labels([c.flat_dict() for c in mixed], names[:3])
    assert (
        title
        == "x/y mod 97, adamw: 3 runs differing in train_fraction, seed, lr and 2 other settings"
    )
    assert labels == names[:3]
    # The same settings in two folders: the folders tell them apart.
    title, labels = plots.comparison_labels([base.flat_dict()] * 2, ["a", "b"])
    assert title.endswith("2 runs with the same settings") and labels == ["a", "b"]
    curves = [
        (label, metrics_rows(8000, 100, 300 * (i + 1), 3000 * (i + 1), narrow=False))
        for i, label in enumerate(
            ["seed 0, lr 0.001", "seed 1, lr 0.001", "seed 0, lr 0.003", "seed 1, lr 0.003"]
        )
    ]
    plots.plot_comparison(
        curves,
        drawn.out / "compare.png",
        title="x/y mod 97, 50% data, adamw: 4 runs differing in seed, lr",
    )
    # Thirty runs: a legend naming each would be taller than the figure.
    many = [(f"run {i}", curves[i % 4][1]) for i in range(30)]
    plots.plot_comparison(many, drawn.out / "compare-many.png", title="30 runs")
    first, crowded = drawn.figures
    for fig in (first, crowded):
        assert_reads_well(fig)
    assert len(crowded.axes[1].get_legend().get_texts()) == 3


def test_log_ticks_over_less_than_a_decade_are_plain_decimals():
    plots.apply_style()
    fig, ax = plt.subplots()
    ax.plot([1, 20], [2.47, 2.65])
    ax.set_xscale("log")
    ax.set_yscale("log")
    plots.readable_log_ticks(fig)
    fig.canvas.draw()
    y_labels = [t.get_text() for what, t in _tick_labels(fig) if " y tick " in what]
    assert "2.5" in y_labels and not any("times" in s for s in y_labels), y_labels
    assert not layout_problems(fig)
    plt.close(fig)
