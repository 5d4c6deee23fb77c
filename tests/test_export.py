"""The TransformerLens export computes grokkit's function, saves, loads and refuses bad files."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from grokkit.errors import InputError
from grokkit.model import ANSWER_POSITION, ModelConfig, forward_reference, init_parameters

pytest.importorskip("transformer_lens")

from grokkit.export import (  # noqa: E402 - after the skip: these tests need TransformerLens
    load_hooked_transformer,
    save_hooked_transformer,
    to_hooked_transformer,
    transformer_lens as export_tl,
)

N = 7
CASES = [(norm, act) for norm in ("pre", "post") for act in ("relu", "gelu")] + [("none", "relu")]
ATOL = 1e-5


def _config(norm: str, activation: str) -> ModelConfig:
    return ModelConfig(
        n_elements=N, n_layers=2, d_model=16, n_heads=4, d_mlp=32, norm=norm, activation=activation
    )


def _weights(cfg: ModelConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights whose LayerNorm parameters and biases are far from ones and zeros, so a
    weight mapped to the wrong place (or dropped) changes the logits."""
    gen = torch.Generator().manual_seed(seed)
    weights = init_parameters(cfg, gen)
    for name, value in weights.items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf.startswith("ln") or leaf.startswith("b_"):
            weights[name] = value + 0.5 * torch.randn(value.shape, generator=gen)
    return weights


def _table(cfg: ModelConfig) -> torch.Tensor:
    """Every equation x op y = of the task, [n^2, 4]."""
    x, y = torch.meshgrid(torch.arange(N), torch.arange(N), indexing="ij")
    op = torch.full((N * N,), cfg.op_token)
    eq = torch.full((N * N,), cfg.eq_token)
    return torch.stack([x.flatten(), op, y.flatten(), eq], dim=1)


def _grokkit_logits(cfg: ModelConfig, weights: dict, tokens: torch.Tensor) -> torch.Tensor:
    """grokkit's logits at every position, [B, 4, V]."""
    member = {k: v.unsqueeze(0) for k, v in weights.items()}
    with torch.no_grad():
        return forward_reference(member, cfg, tokens.unsqueeze(0), all_positions=True)[0]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("norm,activation", CASES)
def test_logits_equal_grokkits_on_the_whole_table(norm, activation):
    cfg = _config(norm, activation)
    weights = _weights(cfg)
    tokens = _table(cfg)
    model = to_hooked_transformer(cfg, weights)
    with torch.no_grad():
        logits = model(tokens)
    assert logits.shape == (N * N, 4, cfg.vocab_size)
    member = {k: v.unsqueeze(0) for k, v in weights.items()}
    with torch.no_grad():
        answer = forward_reference(member, cfg, tokens.unsqueeze(0))[0]
    assert _max_diff(logits[:, ANSWER_POSITION], answer) < ATOL
    assert _max_diff(logits, _grokkit_logits(cfg, weights, tokens)) < ATOL
    # The comparison can fail: a second set of weights gives clearly different logits.
    assert _max_diff(logits, _grokkit_logits(cfg, _weights(cfg, seed=1), tokens)) > 1e-2


def test_gelu_is_the_exact_erf_form():
    # grokkit uses F.gelu (erf); the tanh approximation differs by ~1e-3 near x = 1.
    cfg = _config("pre", "gelu")
    model = to_hooked_transformer(cfg, _weights(cfg))
    x = torch.linspace(-3, 3, 61)
    assert torch.equal(model.blocks[0].mlp.act_fn(x), F.gelu(x))


def test_export_copies_the_weights():
    cfg = _config("pre", "relu")
    weights = _weights(cfg)
    model = to_hooked_transformer(cfg, weights)
    before = model.embed.W_E.detach().clone()
    weights["W_E"].add_(1.0)  # training on after the export must not change the export
    assert torch.equal(model.embed.W_E.detach(), before)


def test_wrong_weights_are_refused():
    cfg = _config("pre", "relu")
    weights = _weights(cfg)
    del weights["blocks.1.W_in"]
    with pytest.raises(InputError, match="blocks.1.W_in"):
        to_hooked_transformer(cfg, weights)
    weights = _weights(cfg)
    weights["W_U"] = weights["W_U"].T
    with pytest.raises(InputError, match="W_U"):
        to_hooked_transformer(cfg, weights)


def test_post_ln_weights_are_real_parameters():
    cfg = _config("post", "relu")
    weights = _weights(cfg)
    model = to_hooked_transformer(cfg, weights)
    state = model.state_dict()
    assert torch.equal(state["blocks.1.ln2_post.w"], weights["blocks.1.ln2_w"])
    assert "ln_final.w" not in state
    names = {name for name, _ in model.named_parameters()}
    assert {"blocks.0.ln1_post.w", "blocks.0.ln1_post.b", "blocks.0.ln2_post.b"} <= names


@pytest.mark.parametrize("norm,activation", [("pre", "gelu"), ("post", "relu")])
def test_save_and_load_give_the_same_logits(tmp_path, norm, activation):
    cfg = _config(norm, activation)
    weights = _weights(cfg)
    tokens = _table(cfg)
    model = to_hooked_transformer(cfg, weights)
    out = tmp_path / "export"
    save_hooked_transformer(model, out, cfg, {"run": "runs/a", "step": 123})
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "state_dict.pt"]
    loaded = load_hooked_transformer(out)
    with torch.no_grad():
        # Exactly equal: same weights, same computation (post-LN hooks rebuilt on load).
        assert torch.equal(loaded(tokens), model(tokens))
        assert _max_diff(loaded(tokens), _grokkit_logits(cfg, weights, tokens)) < ATOL
    config = json.loads((out / "config.json").read_text())
    assert config["source"] == {"run": "runs/a", "step": 123}
    assert config["grokkit_model_config"] == cfg.to_dict()


