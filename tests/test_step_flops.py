"""The FLOP count of a training step (grokkit.step_flops), which balances a sweep's workers,
equals what PyTorch's own counter sees the dense reference model compute."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from grokkit.config import RunConfig
from grokkit.model import (
    forward_openai_reference,
    forward_reference,
    init_parameters,
    openai_tokens,
)
from grokkit.ops import get_operation
from grokkit.population import Population
from grokkit.step_flops import (
    forward_flops_per_example,
    muon_flops,
    run_flops,
    training_step_flops,
)
from grokkit.train import evaluation_count


def _model(arch: str, operation: str = "s5_xy", modulus: int = 97):
    norm = "post" if arch == "openai-grok" else "pre"
    config = RunConfig(
        operation=operation, modulus=modulus, arch=arch, norm=norm, d_model=64, d_mlp=256
    )
    return config, config.model_config(get_operation(operation, modulus).n_elements)


def _counted(arch: str, batch: int, backward: bool) -> int:
    _, cfg = _model(arch)
    params = {
        k: v.unsqueeze(0).requires_grad_(backward)
        for k, v in init_parameters(cfg, torch.Generator().manual_seed(0)).items()
    }
    x = torch.randint(0, cfg.n_elements, (1, batch))
    with FlopCounterMode(display=False) as counter:
        if arch == "openai-grok":
            logits = forward_openai_reference(params, cfg, openai_tokens(cfg, x, x, x))
        else:
            op = torch.full_like(x, cfg.op_token)
            tokens = torch.stack([x, op, x, torch.full_like(x, cfg.eq_token)], dim=-1)
            logits = forward_reference(params, cfg, tokens)
        if backward:
            logits.sum().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("arch", ["grokkit", "openai-grok"])
def test_a_steps_flops_are_what_torch_counts_on_the_reference_model(arch):
    _, cfg = _model(arch)
    batch = 16
    assert _counted(arch, batch, backward=False) == batch * forward_flops_per_example(cfg)
    assert _counted(arch, batch, backward=True) == pytest.approx(
        training_step_flops(cfg, batch), rel=0.02
    )


def test_a_runs_flops_are_its_steps_and_evaluations():
    config, cfg = _model("grokkit", "x/y", 97)
    config = config.with_changes(steps=1000, eval_every=100, train_fraction=0.5)
    n = get_operation("x/y", 97).n_equations
    batch = min(512, -(-round(0.5 * n) // 2))
    per_step = 3 * batch * forward_flops_per_example(cfg)
    expected = 600 * per_step + evaluation_count(config, 400) * n * forward_flops_per_example(cfg)
    assert run_flops(config, 400) == expected
    assert run_flops(config, 1000) == evaluation_count(
        config, 1000
    ) * n * forward_flops_per_example(cfg)


@pytest.mark.parametrize("arch", ["grokkit", "openai-grok"])
def test_muons_flops_are_what_torch_counts_in_its_update(arch):
    config = RunConfig(operation="x+y", modulus=11, d_model=32, n_heads=4, d_mlp=128)
    config = config.with_changes(arch=arch, muon=True)
    pop = Population([config])
    with FlopCounterMode(display=False) as counter:  # AdamW's part multiplies no matrices
        pop.optimizer.step(pop.flat, torch.randn_like(pop.flat))
    assert counter.get_total_flops() == muon_flops(pop.model_config)
    plain = config.with_changes(muon=False)
    assert run_flops(config) == run_flops(plain) + config.steps * muon_flops(pop.model_config)
