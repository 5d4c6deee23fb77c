"""Optimisation: BatchedAdamW is torch.optim.AdamW per member; the paper's noise variants."""

import math

import pytest
import torch

from grokkit.optim import PRESETS, BatchedAdamW, OptimizerConfig, preset


def reference_adamw(
    cfg: OptimizerConfig, w0: torch.Tensor, grads: list[torch.Tensor]
) -> torch.Tensor:
    """torch.optim.AdamW with LambdaLR linear warm-up: the textbook implementation."""
    w = torch.nn.Parameter(w0.clone())
    opt = torch.optim.AdamW(
        [w], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, weight_decay=cfg.weight_decay
    )
    warm = cfg.warmup_steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0
    )
    for g in grads:
        w.grad = g.clone()
        opt.step()
        sched.step()
    return w.detach()


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("name", ["adamw", "adam", "adam-lr3e-3"])
def test_batched_adamw_matches_torch_optim_per_member(name, fused):
    """Both update paths: PyTorch's fused kernel (the default) and the tensor expressions."""
    gen = torch.Generator().manual_seed(0)
    E, P, steps = 3, 50, 25
    configs = [
        preset(name),
        OptimizerConfig(lr=3e-3, weight_decay=0.3, beta2=0.95, warmup_steps=3),
        OptimizerConfig(warmup_steps=0),
    ]
    flat = torch.randn(E, P, generator=gen, dtype=torch.float64)
    w0 = flat.clone()
    grads = [torch.randn(E, P, generator=gen, dtype=torch.float64) for _ in range(steps)]
    opt = BatchedAdamW(configs, flat, fused=fused)
    assert opt.fused == fused
    for g in grads:
        opt.step(flat, g)
    for i, c in enumerate(configs):
        expected = reference_adamw(c, w0[i], [g[i] for g in grads])
        torch.testing.assert_close(flat[i], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fused", [True, False])
def test_l2_is_torch_adam_weight_decay(fused):
    """--l2 (Grokfast's regulariser) is torch.optim.Adam's coupled weight_decay, per member; a
    member without it is untouched by its neighbours' penalty."""
    gen = torch.Generator().manual_seed(1)
    configs = [
        OptimizerConfig(weight_decay=0.0, l2=0.005),
        OptimizerConfig(weight_decay=0.0, l2=0.5),
        preset("adam"),
    ]
    flat = torch.randn(3, 40, generator=gen, dtype=torch.float64)
    w0 = flat.clone()
    grads = [torch.randn(3, 40, generator=gen, dtype=torch.float64) for _ in range(20)]
    opt = BatchedAdamW(configs, flat, fused=fused)
    for g in grads:
        kept = g.clone()
        opt.step(flat, g)
        assert torch.equal(g, kept), "the caller's gradient must not change"
    for i, c in enumerate(configs):
        w = torch.nn.Parameter(w0[i].clone())
        adam = torch.optim.Adam(
            [w], lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps, weight_decay=c.l2
        )
        sched = torch.optim.lr_scheduler.LambdaLR(
            adam, lambda s: min(1.0, (s + 1) / c.warmup_steps)
        )
        for g in grads:
            w.grad = g[i].clone()
            adam.step()
            sched.step()
        torch.testing.assert_close(flat[i], w.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fused", [True, False])
def test_weight_decay_towards_init_pulls_to_the_initial_weights(fused):
    """With zero gradient, Adam's step is 0 and decay alone acts: W - W0 shrinks by (1 - lr*wd)."""
    cfg = preset("adamw-to-init")
    flat = torch.full((1, 4), 2.0, dtype=torch.float64)
    opt = BatchedAdamW([cfg], flat, fused=fused)
    flat += 1.0  # move away from the initial weights (2.0)
    for _ in range(20):
        opt.step(flat, torch.zeros_like(flat))
    factor = math.prod(
        1 - cfg.lr * min(1, u / cfg.warmup_steps) * cfg.weight_decay for u in range(1, 21)
    )
    torch.testing.assert_close(flat, torch.full((1, 4), 2.0 + factor, dtype=torch.float64))


def test_update_noise_is_lr_times_unit_gaussian_from_the_members_generator():
    """A.1.2: W <- W + lr (dW + eps). With zero gradient dW = 0, so W moves by lr * eps exactly."""
    cfg = preset("adam-full-batch-update-noise")
    flat = torch.zeros(2, 1000)
    quiet = preset("adam")
    opt = BatchedAdamW([cfg, quiet], flat)
    gens = [torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)]
    opt.step(flat, torch.zeros_like(flat), noise=gens)
    lr1 = cfg.lr * min(1.0, 1 / cfg.warmup_steps)
    expected = torch.randn(1000, generator=torch.Generator().manual_seed(5)) * lr1
    torch.testing.assert_close(flat[0], expected)
    assert torch.equal(flat[1], torch.zeros(1000)), "a member without noise must not move"
    assert gens[1].get_state().equal(torch.Generator().manual_seed(6).get_state()), (
        "a member without noise must not draw from its generator"
    )


def test_presets_are_the_nine_variants_of_figure_2_left():
    assert len(PRESETS) == 9
    assert PRESETS["adamw"] == OptimizerConfig()  # the paper's default recipe
    assert OptimizerConfig().lr == 1e-3 and OptimizerConfig().weight_decay == 1.0
    assert (OptimizerConfig().beta1, OptimizerConfig().beta2) == (0.9, 0.98)
    assert OptimizerConfig().warmup_steps == 10
    assert PRESETS["adam"].weight_decay == 0
    assert PRESETS["adam-full-batch"].batch_size == 0
    assert PRESETS["adam-dropout"].dropout == 0.1
    assert PRESETS["adam-weight-noise"].weight_noise == 0.01
    assert PRESETS["adamw-to-init"].decay_target == "init"
    assert {PRESETS["adam-lr3e-4"].lr, PRESETS["adam-lr3e-3"].lr} == {3e-4, 3e-3}


@pytest.mark.parametrize("n_train, expected", [(100, 50), (101, 51), (4656, 512), (1024, 512)])
def test_paper_batch_size_is_min_512_half_the_training_set(n_train, expected):
    assert OptimizerConfig().resolve_batch_size(n_train) == expected
    assert OptimizerConfig(batch_size=0).resolve_batch_size(n_train) == n_train


def test_invalid_settings_are_refused():
    for bad in (dict(lr=0), dict(weight_decay=-1), dict(dropout=1.0), dict(decay_target="x")):
        with pytest.raises(ValueError):
            OptimizerConfig(**bad)
