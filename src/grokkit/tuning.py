"""Machine tuning for training on the CPU: the allocator's thresholds and the GEMM of the fast path.

Nothing here changes what is computed beyond the summation order of a GEMM; both settings only
make the same steps faster on the machine at hand. ``tune_cpu`` applies them and is called
explicitly, by grokkit.population.Population before its first CPU step, with the function that
times a training step (the population's ``time_gemm_paths``; this module cannot build a model).

The GEMM: which float32 matrix product grokkit.kernels.fast_linear uses, oneDNN's or PyTorch's own.
On one machine oneDNN's linear (AVX-512) ran the model's projections 2.2x faster than PyTorch's
bmm (MKL's AVX2 kernels on AMD); on another (a Zen 4 EPYC) PyTorch's own was as fast or faster.
So neither is assumed: the first time a process needs the choice for a thread count, it times one
training step of the paper's model both ways (interleaved, median of a few) and keeps the faster.
The choice is cached on disk per CPU model, thread count and PyTorch version
(``$GROKKIT_CACHE_DIR`` or ``~/.cache/grokkit/gemm.json``), so later processes only read it.
``GROKKIT_ONEDNN=1`` or ``=0`` forces either path and skips the measurement;
``GROKKIT_ONEDNN=measure`` measures again and replaces the cached choice (a choice measured while
the machine was busy can be wrong). The fast path run without a population (``grokkit.api``)
takes the forced or cached choice, else oneDNN until a population measures.

The allocator: see ``tune_cpu_allocator``; ``GROKKIT_NO_MALLOC_TUNING=1`` leaves it alone.

Muon's Newton-Schulz precision: torch.optim.Muon iterates in bfloat16, which CPUs without native
bfloat16 products (AVX-512-BF16 or AMX) emulate 20-30x slower than float32 (benchmarks/RESULTS.md).
On the CPU the precision is chosen as the GEMM is: timed once both ways on the paper's hidden
matrices, cached under the same key, ``GROKKIT_NS_DTYPE=bfloat16|float32|measure`` forcing or
re-measuring it. Unlike the GEMM this changes the rounding, not only the summation order: float32
is the more precise of the two and agrees with torch's bfloat16 iteration to bfloat16's tolerance
(tested); the benchmark records which one its Muon runs used.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from grokkit import torch_private
from grokkit.devices import cpu_count, cpu_model, load_average
from grokkit.errors import ConfigError, warn
from grokkit.files import atomic_write_text, read_regular_bytes

PATHS = ("onednn", "pytorch")
CACHE_FILE = "gemm.json"

Measurement = Callable[[int], dict[str, float]]  # threads -> {path: median ms per training step}


def tune_cpu(measure: Measurement) -> None:
    """Tune this process for CPU training: the allocator once, and the GEMM path for the current
    thread count (from the environment or the cache, else timed now with ``measure``)."""
    tune_cpu_allocator()
    choose_gemm(measure)


# ---------------------------------------------------------------- the allocator

_ALLOCATOR_TUNED = False


def tune_cpu_allocator() -> bool:
    """Keep freed memory in the process instead of returning it to the OS after every step.

    glibc serves allocations above its mmap threshold (128 KiB, then adaptive) with fresh pages and
    trims the heap on free, so each training step page-faulted ~1,700 times (3 ms of a 20 ms
    step). Raising both thresholds once makes steps reuse warm memory. Process-wide and harmless
    (memory is reused, not leaked); set GROKKIT_NO_MALLOC_TUNING=1 to leave the allocator alone.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED or os.environ.get("GROKKIT_NO_MALLOC_TUNING"):
        return _ALLOCATOR_TUNED
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        ok = libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1
        ok = libc.mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 and ok
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        ok = False
    _ALLOCATOR_TUNED = ok
    return ok


# ---------------------------------------------------------------- the GEMM


