"""Which device a run trains on: ``auto`` picks the accelerator PyTorch sees, else the CPU."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import torch

from grokkit.errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def resolve_device(name: str) -> str:
    """``auto`` -> cuda, mps or cpu (the first PyTorch sees); an asked-for device must exist."""
    if name not in DEVICE_CHOICES:
        raise InputError(f"unknown device {name!r}; choose one of: {', '.join(DEVICE_CHOICES)}")
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
    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    if device == "mps":
        return "Apple GPU (MPS)"
    return f"{cpu_model()}, {os.cpu_count()} cores"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def synchronize(device: torch.device | str) -> None:
    """Wait until the work queued on ``device`` is done (a CUDA GPU runs asynchronously)."""
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
