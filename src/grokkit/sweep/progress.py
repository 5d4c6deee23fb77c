"""A sweep's progress across all its workers: steps done out of the planned total, runs finished,
the runs' latest and best validation accuracy, ETA, and a line per run as it ends.

Workers cannot share a progress bar, so each one reports through a queue (``QueueWatcher``, a
``train.ProgressWatcher``), batching its steps so that reporting costs nothing measurable; the
sweep's own process drains the queue into one bar (``SweepProgress``). Training in the sweep's
own process reports to the bar directly.
"""

from __future__ import annotations

import queue
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from grokkit.train import BAR_FORMAT  # "at most" before the ETA where a stop rule may end runs

REPORT_SECONDS = 0.5  # a worker sends its step count at most this often


class SweepProgress:
    """One bar over every run still to train. ``todo`` maps each run's folder to (its name, the
    step it starts from, its budget). A run that ends early (a stop rule, divergence) takes its
    unused steps off the total, so the ETA stays honest."""

    def __init__(
        self,
        todo: dict[str, tuple[str, int, int]],
        on_run_ended: Callable[[str, dict], None],
        description: str,
        enabled: bool,
        runs_done: int,
        runs_total: int,
        on_checkpoint: Callable[[str, dict], None] | None = None,
        stops_early: set[str] | bool = False,
    ) -> None:
        self.on_checkpoint = on_checkpoint
        self.latest_val: dict[str, float] = {}  # runs still training: their last evaluation's
        self.best_val: float | None = None  # over every run of this sweep, ended ones too
        self.grokked: set[str] = set()  # runs that reached 99 % validation accuracy
        self.names = {key: name for key, (name, _, _) in todo.items()}
        self.started_at = {key: start for key, (_, start, _) in todo.items()}
        self.planned = {key: budget - start for key, (_, start, budget) in todo.items()}
        self.on_run_ended = on_run_ended
        self.enabled = enabled
        self.runs_done, self.runs_total = runs_done, runs_total
        self.ended: set[str] = set()
        self.steps_done, self.steps_total = (
            0,
            sum(self.planned.values()),
        )  # a disabled bar counts none
        self.bar = tqdm(
            total=self.steps_total,
            unit="step",
            desc=description,
            file=sys.stderr,
            disable=not enabled,
            dynamic_ncols=True,
            mininterval=0.5,
            # A stop rule may end runs before their budget: the total, and so the ETA, is a bound
            # while any run with one (``stops_early``: their keys, or True for all) trains.
            bar_format=BAR_FORMAT % ("at most " if stops_early else ""),
        )
        self.stopping = set(todo) if stops_early is True else set(stops_early or ())
        self._postfix()

    # ProgressWatcher
    def advanced(self, run_steps: int) -> None:
        self.steps_done += run_steps
        self.bar.update(run_steps)

    def evaluated(self, run_dir: Path | str, val_accuracy: float) -> None:
        key = str(run_dir)
        if key in self.ended or val_accuracy != val_accuracy:  # NaN: a diverged run's last row
            return
        self.latest_val[key] = val_accuracy
        self.best_val = max(val_accuracy, self.best_val or 0.0)
        if val_accuracy >= 0.99:
            self.grokked.add(key)
        self._postfix(refresh=False)

    def run_ended(self, run_dir: Path | str, summary: dict) -> None:
        key = str(run_dir)
        if key in self.ended:
            return
        self.ended.add(key)
        self.latest_val.pop(key, None)
        if key in self.stopping:
            self.stopping.discard(key)
            if not self.stopping:  # the runs left train to their budgets: an ETA, not a bound
                self.bar.bar_format = BAR_FORMAT % ""
        if summary.get("best_val_accuracy") is not None:
            self.evaluated_best(key, summary)
        trained = max(0, (summary.get("steps_done") or 0) - self.started_at.get(key, 0))
        unused = self.planned.get(key, 0) - trained
        if unused > 0:  # ended before its budget: its remaining steps will never come
            self.steps_total -= unused
            self.bar.total = self.steps_total
        self.runs_done += 1
        name = self.names.get(key, Path(key).name)
        if self.enabled:
            self.bar.write(f"done {name}: {describe(summary)}", file=sys.stderr)
        self._postfix()
        self.on_run_ended(name, summary)

    def checkpointed(self, run_dir: Path | str, summary: dict) -> None:
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.names.get(str(run_dir), Path(run_dir).name), summary)

    def drain(self, source) -> None:
        """Apply every message waiting in a worker queue (see QueueWatcher): a multiprocessing
        queue or a Ray queue, whose Empty is a queue.Empty too."""
        while True:
            try:
                message = source.get_nowait()
            except queue.Empty:
                return
            if message[0] == "steps":
                self.advanced(message[1])
            elif message[0] == "checkpointed":
                self.checkpointed(message[1], message[2])
            elif message[0] == "evaluated":
                for run_dir, val in message[1].items():
                    self.evaluated(run_dir, val)
            else:
                self.run_ended(message[1], message[2])

    def evaluated_best(self, key: str, summary: dict) -> None:
        """An ended run's best validation accuracy and whether it reached 99 % (from its summary:
        a resumed run's earlier evaluations were not seen here)."""
        self.best_val = max(summary["best_val_accuracy"], self.best_val or 0.0)
        if summary.get("steps_to_val_99") is not None:
            self.grokked.add(key)

    def _postfix(self, refresh: bool = True) -> None:
        self.bar.set_postfix_str(self.postfix_text(), refresh=refresh)

    def postfix_text(self) -> str:
        """runs ended, then the validation accuracy of the population: the range of the latest
        evaluations of the runs still training, the best of any run, and how many reached 99 %."""
        text = f"runs {self.runs_done}/{self.runs_total}"
        if self.latest_val:
            low, high = min(self.latest_val.values()), max(self.latest_val.values())
            now = (
                f"{100 * low:.0f}%" if high - low < 0.005 else f"{100 * low:.0f}-{100 * high:.0f}%"
            )
            text += f", val now {now}"
        if self.best_val is not None:
            text += f", best {100 * self.best_val:.1f}%, >=99% in {len(self.grokked)}"
        return text

    def close(self) -> None:
        self.bar.close()


