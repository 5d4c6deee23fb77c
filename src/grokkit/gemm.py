"""Which float32 matrix product the fast path uses on the CPU: oneDNN's or PyTorch's own.

On one machine oneDNN's linear (AVX-512) ran the model's projections 2.2x faster than PyTorch's
bmm (MKL's AVX2 kernels on AMD); on another (a Zen 4 EPYC) PyTorch's own was as fast or faster.
So neither is assumed: the first time a process needs the choice for a thread count, it times one
training step of the paper's model both ways (interleaved, median of a few) and keeps the faster.
The choice is cached on disk per CPU model, thread count and PyTorch version
(``$GROKKIT_CACHE_DIR`` or ``~/.cache/grokkit/gemm.json``), so later processes only read it.
``GROKKIT_ONEDNN=1`` or ``=0`` forces either path and skips the measurement;
``GROKKIT_ONEDNN=measure`` measures again and replaces the cached choice (a choice measured while
the machine was busy can be wrong).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from grokkit.devices import cpu_count, cpu_model, load_average
from grokkit.errors import warn
from grokkit.files import atomic_write_text, read_regular_bytes

PATHS = ("onednn", "pytorch")
ONEDNN_LINEAR = getattr(torch.ops.mkldnn, "_linear_pointwise", None)  # oneDNN's fused linear op
ONEDNN_AVAILABLE = ONEDNN_LINEAR is not None and torch.backends.mkldnn.is_available()
CACHE_FILE = "gemm.json"


@dataclass(frozen=True)
class GemmChoice:
    path: str  # "onednn" or "pytorch"
    source: str  # "env", "unavailable", "cache", "measured", "forced" or "default"
    ms_per_step: dict | None = None  # the measurement behind it: {path: ms}

    def as_dict(self) -> dict:
        return {"gemm": self.path, "gemm_source": self.source, "gemm_ms_per_step": self.ms_per_step}


_chosen: dict[int, GemmChoice] = {}  # per thread count, in this process
_forced: str | None = None  # set by ``forced`` (the measurement itself)


def use_onednn() -> bool:
    """Whether the fast path's CPU float32 projections go to oneDNN now."""
    if _forced is not None:
        return _forced == "onednn"
    threads = torch.get_num_threads()
    choice = _chosen.get(threads)
    if choice is None:
        choice = _chosen[threads] = choose(threads)
    return choice.path == "onednn"


def current() -> GemmChoice:
    """The choice for this process's thread count (measured now if it was never made)."""
    if _forced is not None:
        return GemmChoice(_forced, "forced")
    use_onednn()
    return _chosen[torch.get_num_threads()]


@contextlib.contextmanager
def forced(path: str):
    """Run the fast path on ``path`` inside the block (for measurements and tests)."""
    global _forced
    if path not in PATHS:
        raise ValueError(f"unknown GEMM path {path!r}; choose one of {PATHS}")
    previous, _forced = _forced, path
    try:
        yield
    finally:
        _forced = previous


def choose(threads: int) -> GemmChoice:
    env = os.environ.get("GROKKIT_ONEDNN")
    if env not in (None, "0", "1", "measure"):
        warn(f"GROKKIT_ONEDNN={env!r} is not 0, 1 or measure; ignored")
    if env in ("0", "1"):
        return GemmChoice("onednn" if env == "1" and ONEDNN_AVAILABLE else "pytorch", "env")
    if not ONEDNN_AVAILABLE:
        return GemmChoice("pytorch", "unavailable")
    if _measurement is None:  # nothing can time a step yet (no population was ever imported)
        return GemmChoice("onednn", "default")
    key = cache_key(threads)
    cached = _read_cache().get(key) if env != "measure" else None
    if isinstance(cached, dict) and cached.get("gemm") in PATHS:
        return GemmChoice(cached["gemm"], "cache", cached.get("ms_per_step"))
    timings = measure(threads)
    choice = GemmChoice(min(timings, key=timings.get), "measured", timings)
    if not oversubscribed():  # measured on an overloaded machine: use it, but do not keep it
        _write_cache(key, {"gemm": choice.path, "ms_per_step": timings})
    return choice


def oversubscribed() -> bool:
    """More runnable work than cores over the last minute: timings then say more about the other
    work than about the paths (once, under such load, PyTorch's GEMM looked faster here while
    oneDNN is 1.5x faster on the quiet machine)."""
    load = load_average()
    return load is not None and load > cpu_count()


def cache_key(threads: int) -> str:
    return f"{cpu_model()}|threads={threads}|torch={torch.__version__}"


def cache_path() -> Path:
    root = os.environ.get("GROKKIT_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "grokkit"
    return Path(root) / CACHE_FILE


def _read_cache() -> dict:
    try:
        data = json.loads(read_regular_bytes(cache_path()))
    except (OSError, ValueError):  # NotAFileError is a ValueError too  # missing or damaged: measure again (and rewrite it)
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(key: str, entry: dict) -> None:
    """Best effort: a read-only home only means measuring again next time."""
    path = cache_path()
    data = {**_read_cache(), key: entry}
    try:
        atomic_write_text(path, json.dumps(data, indent=1))
    except OSError:
        pass


_measurement = None  # registered by grokkit.population, which can build and time a model


def register_measurement(fn) -> None:
    """``fn(threads) -> {path: ms per step}``: how ``measure`` times the paths. grokkit.population
    registers it (this module cannot import the population: the model imports this module)."""
    global _measurement
    _measurement = fn
    # Choices made before anything could measure were stand-ins: the next use makes the real one.
    for threads in [t for t, choice in _chosen.items() if choice.source == "default"]:
        del _chosen[threads]


def measure(threads: int) -> dict[str, float]:
    """Median ms of one training step on each path (see grokkit.population.time_gemm_paths)."""
    if _measurement is None:
        raise RuntimeError("no GEMM measurement registered: import grokkit.population first")
    return _measurement(threads)
