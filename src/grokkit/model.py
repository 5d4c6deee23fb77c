"""The decoder-only transformer of Appendix A.1.2, written for a *population* of E members.

Every weight carries a leading member axis (``W_Q: [E, d, d]``), so E independent models train in
lockstep as one set of batched matrix products. E = 1 is an ordinary single model.

Weights are a plain ``dict[str, Tensor]`` named after the math (TransformerLens style), so analysis
code reads like the paper and the forward passes are pure functions of (params, tokens).

This module is the model: how its weights start and the straightforward forward passes,
``forward_reference`` (grokkit's architecture) and ``forward_openai_reference`` (the authors'
network); its configuration and weight layout are ``grokkit.model_config``'s. The reference
passes support dropout and are the yardstick of every test. ``grokkit.fast_path`` computes the
same functions for a fraction of the work by exploiting the shape of the task, on the CPU kernels
of ``grokkit.kernels``.

Sequence layout: position 0 = x, 1 = operator, 2 = y, 3 = "=". The answer is read at position 3.
Shape letters below: E members, B examples, T positions, d = d_model, H heads of width dh,
m = d_mlp, V the vocabulary.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

# The configuration and weight layout, torch-free in grokkit.model_config, re-exported.
from grokkit.model_config import (
    ACTIVATION_BYTES_PER_UNIT as ACTIVATION_BYTES_PER_UNIT,
    ACTIVATION_NAMES as ACTIVATION_NAMES,
    ANSWER_POSITION as ANSWER_POSITION,
    ARCHS as ARCHS,
    INIT_SCHEMES as INIT_SCHEMES,
    NORMS as NORMS,
    OPENAI_SEQUENCE_LENGTH as OPENAI_SEQUENCE_LENGTH,
    SEQUENCE_LENGTH as SEQUENCE_LENGTH,
    TRAINING_BYTES_PER_PARAMETER as TRAINING_BYTES_PER_PARAMETER,
    ModelConfig as ModelConfig,
    check_init_scheme as check_init_scheme,
    check_model_size as check_model_size,
    count_parameters as count_parameters,
    norm_groups as norm_groups,
    parameter_layout as parameter_layout,
    parameter_shapes as parameter_shapes,
    training_bytes as training_bytes,
)

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}  # by ACTIVATION_NAMES


def unflatten(flat: Tensor, cfg: ModelConfig) -> dict[str, Tensor]:
    """Named views (no copies) into a flat parameter tensor [..., P]: leading axes are kept, so a
    population's [E, P] gives [E, ...] weights and a checkpoint's [P] one member's weights."""
    name, offset, size, shape = parameter_layout(cfg)[-1]
    if flat.shape[-1] != offset + size:
        raise ValueError(
            f"flat parameters have {flat.shape[-1]} entries, the model needs {offset + size}"
        )
    lead = flat.shape[:-1]
    return {
        name: flat[..., offset : offset + size].view(*lead, *shape)
        for name, offset, size, shape in parameter_layout(cfg)
    }


def init_parameters(
    cfg: ModelConfig, generator: torch.Generator, scheme: str = "pytorch"
) -> dict[str, Tensor]:
    """One member's initial weights, drawn from ``generator`` alone (never the global RNG).

    ``pytorch`` (the default; Power et al. used PyTorch's modules): PyTorch's default for
    nn.Embedding (N(0, 1)), nn.Linear (U(±1/sqrt(fan_in)) for weight and bias) and nn.LayerNorm
    (ones, zeros), so a plain nn.Module model starts alike.

    ``nanda``: Nanda et al. 2023's (progress-measures-paper, transformers.py): Gaussian weights,
    std 1/sqrt(d_model) for W_E, W_pos, W_Q, W_K, W_V, W_O, W_in and W_out, 1/sqrt(vocabulary)
    for W_U; biases zero (their attention has none; ours start at zero); LayerNorm ones, zeros.
    Their embeddings are sqrt(d_model) times smaller than PyTorch's, which matters for grokking.
    """
    check_init_scheme(scheme)
    params: dict[str, Tensor] = {}
    for name, shape in parameter_shapes(cfg).items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf.startswith("ln") and leaf.endswith("_w"):
            t = torch.ones(shape)
        elif leaf.startswith("ln") and leaf.endswith("_b"):
            t = torch.zeros(shape)
        elif scheme == "nanda":
            if leaf.startswith("b_"):
                t = torch.zeros(shape)
            else:
                fan = cfg.vocab_size if leaf == "W_U" else cfg.d_model
                t = torch.randn(shape, generator=generator) / math.sqrt(fan)
        elif leaf in ("W_E", "W_pos"):
            t = torch.randn(shape, generator=generator)
        else:  # linear weights and biases: fan_in is the input width of the matrix they belong to
            fan_in = cfg.d_mlp if leaf in ("W_out", "b_out") else cfg.d_model
            bound = 1.0 / math.sqrt(fan_in)
            t = (torch.rand(shape, generator=generator) * 2 - 1) * bound
        params[name] = t
    return params


