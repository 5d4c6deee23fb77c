"""Which device a run trains on: ``auto`` picks the accelerator PyTorch sees, else the CPU."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from grokkit.errors import InputError, unknown

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
# How steps are computed (grokkit.backend_choice): measured, or forced eager or compiled.
BACKEND_REQUESTS = ("auto", "eager", "compiled")


def _mps_available() -> bool:
    import torch  # in each function: the command line's flags and listings start without it

    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def resolve_device(name: str) -> str:
    """``auto`` -> cuda, mps or cpu (the first PyTorch sees); an asked-for device must exist."""
    import torch  # in each function: the command line's flags and listings start without it

    if name not in DEVICE_CHOICES:
        raise InputError(unknown("device", name, DEVICE_CHOICES))
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but PyTorch sees no CUDA device")
    if name == "mps" and not _mps_available():
        raise InputError("--device mps asked for, but PyTorch sees no MPS device")
    return name


def device_name(device: str) -> str:
    """The hardware behind ``device``, for reports: the GPU's name, or the CPU model and its cores
    (what every measured time in grokkit is quoted with)."""
    import torch  # in each function: the command line's flags and listings start without it

    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    if device == "mps":
        return "Apple GPU (MPS)"
    return f"{cpu_model()}, {cpu_count()} cores"


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask, which containers and ``taskset``
    narrow), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


THREADS_PER_CORE_LIMIT = 4  # --threads above this many per core: refused (see max_threads)


def max_threads() -> int:
    """The most torch threads grokkit starts: 4 per core this process may run on. More only
    wait for each other (1,000 threads made 5 steps take 116 s; 100,000 crashed the process)."""
    return THREADS_PER_CORE_LIMIT * cpu_count()


def other_runnable() -> int | None:
    """Processes other than this one that want a core right now: Linux's count of runnable
    processes (the lowest of a few samples 20 ms apart, so a passing blip does not count), less
    this one; elsewhere the 1-minute load average, rounded. None where the OS does not say."""
    try:
        samples = []
        for _ in range(3):
            with open("/proc/stat") as f:
                line = next(line for line in f if line.startswith("procs_running"))
            samples.append(int(line.split()[1]))
            time.sleep(0.02)
        return max(0, min(samples) - 1)
    except (OSError, StopIteration, ValueError):
        load = load_average()
        return None if load is None else round(load)


def default_threads() -> tuple[int, str | None]:
    """Torch threads for work starting now: the cores this process may use that no other
    process is busy on (at least one), and a line to show when that is fewer than the cores.
    On a shared machine, a thread per core fights the other work for every core and a tiny
    model's step gets many times slower than with the free cores alone."""
    cores = cpu_count()
    busy = other_runnable()
    if busy is None or busy == 0:
        return cores, None
    free = max(1, cores - busy)
    if free >= cores:
        return cores, None
    return free, (
        f"{busy} other process(es) busy on this machine's {cores} cores: training with {free} "
        f"thread(s); --threads N (or OMP_NUM_THREADS) chooses"
    )


def load_average() -> float | None:
    """The 1-minute load average, or None where the OS does not say: read with every timing that
    other work on the machine can distort."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def cpu_model() -> str:
    """The CPU's model name and what tells processors of that name apart: on Linux, e.g.
    "AMD EPYC (family 26 model 2 stepping 1, Zen 5, AVX-512)"; elsewhere what ``platform`` knows.

    Cloud machines often report only "AMD EPYC", which covers a Zen 4 and a Zen 5 whose speeds
    differ by up to 1.6x for the same code; every timing and the GEMM cache are keyed by this."""
    try:
        with open("/proc/cpuinfo") as f:
            described = describe_cpuinfo(f.read())
    except OSError:
        described = None
    return described or platform.processor() or platform.machine() or "unknown CPU"


def _amd_core(family: int, flags: set[str]) -> str | None:
    """The Zen generation of an AMD family (25 holds Zen 3 and Zen 4: only Zen 4 has AVX-512)."""
    if family == 25:
        return "Zen 4" if "avx512f" in flags else "Zen 3"
    return {23: "Zen/Zen 2", 26: "Zen 5"}.get(family)


def describe_cpuinfo(text: str) -> str | None:
    """``cpu_model``'s description from the text of /proc/cpuinfo (its first processor), or None
    when the text names no model."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block is enough
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name")
    if not name:
        return None
    details = []
    if all(k in fields for k in ("cpu family", "model", "stepping")):
        details.append(
            f"family {fields['cpu family']} model {fields['model']} stepping {fields['stepping']}"
        )
    flags = set(fields.get("flags", "").split())
    if fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family", "").isdigit():
        core = _amd_core(int(fields["cpu family"]), flags)
        if core:
            details.append(core)
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else None
    if isa:
        details.append(isa)
    return f"{name} ({', '.join(details)})" if details else name


def synchronize(device: torch.device | str) -> None:
    """Wait until the work queued on ``device`` is done (a CUDA GPU runs asynchronously)."""
    import torch  # in each function: the command line's flags and listings start without it

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def wall_seconds(fn: Callable[[], object], device: torch.device | str) -> float:
    """Wall seconds of ``fn()`` including the device work it queues: what every timing in grokkit
    (benchmarks, the GEMM choice, projections) measures."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start
