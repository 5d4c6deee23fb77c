"""bfloat16 products with float32 accumulation: the run setting ``bf16``.

With ``bf16`` on, every float32 matrix product of a population's step and evaluation (forward
and backward) multiplies its two operands rounded to bfloat16 and accumulates in float32; inputs,
outputs, weights, the optimizer and every element-wise operation stay float32. This is oneDNN's
"fpmath mode bf16", which PyTorch turns on for float32 products with
``torch.backends.mkldnn.matmul.fp32_precision = "bf16"`` on CPUs where its oneDNN takes
bfloat16 (AVX-512 or AVX-NE-CONVERT; fast on those with AVX-512-BF16 or AMX, such as Intel Xeons
since Cooper Lake and AMD Zen 4 and 5).

Elsewhere, where oneDNN ignores the setting (``bf16_in_hardware`` checks at first use), and on
GPUs, the products would silently stay float32, so grokkit emulates the mode instead: a dispatch
mode that rounds the operands of each product to bfloat16 (round to nearest even, as oneDNN
converts) and multiplies the rounded values in float32. A product of two bfloat16 numbers is
exact in float32 (8 + 8 significant bits), so the emulation computes the same sums as the
hardware, in another order: a run's trajectory is that of the hardware path up to float32
summation order, which is what "does it still grok?" needs. It is slower than plain float32,
never faster.

Which products: those oneDNN takes in fpmath mode (``grokkit.torch_private.BF16_PRODUCTS``).
PyTorch's ``mm``, ``addmm``, ``bmm`` and ``baddbmm`` whose batch x rows x inner x columns exceeds
16 x 16 x 16 (PyTorch's ``mkldnn_gemm_min_size``: smaller ones stay float32 there too), and
every oneDNN linear (the fast path's GEMM on CPUs where it is measured faster). The bias or
accumulator of ``addmm``/``baddbmm`` is added in float32, as oneDNN's sum post-op does.
"""

from __future__ import annotations

import contextlib
import functools

import torch

from grokkit.errors import ConfigError, warn
from grokkit.torch_private import (
    BF16_PRODUCTS,
    HAS_DISPATCH_MODE,
    TorchDispatchMode,
    onednn_takes_bf16,
)

# PyTorch's threshold below which a product is not worth oneDNN (aten/src/ATen/native/mkldnn/
# Matmul.cpp, ``checksize``): such products stay float32 in the hardware path too.
_MIN_SIZE = 16 * 16 * 16


def _size(a: torch.Tensor, b: torch.Tensor) -> int:
    """batch x rows x inner x columns of a product of a and b (2-D or 3-D)."""
    batch = a.shape[0] if a.dim() == 3 else 1
    return batch * a.shape[-2] * a.shape[-1] * b.shape[-1]


def round_to_bf16(t: torch.Tensor) -> torch.Tensor:
    """t's float32 values rounded to the nearest bfloat16 (ties to even), still float32."""
    return t.to(torch.bfloat16).to(torch.float32)


class EmulatedBF16Products(TorchDispatchMode or object):
    """Rounds the operands of every float32 product oneDNN would run in fpmath mode bf16. Being a
    dispatch mode, it sits below autograd and so also sees the backward pass's products."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        product = BF16_PRODUCTS.get(func)
        if product is not None:
            i, j, any_size = product
            a, b = args[i], args[j]
            if (
                a.dtype == torch.float32
                and b.dtype == torch.float32
                and (any_size or _size(a, b) > _MIN_SIZE)
            ):
                args = list(args)
                args[i], args[j] = round_to_bf16(a), round_to_bf16(b)
        return func(*args, **kwargs)


@contextlib.contextmanager
def _onednn_bf16_mode():
    """PyTorch's process-wide oneDNN setting at "bf16" within the block, restored after it."""
    matmul = torch.backends.mkldnn.matmul
    before = matmul.fp32_precision
    matmul.fp32_precision = "bf16"
    try:
        yield
    finally:
        matmul.fp32_precision = before


@functools.cache
def bf16_in_hardware() -> bool:
    """Whether float32 products on this CPU really take bfloat16 operands under PyTorch's oneDNN
    setting. PyTorch accepts the setting on any CPU with AVX-512 or AVX-NE-CONVERT
    (``_is_mkldnn_bf16_supported``), but oneDNN treats it as a permission, not an order, so it is
    tested on a product whose answer tells: 1 + 2^-12 is not a bfloat16 number and rounds to 1."""
    if not onednn_takes_bf16():
        return False
    a, b = torch.full((32, 32), 1 + 2.0**-12), torch.ones(32, 32)
    with _onednn_bf16_mode():
        product = torch.mm(a, b)
    return bool(torch.all(product == 32.0))


def bf16_path(device: torch.device) -> str:
    """How ``bf16`` runs on this device: "hardware" (oneDNN's fpmath mode) or "emulated"."""
    return "hardware" if device.type == "cpu" and bf16_in_hardware() else "emulated"


def choose_bf16_path(enabled: bool, device: torch.device) -> str | None:
    """The path a population with the run setting ``bf16`` takes on ``device``, decided once:
    None (off), "hardware" or "emulated" (said in a warning). ConfigError where neither exists."""
    if not enabled:
        return None
    path = bf16_path(device)
    if path == "emulated":
        if not HAS_DISPATCH_MODE:
            raise ConfigError(
                "bf16 needs bfloat16 products in hardware or PyTorch's dispatch modes"
            )
        warn(
            f"bf16: bfloat16 products emulated on this {device.type} (no oneDNN bfloat16 "
            "instructions): the same numbers up to summation order, slower than float32"
        )
    return path


def bf16_products(path: str | None):
    """A context in which float32 products use bfloat16 operands and float32 accumulation by
    ``path`` (``choose_bf16_path``'s answer; None: nothing changes). It leaves nothing behind,
    so other populations and analyses in the same process stay float32."""
    if path is None:
        return contextlib.nullcontext()
    return _onednn_bf16_mode() if path == "hardware" else EmulatedBF16Products()
