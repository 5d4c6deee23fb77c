"""Ctrl-C and SIGTERM held at a safe point instead of raised wherever they land.

A KeyboardInterrupt raised in the middle of an update would leave a half-stepped model; in the
middle of an import, a library's bare ``except:`` can swallow it; while a worker process is being
spawned, it leaves the worker reading a truncated start message. Each of those places holds a
stop signal with ``HeldInterrupt`` and acts on ``requested`` when it is safe.

SIGTERM (what ``kill``, schedulers and containers send) is a Ctrl-C by another name: it stops
training the same way (a checkpoint at the step in progress, status ``interrupted``), and the
command exits with 128 + the signal's number (130 for SIGINT, 143 for SIGTERM). The command line
installs both handlers at its start (``stop_signals_handled``) whatever the disposition it
inherited: a script that starts grokkit in the background leaves SIGINT ignored.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

# The signals that ask grokkit to stop, where the platform has them.
STOP_SIGNALS = tuple(
    s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s
)
received: int | None = None  # the last stop signal this process got (for its exit status)


def _raise_interrupt(signum, frame) -> None:
    global received
    received = signum
    raise KeyboardInterrupt


def exit_status() -> int:
    """The status of a command a stop signal ended: 128 + its number (130 without one)."""
    return 128 + (received or signal.SIGINT)


def signal_name(signum: int | None) -> str:
    """ "" for SIGINT (a Ctrl-C, the usual case), else " (SIGTERM)" for a message."""
    if signum is None or signum == signal.SIGINT:
        return ""
    return f" ({signal.Signals(signum).name})"


@contextlib.contextmanager
def stop_signals_handled() -> Iterator[None]:
    """Within it (main thread only), SIGINT and SIGTERM raise KeyboardInterrupt, whatever this
    process inherited (SIG_IGN from a background job, SIGTERM's default of dying unsaved); the
    previous handlers are restored on the way out (a caller calling ``main`` in-process)."""
    global received
    received = None
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_interrupt) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


class HeldInterrupt:
    """Within it (main thread only: Python runs signal handlers there), a Ctrl-C or SIGTERM sets
    ``requested`` (and ``signum``) instead of raising. ``block_children``: both are also blocked
    in this thread, so processes started within inherit them blocked (a worker unblocks them once
    its imports are done); one that arrives meanwhile is recorded on the way out."""

    def __init__(self, block_children: bool = False) -> None:
        self.requested = False
        self.signum: int | None = None
        self._block = block_children and hasattr(signal, "pthread_sigmask")
        self._previous_handlers: dict = {}
        self._previous_mask = None
        self._active = False

    def _record(self, signum, frame) -> None:
        global received
        self.requested, self.signum, received = True, signum, signum

    def __enter__(self) -> HeldInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._active = True
            self._previous_handlers = {s: signal.signal(s, self._record) for s in STOP_SIGNALS}
            if self._block:
                self._previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(STOP_SIGNALS))
        return self

    def __exit__(self, *exc) -> None:
        if not self._active:
            return
        if self._previous_mask is not None:  # a signal held by the block is delivered: recorded
            signal.pthread_sigmask(signal.SIG_SETMASK, self._previous_mask)
        for s, previous in self._previous_handlers.items():
            # None: the handler was set outside Python; the default is the nearest we can restore.
            default = signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL
            signal.signal(s, default if previous is None else previous)
        self._active = False