# ---------------------------------------------------------------- building blocks (member-batched)
#
# Rows of every member are kept in one [E, R, ...] tensor, so each projection is one batched
# product. ``linear`` arguments take ``_linear`` here and grokkit.kernels.fast_linear in the fast
# path (the same function on oneDNN's GEMM, where that is faster).


def _linear(h: Tensor, W: Tensor, b: Tensor | None, relu: bool = False) -> Tensor:
    """h: [E, R, i] @ W: [E, i, o] + b: [E, o] -> [E, R, o], then ReLU if ``relu``."""
    out = torch.bmm(h, W) if b is None else torch.baddbmm(b.unsqueeze(1), h, W)  # [E, R, o]
    return F.relu(out) if relu else out


def _layer_norm(h: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """LayerNorm over the last axis with per-member affine weights w, b: [E, d]."""
    shape = (w.shape[0],) + (1,) * (h.dim() - 2) + (w.shape[1],)  # [E, 1, ..., 1, d]
    return torch.addcmul(b.view(shape), F.layer_norm(h, h.shape[-1:]), w.view(shape))


def _mlp(h: Tensor, p: dict[str, Tensor], b: str, activation: str, linear=_linear) -> Tensor:
    """The block's MLP: [E, R, d] -> [E, R, d]. ``linear`` fuses the ReLU when it can."""
    if activation == "relu":
        hidden = linear(h, p[b + "W_in"], p[b + "b_in"], relu=True)  # [E, R, m]
    else:
        hidden = ACTIVATIONS[activation](linear(h, p[b + "W_in"], p[b + "b_in"]))  # [E, R, m]
    return linear(hidden, p[b + "W_out"], p[b + "b_out"])  # [E, R, d]


class _Norms:
    """Where the LayerNorms sit: before each sublayer (pre), after each residual add (post), or
    nowhere (none: every LayerNorm is the identity and has no weights)."""

    def __init__(self, cfg: ModelConfig, p: dict[str, Tensor], layer: int):
        self.pre = cfg.norm == "pre"
        self.none = cfg.norm == "none"
        self.p, self.b = p, f"blocks.{layer}."

    def ln(self, which: str, h: Tensor) -> Tensor:
        if self.none:
            return h
        return _layer_norm(h, self.p[self.b + which + "_w"], self.p[self.b + which + "_b"])

    def attn_in(self, h: Tensor) -> Tensor:
        return self.ln("ln1", h) if self.pre else h

    def after_attn(self, h: Tensor, a: Tensor) -> Tensor:
        return h + a if self.pre else self.ln("ln1", h + a)

    def mlp_in(self, h: Tensor) -> Tensor:
        return self.ln("ln2", h) if self.pre else h

    def after_mlp(self, h: Tensor, m: Tensor) -> Tensor:
        return h + m if self.pre else self.ln("ln2", h + m)


def _dropout(
    x: Tensor, dropout: Tensor, rates: list[float], generators: list[torch.Generator]
) -> Tensor:
    """Per-member dropout of x [E, ...] at rates [E], masks from each member's own generator.
    Members with rate 0 draw nothing, so their generators advance as in a run alone."""
    keep = torch.stack(
        [
            torch.bernoulli(torch.full(x.shape[1:], 1 - r, device=x.device), generator=g)
            if r > 0
            else torch.ones(x.shape[1:], device=x.device)
            for r, g in zip(rates, generators)
        ]
    )  # [E, ...] of 0 and 1
    return x * keep / (1 - dropout).view(-1, *([1] * (x.dim() - 1)))


def _dropout_rates(dropout: Tensor | None, rates: list[float] | None) -> list[float] | None:
    """The rates as Python floats: the caller's, else read back once from ``dropout``."""
    if dropout is not None and rates is None:
        return dropout.tolist()
    return rates


def _unembed(cfg: ModelConfig, p: dict[str, Tensor], h: Tensor, linear=_linear) -> Tensor:
    """[E, R, d] -> logits [E, R, V] (after the final LayerNorm of a pre-LN model)."""
    if cfg.norm == "pre":
        h = _layer_norm(h, p["ln_f_w"], p["ln_f_b"])
    return linear(h, p["W_U"], None)


# ---------------------------------------------------------------- the straightforward model


def forward_reference(
    params: dict[str, Tensor],
    cfg: ModelConfig,
    tokens: Tensor,
    dropout: Tensor | None = None,
    generators: list[torch.Generator] | None = None,
    all_positions: bool = False,
    dropout_rates: list[float] | None = None,
) -> Tensor:
    """Logits at the answer position. tokens: [E, B, 4] -> [E, B, vocab]
    (or [E, B, 4, vocab] with ``all_positions``, for analysis and the causality test).

    dropout: per-member residual dropout rates [E] (each sublayer's output, before it is added to
    the residual stream, as in Vaswani et al.); masks come from each member's own generator.
    dropout_rates: the same rates as Python floats, when the caller has them: deciding which
    members draw masks then reads nothing back from the device (no sync per step on a GPU).
    """
    E, B, T = tokens.shape
    d, H, dh = cfg.d_model, cfg.n_heads, cfg.d_head
    # Each member looks its tokens up in its own rows of the stacked [E * V, d] embedding table.
    offsets = (torch.arange(E, device=tokens.device) * cfg.vocab_size).view(E, 1, 1)
    W_E = params["W_E"].reshape(E * cfg.vocab_size, d)  # [E*V, d]
    h = W_E[(tokens + offsets).view(-1)].view(E, B, T, d)  # [E, B, T, d]
    h = h + params["W_pos"][:, :T].unsqueeze(1)  # [E, B, T, d]
    causal = torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril()  # [T, T]
    dropout_rates = _dropout_rates(dropout, dropout_rates)
    use_dropout = dropout is not None and any(r > 0 for r in dropout_rates)

    def drop(x: Tensor) -> Tensor:
        return _dropout(x, dropout, dropout_rates, generators) if use_dropout else x

    for layer in range(cfg.n_layers):
        b, norms = f"blocks.{layer}.", _Norms(cfg, params, layer)
        a_in = norms.attn_in(h).reshape(E, B * T, d)  # [E, B*T, d]
        # queries, keys and values, each [E, B, T, H, dh]
        q = _linear(a_in, params[b + "W_Q"], params[b + "b_Q"]).view(E, B, T, H, dh)
        k = _linear(a_in, params[b + "W_K"], params[b + "b_K"]).view(E, B, T, H, dh)
        v = _linear(a_in, params[b + "W_V"], params[b + "b_V"]).view(E, B, T, H, dh)
        scores = torch.einsum("ebqhc,ebkhc->ebhqk", q, k) / math.sqrt(dh)  # [E, B, H, T, T]
        weights = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)  # [E, B, H, T, T]
        z = torch.einsum("ebhqk,ebkhc->ebqhc", weights, v).reshape(E, B * T, d)  # [E, B*T, d]
        attn = drop(_linear(z, params[b + "W_O"], params[b + "b_O"]))  # [E, B*T, d]
        h = norms.after_attn(h.reshape(E, B * T, d), attn)  # [E, B*T, d]
        mlp = drop(_mlp(norms.mlp_in(h), params, b, cfg.activation))  # [E, B*T, d]
        h = norms.after_mlp(h, mlp).view(E, B, T, d)  # [E, B, T, d]
    if all_positions:
        return _unembed(cfg, params, h.reshape(E, B * T, d)).view(E, B, T, -1)  # [E, B, T, V]
    return _unembed(cfg, params, h[:, :, ANSWER_POSITION])  # [E, B, V]


