"""The paper's figures, and the follow-up methods' headline claims, as experiments: one module per
figure, each with runs(scale), measure(results, scale), plot(measured, out_dir), claims(measured)
and describe(measured).

``FIGURES`` maps a figure's CLI name to its module. See ``common`` for the interface every figure
module follows and ``reproduce`` for the command that trains a figure's runs (through
``grokkit.sweep``) and writes its plot, CSV and REPORT.md. The modules are imported on first use
of ``FIGURES`` so that the ``grokkit`` command starts without matplotlib, scipy or sklearn.
"""

from __future__ import annotations

from importlib import import_module

SCALES = ("smoke", "laptop", "paper")
_MODULES = (
    "fig1_left",
    "fig1_center",
    "fig2_left",
    "fig2_right",
    "fig3",
    "fig4",
    "fig6",
    "fig7",
    # the methods that followed the paper, each against its own paper's claim
    "grokfast",
    "stablemax",
    "progress_measures",
    # every method above and more, against a tuned baseline over seeds (not part of "all")
    "benchmark",
)
# Each figure's name (its module's NAME) without importing it: what its files are called.
FIGURE_NAMES = tuple(m.replace("_", "-") for m in _MODULES)
# What `reproduce all` trains: the paper's figures and the follow-up claims; the benchmark is
# asked for by name (hours at laptop scale).
ALL_FIGURES = tuple(n for n in FIGURE_NAMES if n != "benchmark")


def __getattr__(name: str):
    if name == "FIGURES":
        modules = [import_module(f"grokkit.experiments.{m}") for m in _MODULES]
        figures = {m.NAME: m for m in modules}
        globals()["FIGURES"] = figures
        return figures
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ALL_FIGURES", "FIGURES", "FIGURE_NAMES", "SCALES"]
