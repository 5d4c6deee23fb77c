"""Choosing a grokkit.backend.Backend for this machine: the one place that measures and caches.

``choose_backend`` is called once per population (by ``grokkit.train.train_runs``, or once per
group by a sweep's parent process, whose workers then only receive the value) and nothing below
it measures. Each decision is measured on the machine at hand, not assumed, because machines
disagree (benchmarks/RESULTS.md):

* the GEMM: oneDNN's linear or PyTorch's own, one training step of the paper's model timed both
  ways, interleaved, median of a few;
* compile: a training step eager and through torch.compile (forward and backward in one graph,
  one graph for every population size from two up), with the compile's own cost; ``auto``
  compiles when the measured saving over the run's budget repays that cost;
* Muon's Newton-Schulz precision: float32 or bfloat16, timed on the paper's hidden matrices
  (CPUs without native bfloat16 products emulate it tens of times slower);
* bf16 (a run setting, so never chosen here, only its path): oneDNN's hardware mode or emulation.

Results are cached per CPU model, thread count and PyTorch version in
``$GROKKIT_CACHE_DIR/gemm.json`` (default ``~/.cache/grokkit``); a measurement taken while the
machine was oversubscribed is used but not kept. ``GROKKIT_ONEDNN=0|1|measure`` and
``GROKKIT_NS_DTYPE=float32|bfloat16|measure`` force or re-measure a decision; ``--backend
eager|compiled|auto`` (``train``, ``sweep``, ``bench``) forces compile on or off.

The process's allocator is tuned here as well (``tune_cpu_allocator``), once.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from grokkit import torch_private
from grokkit.backend import BACKEND_REQUESTS, GEMMS, NEWTON_SCHULZ_DTYPES, Backend
from grokkit.config import RunConfig
from grokkit.devices import cpu_count, cpu_model, load_average
from grokkit.errors import ConfigError, warn
from grokkit.files import atomic_write_text, read_regular_bytes
from grokkit.precision import choose_bf16_path

CACHE_FILE = "gemm.json"
ROUNDS, STEPS_PER_ROUND, WARMUP = 4, 3, 2

Timing = Callable[[], dict[str, float]]  # () -> {option: median ms}


def choose_backend(
    request: str | Backend,
    device: str | torch.device,
    configs: Sequence[RunConfig],
    threads: int | None = None,
    measure_compile: bool = True,
) -> Backend:
    """The Backend for a population of ``configs`` on ``device`` at ``threads`` torch threads
    (default: this process's). ``request``: "auto" (measured), "eager", "compiled", or a Backend
    already chosen (returned as it is). ``measure_compile=False`` (a plan): where compile was
    never measured on this machine, say so instead of paying for it."""
    if isinstance(request, Backend):
        return request
    check_request(request)
    device = torch.device(device)
    first = configs[0]
    threads = threads or torch.get_num_threads()
    bf16 = choose_bf16_path(first.bf16, device)
    if request == "compiled" and bf16 == "emulated":
        raise ConfigError(
            f"--backend compiled cannot run --bf16 here: this {device.type} emulates bfloat16 "
            "products, which torch.compile does not trace; use --backend eager or auto"
        )
    if device.type != "cpu":  # torch.optim.Muon's precision; compile only on request
        compiled = request == "compiled" and _check_compiler()
        why = f"{'compiled' if compiled else 'eager'}: on {device.type}, compile only when asked"
        return Backend("pytorch", compiled, "bfloat16", bf16, first.tf32, threads, why)
    tune_cpu_allocator()
    gemm, gemm_why = _gemm(threads)
    ns = _newton_schulz(threads) if first.optimizer.muon else "float32"
    if request == "auto" and bf16 == "emulated":
        compiled, why = False, "eager: the emulated bf16 path is not traced by torch.compile"
    elif request == "auto":
        compiled, why = _compile_pays(threads, max(c.steps for c in configs), measure_compile)
    else:
        compiled, why = request == "compiled" and _check_compiler(), f"{request}: as asked"
    return Backend(gemm, compiled, ns, bf16, False, threads, f"{why}; GEMM {gemm_why}")


def check_request(request: str) -> None:
    """ConfigError for a request no machine here can honour, before anything is written."""
    if request not in BACKEND_REQUESTS:
        raise ConfigError(f"unknown backend {request!r}; choose one of {BACKEND_REQUESTS}")
    if request == "compiled":
        _check_compiler()


# ---------------------------------------------------------------- the decisions


def _gemm(threads: int) -> tuple[str, str]:
    env = os.environ.get("GROKKIT_ONEDNN")
    if env not in (None, "0", "1", "measure"):
        warn(f"GROKKIT_ONEDNN={env!r} is not 0, 1 or measure; ignored")
    if not torch_private.HAS_ONEDNN_LINEAR:
        return "pytorch", "pytorch (oneDNN's linear unavailable)"
    if env in ("0", "1"):
        return ("onednn" if env == "1" else "pytorch"), f"forced by GROKKIT_ONEDNN={env}"
    timings = _measured(
        cache_key(threads), lambda: time_gemm_paths(threads), env == "measure", GEMMS
    )
    path = min(GEMMS, key=lambda g: timings[g])
    return path, f"{path} ({_ms(timings)})"


def _newton_schulz(threads: int) -> str:
    env = os.environ.get("GROKKIT_NS_DTYPE")
    if env in NEWTON_SCHULZ_DTYPES:
        return env
    if env not in (None, "measure"):
        warn(f"GROKKIT_NS_DTYPE={env!r} is not bfloat16, float32 or measure; ignored")
    key = f"{cache_key(threads)}|newton_schulz"
    timings = _measured(key, time_newton_schulz, env == "measure", NEWTON_SCHULZ_DTYPES)
    return min(NEWTON_SCHULZ_DTYPES, key=lambda d: timings[d])


# A run shorter than this many seconds of eager steps neither compiles nor measures compile: a
# cold compile costs tens of seconds, which only a long run can win back.
COMPILE_WORTH_MEASURING_S = 90.0


def _compile_pays(threads: int, steps: int, measure: bool = True) -> tuple[bool, str]:
    """Compile when the saving measured on the paper's model, over ``steps`` updates, exceeds the
    compile's measured cost (cold: the first compile of a shape on this machine)."""
    if not _has_compiler():
        return False, "eager: torch.compile needs a C++ compiler"
    key = f"{cache_key(threads)}|compile"
    cached = _lookup(key, COMPILE_KEYS)
    if cached is None:  # an E = 1 step's time, from the GEMM measurement, decides whether to look
        gemm_ms = _lookup(cache_key(threads), GEMMS) or {"pytorch": 20.0}
        if steps * min(gemm_ms[g] for g in GEMMS if g in gemm_ms) / 1e3 < COMPILE_WORTH_MEASURING_S:
            return False, f"eager: {steps} steps are too short to repay a compile"
        if not measure:
            return False, (
                "eager until measured: compile is not yet measured on this machine; the run "
                "measures it first (about a minute) and compiles if it pays"
            )
    if cached is None:  # tens of seconds, once per machine: say why nothing seems to happen
        warn(
            "measuring once whether torch.compile pays on this machine (a step eager against "
            "compiled, and the compile itself: about a minute); the result is cached"
        )
    timings = cached or _measured(key, lambda: time_compile(threads), False, COMPILE_KEYS)
    saving_s = steps * (timings["eager"] - timings["compiled"]) / 1e3
    verdict = saving_s > timings["compile_s"]
    head = "compiled" if verdict else "eager"
    return verdict, (
        f"{head}: compiled {timings['compiled']:.1f} vs eager {timings['eager']:.1f} ms per step "
        f"saves {saving_s:.0f} s over {steps} steps against a {timings['compile_s']:.0f} s compile"
    )


def _check_compiler() -> bool:
    if not _has_compiler():
        raise ConfigError("--backend compiled needs a C++ compiler (g++ or clang++) on the PATH")
    return True


def _has_compiler() -> bool:
    return any(shutil.which(c) for c in ("g++", "clang++", "c++"))


def _ms(timings: dict) -> str:
    return ", ".join(f"{k} {v:.1f} ms" for k, v in timings.items() if k in GEMMS)


COMPILE_KEYS = ("eager", "compiled", "compile_s")


def _measured(key: str, measure: Timing, again: bool, expect: Sequence[str]) -> dict:
    """The cached measurement under ``key`` (with a number for each of ``expect``), else one taken
    now (kept unless the machine is oversubscribed; then kept for this process only)."""
    cached = None if again else _lookup(key, expect)
    if cached is not None:
        return cached
    timings = measure()
    if oversubscribed():
        _this_process()[key] = timings
    else:
        _write_cache(key, timings)
    return timings


def _lookup(key: str, expect: Sequence[str]) -> dict | None:
    """A measurement on disk or from this process with a number for each of ``expect``."""
    for found in (_read_cache().get(key), _this_process().get(key)):
        if isinstance(found, dict) and all(isinstance(found.get(k), (int, float)) for k in expect):
            return found
    return None


@functools.cache
def _this_process() -> dict:
    """Measurements not worth keeping on disk (taken under load), kept for this process."""
    return {}


# ---------------------------------------------------------------- the measurements


def _interleaved(options: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Median ms of each option's call, the options interleaved round by round so that a busy
    machine slows them alike; the first round warms up."""
    times: dict[str, list[float]] = {name: [] for name in options}
    for round_ in range(ROUNDS + 1):
        for name, call in options.items():
            for _ in range(WARMUP if round_ == 0 else STEPS_PER_ROUND):
                start = time.perf_counter()
                call()
                if round_:
                    times[name].append(time.perf_counter() - start)
    return {name: round(1000 * statistics.median(t), 3) for name, t in times.items()}


def _paper_population(backend: Backend):
    from grokkit.population import Population  # the population imports nothing from here

    return Population([RunConfig()], "cpu", backend)


def _at_threads(threads: int, measure: Timing) -> dict:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode(False), torch.enable_grad():  # training steps, whoever asks
            return measure()
    finally:
        torch.set_num_threads(previous)


def time_gemm_paths(threads: int) -> dict[str, float]:
    """Median ms of a training step of the paper's model (E = 1) on each GEMM."""

    def measure():
        pops = {g: _paper_population(Backend(gemm=g)) for g in GEMMS}
        return _interleaved({g: pops[g].step for g in GEMMS})

    return _at_threads(threads, measure)


def time_compile(threads: int) -> dict[str, float]:
    """Median ms of a training step of the paper's model (E = 2, so the compiled graph is the one
    every population size shares) eager and compiled, and the seconds the compile took."""

    def measure():
        gemm = _gemm(threads)[0]
        eager = _paper_pair(Backend(gemm=gemm))
        compiled = _paper_pair(Backend(gemm=gemm, compiled=True))
        start = time.perf_counter()
        compiled.step()
        compile_s = time.perf_counter() - start
        timings = _interleaved({"eager": eager.step, "compiled": compiled.step})
        return {**timings, "compile_s": round(compile_s, 1)}

    return _at_threads(threads, measure)


def _paper_pair(backend: Backend):
    from grokkit.population import Population

    return Population([RunConfig(seed=0), RunConfig(seed=1)], "cpu", backend)


def time_newton_schulz() -> dict[str, float]:
    """Median ms of one Newton-Schulz call per precision on a stack of 8 of the paper's 128 x 128
    hidden matrices (both blocks' attention projections)."""
    from grokkit.optim import newton_schulz

    stack = torch.randn(8, 128, 128, generator=torch.Generator().manual_seed(0))
    return _interleaved(
        {
            d: functools.partial(newton_schulz, stack, getattr(torch, d))
            for d in NEWTON_SCHULZ_DTYPES
        }
    )


# ---------------------------------------------------------------- the process and the cache


@functools.cache
def tune_cpu_allocator() -> bool:
    """Keep freed memory in the process instead of returning it to the OS after every step.

    glibc serves allocations above its mmap threshold (128 KiB, then adaptive) with fresh pages and
    trims the heap on free, so each training step page-faulted on memory it had just released.
    Raising both thresholds once makes steps reuse warm memory. Process-wide and harmless
    (memory is reused, not leaked); GROKKIT_NO_MALLOC_TUNING=1 leaves the allocator alone."""
    if os.environ.get("GROKKIT_NO_MALLOC_TUNING"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        ok = libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1
        return libc.mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 and ok
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        return False


def oversubscribed() -> bool:
    """More runnable work than cores over the last minute: timings then say more about the other
    work than about the options measured."""
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
    try:
        atomic_write_text(cache_path(), json.dumps({**_read_cache(), key: entry}, indent=1))
    except OSError:
        pass