# ---------------------------------------------------------------- the authors' network
#
# grok/transformer.py, block by block: a1 = LN(x + MHA(x)); a2 = LN(a1 + dropout(FFN(a1))) with no
# bias in any projection, no final LayerNorm, embeddings plus fixed sinusoidal positions. The
# sequence is "<eos> x op y = c" (6 tokens); the logits at "=" and at c are scored (they predict c
# and the closing <eos>). grokkit.openai_grok holds the tokens, the S5 convention and the split.


_OPENAI_POSITIONS: dict[tuple[int, int, str], Tensor] = {}


def openai_positions(length: int, d_model: int, device: str) -> Tensor:
    """The authors' fixed sinusoidal position encoding, [length, d_model], built once per shape
    and device (a plain dictionary, not functools.lru_cache, which torch.compile traces through)."""
    key = (length, d_model, device)
    if key not in _OPENAI_POSITIONS:
        from grokkit.openai_grok import position_encoding

        _OPENAI_POSITIONS[key] = position_encoding(length, d_model).to(device)
    return _OPENAI_POSITIONS[key]


def openai_tokens(cfg: ModelConfig, x: Tensor, y: Tensor, c: Tensor) -> Tensor:
    """Element indices [E, B] -> the six input tokens [E, B, 6]: <eos> x op y = c."""
    o = cfg.element_offset
    full = functools.partial(torch.full_like, x)
    return torch.stack(
        [full(0), x + o, full(cfg.op_token), y + o, full(cfg.eq_token), c + o], dim=-1
    )


