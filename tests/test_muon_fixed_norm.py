"""Muon for the hidden matrices (Jordan et al. 2024) and Omnigrok's fixed weight norm (Liu et al.
2022), each against an independent computation fed the gradients the population computed:
torch.optim.Muon and torch.optim.AdamW on the tensors PyTorch modules would hold, and
torch.optim.AdamW followed by a rescaling by hand."""

from __future__ import annotations

import pytest
import torch
from cli_harness import TINY, assert_one_line, run_cli
from conftest import tiny_run

from grokkit import runs
from grokkit.backend import Backend
from grokkit.config import RunConfig
from grokkit.errors import ConfigError
from grokkit.model_config import parameter_layout
from grokkit.optim import newton_schulz
from grokkit.population import Population
from grokkit.sweep.grid import run_name
from grokkit.train import train_runs

HIDDEN = ("W_Q", "W_K", "W_V", "W_O", "W_in", "W_out")


def _capture(pop: Population) -> list[torch.Tensor]:
    """The gradients [E, P] the population's optimizer receives from now on, in order."""
    grads = []
    real_step = pop.optimizer.step

    def capture(flat, grad, noise=None):
        grads.append(grad.clone())
        real_step(flat, grad, noise)

    pop.optimizer.step = capture
    return grads


def _modules(name: str, cfg) -> int:
    """How many nn.Linear weights a hidden matrix holds (one per head for openai-grok's W_Q, W_K,
    W_V: grok/transformer.py's AttentionHead); 0 for a weight that is not a hidden matrix."""
    leaf = name.rsplit(".", 1)[-1]
    if not name.startswith("blocks.") or leaf not in HIDDEN:
        return 0
    return cfg.n_heads if cfg.arch == "openai-grok" and leaf in ("W_Q", "W_K", "W_V") else 1


def _as_modules(vec: torch.Tensor, cfg) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One member's flat vector as PyTorch modules hold it: each hidden matrix [in, out] as
    nn.Linear weights [out, in] (contiguous, as a module's: the layout of a bfloat16 product's
    operands changes its rounding), every other weight as it is."""
    hidden, others = [], []
    for name, offset, size, shape in parameter_layout(cfg):
        w = vec[offset : offset + size].view(shape)
        n = _modules(name, cfg)
        if n:
            hidden += [
                block.T.clone(memory_format=torch.contiguous_format) for block in w.chunk(n, 1)
            ]
        else:
            others.append(w.clone())
    return hidden, others


def _from_modules(hidden: list, others: list, cfg) -> torch.Tensor:
    hidden, others, parts = iter(hidden), iter(others), []
    for name, _, _, _ in parameter_layout(cfg):
        n = _modules(name, cfg)
        w = torch.cat([next(hidden).T for _ in range(n)], dim=1) if n else next(others)
        parts.append(w.detach().reshape(-1))
    return torch.cat(parts)


def _torch_muon_adamw(config: RunConfig, cfg, w0: torch.Tensor, grads: list) -> torch.Tensor:
    """torch.optim.Muon (its defaults) on the hidden matrices and torch.optim.AdamW on the rest,
    with the run's linear warm-up set on the param groups and its coupled L2 in the gradient."""
    opt = config.optimizer
    hidden, others = ([torch.nn.Parameter(t) for t in ts] for ts in _as_modules(w0, cfg))
    muon = torch.optim.Muon(hidden, lr=opt.lr, weight_decay=opt.weight_decay)
    adamw = torch.optim.AdamW(
        others, lr=opt.lr, betas=(0.9, 0.98), eps=1e-8, weight_decay=opt.weight_decay
    )
    for u, grad in enumerate(grads, start=1):
        for group in muon.param_groups + adamw.param_groups:
            group["lr"] = opt.lr * min(1.0, u / opt.warmup_steps)
        for p, g in zip(hidden + others, sum(_as_modules(grad, cfg), [])):
            p.grad = g + opt.l2 * p.detach()
        muon.step()
        adamw.step()
    return _from_modules(hidden, others, cfg)


