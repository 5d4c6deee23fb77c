"""Loggers: viewers fed from the same metrics rows the run folder records.

The run folder (metrics.csv, summary.json) stays the single source of truth; a logger is a copy
for a viewer. ``train_runs(..., loggers=[factory, ...])`` calls ``factory(run_dir, config)`` once
per run as it starts (or resumes), ``log_row`` with every row written to metrics.csv, and
``close`` with the summary once the run has finished.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from grokkit.config import RunConfig


class RunLogger(Protocol):
    def log_row(self, row: dict) -> None:
        """One metrics row: step, losses, accuracies, weight norm, lr, wall seconds."""

    def close(self, summary: dict) -> None:
        """The run has finished (summary.json has been written)."""


LoggerFactory = Callable[[Path, RunConfig], RunLogger]