class QueueWatcher:
    """A worker's ProgressWatcher: steps are summed and sent every REPORT_SECONDS; a run's end is
    sent at once (after the steps before it)."""

    def __init__(self, sink) -> None:
        self.sink = sink
        self.pending = 0
        self.pending_val: dict[str, float] = {}
        self.last = time.monotonic()

    def advanced(self, run_steps: int) -> None:
        self.pending += run_steps
        if time.monotonic() - self.last >= REPORT_SECONDS:
            self._flush()

    def run_ended(self, run_dir: Path, summary: dict) -> None:
        self._flush()
        self.sink.put(("ended", str(run_dir), summary))

    def checkpointed(self, run_dir: Path, summary: dict) -> None:
        self._flush()
        self.sink.put(("checkpointed", str(run_dir), summary))

    def evaluated(self, run_dir: Path, val_accuracy: float) -> None:
        self.pending_val[str(run_dir)] = val_accuracy  # sent with the steps: only the latest

    def _flush(self) -> None:
        if self.pending:
            self.sink.put(("steps", self.pending))
            self.pending = 0
        if self.pending_val:
            self.sink.put(("evaluated", self.pending_val))
            self.pending_val = {}
        self.last = time.monotonic()


def describe(s: dict) -> str:
    """One run's outcome in a few words: status, validation accuracy, when it reached 99 %."""
    val = s.get("val_accuracy")
    val = "n/a" if val is None else f"{100 * val:.1f}%"
    at = s.get("steps_to_val_99")
    at = "not reached" if at is None else f"at step {at}"
    wall = s.get("wall_seconds")
    wall = "" if wall is None else f", {wall:.1f} s"
    return f"{s['status']}, val {val} (99% {at}){wall}"
