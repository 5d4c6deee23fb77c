"""Every fast path computes the straightforward model's function and gradients (float tolerance).

Fresh random inputs each run (the seed is printed on failure through the test id's parameters
only where fixed; otherwise drawn from the global RNG, which pytest does not pin)."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from cli_harness import assert_one_line, run_cli
from conftest import tiny_run

from grokkit import torch_private
from grokkit.backend import Backend
from grokkit.config import RunConfig
from grokkit.fast_path import forward_fast
from grokkit.kernels import OneDNNLinear
from grokkit.model import ModelConfig, _linear, forward_reference, init_parameters
from grokkit.population import Population

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def _stacked(cfg: ModelConfig, E: int, dtype: torch.dtype) -> dict:
    seed = int(torch.randint(0, 2**31 - 1, ()))
    rows = [init_parameters(cfg, torch.Generator().manual_seed(seed + i)) for i in range(E)]
    return {k: torch.stack([r[k] for r in rows]).to(dtype) for k in rows[0]}


def _tokens(cfg: ModelConfig, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.stack(
        [x, torch.full_like(x, cfg.op_token), y, torch.full_like(x, cfg.eq_token)], -1
    )


def _grads(out: torch.Tensor, weights: torch.Tensor, params: dict) -> list[torch.Tensor]:
    return list(torch.autograd.grad((out * weights).sum(), list(params.values())))


def _assert_grads_close(got: list, want: list, names, rtol: float) -> None:
    scale = max(float(w.abs().max()) for w in want)
    for name, g, w in zip(names, got, want):
        torch.testing.assert_close(
            g.to(w.dtype),
            w,
            rtol=rtol,
            atol=rtol * scale,
            msg=lambda m, name=name: f"gradient of {name}: {m}",
        )


needs_onednn = pytest.mark.skipif(
    not torch_private.HAS_ONEDNN_LINEAR, reason="this PyTorch build has no oneDNN linear"
)


@needs_onednn
@pytest.mark.parametrize("E", [1, 3])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("io", [(24, 40), (40, 24)])  # both weight-gradient branches
def test_onednn_linear_matches_baddbmm_values_and_gradients(E, relu, bias, io):
    R, (i, o) = 37, io
    h = torch.randn(E, R, i, dtype=torch.float64)
    W = torch.randn(E, i, o, dtype=torch.float64) / i**0.5
    b = torch.randn(E, o, dtype=torch.float64) if bias else None
    g = torch.randn(E, R, o, dtype=torch.float64)
    leaves64 = [t.clone().requires_grad_() for t in (h, W, b) if t is not None]
    leaves32 = [t.float().requires_grad_() for t in (h, W, b) if t is not None]

    def fn(ls, fast):
        hh, WW = ls[0], ls[1]
        bb = ls[2] if bias else None
        if fast:
            return OneDNNLinear.apply(hh, WW, bb, relu)
        out = _linear(hh, WW, bb)
        return F.relu(out) if relu else out

    want = fn(leaves64, fast=False)
    got = fn(leaves32, fast=True)
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5)
    gw = torch.autograd.grad((want * g).sum(), leaves64)
    gg = torch.autograd.grad((got * g.float()).sum(), leaves32)
    _assert_grads_close(list(gg), list(gw), ["h", "W", "b"], rtol=1e-4)


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("E", [1, 2])
def test_float32_fast_path_matches_float64_reference(norm, layers, activation, E):
    """forward_fast in float32 (oneDNN GEMMs, fused LayerNorm for E = 1) against the
    straightforward model in float64: the same function and gradients within float32 rounding."""
    cfg = ModelConfig(
        n_elements=11,
        n_layers=layers,
        d_model=32,
        n_heads=4,
        d_mlp=48,
        norm=norm,
        activation=activation,
    )
    B = 29
    x = torch.randint(0, 11, (E, B))
    y = torch.randint(0, 11, (E, B))
    p64 = {k: v.requires_grad_() for k, v in _stacked(cfg, E, torch.float64).items()}
    p32 = {k: v.detach().float().requires_grad_() for k, v in p64.items()}
    ref = forward_reference(p64, cfg, _tokens(cfg, x, y))
    fast = forward_fast(p32, cfg, x, y)
    torch.testing.assert_close(fast.double(), ref, rtol=1e-4, atol=1e-4)
    weights = torch.randn(ref.shape, dtype=torch.float64)
    _assert_grads_close(
        _grads(fast, weights.float(), p32), _grads(ref, weights, p64), list(p64), rtol=2e-4
    )


def test_plain_pytorch_baseline_computes_the_same_function():
    from baseline import PlainTransformer, tokens_for

    cfg = ModelConfig(n_elements=13, d_model=32, n_heads=4, d_mlp=64)
    params = _stacked(cfg, 1, torch.float32)
    model = PlainTransformer(cfg.vocab_size, cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.d_mlp)
    model.load_grokkit(params)
    x, y = torch.randint(0, 13, (1, 50)), torch.randint(0, 13, (1, 50))
    ref = forward_reference(params, cfg, _tokens(cfg, x, y))[0]
    plain = model(tokens_for(x[0], y[0], cfg.op_token, cfg.eq_token))
    torch.testing.assert_close(plain, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(forward_fast(params, cfg, x, y)[0], ref, rtol=1e-4, atol=1e-5)


def _reference_gradient(pop: Population, eq: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    cfg = pop.model_config
    leaves = {k: v.detach().double().requires_grad_() for k, v in pop.parameters().items()}
    logits = forward_reference(leaves, cfg, _tokens(cfg, pop.x[eq], pop.y[eq]))
    losses = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(1)
    losses.sum().backward()
    return torch.cat([leaves[k].grad.reshape(pop.size, -1) for k in pop.shapes], 1)


@pytest.mark.parametrize("E", [1, 3])
def test_population_gradient_matches_the_reference_model(E):
    """The gradient Population.step() hands to the optimizer (fast path, flat buffer) equals the
    float64 gradient of the straightforward model on the same batch."""
    pop = Population([tiny_run(seed=int(torch.randint(0, 1000, ())) + s) for s in range(E)])
    captured = {}
    real_step = pop.optimizer.step

    def capture(flat, grad, noise=None):
        captured["grad"] = grad.clone()
        real_step(flat, grad, noise)

    pop.optimizer.step = capture
    states = [m.batch_generator.get_state() for m in pop.members]
    perm = [(m.permutation, m.position) for m in pop.members]
    before = Population.from_member_states([pop.member_state(i) for i in range(E)])
    pop.step()
    # Replay the same batch on the copy taken before the step.
    for m, s, (p, q) in zip(before.members, states, perm):
        m.batch_generator.set_state(s)
        m.permutation, m.position = p, q
    positions = torch.stack([m.next_batch_positions(before.batch_size) for m in before.members])
    eq = torch.gather(before.train_equations, 1, positions)
    labels = torch.gather(before.train_labels, 1, positions)
    want = _reference_gradient(before, eq, labels)
    got = captured["grad"].double()
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4 * float(want.abs().max()))


@pytest.mark.parametrize("E", [1, 2])
def test_fast_evaluation_matches_the_reference_model(E):
    pop = Population([tiny_run(seed=s, train_fraction=0.4 + 0.1 * s) for s in range(E)])
    for _ in range(5):
        pop.step()
    got = pop.evaluate()
    cfg = pop.model_config
    params = {k: v.double() for k, v in pop.parameters().items()}
    N = pop.table.n_equations
    x, y = pop.x.expand(E, N), pop.y.expand(E, N)
    with torch.no_grad():
        logits = forward_reference(params, cfg, _tokens(cfg, x, y))
    loss = F.cross_entropy(logits.transpose(1, 2), pop.eval_targets, reduction="none")
    hit = (logits.argmax(-1) == pop.eval_targets).double()
    train, val = pop.train_mask.double(), (~pop.train_mask).double()
    want = {
        "train_loss": (loss * train).sum(1) / train.sum(1),
        "train_accuracy": (hit * train).sum(1) / train.sum(1),
        "val_loss": (loss * val).sum(1) / val.sum(1),
        "val_accuracy": (hit * val).sum(1) / val.sum(1),
    }
    for k, v in want.items():
        torch.testing.assert_close(got[k].double(), v, rtol=1e-4, atol=1e-5, msg=k)


def test_paper_configuration_fast_path_matches_reference_in_float32():
    """The exact shapes that are benchmarked (97 elements, 2 x 128 x 4, batch 512)."""
    pop = Population([RunConfig()])
    cfg = pop.model_config
    eq = pop.train_equations[:, :512]
    x, y = pop.x[eq], pop.y[eq]
    p64 = {k: v.double().requires_grad_() for k, v in pop.parameters().items()}
    p32 = {k: v.detach().clone().requires_grad_() for k, v in pop.parameters().items()}
    ref = forward_reference(p64, cfg, _tokens(cfg, x, y))
    fast = forward_fast(p32, cfg, x, y)
    torch.testing.assert_close(fast.double(), ref, rtol=1e-4, atol=1e-4)
    weights = torch.randn(ref.shape, dtype=torch.float64)
    _assert_grads_close(
        _grads(fast, weights.float(), p32), _grads(ref, weights, p64), list(p64), rtol=1e-3
    )


def test_cli_refuses_a_compiled_backend_without_a_compiler_before_writing(
    monkeypatch, capsys, tmp_path
):
    monkeypatch.setenv("PATH", "")
    code, _, err = run_cli(
        capsys, "train", "--steps", "5", "--backend", "compiled", "--out", tmp_path / "run"
    )
    assert code == 2
    assert_one_line(err, "C++ compiler")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["grokkit", "openai-grok"])
def test_compiled_step_trains_as_the_eager_step(monkeypatch, arch):
    # The compiled backend puts the forward and backward into one graph: another rounding of
    # float32, the same function. Its logits and every weight's gradient equal the eager pass's
    # to float tolerance, for two members at once (the graph must keep them independent), and
    # five updates give the same losses. (The weights are not compared bit for bit: Adam turns
    # a rounding-sized gradient, e.g. of b_K whose true gradient is 0, into a full-size step.)
    configs = [tiny_run(seed=s).with_changes(arch=arch) for s in (0, 1)]
    pop = Population(configs, "cpu", Backend(compiled=True))
    E, B = pop.size, pop.batch_size
    rows = torch.randint(0, pop.train_equations.shape[1], (E, B))
    equations = torch.gather(pop.train_equations, 1, rows)
    labels = torch.gather(pop.train_labels, 1, rows)

    def logits_and_grads(forward):
        leaves = {k: v.detach().clone().requires_grad_() for k, v in pop.views(pop.flat).items()}
        out = forward(leaves, pop.x[equations], pop.y[equations], train=True, c=labels)
        pop.example_losses(out, labels).mean(dim=1).sum().backward()
        return out.detach(), {k: v.grad for k, v in leaves.items() if v.grad is not None}

    compiled_out, compiled_grads = logits_and_grads(pop._training_logits)
    assert pop._training_logits != pop.logits
    eager_out, eager_grads = logits_and_grads(pop.logits)
    torch.testing.assert_close(compiled_out, eager_out, rtol=1e-5, atol=1e-5)
    assert compiled_grads.keys() == eager_grads.keys()
    for k in eager_grads:
        torch.testing.assert_close(compiled_grads[k], eager_grads[k], rtol=1e-4, atol=1e-6, msg=k)
    compiled_losses = [pop.step() for _ in range(5)]
    eager = Population(configs)
    eager_losses = [eager.step() for _ in range(5)]
    torch.testing.assert_close(torch.stack(compiled_losses), torch.stack(eager_losses))
