"""The decoder-only transformer of Appendix A.1.2, written for a *population* of E members.

Every weight carries a leading member axis (``W_Q: [E, d, d]``), so E independent models train in
lockstep as one set of batched matrix products. E = 1 is an ordinary single model.

Weights are a plain ``dict[str, Tensor]`` named after the math (TransformerLens style), so analysis
code reads like the paper and the forward passes are pure functions of (params, tokens).

This module is the model: its configuration, the shapes of its weights, how they start, and the
straightforward forward passes, ``forward_reference`` (grokkit's architecture) and
``forward_openai_reference`` (the authors' network). They support dropout and are the yardstick
of every test. ``grokkit.fast_path`` computes the same functions for a fraction of the work by
exploiting the shape of the task, on the CPU kernels of ``grokkit.kernels``.

Sequence layout: position 0 = x, 1 = operator, 2 = y, 3 = "=". The answer is read at position 3.
Shape letters below: E members, B examples, T positions, d = d_model, H heads of width dh,
m = d_mlp, V the vocabulary.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from grokkit.errors import ConfigError

SEQUENCE_LENGTH = 4  # x, op, y, =
OPENAI_SEQUENCE_LENGTH = 6  # openai-grok: <eos>, x, op, y, =, c
ANSWER_POSITION = 3

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}
NORMS = ("pre", "post", "none")
# "grokkit": the paper's text as read here (this module's docstring). "openai-grok": the network of
# the authors' released code (grok/transformer.py): post-LN blocks without biases, fixed sinusoidal
# positions, the sequence "<eos> x op y = c" scored after "="; see grokkit.openai_grok.
ARCHS = ("grokkit", "openai-grok")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the transformer. Defaults are the paper's: 2 layers, width 128, 4 heads."""

    n_elements: int  # operand/answer symbols; the vocabulary adds the operator and "="
    n_layers: int = 2
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512  # 4 * d_model, as in Vaswani et al.
    # "pre" (GPT-2 style, final LayerNorm), "post" (Vaswani et al. 2017) or "none" (no LayerNorm
    # at all, as in Nanda et al. 2023's modular-addition model)
    norm: str = "pre"
    activation: str = "relu"
    arch: str = "grokkit"
    # openai-grok only: its shared vocabulary (grokkit.openai_grok.token_layout); element i is
    # token first_element_token + i.
    vocabulary_size: int = 0
    first_element_token: int = 0
    operator_token: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.arch == "openai-grok":
            if self.norm != "post":
                raise ConfigError(
                    "--arch openai-grok has post-LN blocks (as the authors' code); "
                    f"--norm {self.norm} cannot be honoured"
                )
            if self.d_mlp != 4 * self.d_model:
                raise ConfigError(
                    f"--arch openai-grok has an MLP of width 4 * d_model = {4 * self.d_model}; "
                    f"--d-mlp {self.d_mlp} cannot be honoured"
                )
            if self.vocabulary_size < self.first_element_token + self.n_elements:
                raise ConfigError(
                    "openai-grok model config without its vocabulary (use RunConfig.model_config)"
                )
        if self.n_elements < 1:
            raise ConfigError(f"n_elements must be >= 1, got {self.n_elements}")
        if self.n_layers < 1:
            raise ConfigError(f"n_layers must be >= 1, got {self.n_layers}")
        if self.d_model < 1 or self.n_heads < 1 or self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model ({self.d_model}) must be a positive multiple of n_heads ({self.n_heads})"
            )
        if self.d_mlp < 1:
            raise ConfigError(f"d_mlp must be >= 1, got {self.d_mlp}")
        if self.norm not in NORMS:
            raise ConfigError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}"
            )

    @property
    def openai(self) -> bool:
        return self.arch == "openai-grok"

    @property
    def vocab_size(self) -> int:
        return self.vocabulary_size if self.openai else self.n_elements + 2

    @property
    def op_token(self) -> int:
        return self.operator_token if self.openai else self.n_elements

    @property
    def eq_token(self) -> int:
        return 1 if self.openai else self.n_elements + 1

    @property
    def element_offset(self) -> int:
        """Token id of element 0 (elements are consecutive tokens in both vocabularies)."""
        return self.first_element_token if self.openai else 0

    def element_tokens(self) -> slice:
        """The token ids of the elements, as a slice of the vocabulary axis."""
        return slice(self.element_offset, self.element_offset + self.n_elements)

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- weights: names, shapes, layout


