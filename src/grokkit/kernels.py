"""CPU kernels of the fast path: the same mathematics as grokkit.model's building blocks, faster.

* ``onednn_linear``: the member-batched projection (``grokkit.model._linear``) on oneDNN's GEMM
  (``OneDNNLinear``), for float32 on the CPU; other dtypes and devices take PyTorch's own.
* ``SmallSoftmax``: a softmax over the 2-4 positions a query of this task sees.

Why oneDNN: on x86 CPUs PyTorch's float32 matmuls go to MKL, which on some of this project's
machines (AMD EPYC) runs its AVX2 kernels; oneDNN's linear uses AVX-512 there and was much faster
for the shapes of this model, while on another EPYC PyTorch's own was as fast. Same
mathematics either way (an fp32 GEMM, only the summation order differs), so grokkit.backend_choice
measures which is faster and the chosen ``grokkit.backend.Backend`` hands the fast path this
function or PyTorch's. Nothing here chooses or measures. Timings: benchmarks/RESULTS.md.

The private PyTorch calls these make go through grokkit.torch_private.
"""

from __future__ import annotations

import torch
from torch import Tensor

from grokkit import torch_private
from grokkit.model import _linear


def _onednn_eligible(h: Tensor, W: Tensor) -> bool:
    return (
        torch_private.HAS_ONEDNN_LINEAR
        and h.device.type == "cpu"
        and h.dtype == torch.float32
        and W.dtype == torch.float32
        and h.shape[1] > 0
    )


def _stack_members(parts: list[Tensor]) -> Tensor:
    """Per-member results [R, c] -> [E, R, c] (no copy for a single member)."""
    return parts[0].unsqueeze(0) if len(parts) == 1 else torch.stack(parts)


class OneDNNLinear(torch.autograd.Function):
    """h: [E, R, i] @ W: [E, i, o] + b: [E, o] (then ReLU if ``relu``) -> [E, R, o], per member,
    with a hand-written backward made of the same oneDNN GEMMs."""

    @staticmethod
    def forward(ctx, h: Tensor, W: Tensor, b: Tensor | None, relu: bool) -> Tensor:
        E = h.shape[0]
        out = _stack_members(
            [
                torch_private.onednn_linear(h[e], W[e].t(), None if b is None else b[e], relu)
                for e in range(E)
            ]
        )  # [E, R, o]
        ctx.relu, ctx.has_bias = relu, b is not None
        ctx.save_for_backward(h, W, out if relu else None)
        return out

    @staticmethod
    def backward(ctx, g: Tensor):
        h, W, out = ctx.saved_tensors
        if ctx.relu:
            g = torch_private.relu_backward(g, out)
        g = g.contiguous()  # [E, R, o]
        E = h.shape[0]
        dh = dW = db = None
        if ctx.needs_input_grad[0]:
            dh = _stack_members([torch_private.onednn_linear(g[e], W[e], None) for e in range(E)])
        if ctx.needs_input_grad[1]:
            # oneDNN makes a contiguous copy of its (transposed) first operand and reads the second
            # as a transposed view for free: put the narrower of h [R, i] and g [R, o] first.
            if h.shape[2] <= g.shape[2]:  # dW = h^T g
                dW = _stack_members(
                    [torch_private.onednn_linear(h[e].t(), g[e].t(), None) for e in range(E)]
                )
            else:  # dW^T = g^T h, returned as a transposed view
                dW = _stack_members(
                    [torch_private.onednn_linear(g[e].t(), h[e].t(), None) for e in range(E)]
                ).transpose(1, 2)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = g.sum(1)  # [E, o]
        return dh, dW, db, None


def onednn_linear(h: Tensor, W: Tensor, b: Tensor | None, relu: bool = False) -> Tensor:
    """``grokkit.model._linear`` (optionally followed by ReLU): oneDNN where it applies."""
    if _onednn_eligible(h, W):
        return OneDNNLinear.apply(h, W, b, relu)
    return _linear(h, W, b, relu)


class SmallSoftmax(torch.autograd.Function):
    """Softmax over a short last axis (the 2-4 positions a query sees), as exp(x - max) / sum.

    PyTorch's softmax kernel walks the tensor row by row with vectors wider than a 4-long row;
    these four element-wise passes are faster on the attention's scores (benchmarks/RESULTS.md).
    Every pass treats each row alone (exp gives the same bits
    for an element wherever it lies in the tensor: tested), so a member's result does not depend
    on E. The backward is PyTorch's own: dx = w * (g - sum(w * g))."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        e = (x - x.amax(dim=-1, keepdim=True)).exp_()
        w = e.div_(e.sum(dim=-1, keepdim=True))
        ctx.save_for_backward(w)
        return w

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:
        (w,) = ctx.saved_tensors
        return torch_private.softmax_backward(g, w)
