"""Every private PyTorch API grokkit calls, each with a public fallback.

PyTorch renames, re-signs or drops its underscored functions between releases without notice. Each
one used here is tried once, when this module is imported: a call on a few fixed numbers whose
result is compared with the public computation. If the call fails or disagrees, the ``HAS_*`` flag
is False and the public way is taken, so an upgrade of PyTorch can cost speed, never correctness,
and no other grokkit module names a private API.

  private call                  used by               public fallback
  torch._fused_adamw_           BatchedAdamW.step     its tensor expressions (grokkit.optim)
  torch._softmax_backward_data  kernels.SmallSoftmax  w * (g - sum(w * g)) (``softmax_backward``)
  aten.threshold_backward       kernels.OneDNNLinear  g where out > 0 (``relu_backward``)
  mkldnn._linear_pointwise      kernels.OneDNNLinear  PyTorch's own GEMM (baddbmm): the fast path's
                                                      ``fast_linear`` never picks oneDNN
  mkldnn._is_mkldnn_bf16_       precision.            False: bfloat16 products are emulated
    supported                     bf16_in_hardware
  utils._python_dispatch.       precision.            none: the run setting bf16 is refused
    TorchDispatchMode, aten       EmulatedBF16Products  (ConfigError) where it would be emulated
    product overloads

tests/test_torch_private.py forces each fallback and compares it with the private call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _works(probe) -> bool:
    """Whether ``probe()`` runs and returns True; any exception means the API changed."""
    try:
        return bool(probe())
    except Exception:  # a renamed op, a new signature, a missing kernel: all mean "do not use"
        return False


# ---------------------------------------------------------------- AdamW in one kernel


def fused_adamw_(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    lr: float,
    beta1: float,
    beta2: float,
    weight_decay: float,
    eps: float,
) -> None:
    """What ``torch.optim.AdamW(fused=True)`` runs, in place on each list's tensors: one pass over
    the weights instead of about ten. Only when ``HAS_FUSED_ADAMW``; BatchedAdamW otherwise uses
    its tensor expressions (public, and equal to torch.optim.AdamW: tested)."""
    torch._fused_adamw_(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        [],  # max_exp_avg_sqs: amsgrad only
        steps,
        lr=lr,
        beta1=beta1,
        beta2=beta2,
        weight_decay=weight_decay,
        eps=eps,
        amsgrad=False,
        maximize=False,
    )


def _fused_adamw_agrees() -> bool:
    w, g = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0.1, -0.2, 0.3])
    fused = w.clone()
    moments = [torch.zeros(3)], [torch.zeros(3)]
    fused_adamw_([fused], [g], *moments, [torch.tensor(1.0)], 0.1, 0.9, 0.999, 0.01, 1e-8)
    # torch.optim.AdamW's first step: decay, then lr m_hat / (sqrt(v_hat) + eps), where the
    # bias-corrected moments of one step are m_hat = g and v_hat = g^2.
    public = w * (1 - 0.1 * 0.01) - 0.1 * g / ((g * g).sqrt() + 1e-8)
    return torch.allclose(fused, public, rtol=1e-5, atol=1e-6)


# Probed on the CPU: a PyTorch with the kernel for CUDA only (before 2.4) uses the fallback on both.
HAS_FUSED_ADAMW = hasattr(torch, "_fused_adamw_") and _works(_fused_adamw_agrees)


# ---------------------------------------------------------------- softmax gradient


def softmax_backward(g: Tensor, w: Tensor) -> Tensor:
    """Gradient of ``w = softmax(x)`` along the last axis, given the output's gradient ``g``:
    w * (g - sum(w * g)). PyTorch's own kernel (the backward of ``softmax``) when it is there."""
    if HAS_SOFTMAX_BACKWARD_DATA:
        return torch._softmax_backward_data(g, w, -1, w.dtype)
    return w * (g - (w * g).sum(dim=-1, keepdim=True))


def _softmax_backward_agrees() -> bool:
    w, g = torch.tensor([[0.2, 0.3, 0.5]]), torch.tensor([[1.0, -2.0, 0.5]])
    private = torch._softmax_backward_data(g, w, -1, w.dtype)
    return torch.allclose(private, w * (g - (w * g).sum(dim=-1, keepdim=True)))


