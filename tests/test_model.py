"""The transformer: the fast path computes the reference model's function and gradients;
causality."""

import math

import pytest
import torch

from grokkit.fast_path import forward_fast
from grokkit.model import (
    ModelConfig,
    count_parameters,
    forward_reference,
    init_parameters,
)


def stacked_params(cfg: ModelConfig, members: int, dtype=torch.float64) -> dict:
    rows = [init_parameters(cfg, torch.Generator().manual_seed(100 + i)) for i in range(members)]
    return {k: torch.stack([r[k] for r in rows]).to(dtype).requires_grad_() for k in rows[0]}


def tokens_for(cfg: ModelConfig, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.stack(
        [x, torch.full_like(x, cfg.op_token), y, torch.full_like(x, cfg.eq_token)], dim=-1
    )


def test_paper_model_has_about_4e5_non_embedding_parameters():
    cfg = ModelConfig(n_elements=97)
    assert 3.5e5 < count_parameters(cfg, embeddings=False) < 4.5e5


@pytest.mark.parametrize("norm", ["pre", "post", "none"])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_fast_path_matches_reference_values_and_gradients(norm, layers, activation):
    cfg = ModelConfig(
        n_elements=13,
        n_layers=layers,
        d_model=24,
        n_heads=3,
        d_mlp=40,
        norm=norm,
        activation=activation,
    )
    E, B = 3, 17
    gen = torch.Generator().manual_seed(layers)
    x = torch.randint(0, 13, (E, B), generator=gen)
    y = torch.randint(0, 13, (E, B), generator=gen)
    params = stacked_params(cfg, E)
    ref = forward_reference(params, cfg, tokens_for(cfg, x, y))
    fast = forward_fast(params, cfg, x, y)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    weights = torch.randn(ref.shape, generator=gen, dtype=ref.dtype)
    g_ref = torch.autograd.grad((ref * weights).sum(), list(params.values()))
    g_fast = torch.autograd.grad((fast * weights).sum(), list(params.values()))
    for name, a, b in zip(params, g_ref, g_fast):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-10, msg=f"gradient of {name}")


def test_members_do_not_interact():
    cfg = ModelConfig(n_elements=7, d_model=16, n_heads=2, d_mlp=32)
    params = stacked_params(cfg, 2)
    x = torch.tensor([[1, 2, 3], [4, 5, 6]])
    y = torch.tensor([[0, 1, 2], [3, 4, 5]])
    both = forward_fast(params, cfg, x, y)
    alone = forward_fast({k: v[1:] for k, v in params.items()}, cfg, x[1:], y[1:])
    torch.testing.assert_close(both[1:], alone)


def test_causal_attention_later_tokens_never_change_earlier_positions():
    cfg = ModelConfig(n_elements=9, d_model=16, n_heads=2, d_mlp=32)
    params = stacked_params(cfg, 1)
    base = torch.tensor([[[3, 9, 4, 10]]])
    for position in range(4):
        changed = base.clone()
        changed[..., position] = (changed[..., position] + 1) % cfg.vocab_size
        a = forward_reference(params, cfg, base, all_positions=True)
        b = forward_reference(params, cfg, changed, all_positions=True)
        assert torch.equal(a[:, :, :position], b[:, :, :position]), f"token {position} leaked back"
        assert not torch.allclose(a[:, :, position], b[:, :, position])


def test_init_uses_only_its_generator():
    cfg = ModelConfig(n_elements=5, d_model=8, n_heads=2, d_mlp=16)
    torch.manual_seed(1)
    a = init_parameters(cfg, torch.Generator().manual_seed(7))
    torch.manual_seed(2)
    b = init_parameters(cfg, torch.Generator().manual_seed(7))
    c = init_parameters(cfg, torch.Generator().manual_seed(8))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["W_Q" if "W_Q" in a else "blocks.0.W_Q"], c["blocks.0.W_Q"])


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="multiple of n_heads"):
        ModelConfig(n_elements=5, d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="norm"):
        ModelConfig(n_elements=5, norm="middle")


def test_nanda_init_is_gaussian_with_their_scales():
    """--init nanda: progress-measures-paper's transformers.py: std 1/sqrt(d_model) for every
    matrix but W_U (1/sqrt(vocabulary)), biases zero; a sqrt(d_model) smaller W_E than PyTorch's."""
    from grokkit.model import init_parameters

    cfg = ModelConfig(n_elements=113, n_layers=1, d_model=128, n_heads=4, d_mlp=512, norm="none")
    w = init_parameters(cfg, torch.Generator().manual_seed(0), "nanda")
    for name, t in w.items():
        if name.rsplit(".", 1)[-1].startswith("b_"):
            assert torch.equal(t, torch.zeros_like(t)), name
        else:
            expected = 1 / math.sqrt(cfg.vocab_size if name == "W_U" else cfg.d_model)
            n = t.numel()  # 4 standard errors: W_pos has only 4 * 128 entries
            assert abs(t.std().item() / expected - 1) < 4 / math.sqrt(2 * n), name
            assert abs(t.mean().item()) < 4 * expected / math.sqrt(n), name
    pytorch = init_parameters(cfg, torch.Generator().manual_seed(0))
    assert abs(pytorch["W_E"].std().item() - 1) < 0.05  # nn.Embedding's N(0, 1)


def test_attention_softmax_equals_torch_and_does_not_depend_on_the_population():
    """The attention's short-axis softmax equals torch.softmax (values and gradient), and a
    member's weights are the same bits alone or stacked with others (97 rows: the size where a
    vectorised pass would leave a scalar tail)."""
    from grokkit.kernels import SmallSoftmax

    gen = torch.Generator().manual_seed(5)
    x = (torch.randn(3, 97, 4, 4, generator=gen) * 4).requires_grad_()
    w = SmallSoftmax.apply(x)
    torch.testing.assert_close(w, x.softmax(-1), rtol=1e-6, atol=1e-7)
    g = torch.randn(w.shape, generator=gen)
    (ours,) = torch.autograd.grad((w * g).sum(), x)
    (theirs,) = torch.autograd.grad((x.softmax(-1) * g).sum(), x)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        for i in range(3):
            assert torch.equal(SmallSoftmax.apply(x[i : i + 1]), w[i : i + 1]), f"member {i}"
