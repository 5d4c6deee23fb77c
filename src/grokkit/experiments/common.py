"""What every figure module shares: scales, the smoke model, CSV and caption helpers, statistics.

A figure module defines::

    NAME, DESCRIPTION, CLAIM          # CLI name, one line for --list, the paper's claim it tests
    REDUCTIONS: dict[str, str]        # per scale: how it departs from the paper (caption, docs)
    OPTIONS: tuple[str, ...]          # keyword options runs()/measure() accept (e.g. "operation")
    runs(scale, **options) -> list[RunConfig]           # "seeds" where it trains seeds
    measure(results, scale, **options) -> a dataclass   # the figure's numbers, computed once
    plot(measured, out_dir) -> list[Path]               # <name>.png, .pdf, .csv
    claims(measured) -> list[claims.Claim]  # one declared test per claim of the paper
    describe(measured) -> str         # the numbers in words, no judgement
    disagreement(measured) -> str     # optional: which tested hypothesis explains a disagreement

``measure`` reads the runs' files and does every computation (t-SNE, shuffle tests, sharpness,
Fourier measures); ``plot``, ``claims`` and ``describe`` only read the dataclass it returns, so
the picture, the records and the sentences are made from the same numbers, and the work is done
once. The verdicts come from the claim records alone (``claims.decide`` and ``claims.prose``).

Figures share one sweep folder, so identical configurations (Figure 1 left and Figure 4) are
trained once.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from grokkit.config import RunConfig
from grokkit.errors import InputError
from grokkit.experiments import SCALES
from grokkit.files import atomic_write_text
from grokkit.optim_config import preset
from grokkit.plot_style import CAPTION_GID, MARKERS

# Seconds-long runs that still go through every code path: one tiny layer, tens of steps.
SMOKE_MODEL = {"n_layers": 1, "d_model": 16, "n_heads": 2, "d_mlp": 32}
SMOKE_SCHEDULE = {"steps": 20, "eval_every": 5, "checkpoint_every": 20}

PAPER_FRACTIONS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95


def check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise InputError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")


def check_seeds(seeds: int | None, default: int, minimum: int = 1) -> int:
    """The number of seeds a figure trains: ``seeds`` (``--seeds``) or its scale's default."""
    if seeds is None:
        return default
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < minimum:
        raise InputError(f"--seeds must be an integer of at least {minimum}, got {seeds!r}")
    return seeds


def base_config(operation: str, scale: str, optimizer: str = "adamw", **changes) -> RunConfig:
    """The paper's recipe for ``operation`` with a preset; at smoke scale a tiny model and
    budget."""
    cfg = RunConfig(operation=operation).with_changes(optimizer=preset(optimizer), preset=optimizer)
    if scale == "smoke":
        cfg = cfg.with_changes(**SMOKE_MODEL, **SMOKE_SCHEDULE)
    return cfg.with_changes(**changes) if changes else cfg


def planned_runs(module, scale: str, **options) -> list[RunConfig]:
    """Every run a figure module would train at ``scale``: its runs, and for a figure that chooses
    further runs from the first ones' results (the benchmark's tuned runs), stand-ins for those
    (``planned_followup_runs``), so that listings and plans count them."""
    later = getattr(module, "planned_followup_runs", None)
    return module.runs(scale, **options) + (later(scale, **options) if later else [])


def member_steps(configs: Iterable[RunConfig]) -> int:
    """Training steps of every run at its whole budget (early stops only save): the size of a
    scale's work, whatever machine runs it."""
    return sum(c.steps for c in configs)


# ---------------------------------------------------------------- grouping and statistics


def group_by(results, key: Callable) -> dict:
    """Results grouped by ``key(result)``, groups and members in first-seen order."""
    groups: dict = defaultdict(list)
    for r in results:
        groups[key(r)].append(r)
    return dict(groups)


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.pstdev(values) if len(values) > 1 else 0.0)