def parameter_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of one member's weights, in a fixed order (the order of the flat parameter vector,
    so of every checkpoint: never reorder)."""
    if cfg.openai:
        return _openai_parameter_shapes(cfg)
    d, V, m = cfg.d_model, cfg.vocab_size, cfg.d_mlp
    shapes: dict[str, tuple[int, ...]] = {"W_E": (V, d), "W_pos": (SEQUENCE_LENGTH, d)}
    block = {
        "ln1_w": (d,),
        "ln1_b": (d,),
        "W_Q": (d, d),
        "b_Q": (d,),
        "W_K": (d, d),
        "b_K": (d,),
        "W_V": (d, d),
        "b_V": (d,),
        "W_O": (d, d),
        "b_O": (d,),
        "ln2_w": (d,),
        "ln2_b": (d,),
        "W_in": (d, m),
        "b_in": (m,),
        "W_out": (m, d),
        "b_out": (d,),
    }
    if cfg.norm == "none":
        block = {name: shape for name, shape in block.items() if not name.startswith("ln")}
    for layer in range(cfg.n_layers):
        shapes.update({f"blocks.{layer}.{name}": shape for name, shape in block.items()})
    if cfg.norm == "pre":
        shapes.update({"ln_f_w": (d,), "ln_f_b": (d,)})
    shapes["W_U"] = (d, V)
    return shapes


def _openai_parameter_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """grok/transformer.py: no biases in any projection, LayerNorms with weight and bias after
    each residual add, no final LayerNorm, positions a fixed buffer (not a parameter). Their
    per-head Wq/Wk/Wv [d_key, d] sit side by side as the columns of W_Q/W_K/W_V [d, d]."""
    d, V, m = cfg.d_model, cfg.vocab_size, cfg.d_mlp
    shapes: dict[str, tuple[int, ...]] = {"W_E": (V, d)}
    block = {
        "W_Q": (d, d),
        "W_K": (d, d),
        "W_V": (d, d),
        "W_O": (d, d),
        "ln1_w": (d,),
        "ln1_b": (d,),
        "W_in": (d, m),
        "W_out": (m, d),
        "ln2_w": (d,),
        "ln2_b": (d,),
    }
    for layer in range(cfg.n_layers):
        shapes.update({f"blocks.{layer}.{name}": shape for name, shape in block.items()})
    shapes["W_U"] = (d, V)
    return shapes


@functools.lru_cache(maxsize=None)
def parameter_layout(cfg: ModelConfig) -> tuple[tuple[str, int, int, tuple[int, ...]], ...]:
    """(name, offset, size, shape) of each weight in the flat parameter vector, in order."""
    layout, offset = [], 0
    for name, shape in parameter_shapes(cfg).items():
        size = math.prod(shape)
        layout.append((name, offset, size, shape))
        offset += size
    return tuple(layout)


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


def norm_groups(cfg: ModelConfig) -> dict[str, list[str]]:
    """The model's parts whose weight norms metrics.csv records: ``embed`` (W_E, W_pos), each
    ``block_L``, and ``unembed`` (the final LayerNorm, if any, and W_U)."""
    names = parameter_shapes(cfg)
    groups: dict[str, list[str]] = {"embed": [n for n in ("W_E", "W_pos") if n in names]}
    for name in names:
        if name.startswith("blocks."):
            groups.setdefault("block_" + name.split(".")[1], []).append(name)
    groups["unembed"] = [n for n in names if n.startswith("ln_f") or n == "W_U"]
    return groups


def count_parameters(cfg: ModelConfig, embeddings: bool = True) -> int:
    total = 0
    for name, shape in parameter_shapes(cfg).items():
        if not embeddings and name in ("W_E", "W_pos", "W_U"):
            continue
        total += math.prod(shape)
    return total


# Training holds per parameter: the weights, their gradient, Adam's two moments and a spare copy
# (a Grokfast filter, the decay target), each float32.
TRAINING_BYTES_PER_PARAMETER = 5 * 4
# Activations per example, layer and unit of width, forward and backward, at most 6 positions.
ACTIVATION_BYTES_PER_UNIT = 2 * 6 * 4


def training_bytes(cfg: ModelConfig, batch_size: int) -> int:
    """A generous estimate of the memory one run of this model takes to train."""
    units = 8 * cfg.d_model + 2 * cfg.d_mlp
    activations = batch_size * cfg.n_layers * units * ACTIVATION_BYTES_PER_UNIT
    return count_parameters(cfg) * TRAINING_BYTES_PER_PARAMETER + activations


def check_model_size(cfg: ModelConfig, batch_size: int, memory: int | None) -> None:
    """Refuse, before anything is allocated or written, a model that cannot train in half of
    ``memory`` bytes (this machine's, as for tables; None: no limit known)."""
    # ops is light, but model must not depend on it at import
    from grokkit.ops import byte_size_text

    needed = training_bytes(cfg, batch_size)
    if memory is not None and needed > memory // 2:
        raise ConfigError(
            f"a model of width {cfg.d_model}, MLP {cfg.d_mlp} and {cfg.n_layers} layers has "
            f"{count_parameters(cfg):,} parameters (about {byte_size_text(needed)} to train), "
            f"more than half of this machine's {byte_size_text(memory)}; "
            "choose a smaller --d-model, --d-mlp or --n-layers"
        )


# ---------------------------------------------------------------- initialisation

INIT_SCHEMES = ("pytorch", "nanda")


def check_init_scheme(scheme: str) -> None:
    if scheme not in INIT_SCHEMES:
        raise ConfigError(
            f"unknown init scheme {scheme!r}; choose one of: {', '.join(INIT_SCHEMES)}"
        )


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


@functools.lru_cache(maxsize=8)
def openai_positions(length: int, d_model: int, device: str) -> Tensor:
    """The authors' fixed sinusoidal position encoding, [length, d_model]."""
    from grokkit.openai_grok import position_encoding

    return position_encoding(length, d_model).to(device)


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