@pytest.mark.parametrize("arch", ["grokkit", "openai-grok"])
def test_muon_is_torch_muon_on_the_hidden_matrices_and_adamw_on_the_rest(arch):
    configs = [
        tiny_run(muon=True, arch=arch),
        tiny_run(muon=True, arch=arch, seed=1, lr=3e-3, weight_decay=0.3, warmup_steps=2, l2=0.01),
    ]
    pop = Population(configs, "cpu", Backend(newton_schulz="bfloat16"))  # torch.optim.Muon's
    w0 = pop.flat.clone()
    grads = _capture(pop)
    for _ in range(4):
        pop.step()
    for i, config in enumerate(configs):
        want = _torch_muon_adamw(config, pop.model_config, w0[i], [g[i] for g in grads])
        torch.testing.assert_close(pop.flat[i], want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(pop.flat, w0)


def _newton_schulz_float64(g: torch.Tensor) -> torch.Tensor:
    """Muon's quintic iteration (Jordan et al. 2024) written out in float64, one matrix."""
    x = g.double()
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / max(x.norm(), 1e-7)
    for _ in range(5):
        a = x @ x.T
        x = 3.4445 * x + (-4.775 * a + 2.0315 * a @ a) @ x
    return x.T if tall else x


@pytest.mark.parametrize("shape", [(32, 32), (64, 16), (16, 64)])
def test_newton_schulz_in_float32_is_the_iteration_and_torchs_to_bfloat16_tolerance(shape):
    """The float32 path a CPU without native bfloat16 takes: the same iteration as a float64
    computation to float32 rounding, and torch.optim.Muon's bfloat16 result to bfloat16's."""
    from torch.optim._muon import _zeropower_via_newtonschulz

    g = torch.randn(3, *shape, generator=torch.Generator().manual_seed(1))
    ours = newton_schulz(g, torch.float32)
    assert ours.dtype == torch.float32
    for i in range(3):
        want = _newton_schulz_float64(g[i]).float()
        torch.testing.assert_close(ours[i], want, rtol=1e-4, atol=1e-5)
        torch_bf16 = _zeropower_via_newtonschulz(g[i], (3.4445, -4.775, 2.0315), 5, 1e-7)
        torch.testing.assert_close(newton_schulz(g[i : i + 1])[0], torch_bf16, rtol=0, atol=0)
        # bfloat16 keeps 8 significant bits: entries of size ~1/sqrt(n) agree to a few 1e-2
        assert (ours[i] - torch_bf16.float()).abs().max() < 0.05
        assert (ours[i] - torch_bf16.float()).norm() / ours[i].norm() < 0.03


def test_fixed_norm_keeps_each_initial_norm_and_is_adamw_then_a_rescaling():
    configs = [
        tiny_run(fixed_norm=True, init_scale=2.0),
        tiny_run(fixed_norm=True, seed=1, lr=3e-3, weight_decay=0.0, warmup_steps=2),
    ]
    pop = Population(configs)
    w0 = pop.flat.clone()
    grads = _capture(pop)
    for _ in range(5):
        pop.step()
        torch.testing.assert_close(pop.flat.norm(dim=1), w0.norm(dim=1), rtol=1e-5, atol=0)
    for i, config in enumerate(configs):
        opt = config.optimizer
        w = torch.nn.Parameter(w0[i].clone())
        adamw = torch.optim.AdamW(
            [w], lr=opt.lr, betas=(0.9, 0.98), eps=1e-8, weight_decay=opt.weight_decay
        )
        initial = w0[i].pow(2).sum()
        for u, grad in enumerate(grads, start=1):
            adamw.param_groups[0]["lr"] = opt.lr * min(1.0, u / opt.warmup_steps)
            w.grad = grad[i].clone()
            adamw.step()
            with torch.no_grad():  # Omnigrok's rescaling, after every step
                w.mul_(torch.sqrt(initial / w.pow(2).sum()))
        torch.testing.assert_close(pop.flat[i], w.detach(), rtol=1e-5, atol=1e-6)


def test_members_equal_their_solo_runs_and_leave_without_a_trace():
    configs = [
        tiny_run(muon=True, fixed_norm=True),
        tiny_run(muon=True, fixed_norm=True, seed=1, lr=3e-3, weight_decay=0.3, init_scale=0.5),
    ]
    together = Population(configs)
    for _ in range(3):
        together.step()
    both = together.flat.clone()
    together.keep([1])
    for _ in range(3):
        together.step()
    for i, config in enumerate(configs):
        alone = Population([config])
        for _ in range(3):
            alone.step()
        torch.testing.assert_close(both[i], alone.flat[0], rtol=1e-5, atol=1e-6)
    for _ in range(3):
        alone.step()  # member 1 alone, six steps
    torch.testing.assert_close(together.flat[0], alone.flat[0], rtol=1e-5, atol=1e-6)
    for other in (tiny_run(), tiny_run(fixed_norm=True), tiny_run(muon=True)):
        with pytest.raises(ValueError, match="methods"):
            Population([configs[0], other])


def test_a_tiny_muon_run_trains_and_its_name_and_title_say_so(tmp_path):
    config = tiny_run(muon=True, steps=60, lr=1e-2, weight_decay=0.1)
    train_runs([config], [tmp_path / "run"], progress=False)
    rows = runs.read_metrics(tmp_path / "run")
    assert rows[-1]["train_loss"] < 0.5 * rows[0]["train_loss"]
    assert "muon" in run_name(config).split("-")
    assert config.method_description() == "Muon (hidden matrices)"
    fixed = tiny_run(fixed_norm=True)
    assert "fixed_norm" in run_name(fixed).split("-")
    assert fixed.method_description() == "weight norm fixed at init"
    # Off, neither changes a run's name or hash.
    assert run_name(tiny_run(muon=False, fixed_norm=False)) == run_name(tiny_run())


def test_settings_that_cannot_be_honoured_are_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match="--decay-target init cannot be honoured"):
        tiny_run(muon=True, decay_target="init")
    with pytest.raises(ConfigError, match="muon has the wrong type"):
        RunConfig.from_dict({"optimizer": {"muon": 1}})
    with pytest.raises(ConfigError, match="fixed_norm has the wrong type"):
        RunConfig.from_dict({"fixed_norm": "yes"})
    tiny_run(muon=True, fixed_norm=True, arch="openai-grok", l2=0.01, update_noise=0.1)  # honoured
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", *TINY, "--muon", "--decay-target", "init", "--out", out)
    assert code == 2 and not out.exists()
    assert_one_line(err, "--decay-target init cannot be honoured")
