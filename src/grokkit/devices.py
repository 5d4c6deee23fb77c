"""Which device a run trains on: ``auto`` picks the accelerator PyTorch sees, else the CPU."""

from __future__ import annotations

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