@dataclass(frozen=True)
class GemmChoice:
    path: str  # "onednn" or "pytorch"
    source: str  # "env", "unavailable", "cache", "measured", "forced" or "default"
    ms_per_step: dict | None = None  # the measurement behind it: {path: ms}

    def as_dict(self) -> dict:
        return {"gemm": self.path, "gemm_source": self.source, "gemm_ms_per_step": self.ms_per_step}


_chosen: dict[int, GemmChoice] = {}  # per thread count, in this process
# kind -> the value a ``forced``/``forced_newton_schulz`` block imposes (the measurement itself,
# tests); None outside such a block
_FORCED: dict[str, str | None] = {"gemm": None, "newton_schulz": None}


def choose_gemm(measure: Measurement) -> GemmChoice:
    """Make the choice for this process's thread count now, timing with ``measure`` if neither
    the environment nor the cache decides. A stand-in choice (``use_onednn`` before any
    measurement could be made) is replaced."""
    if _FORCED["gemm"] is not None:  # inside the measurement: its populations must not measure
        return GemmChoice(_FORCED["gemm"], "forced")
    threads = torch.get_num_threads()
    choice = _chosen.get(threads)
    if choice is None or choice.source == "default":
        choice = _chosen[threads] = choose(threads, measure)
    return choice


def use_onednn() -> bool:
    """Whether the fast path's CPU float32 projections go to oneDNN now (asked per projection:
    after the first ask per thread count, one dictionary look-up)."""
    if torch.compiler.is_compiling():
        # A compiled step (``compile_step``) leaves its products to inductor, which plans them
        # with the rest of the graph; asking for the thread count here would break the graph at
        # every projection.
        return False
    if _FORCED["gemm"] is not None:
        return _FORCED["gemm"] == "onednn"
    threads = torch.get_num_threads()
    choice = _chosen.get(threads)
    if choice is None:
        choice = _chosen[threads] = choose(threads)
    return choice.path == "onednn"


def compile_step() -> bool:
    """Whether populations compile their training forward and backward with torch.compile
    (``GROKKIT_COMPILE=1``; off by default). Opt-in because the first compile in a fresh cache
    takes tens of seconds (PyTorch caches the result, a few seconds after that), and inductor's
    fused kernels round float32 differently from the eager path (equal to float tolerance, not to
    the bit). Gains by machine: benchmarks/RESULTS.md."""
    value = os.environ.get("GROKKIT_COMPILE", "0").strip()
    if value not in ("0", "1", ""):
        raise ConfigError(f"GROKKIT_COMPILE must be 1 or 0, got {value!r}")
    if value == "1" and not any(shutil.which(c) for c in ("g++", "clang++", "c++")):
        raise ConfigError("GROKKIT_COMPILE=1 needs a C++ compiler (g++ or clang++) on the PATH")
    return value == "1"


def current() -> GemmChoice:
    """The choice for this process's thread count (made now, without measuring, if it never was)."""
    if _FORCED["gemm"] is not None:
        return GemmChoice(_FORCED["gemm"], "forced")
    use_onednn()
    return _chosen[torch.get_num_threads()]


@contextlib.contextmanager
def _forcing(kind: str, value: str, allowed: tuple[str, ...]):
    if value not in allowed:
        raise ValueError(f"unknown {kind} choice {value!r}; choose one of {allowed}")
    previous, _FORCED[kind] = _FORCED[kind], value
    try:
        yield
    finally:
        _FORCED[kind] = previous


def forced(path: str):
    """Run the fast path on ``path`` inside the block (for measurements and tests)."""
    return _forcing("gemm", path, PATHS)


