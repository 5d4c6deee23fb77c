"""Ctrl-C held at a safe point instead of raised wherever it lands.

A KeyboardInterrupt raised in the middle of an update would leave a half-stepped model; in the
middle of an import, a library's bare ``except:`` can swallow it; while a worker process is being
spawned, it leaves the worker reading a truncated start message. Each of those places holds a
Ctrl-C with ``HeldInterrupt`` and acts on ``requested`` when it is safe.
"""

from __future__ import annotations

import signal
import threading


class HeldInterrupt:
    """Within it (main thread only: Python runs signal handlers there), a Ctrl-C sets
    ``requested`` instead of raising. ``block_children``: SIGINT is also blocked in this thread,
    so processes started within inherit it blocked (a worker unblocks it once its imports are
    done); a Ctrl-C that arrives meanwhile is recorded on the way out."""

    def __init__(self, block_children: bool = False) -> None:
        self.requested = False
        self._block = block_children and hasattr(signal, "pthread_sigmask")
        self._previous_handler = None
        self._previous_mask = None
        self._active = False

    def _record(self, signum, frame) -> None:
        self.requested = True

    def __enter__(self) -> HeldInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._active = True
            self._previous_handler = signal.signal(signal.SIGINT, self._record)
            if self._block:
                self._previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        return self

    def __exit__(self, *exc) -> None:
        if not self._active:
            return
        if self._previous_mask is not None:  # a Ctrl-C held by the block is delivered: recorded
            signal.pthread_sigmask(signal.SIG_SETMASK, self._previous_mask)
        # None: the handler was set outside Python; the default is the nearest we can restore.
        previous = self._previous_handler
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
        self._active = False