def _mlp_nobias(h: Tensor, p: dict[str, Tensor], b: str, activation: str, linear) -> Tensor:
    """The authors' feed-forward block, without biases: [E, R, d] -> [E, R, d]."""
    if activation == "relu":
        hidden = linear(h, p[b + "W_in"], None, relu=True)  # [E, R, m]
    else:
        hidden = ACTIVATIONS[activation](linear(h, p[b + "W_in"], None))  # [E, R, m]
    return linear(hidden, p[b + "W_out"], None)  # [E, R, d]


def forward_openai_reference(
    params: dict[str, Tensor],
    cfg: ModelConfig,
    tokens: Tensor,
    dropout: Tensor | None = None,
    generators: list[torch.Generator] | None = None,
    all_positions: bool = False,
    dropout_rates: list[float] | None = None,
) -> Tensor:
    """The authors' forward pass. tokens: [E, B, 6] -> logits at "=" and at c [E, B, 2, vocab]
    (every position [E, B, 6, vocab] with ``all_positions``). Dropout, as theirs, only on the
    feed-forward output (their attention dropout is commented out)."""
    E, B, T = tokens.shape
    d, H, dh = cfg.d_model, cfg.n_heads, cfg.d_head
    offsets = (torch.arange(E, device=tokens.device) * cfg.vocab_size).view(E, 1, 1)
    W_E = params["W_E"].reshape(E * cfg.vocab_size, d)  # [E*V, d]
    h = W_E[(tokens + offsets).view(-1)].view(E, B, T, d)  # [E, B, T, d]
    positions = openai_positions(T, d, str(tokens.device)).to(h.dtype)  # [T, d]
    h = (h + positions).reshape(E, B * T, d)  # [E, B*T, d]
    causal = torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril()  # [T, T]
    dropout_rates = _dropout_rates(dropout, dropout_rates)
    use_dropout = dropout is not None and any(r > 0 for r in dropout_rates)
    for layer in range(cfg.n_layers):
        b = f"blocks.{layer}."
        q = _linear(h, params[b + "W_Q"], None).view(E, B, T, H, dh)  # [E, B, T, H, dh]
        k = _linear(h, params[b + "W_K"], None).view(E, B, T, H, dh)
        v = _linear(h, params[b + "W_V"], None).view(E, B, T, H, dh)
        scores = torch.einsum("ebqhc,ebkhc->ebhqk", q, k) / math.sqrt(dh)  # [E, B, H, T, T]
        weights = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)  # [E, B, H, T, T]
        z = torch.einsum("ebhqk,ebkhc->ebqhc", weights, v).reshape(E, B * T, d)  # [E, B*T, d]
        attn = _linear(z, params[b + "W_O"], None)  # [E, B*T, d]
        h = _layer_norm(h + attn, params[b + "ln1_w"], params[b + "ln1_b"])  # [E, B*T, d]
        m = _mlp_nobias(h, params, b, cfg.activation, _linear)  # [E, B*T, d]
        if use_dropout:
            m = _dropout(m, dropout, dropout_rates, generators)
        h = _layer_norm(h + m, params[b + "ln2_w"], params[b + "ln2_b"])  # [E, B*T, d]
    h = h.view(E, B, T, d)
    if all_positions:
        return _linear(h.reshape(E, B * T, d), params["W_U"], None).view(E, B, T, -1)
    answer = h[:, :, 4:6].reshape(E, B * 2, d)  # positions "=" and c: [E, 2B, d]
    return _linear(answer, params["W_U"], None).view(E, B, 2, -1)  # [E, B, 2, V]
