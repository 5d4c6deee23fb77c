"""How a population computes: one frozen value, chosen once and passed in.

A ``Backend`` names every speed decision a training step depends on: which float32 GEMM runs the
model's projections, whether the training forward and backward go through ``torch.compile``, the
precision of Muon's Newton-Schulz iteration, the bfloat16-products path of the run setting
``bf16``, and TF32 on CUDA. Nothing that computes (grokkit.model, grokkit.fast_path,
grokkit.kernels, grokkit.optim, grokkit.population) times, caches or reads the environment: it
receives a Backend. grokkit.backend_choice is the one place that chooses one (measured on the
machine, cached); ``Backend()`` is plain eager PyTorch, the yardstick every path is tested
against.

Which of these change the numbers: the GEMM and compile change only the summation order (equal to
float tolerance; compile fuses element-wise work too); Newton-Schulz in bfloat16 and the bf16
products round differently on purpose, which is why bf16 stays a run setting a user opts into.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from grokkit import kernels
from grokkit.devices import BACKEND_REQUESTS as BACKEND_REQUESTS
from grokkit.model import _linear
from grokkit.precision import bf16_products, choose_bf16_path

GEMMS = ("onednn", "pytorch")
NEWTON_SCHULZ_DTYPES = ("bfloat16", "float32")


@dataclass(frozen=True)
class Backend:
    gemm: str = "pytorch"  # GEMMS: who multiplies float32 projections on the CPU
    compiled: bool = False  # the training forward and backward through torch.compile
    newton_schulz: str = "float32"  # NEWTON_SCHULZ_DTYPES: Muon's orthogonalisation precision
    bf16: str | None = None  # None, "hardware" or "emulated" (grokkit.precision)
    tf32: bool = False  # CUDA float32 products in TF32, within the step only
    threads: int | None = None  # the torch thread count it was chosen for (None: any)
    why: str = field(default="plain eager PyTorch", compare=False)  # said by --plan and bench

    def __post_init__(self):
        if self.gemm not in GEMMS:
            raise ValueError(f"unknown GEMM {self.gemm!r}; choose one of {GEMMS}")
        if self.newton_schulz not in NEWTON_SCHULZ_DTYPES:
            raise ValueError(f"unknown Newton-Schulz precision {self.newton_schulz!r}")
        if self.compiled and self.bf16 == "emulated":
            # The emulation is a dispatch mode, which torch.compile does not trace.
            raise ValueError("the emulated bf16 path runs eagerly only")

    @classmethod
    def plain(cls, bf16: bool, tf32: bool, device: torch.device) -> Backend:
        """Plain eager PyTorch with the run settings bf16 and TF32 honoured: what a population
        built without a chosen backend computes with (tests, analyses, notebooks)."""
        ns = "float32" if device.type == "cpu" else "bfloat16"  # torch.optim.Muon's on devices
        return cls(newton_schulz=ns, bf16=choose_bf16_path(bf16, device), tf32=tf32)

    @property
    def linear(self) -> Callable:
        """The member-batched projection ``h @ W + b`` (then ReLU) the fast path calls. A compiled
        step leaves its products to inductor, which plans them with the rest of the graph."""
        if self.gemm == "onednn" and not self.compiled:
            return kernels.onednn_linear
        return _linear

    @property
    def ns_dtype(self) -> torch.dtype:
        return getattr(torch, self.newton_schulz)

    @contextlib.contextmanager
    def around_step(self, device: torch.device):
        """The process-wide PyTorch settings this backend needs, set for one step or evaluation
        and restored after it, so that other populations and analyses in the process see none."""
        with bf16_products(self.bf16), _tf32(self.tf32 and device.type == "cuda"):
            yield

    def as_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def _tf32(enabled: bool):
    if not enabled:
        yield
        return
    matmul = torch.backends.cuda.matmul
    before, matmul.allow_tf32 = matmul.allow_tf32, True
    try:
        yield
    finally:
        matmul.allow_tf32 = before
