"""The fast forward passes: grokkit.model's functions for a fraction of the work.

Used for training without dropout and for all evaluation; the equivalence tests
(tests/test_fast_paths.py, tests/test_model.py, tests/test_openai_grok.py) hold each to its
reference in grokkit.model, values and gradients.

The saving comes from the shape of the task, not from the hardware. With causal attention the
positions before y (``x`` and the operator; openai-grok: <eos>, x, op) depend on ``x`` alone, so
their activations are computed once per element (at most ``n_elements`` rows) instead of once per
example; in the first layer each position's queries, keys and values depend on one token only, so
they are computed per token; in the last layer only the positions read out (``=``; openai-grok:
``=`` and c) need a query, an attention output and an MLP. Rows are kept in one tensor per layer,
so each projection is a single batched product, by the ``linear`` the caller's
grokkit.backend.Backend hands in (PyTorch's own by default).

Shape letters: E members, B examples, n elements, d = d_model, H heads of width dh.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from grokkit.kernels import SmallSoftmax
from grokkit.model import (
    OPENAI_SEQUENCE_LENGTH,
    ModelConfig,
    _layer_norm,
    _linear,
    _mlp,
    _mlp_nobias,
    _Norms,
    _unembed,
    openai_positions,
)


def _fused(p: dict[str, Tensor], b: str, names: str) -> tuple[Tensor, Tensor | None]:
    """Weights and biases of several projections side by side, e.g. names="QKV": one product.
    The bias is None for a network without them (the authors')."""
    W = torch.cat([p[f"{b}W_{n}"] for n in names], dim=2)  # [E, d, len(names) * d]
    if f"{b}b_{names[0]}" not in p:
        return W, None
    bias = torch.cat([p[f"{b}b_{n}"] for n in names], dim=1)  # [E, len(names) * d]
    return W, bias


def _gather_rows(table: Tensor, flat_index: Tensor, E: int, B: int) -> Tensor:
    """table: [E, n, c], flat_index: [E*B] into the flattened [E*n] rows -> [E, B, c]."""
    return table.reshape(-1, table.shape[-1]).index_select(0, flat_index).view(E, B, -1)


def _attend(q: Tensor, keys: list[Tensor], values: list[Tensor], scale: float) -> Tensor:
    """Attention of one query position over a few visible positions.

    q: [E, R, H, dh]; keys/values: one [E, R, H, dh] (or broadcastable) tensor per visible position.
    Returns [E, R, H * dh]. Over at most 4 positions, a handful of element-wise products beats a
    general attention kernel.
    """
    scores = [(q * k).sum(-1) for k in keys]  # each [E, R, H] (constant positions broadcast)
    # The softmax runs along the last axis (one row per query and head), so each member's result
    # is computed identically whatever E is: a softmax over the leading axis would be vectorised
    # across rows, and which rows fall in the scalar tail then depends on E (different rounding,
    # which Adam amplifies; see test_population_member_equals_the_same_run_trained_alone).
    w = SmallSoftmax.apply(torch.stack(torch.broadcast_tensors(*scores), dim=-1) * scale)
    w = w.unsqueeze(-1).unbind(-2)  # P x [E, R, H, 1]
    out = w[0] * values[0]
    for i in range(1, len(values)):
        out = out + w[i] * values[i]
    return out.flatten(-2)  # [E, R, H*dh]


# ---------------------------------------------------------------- grokkit's architecture

Params = dict[str, Tensor]  # named [E, ...] weights, as grokkit.model.unflatten makes them
Heads = tuple[int, int]  # (H, dh): the shape a row's last axis d unflattens to


def _heads(t: Tensor, hd: Heads) -> Tensor:
    """[E, R, d] -> [E, R, H, dh], for hd = (H, dh)."""
    return t.unflatten(-1, hd)


def _input_tables(p: Params, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Layer 0's input rows as tables. Every position's input is a single token plus its position
    embedding: positions 0 and 2 by element ([E, n, d] each), positions 1 and 3 constant ([E, 1, d]
    each)."""
    W_E, W_pos = p["W_E"], p["W_pos"]
    t0 = W_E[:, :n] + W_pos[:, 0:1]  # [E, n, d]
    t1 = W_E[:, n : n + 1] + W_pos[:, 1:2]  # [E, 1, d]
    t2 = W_E[:, :n] + W_pos[:, 2:3]  # [E, n, d]
    t3 = W_E[:, n + 1 : n + 2] + W_pos[:, 3:4]  # [E, 1, d]
    return t0, t1, t2, t3


def _first_attention(
    qkv: Tensor, fx: Tensor, fy: Tensor, n: int, B: int, hd: Heads, scale: float
) -> Tensor:
    """Layer 0's attention, from the queries, keys and values of the input tables' rows
    ([E, 2n+2, 3d], rows as in ``_input_tables``) -> the outputs of all rows z [E, 2n+2B, d]."""
    E = qkv.shape[0]
    # One split, not four slices: its backward is one concatenation instead of four zero-filled
    # full-size gradients added together.
    qkv0, qkv1, qkv2, qkv3 = qkv.split([n, 1, n, 1], dim=1)
    q0, k0, v0 = qkv0.chunk(3, dim=-1)  # per x: [E, n, d] each
    q1, k1, v1 = qkv1.chunk(3, dim=-1)  # constant: [E, 1, d] each
    qkv2 = _gather_rows(qkv2, fy, E, B)  # per example, by y: [E, B, 3d]
    q2, k2, v2 = qkv2.chunk(3, dim=-1)
    q3, k3, v3 = qkv3.chunk(3, dim=-1)  # constant: [E, 1, d] each
    kv0x = _gather_rows(torch.cat([k0, v0], dim=-1), fx, E, B)  # [E, B, 2d]
    k0x, v0x = kv0x.chunk(2, dim=-1)
    return torch.cat(
        [
            v0,  # position 0 attends only to itself
            _attend(
                _heads(q1, hd),
                [_heads(k0, hd), _heads(k1, hd)],
                [_heads(v0, hd), _heads(v1, hd)],
                scale,
            ),
            _attend(
                _heads(q2, hd),
                [_heads(k0x, hd), _heads(k1, hd), _heads(k2, hd)],
                [_heads(v0x, hd), _heads(v1, hd), _heads(v2, hd)],
                scale,
            ),
            _attend(
                _heads(q3, hd),
                [_heads(k0x, hd), _heads(k1, hd), _heads(k2, hd), _heads(k3, hd)],
                [_heads(v0x, hd), _heads(v1, hd), _heads(v2, hd), _heads(v3, hd)],
                scale,
            ),
        ],
        dim=1,
    )  # [E, 2n+2B, d]


def first_block(
    p: Params, cfg: ModelConfig, fx: Tensor, fy: Tensor, B: int, hd: Heads, scale: float, linear
) -> Tensor:
    """Layer 0, computed on the input tables (each position's queries, keys and values depend on
    one token only) -> h [E, 2n+2B, d]: [per-x position 0 | per-x position 1 | per-example
    position 2 | per-example position 3]."""
    n, d = cfg.n_elements, cfg.d_model
    t0, t1, t2, t3 = _input_tables(p, n)
    E = t0.shape[0]
    tables = torch.cat([t0, t1, t2, t3], dim=1)  # [E, 2n+2, d]
    norms = _Norms(cfg, p, 0)
    b = "blocks.0."
    qkv = linear(norms.attn_in(tables), *_fused(p, b, "QKV"))  # [E, 2n+2, 3d]
    z = _first_attention(qkv, fx, fy, n, B, hd, scale)  # [E, 2n+2B, d]
    residual = torch.cat(
        [t0, t1.expand(E, n, d), _gather_rows(t2, fy, E, B), t3.expand(E, B, d)], dim=1
    )  # [E, 2n+2B, d]
    h = norms.after_attn(residual, linear(z, p[b + "W_O"], p[b + "b_O"]))
    mlp = _mlp(norms.mlp_in(h), p, b, cfg.activation, linear)
    return norms.after_mlp(h, mlp)  # [E, 2n+2B, d]


def _per_example_kv(
    k0: Tensor, k1: Tensor, v0: Tensor, v1: Tensor, fx: Tensor, E: int, B: int
) -> tuple[Tensor, ...]:
    """Keys and values of positions 0 and 1 live in per-x tables [E, n, d]; each example's rows:
    k0x, k1x, v0x, v1x [E, B, d]."""
    per_x = torch.cat([k0, k1, v0, v1], dim=-1)  # [E, n, 4d]
    return _gather_rows(per_x, fx, E, B).chunk(4, dim=-1)  # [E, B, d] each


def middle_block(
    p: Params,
    cfg: ModelConfig,
    layer: int,
    h: Tensor,
    fx: Tensor,
    B: int,
    hd: Heads,
    scale: float,
    linear,
) -> Tensor:
    """A block after the first and before the last: h [E, 2n+2B, d] -> the same rows."""
    E, n = h.shape[0], cfg.n_elements
    b, norms = f"blocks.{layer}.", _Norms(cfg, p, layer)
    rows = [n, n, B, B]  # positions 0, 1 (per x), 2, 3 (per example)
    a_in = norms.attn_in(h)  # [E, 2n+2B, d]
    q, k, v = linear(a_in, *_fused(p, b, "QKV")).chunk(3, dim=-1)
    _, q1, q2, q3 = q.split(rows, dim=1)  # position 0 needs no query
    k0, k1, k2, k3 = k.split(rows, dim=1)
    v0, v1, v2, v3 = v.split(rows, dim=1)
    k0x, k1x, v0x, v1x = _per_example_kv(k0, k1, v0, v1, fx, E, B)
    z3 = _attend(
        _heads(q3, hd),
        [_heads(k0x, hd), _heads(k1x, hd), _heads(k2, hd), _heads(k3, hd)],
        [_heads(v0x, hd), _heads(v1x, hd), _heads(v2, hd), _heads(v3, hd)],
        scale,
    )  # [E, B, d]
    z = torch.cat(
        [
            v0,
            _attend(
                _heads(q1, hd),
                [_heads(k0, hd), _heads(k1, hd)],
                [_heads(v0, hd), _heads(v1, hd)],
                scale,
            ),
            _attend(
                _heads(q2, hd),
                [_heads(k0x, hd), _heads(k1x, hd), _heads(k2, hd)],
                [_heads(v0x, hd), _heads(v1x, hd), _heads(v2, hd)],
                scale,
            ),
            z3,
        ],
        dim=1,
    )  # [E, 2n+2B, d]
    h = norms.after_attn(h, linear(z, p[b + "W_O"], p[b + "b_O"]))
    return norms.after_mlp(h, _mlp(norms.mlp_in(h), p, b, cfg.activation, linear))


def last_block(
    p: Params, cfg: ModelConfig, h: Tensor, fx: Tensor, B: int, hd: Heads, scale: float, linear
) -> Tensor:
    """The last block, restricted to the answer position, and the unembedding: keys and values for
    every row, a query, attention output and MLP for position 3 ("=") only. h [E, 2n+2B, d] ->
    logits [E, B, vocab]."""
    E, n = h.shape[0], cfg.n_elements
    layer = cfg.n_layers - 1
    b, norms = f"blocks.{layer}.", _Norms(cfg, p, layer)
    rows = [n, n, B, B]  # positions 0, 1 (per x), 2, 3 (per example)
    a_in = norms.attn_in(h)  # [E, 2n+2B, d]
    k, v = linear(a_in, *_fused(p, b, "KV")).chunk(2, dim=-1)  # [E, 2n+2B, d]
    a_in3 = a_in.split([2 * n + B, B], dim=1)[1]  # [E, B, d]
    q3 = linear(a_in3, p[b + "W_Q"], p[b + "b_Q"])  # [E, B, d]
    k0, k1, k2, k3 = k.split(rows, dim=1)
    v0, v1, v2, v3 = v.split(rows, dim=1)
    k0x, k1x, v0x, v1x = _per_example_kv(k0, k1, v0, v1, fx, E, B)
    z3 = _attend(
        _heads(q3, hd),
        [_heads(k0x, hd), _heads(k1x, hd), _heads(k2, hd), _heads(k3, hd)],
        [_heads(v0x, hd), _heads(v1x, hd), _heads(v2, hd), _heads(v3, hd)],
        scale,
    )  # [E, B, d]
    h3 = h.split([2 * n + B, B], dim=1)[1]  # [E, B, d]
    h3 = norms.after_attn(h3, linear(z3, p[b + "W_O"], p[b + "b_O"]))
    mlp = _mlp(norms.mlp_in(h3), p, b, cfg.activation, linear)
    h = norms.after_mlp(h3, mlp)  # [E, B, d]
    return _unembed(cfg, p, h, linear)  # [E, B, vocab]


def forward_fast(
    params: dict[str, Tensor], cfg: ModelConfig, x: Tensor, y: Tensor, linear=_linear
) -> Tensor:
    """Logits at the answer position for equations ``x op y =``. x, y: [E, B] -> [E, B, vocab].

    Same function as ``grokkit.model.forward_reference`` without dropout (see the module docstring
    for why it is cheaper). Rows are kept in one tensor per layer: [per-x position 0 | per-x
    position 1 | per-example position 2 | per-example position 3], so each projection is a single
    bmm.
    """
    E, B = x.shape
    n, hd = cfg.n_elements, (cfg.n_heads, cfg.d_head)
    scale = 1.0 / math.sqrt(cfg.d_head)
    member_offsets = (torch.arange(E, device=x.device) * n).view(E, 1)
    fx = (x + member_offsets).view(-1)  # row of each example's x in a flattened [E*n] table
    fy = (y + member_offsets).view(-1)
    h = first_block(params, cfg, fx, fy, B, hd, scale, linear)  # [E, 2n+2B, d]
    for layer in range(1, cfg.n_layers - 1):
        h = middle_block(params, cfg, layer, h, fx, B, hd, scale, linear)
    if cfg.n_layers > 1:
        return last_block(params, cfg, h, fx, B, hd, scale, linear)  # [E, B, vocab]
    # A single layer: position 3's rows are the last B.
    return _unembed(cfg, params, h[:, 2 * n + B :], linear)  # [E, B, vocab]


# ---------------------------------------------------------------- the authors' network


def _openai_tables(params: Params, cfg: ModelConfig) -> Tensor:
    """The first layer's input as tables: every position holds one token plus its position, so
    its rows are [<eos> | x per element | op | y per element | "=" | c per element]: [E, 3n+3, d].
    """
    n, d, o = cfg.n_elements, cfg.d_model, cfg.element_offset
    W_E = params["W_E"]
    pe = openai_positions(OPENAI_SEQUENCE_LENGTH, d, str(W_E.device)).to(W_E.dtype)  # [6, d]
    elements = W_E[:, o : o + n]  # [E, n, d]

    def token(i: int, pos: int) -> Tensor:  # one constant token at a position: [E, 1, d]
        return W_E[:, i : i + 1] + pe[pos]

    rows = [token(0, 0), elements + pe[1], token(cfg.op_token, 2)]
    rows += [elements + pe[3], token(cfg.eq_token, 4), elements + pe[5]]
    return torch.cat(rows, dim=1)  # [E, 3n+3, d]


def _table_split(t: Tensor, n: int) -> tuple[Tensor, ...]:
    """[E, 3n+3, c] -> the six positions' tables: [E, 1 | n | 1 | n | 1 | n, c]."""
    return t.split([1, n, 1, n, 1, n], dim=1)


def _openai_post_ln(
    params: Params, cfg: ModelConfig, b: str, h: Tensor, z: Tensor, linear
) -> Tensor:
    """The rest of a post-LN block after attention: LN(h + W_O z), then LN(a1 + FFN(a1))."""
    h = _layer_norm(
        h + linear(z, params[b + "W_O"], None), params[b + "ln1_w"], params[b + "ln1_b"]
    )
    m = _mlp_nobias(h, params, b, cfg.activation, linear)
    return _layer_norm(h + m, params[b + "ln2_w"], params[b + "ln2_b"])


def _openai_logits(params: Params, h45: Tensor, linear) -> Tensor:
    """Rows of "=" then of c [E, 2B, d] -> logits [E, B, 2, vocab]."""
    E, B2, _ = h45.shape
    logits = linear(h45, params["W_U"], None)  # [E, 2B, vocab]
    return logits.view(E, 2, B2 // 2, -1).transpose(1, 2)


def _heads_qkv(qkv: Tensor, hd: Heads) -> tuple[Tensor, Tensor, Tensor]:
    """[E, R, 3d] -> q, k, v as [E, R, H, dh]."""
    return tuple(_heads(t, hd) for t in qkv.chunk(3, dim=-1))


def openai_first_layer(
    params: Params,
    cfg: ModelConfig,
    fx: Tensor,
    fy: Tensor,
    fc: Tensor,
    B: int,
    hd: Heads,
    linear,
) -> Tensor:
    """Layer 0 on the token tables: queries, keys and values are computed once per token (3n+3
    rows, not one row per example and position) and fetched per example. Returns the rows
    [E, 1 + 2n + 3B, d] of ``forward_openai_fast``, or its logits when it is the only layer."""
    E, n = params["W_E"].shape[0], cfg.n_elements
    scale = 1.0 / math.sqrt(cfg.d_head)
    b = "blocks.0."
    tables = _openai_tables(params, cfg)  # [E, 3n+3, d]
    qkv0, qkvx, qkv2, qkvy, qkv4, qkvc = _table_split(linear(tables, *_fused(params, b, "QKV")), n)
    qkv3, qkv5 = _gather_rows(qkvy, fy, E, B), _gather_rows(qkvc, fc, E, B)  # [E, B, 3d]
    kv1x = _gather_rows(qkvx[..., cfg.d_model :], fx, E, B)  # [E, B, 2d]
    q, k, v = zip(*(_heads_qkv(t, hd) for t in (qkv0, qkvx, qkv2, qkv3, qkv4, qkv5)))
    k1x, v1x = (_heads(t, hd) for t in kv1x.chunk(2, dim=-1))
    ks, vs = [k[0], k1x, k[2], k[3], k[4], k[5]], [v[0], v1x, v[2], v[3], v[4], v[5]]
    z4 = _attend(q[4], ks[:5], vs[:5], scale)  # [E, B, d]
    z5 = _attend(q[5], ks, vs, scale)  # [E, B, d]
    t0, tx, t2, ty, t4, tc = _table_split(tables, n)
    h4 = t4.expand(E, B, -1)
    h5 = _gather_rows(tc, fc, E, B)
    if cfg.n_layers == 1:
        return _openai_logits(
            params,
            _openai_post_ln(params, cfg, b, torch.cat([h4, h5], 1), torch.cat([z4, z5], 1), linear),
            linear,
        )
    z = torch.cat(
        [
            v[0].flatten(2),  # <eos> attends only to itself
            _attend(q[1], [k[0], k[1]], [v[0], v[1]], scale),  # x: [E, n, d]
            _attend(q[2], [k[0], k[1], k[2]], [v[0], v[1], v[2]], scale),  # op after x: [E, n, d]
            _attend(q[3], ks[:4], vs[:4], scale),  # y: [E, B, d]
            z4,
            z5,
        ],
        dim=1,
    )  # [E, 1 + 2n + 3B, d]
    h = torch.cat([t0, tx, t2.expand(E, n, -1), _gather_rows(ty, fy, E, B), h4, h5], dim=1)
    return _openai_post_ln(params, cfg, b, h, z, linear)


def openai_later_layer(
    params: Params,
    cfg: ModelConfig,
    layer: int,
    h: Tensor,
    fx: Tensor,
    B: int,
    hd: Heads,
    linear,
) -> Tensor:
    """A layer after the first on the rows [position 0 | per-x 1 | per-x 2 | per-example 3 | 4 |
    5]; the last one computes queries, attention outputs and the MLP for positions 4 and 5 only
    and returns the logits."""
    E, n = h.shape[0], cfg.n_elements
    scale = 1.0 / math.sqrt(cfg.d_head)
    b, last = f"blocks.{layer}.", layer == cfg.n_layers - 1
    rows = [1, n, n, B, B, B]
    if last:  # queries only for "=" and c, below
        k, v = linear(h, *_fused(params, b, "KV")).chunk(2, dim=-1)  # [E, R, d] each
    else:
        q, k, v = linear(h, *_fused(params, b, "QKV")).chunk(3, dim=-1)  # [E, R, d] each
    k0, k1, k2, k3, k4, k5 = (_heads(t, hd) for t in k.split(rows, dim=1))
    v0, v1, v2, v3, v4, v5 = (_heads(t, hd) for t in v.split(rows, dim=1))
    # Keys and values of positions 1 and 2 live in per-x tables; fetch each example's rows.
    per_x = torch.cat([k1, k2, v1, v2], dim=2).flatten(2)  # [E, n, 4d]
    k1x, k2x, v1x, v2x = (_heads(t, hd) for t in _gather_rows(per_x, fx, E, B).chunk(4, dim=-1))
    ks, vs = [k0, k1x, k2x, k3, k4, k5], [v0, v1x, v2x, v3, v4, v5]
    if last:  # only "=" and c are read out: their rows alone need queries and go on
        h45 = h.split([1 + 2 * n + B, 2 * B], dim=1)[1]  # [E, 2B, d]
        q4, q5 = (_heads(t, hd) for t in linear(h45, params[b + "W_Q"], None).chunk(2, dim=1))
        z45 = torch.cat([_attend(q4, ks[:5], vs[:5], scale), _attend(q5, ks, vs, scale)], dim=1)
        return _openai_logits(params, _openai_post_ln(params, cfg, b, h45, z45, linear), linear)
    q = [_heads(t, hd) for t in q.split(rows, dim=1)]
    z = torch.cat(
        [
            v0.flatten(2),  # <eos> attends only to itself
            _attend(q[1], [k0, k1], [v0, v1], scale),
            _attend(q[2], [k0, k1, k2], [v0, v1, v2], scale),
            _attend(q[3], ks[:4], vs[:4], scale),
            _attend(q[4], ks[:5], vs[:5], scale),
            _attend(q[5], ks, vs, scale),
        ],
        dim=1,
    )  # [E, 1 + 2n + 3B, d]
    return _openai_post_ln(params, cfg, b, h, z, linear)


def forward_openai_fast(
    params: dict[str, Tensor], cfg: ModelConfig, x: Tensor, y: Tensor, c: Tensor, linear=_linear
) -> Tensor:
    """``grokkit.model.forward_openai_reference`` without dropout, for equations given as element
    indices x, y, c [E, B] -> logits at "=" and at c [E, B, 2, vocab].

    Cheaper by the task's shape, as ``forward_fast``: with causal attention position 0 (<eos>) is
    one row for all examples and positions 1 and 2 (x, op) depend on x alone, so they are computed
    once per element; the first layer's queries, keys and values depend on one token each, so
    they are computed per token; in the last layer only positions 4 and 5 need queries and an MLP.
    Rows per layer: [position 0 | per-x 1 | per-x 2 | per-example 3 | 4 | 5]."""
    E, B = x.shape
    hd = (cfg.n_heads, cfg.d_head)
    member_rows = (torch.arange(E, device=x.device) * cfg.n_elements).view(E, 1)
    fx, fy, fc = ((t + member_rows).view(-1) for t in (x, y, c))  # rows of [E*n] tables
    h = openai_first_layer(params, cfg, fx, fy, fc, B, hd, linear)
    for layer in range(1, cfg.n_layers):
        h = openai_later_layer(params, cfg, layer, h, fx, B, hd, linear)
    return h  # the last layer returned the logits [E, B, 2, vocab]
