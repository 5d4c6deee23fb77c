"""grokkit.torch_private: each private PyTorch call has a public fallback that computes the same
thing (forced here by turning its detection off), and no other module calls a private API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import tiny_run

import grokkit
from grokkit import backend_choice, torch_private
from grokkit.fast_path import forward_fast
from grokkit.kernels import OneDNNLinear, SmallSoftmax, onednn_linear
from grokkit.model import ModelConfig, init_parameters
from grokkit.optim import BatchedAdamW, OptimizerConfig, preset

PRIVATE_APIS = {
    "HAS_FUSED_ADAMW": lambda: hasattr(torch, "_fused_adamw_"),
    "HAS_SOFTMAX_BACKWARD_DATA": lambda: hasattr(torch, "_softmax_backward_data"),
    "HAS_THRESHOLD_BACKWARD": lambda: hasattr(torch.ops.aten, "threshold_backward"),
    "HAS_ONEDNN_LINEAR": lambda: (
        torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    ),
}
needs_onednn = pytest.mark.skipif(
    not torch_private.HAS_ONEDNN_LINEAR, reason="this PyTorch build has no oneDNN linear"
)


def _with(monkeypatch, flag: str, value: bool, fn):
    """``fn()`` with the detection ``flag`` set to ``value``."""
    with monkeypatch.context() as m:
        m.setattr(torch_private, flag, value)
        return fn()


@pytest.mark.parametrize("flag", list(PRIVATE_APIS))
def test_a_private_api_that_exists_passes_its_probe(flag):
    """Where PyTorch still has the API, its probe agreed with the public computation. If this
    fails after an upgrade, grokkit still computes the same results, on the slower public path:
    adapt grokkit.torch_private to the new API."""
    assert getattr(torch_private, flag) == PRIVATE_APIS[flag](), f"{flag}: the probe failed"


def test_the_fused_adamw_fallback_is_the_tensor_step_and_agrees():
    gen = torch.Generator().manual_seed(0)
    configs = [
        preset("adamw"),
        OptimizerConfig(lr=3e-3, weight_decay=0.3, warmup_steps=2),
        OptimizerConfig(decay_target="init", warmup_steps=0),
    ]
    if not torch_private.HAS_FUSED_ADAMW:
        pytest.skip("this PyTorch has no fused AdamW: the fallback is all there is")
    flat = torch.randn(3, 40, generator=gen)
    grads = [torch.randn(3, 40, generator=gen) for _ in range(6)]

    def train(private: bool) -> torch.Tensor:
        w = flat.clone()
        with pytest.MonkeyPatch.context() as m:
            m.setattr(torch_private, "HAS_FUSED_ADAMW", private)
            optimizer = BatchedAdamW(configs, w)
        assert optimizer.fused == (private and torch_private.HAS_FUSED_ADAMW)
        for g in grads:
            optimizer.step(w, g)
        return w

    torch.testing.assert_close(train(private=False), train(private=True), rtol=1e-5, atol=1e-6)


def test_an_unavailable_fused_adamw_cannot_be_asked_for(monkeypatch):
    monkeypatch.setattr(torch_private, "HAS_FUSED_ADAMW", False)
    with pytest.raises(ValueError, match="fused AdamW is not available"):
        BatchedAdamW([preset("adamw")], torch.zeros(1, 4), fused=True)


def test_the_softmax_backward_fallback_agrees(monkeypatch):
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(2, 97, 4, 4, generator=gen) * 4).requires_grad_()
    g = torch.randn(x.shape, generator=gen)

    def gradient() -> torch.Tensor:
        (dx,) = torch.autograd.grad((SmallSoftmax.apply(x) * g).sum(), x)
        return dx

    private = _with(monkeypatch, "HAS_SOFTMAX_BACKWARD_DATA", True, gradient)
    public = _with(monkeypatch, "HAS_SOFTMAX_BACKWARD_DATA", False, gradient)
    torch.testing.assert_close(public, private, rtol=1e-5, atol=1e-7)


def test_the_relu_backward_fallback_agrees(monkeypatch):
    gen = torch.Generator().manual_seed(2)
    out = torch.randn(3, 50, 20, generator=gen).relu_()
    out[0, 0, :5] = 0.0  # exactly zero: no gradient, as PyTorch's ReLU
    g = torch.randn(out.shape, generator=gen)

    def gradient() -> torch.Tensor:
        return torch_private.relu_backward(g, out)

    private = _with(monkeypatch, "HAS_THRESHOLD_BACKWARD", True, gradient)
    public = _with(monkeypatch, "HAS_THRESHOLD_BACKWARD", False, gradient)
    assert torch.equal(public, private)


@needs_onednn
def test_the_relu_backward_fallback_agrees_inside_the_onednn_linear(monkeypatch):
    gen = torch.Generator().manual_seed(3)
    h = torch.randn(2, 30, 16, generator=gen).requires_grad_()
    W = (torch.randn(2, 16, 24, generator=gen) / 4).requires_grad_()
    b = torch.randn(2, 24, generator=gen).requires_grad_()

    def gradients() -> tuple[torch.Tensor, ...]:
        return torch.autograd.grad(OneDNNLinear.apply(h, W, b, True).square().sum(), (h, W, b))

    private = _with(monkeypatch, "HAS_THRESHOLD_BACKWARD", True, gradients)
    public = _with(monkeypatch, "HAS_THRESHOLD_BACKWARD", False, gradients)
    for p, q in zip(public, private):
        assert torch.equal(p, q)


@needs_onednn
def test_without_onednn_the_fast_path_uses_pytorchs_gemm_and_agrees(monkeypatch):
    cfg = ModelConfig(n_elements=11, n_layers=2, d_model=32, n_heads=4, d_mlp=48)
    params = {
        k: v.unsqueeze(0).requires_grad_()
        for k, v in init_parameters(cfg, torch.Generator().manual_seed(4)).items()
    }
    x, y = torch.randint(0, 11, (1, 40)), torch.randint(0, 11, (1, 40))
    calls = []
    real = torch_private.onednn_linear
    monkeypatch.setattr(torch_private, "onednn_linear", lambda *a: calls.append(1) or real(*a))

    def logits_and_gradients() -> list[torch.Tensor]:
        logits = forward_fast(params, cfg, x, y, onednn_linear)
        return [logits, *torch.autograd.grad(logits.square().sum(), list(params.values()))]

    private = _with(monkeypatch, "HAS_ONEDNN_LINEAR", True, logits_and_gradients)
    assert calls, "the private path did not run"
    calls.clear()
    public = _with(monkeypatch, "HAS_ONEDNN_LINEAR", False, logits_and_gradients)
    assert not calls, "oneDNN ran although it was detected as missing"
    for p, q in zip(public, private):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_without_onednn_a_population_never_measures_and_trains(monkeypatch, tmp_path):
    monkeypatch.setattr(torch_private, "HAS_ONEDNN_LINEAR", False)
    monkeypatch.setenv("GROKKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("GROKKIT_ONEDNN", raising=False)
    from grokkit import population

    monkeypatch.setattr(backend_choice, "time_gemm_paths", lambda t: pytest.fail("measured"))
    backend = backend_choice.choose_backend("eager", "cpu", [tiny_run()])
    assert backend.gemm == "pytorch"
    pop = population.Population([tiny_run()], "cpu", backend)
    assert torch.isfinite(pop.step()).all()


def test_no_other_module_calls_a_private_pytorch_api():
    private = re.compile(r"torch\._[a-z]|torch\.ops\.|\baten\.|mkldnn\._")
    root = Path(grokkit.__file__).parent
    offenders = [
        f"{path.relative_to(root)}:{number}"
        for path in root.rglob("*.py")
        if path.name != "torch_private.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line.split("#", 1)[0])
    ]
    assert offenders == [], f"private PyTorch calls outside grokkit.torch_private: {offenders}"
