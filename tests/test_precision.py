"""The run setting bf16: bfloat16 operands, float32 accumulation, in every large float32 product."""

import contextlib

import numpy as np
import pytest
import torch

from grokkit.config import RunConfig
from grokkit.errors import GrokkitWarning
from grokkit.population import Population
from grokkit.precision import EmulatedBF16Products, bf16_in_hardware, bf16_products


def bf16_by_bits(t: torch.Tensor) -> np.ndarray:
    """float32 values rounded to bfloat16 (to nearest, ties to even) by their bits, in float64:
    an independent computation of what the emulation and oneDNN convert to."""
    bits = t.detach().numpy().astype(np.float32).view(np.uint32).astype(np.uint64)
    lsb = (bits >> 16) & 1
    rounded = ((bits + 0x7FFF + lsb) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32).astype(np.float64)


def close(got: torch.Tensor, want: np.ndarray) -> bool:
    return np.allclose(got.detach().numpy(), want, rtol=1e-5, atol=1e-5)


@pytest.fixture
def operands():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(*shape, generator=g) for shape in ((3, 40, 64), (3, 64, 48), (3, 40, 48))]


def test_each_kind_of_product_multiplies_bf16_operands_in_float32(operands):
    a, b, c = operands
    ra, rb = bf16_by_bits(a), bf16_by_bits(b)
    with EmulatedBF16Products():
        got = {
            "mm": torch.mm(a[0], b[0]),
            "addmm": torch.addmm(c[0], a[0], b[0]),
            "bmm": torch.bmm(a, b),
            "baddbmm": torch.baddbmm(c, a, b),
            "matmul": a @ b,
        }
    want = {
        "mm": ra[0] @ rb[0],
        "addmm": c[0].double().numpy() + ra[0] @ rb[0],  # the accumulator is not rounded
        "bmm": ra @ rb,
        "baddbmm": c.double().numpy() + ra @ rb,
        "matmul": ra @ rb,
    }
    for name in got:
        assert close(got[name], want[name]), name
    # ... and that is not the float32 product: the setting acts
    assert not close(torch.bmm(a, b), ra @ rb)


def test_the_backward_products_round_their_operands_too(operands):
    a, b, _ = operands
    a = a.clone().requires_grad_()
    g = torch.randn(3, 40, 48, generator=torch.Generator().manual_seed(1))
    with EmulatedBF16Products():
        (torch.bmm(a, b) * g).sum().backward()
    want = bf16_by_bits(g) @ bf16_by_bits(b).transpose(0, 2, 1)
    assert close(a.grad, want)


def test_products_too_small_for_onednn_stay_float32():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(16, 16, generator=g), torch.randn(16, 16, generator=g)  # 16^3: not above
    with EmulatedBF16Products():
        got = a @ b
    assert torch.equal(got, a @ b)


@pytest.mark.skipif(not bf16_in_hardware(), reason="this CPU has no oneDNN bfloat16 products")
def test_the_hardware_path_computes_what_the_emulation_does():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(256, 256, generator=g), torch.randn(256, 256, generator=g)
    with bf16_products("hardware"):
        hardware = a @ b
    assert torch.backends.mkldnn.matmul.fp32_precision != "bf16"  # restored on leaving
    want = bf16_by_bits(a) @ bf16_by_bits(b)
    # float32 summation order moves these sums of 256 terms by ~1e-5; bfloat16 operands by ~0.1
    assert np.abs(hardware.numpy() - want).max() < 1e-3
    assert np.abs((a @ b).numpy() - want).max() > 1e-2


def test_a_bf16_population_trains_in_bf16_and_leaves_the_process_in_float32():
    tiny = dict(operation="x+y", modulus=11, d_model=32, n_heads=2, d_mlp=64)
    emulated = pytest.warns(GrokkitWarning, match="bf16: bfloat16 products emulated")
    with contextlib.nullcontext() if bf16_in_hardware() else emulated:
        low = Population([RunConfig(seed=0, bf16=True, **tiny)])
    full = Population([RunConfig(seed=0, **tiny)])
    assert torch.equal(low.flat, full.flat)  # the same start
    for _ in range(3):
        low.step(), full.step()
    differ = (low.flat - full.flat).abs().max().item()
    # Adam moves each weight by about lr = 1e-3 a step: rounded products change the steps,
    # not their scale.
    assert 0 < differ < 1e-2
    assert low.evaluate()["train_loss"].isfinite().all()
    a = torch.randn(64, 64, generator=torch.Generator().manual_seed(4))
    assert close(a @ a, a.double().numpy() @ a.double().numpy())  # no bf16 left behind


def test_bf16_where_it_can_be_neither_run_nor_emulated_is_refused_in_words(monkeypatch):
    from grokkit import precision
    from grokkit.errors import ConfigError

    monkeypatch.setattr(precision, "bf16_path", lambda device: "emulated")
    monkeypatch.setattr(precision, "HAS_DISPATCH_MODE", False)
    with pytest.raises(ConfigError, match="bf16 needs bfloat16 products in hardware"):
        precision.choose_bf16_path(True, torch.device("cpu"))
    assert precision.choose_bf16_path(False, torch.device("cpu")) is None