def test_run_with_cache_and_reset_hooks_keep_the_model(tmp_path):
    cfg = _config("post", "gelu")
    weights = _weights(cfg)
    tokens = _table(cfg)
    model = to_hooked_transformer(cfg, weights)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
        pattern = cache["blocks.0.attn.hook_pattern"]  # [batch, head, query, key]
        assert pattern.shape == (N * N, cfg.n_heads, 4, 4)
        above_diagonal = torch.ones(4, 4, dtype=torch.bool).triu(1)
        assert bool((pattern[..., above_diagonal] == 0).all())
        assert torch.allclose(pattern.sum(-1), torch.ones(()), atol=1e-6)
        # Post-LN: the cached resid_mid is the normalised stream LN1(resid_pre + attn_out).
        block = model.blocks[0]
        summed = cache["blocks.0.hook_resid_pre"] + cache["blocks.0.hook_attn_out"]
        assert _max_diff(cache["blocks.0.hook_resid_mid"], block.ln1_post(summed)) < ATOL
        model.reset_hooks()  # keeps permanent hooks: the post-LNs stay
        assert _max_diff(model(tokens), _grokkit_logits(cfg, weights, tokens)) < ATOL
        assert torch.equal(model(tokens), logits)
        # Without its permanent hooks the model is a different function: they do the work.
        model.reset_hooks(including_permanent=True)
        assert _max_diff(model(tokens), logits) > 1e-2


def test_a_missing_folder_is_one_input_error(tmp_path):
    with pytest.raises(InputError, match="config.json"):
        load_hooked_transformer(tmp_path / "nowhere")


def _saved_export(tmp_path: Path) -> Path:
    cfg = _config("post", "relu")
    out = tmp_path / "export"
    save_hooked_transformer(to_hooked_transformer(cfg, _weights(cfg)), out, cfg, {"step": 1})
    return out


def test_damaged_files_are_one_input_error_naming_the_file(tmp_path):
    out = _saved_export(tmp_path)
    state_path = out / "state_dict.pt"
    state_path.write_bytes(b"\x00garbage, not a torch file\xff" * 10)
    with pytest.raises(InputError, match="state_dict.pt is damaged") as info:
        load_hooked_transformer(out)
    assert "\n" not in str(info.value)
    state_path.unlink()
    with pytest.raises(InputError, match="state_dict.pt does not exist"):
        load_hooked_transformer(out)

    out = _saved_export(tmp_path / "again")
    torch.save({"embed.W_E": torch.zeros(3)}, out / "state_dict.pt")  # the wrong weights
    with pytest.raises(InputError, match="state_dict.pt is damaged"):
        load_hooked_transformer(out)
    (out / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="config.json is damaged"):
        load_hooked_transformer(out)
    (out / "config.json").write_text('{"format": "something else"}')
    with pytest.raises(InputError, match="config.json is damaged"):
        load_hooked_transformer(out)


class _RunsCode:
    """Unpickling this calls os.system: a state_dict.pt holding it must never be unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [None, 2, 4])
def test_a_malicious_pickle_is_refused_and_never_run(tmp_path, protocol):
    out = _saved_export(tmp_path)
    marker = tmp_path / "code_ran"
    payload = {"embed.W_E": _RunsCode(marker)}
    if protocol is None:  # torch.save's zip format
        torch.save(payload, out / "state_dict.pt")
    else:  # a bare pickle; protocol 4's framing is refused before the global is even read
        (out / "state_dict.pt").write_bytes(pickle.dumps(payload, protocol=protocol))
    refusal = "state_dict.pt is damaged" + (".*could run code" if protocol != 4 else "")
    with pytest.raises(InputError, match=refusal) as info:
        load_hooked_transformer(out)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_missing_transformer_lens_is_one_input_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformer_lens", None)  # makes the import fail
    with pytest.raises(InputError, match=r"pip install 'grokkit\[transformer-lens\]'"):
        export_tl._import_transformer_lens()


def test_importing_the_export_package_does_not_import_transformer_lens():
    code = (
        "import sys; sys.modules['transformer_lens'] = None; "
        "import grokkit.export, grokkit.export.transformer_lens; print('ok')"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_authors_network_exports_with_equal_logits():
    """--arch openai-grok: post-LN by hooks, the fixed sinusoids as W_pos, zero biases; the
    HookedTransformer's logits on <eos> x op y = c equal grokkit's at all six positions."""
    from grokkit.config import RunConfig
    from grokkit.model import forward_openai_reference, openai_tokens

    cfg = (
        RunConfig(operation="x+y", modulus=N, n_layers=2, d_model=16, n_heads=4)
        .with_changes(arch="openai-grok")
        .model_config(N)
    )
    weights = _weights(cfg)
    x, y = torch.meshgrid(torch.arange(N), torch.arange(N), indexing="ij")
    x, y = x.flatten(), y.flatten()
    tokens = openai_tokens(cfg, x[None], y[None], ((x + y) % N)[None])
    model = to_hooked_transformer(cfg, weights)
    with torch.no_grad():
        logits = model(tokens[0])
        ours = forward_openai_reference(
            {k: v[None] for k, v in weights.items()}, cfg, tokens, all_positions=True
        )[0]
    assert logits.shape == (N * N, 6, cfg.vocab_size)
    assert _max_diff(logits, ours) < ATOL