HAS_SOFTMAX_BACKWARD_DATA = _works(_softmax_backward_agrees)


# ---------------------------------------------------------------- ReLU gradient


def relu_backward(g: Tensor, out: Tensor) -> Tensor:
    """Gradient of ``out = relu(x)`` from its output: g where out > 0, else 0 (also where out is
    exactly 0, as PyTorch's ReLU). One kernel, ``threshold_backward``, when it is there."""
    if HAS_THRESHOLD_BACKWARD:
        return torch.ops.aten.threshold_backward(g, out, 0)
    return g.masked_fill(out <= 0, 0)


def _threshold_backward_agrees() -> bool:
    g, out = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.0, 1.0, -1.0, 2.0])
    return torch.equal(torch.ops.aten.threshold_backward(g, out, 0), g.masked_fill(out <= 0, 0))


HAS_THRESHOLD_BACKWARD = _works(_threshold_backward_agrees)


# ---------------------------------------------------------------- oneDNN's linear

# Looked up once: it is called for every projection of the fast path, forward and backward.
_LINEAR_POINTWISE = getattr(torch.ops.mkldnn, "_linear_pointwise", None)


def onednn_linear(x: Tensor, w_out_in: Tensor, b: Tensor | None, relu: bool = False) -> Tensor:
    """x: [R, i] @ w_out_in.T ([o, i]) + b, then ReLU if ``relu`` (a fused post-op), by oneDNN.
    Only when ``HAS_ONEDNN_LINEAR``: without it the fast path multiplies with PyTorch's own GEMM
    (grokkit.kernels.onednn_linear) and grokkit.backend_choice never chooses oneDNN."""
    return _LINEAR_POINTWISE(x, w_out_in, b, "relu" if relu else "none", [], "")


def _onednn_linear_agrees() -> bool:
    x = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    w, b = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.25, -3.0]]), torch.tensor([0.1, -0.2, 0.3])
    return torch.allclose(onednn_linear(x, w, b, relu=True), F.relu(F.linear(x, w, b)))


HAS_ONEDNN_LINEAR = (
    torch.backends.mkldnn.is_available()
    and _LINEAR_POINTWISE is not None
    and _works(_onednn_linear_agrees)
)


# ---------------------------------------------------------------- bfloat16 products


def onednn_takes_bf16() -> bool:
    """PyTorch's own answer to whether its oneDNN runs bfloat16 on this CPU (AVX-512 or
    AVX-NE-CONVERT). grokkit.precision still checks that float32 products obey the setting."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return torch.backends.mkldnn.is_available() and check is not None and _works(check)


try:  # the base class of a mode that sees every operator below autograd (forward and backward)
    from torch.utils._python_dispatch import TorchDispatchMode
except ImportError:  # pragma: no cover - present in every PyTorch grokkit supports
    TorchDispatchMode = None


def _bf16_products() -> dict:
    """{operator overload: (first operand's index, second's, rounded whatever its size)} of the
    float32 products oneDNN runs in its bf16 math mode: PyTorch's four GEMMs, and oneDNN's linear,
    which takes the mode at every size."""
    aten = torch.ops.aten
    ops = {
        aten.mm.default: (0, 1, False),
        aten.bmm.default: (0, 1, False),
        aten.addmm.default: (1, 2, False),
        aten.baddbmm.default: (1, 2, False),
    }
    if _LINEAR_POINTWISE is not None:
        ops[_LINEAR_POINTWISE.default] = (0, 1, True)
    return ops


BF16_PRODUCTS = _bf16_products()
HAS_DISPATCH_MODE = TorchDispatchMode is not None


# ---------------------------------------------------------------- torch.compile's dynamic axes

_MAYBE_MARK_DYNAMIC = getattr(getattr(torch, "_dynamo", None), "maybe_mark_dynamic", None)


def mark_dynamic(t: Tensor, axis: int) -> None:
    """Tell torch.compile that ``t``'s ``axis`` varies between calls (a population's member
    axis), so that one graph serves every size. Without the private call each size compiles a
    graph of its own until PyTorch's automatic dynamic shapes step in: slower, still correct."""
    if _MAYBE_MARK_DYNAMIC is not None:
        _MAYBE_MARK_DYNAMIC(t, axis)