def choose(threads: int, measure: Measurement | None = None) -> GemmChoice:
    """The path for ``threads``: from the environment, else the cache, else timed with
    ``measure`` (and cached), else (nothing to time a step with) oneDNN as a stand-in."""
    env = os.environ.get("GROKKIT_ONEDNN")
    if env not in (None, "0", "1", "measure"):
        warn(f"GROKKIT_ONEDNN={env!r} is not 0, 1 or measure; ignored")
    if env in ("0", "1"):
        path = "onednn" if env == "1" and torch_private.HAS_ONEDNN_LINEAR else "pytorch"
        return GemmChoice(path, "env")
    if not torch_private.HAS_ONEDNN_LINEAR:
        return GemmChoice("pytorch", "unavailable")
    key = cache_key(threads)
    cached = _read_cache().get(key) if env != "measure" else None
    if isinstance(cached, dict) and cached.get("gemm") in PATHS:
        return GemmChoice(cached["gemm"], "cache", cached.get("ms_per_step"))
    if measure is None:  # nothing can time a step here (no population asked)
        return GemmChoice("onednn", "default")
    timings = measure(threads)
    choice = GemmChoice(min(timings, key=timings.get), "measured", timings)
    if not oversubscribed():  # measured on an overloaded machine: use it, but do not keep it
        _write_cache(key, {"gemm": choice.path, "ms_per_step": timings})
    return choice


# ---------------------------------------------------------------- Muon's Newton-Schulz precision

NS_DTYPES = ("bfloat16", "float32")
NsMeasurement = Callable[[], dict[str, float]]  # () -> {dtype name: median ms per iteration}
_ns_chosen: dict[int, str] = {}  # per thread count, in this process


def newton_schulz_dtype(device: torch.device, measure: NsMeasurement) -> torch.dtype:
    """The precision of Muon's Newton-Schulz iteration on ``device``: torch.optim.Muon's bfloat16
    on accelerators; on the CPU the faster of the two (environment, cache or ``measure``)."""
    if device.type != "cpu":
        return torch.bfloat16
    if _FORCED["newton_schulz"] is not None:
        return getattr(torch, _FORCED["newton_schulz"])
    threads = torch.get_num_threads()
    if threads not in _ns_chosen:
        _ns_chosen[threads] = _choose_ns(threads, measure)
    return getattr(torch, _ns_chosen[threads])


def _choose_ns(threads: int, measure: NsMeasurement) -> str:
    env = os.environ.get("GROKKIT_NS_DTYPE")
    if env in NS_DTYPES:
        return env
    if env not in (None, "measure"):
        warn(f"GROKKIT_NS_DTYPE={env!r} is not bfloat16, float32 or measure; ignored")
    key = cache_key(threads) + "|newton_schulz"
    cached = _read_cache().get(key) if env != "measure" else None
    if isinstance(cached, dict) and cached.get("dtype") in NS_DTYPES:
        return cached["dtype"]
    timings = measure()
    dtype = min(timings, key=timings.get)
    if not oversubscribed():
        _write_cache(key, {"dtype": dtype, "ms": timings})
    return dtype


def forced_newton_schulz(dtype: str):
    """Iterate Muon's Newton-Schulz in ``dtype`` inside the block (for tests)."""
    return _forcing("newton_schulz", dtype, NS_DTYPES)


def oversubscribed() -> bool:
    """More runnable work than cores over the last minute: timings then say more about the other
    work than about the paths (once, under such load, PyTorch's GEMM looked faster here while
    oneDNN is 1.5x faster on the quiet machine)."""
    load = load_average()
    return load is not None and load > cpu_count()


def cache_key(threads: int) -> str:
    return f"{cpu_model()}|threads={threads}|torch={torch.__version__}"


def cache_path() -> Path:
    root = os.environ.get("GROKKIT_CACHE_DIR")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "grokkit"
    return Path(root) / CACHE_FILE


def _read_cache() -> dict:
    try:
        data = json.loads(read_regular_bytes(cache_path()))
    except (OSError, ValueError):  # missing or damaged (NotAFileError is a ValueError too)
        return {}  # measure again (and rewrite it)
    return data if isinstance(data, dict) else {}


def _write_cache(key: str, entry: dict) -> None:
    """Best effort: a read-only home only means measuring again next time."""
    path = cache_path()
    data = {**_read_cache(), key: entry}
    try:
        atomic_write_text(path, json.dumps(data, indent=1))
    except OSError:
        pass