def fmt_pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def op_label(cfg: RunConfig) -> str:
    return cfg.operation if cfg.operation.startswith("s5") else f"{cfg.operation} mod {cfg.modulus}"


# ---------------------------------------------------------------- runs compared by method


@dataclass(frozen=True)
class RunCurve:
    """One run's configuration and its metrics.csv rows, read once by a figure's ``measure``."""

    config: RunConfig
    metrics: list[dict]


METHOD_CSV_HEADER = [
    "method",
    "seed",
    "step",
    "train_accuracy",
    "val_accuracy",
    "train_loss",
    "val_loss",
]


def plot_accuracy_by_method(
    ax,
    groups: dict[str, list[RunCurve]],
    colors: dict[str, str],
    extra_columns: tuple[str, ...] = (),
) -> list[list]:
    """Validation (solid) and training (dashed) accuracy of every run on ``ax`` from step 1 on, one
    colour per method (named once in the legend). Returns every metrics row of every run as a CSV
    row: METHOD_CSV_HEADER, then ``extra_columns``."""
    rows = []
    for k, (method, members) in enumerate(groups.items()):
        # Methods whose curves coincide must stay visible: the first drawn widest, the next ones
        # thinner on top, each with its own marker.
        style = {
            "lw": max(2.8 - 0.5 * k, 0.8),
            "marker": MARKERS[k % len(MARKERS)],
            "ms": 4,
            "markevery": 0.12,
            "zorder": 2 + k,
        }
        for i, curve in enumerate(members):
            metrics = curve.metrics
            rows += [
                [
                    method,
                    curve.config.seed,
                    *(m.get(c) for c in (*METHOD_CSV_HEADER[2:], *extra_columns)),
                ]
                for m in metrics
            ]
            pts = [m for m in metrics if m["step"] > 0]  # step 0 cannot sit on a log axis
            steps = [m["step"] for m in pts]
            ax.plot(
                steps,
                [100 * m["val_accuracy"] for m in pts],
                color=colors[method],
                label=method if i == 0 else None,
                **style,
            )
            ax.plot(
                steps,
                [100 * m["train_accuracy"] for m in pts],
                color=colors[method],
                ls="--",
                lw=0.8,
            )
    ax.set_ylim(-2, 102)
    ax.set_ylabel("accuracy (%): validation solid, train dashed")
    ax.legend()
    return rows


# ---------------------------------------------------------------- files


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    """A CSV with every plotted number; floats written exactly (repr), None as empty."""
    path = Path(path)
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            ["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row]
        )
    atomic_write_text(path, buf.getvalue())
    return path


def add_caption(fig, text: str) -> None:
    """The figure's settings and every reduction from the paper, printed under the axes; saving
    wraps it to the panels' width (``grokkit.plots.fit_captions``), so that it never leaves blank
    space beside them."""
    smoke = text.startswith(SMOKE_CAPTION)  # nobody should read a smoke figure's numbers
    if smoke:
        text = "SMOKE SCALE, CODE PATH ONLY: these numbers mean nothing. " + text
    fig.text(
        0.01,
        -0.01,
        text,
        ha="left",
        va="top",
        fontsize=10 if smoke else 7,
        fontweight="bold" if smoke else "normal",
        color="tab:red" if smoke else "0.25",
        wrap=True,
        gid=CAPTION_GID,
    )


SMOKE_CAPTION = "Scale 'smoke'"


def caption(reductions: dict[str, str], scale: str, extra: str = "") -> str:
    text = f"Scale '{scale}': {reductions[scale]}"
    return f"{text} {extra}".strip()


def save(fig, out_dir: Path, name: str) -> list[Path]:
    # Imported here: `reproduce --list` and `--plan` import every figure module (and this one) and
    # must not wait for matplotlib.
    from grokkit.plots import save_figure

    png = save_figure(fig, Path(out_dir) / f"{name}.png")
    return [png, png.with_suffix(".pdf")]
