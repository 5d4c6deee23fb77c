"""A plain PyTorch implementation of the paper's model, as a yardstick for grokkit's fast path.

Nothing clever on purpose: an ``nn.Module`` with GPT-2-style pre-LayerNorm blocks and a final
LayerNorm, learned position embeddings, ``nn.MultiheadAttention`` with a causal mask over the
whole 4-token sequence ``x op y =`` in every layer, a ReLU MLP of width 4d, biases everywhere,
an untied output layer without bias, and the loss at the ``=`` position. Trained with
``torch.optim.AdamW`` (lr 1e-3, betas (0.9, 0.98), weight decay 1, eps 1e-8) and a 10-update
linear warm-up through ``LambdaLR``: the same mathematics as grokkit's default recipe.

``PlainTransformer.load_grokkit(params)`` copies one member of grokkit's stacked weights in, so
both implementations compute the same function (checked by benchmarks/compare.py and
tests/test_fast_paths.py).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class Block(nn.Module):
    def __init__(self, d: int, heads: int, d_mlp: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, bias=True, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, d_mlp), nn.ReLU(), nn.Linear(d_mlp, d))

    def forward(self, h: Tensor, causal: Tensor) -> Tensor:
        a = self.ln1(h)
        h = h + self.attn(a, a, a, attn_mask=causal, need_weights=False)[0]
        return h + self.mlp(self.ln2(h))


class PlainTransformer(nn.Module):
    def __init__(
        self,
        vocab: int,
        d: int = 128,
        heads: int = 4,
        layers: int = 2,
        d_mlp: int = 512,
        seq: int = 4,
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(seq, d))
        self.blocks = nn.ModuleList(Block(d, heads, d_mlp) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.unembed = nn.Linear(d, vocab, bias=False)
        # True = masked out (may not attend): strictly upper triangle.
        self.register_buffer("causal", torch.ones(seq, seq, dtype=torch.bool).triu(1))

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens [B, 4] -> logits at the answer position [B, vocab]."""
        h = self.embed(tokens) + self.pos[: tokens.shape[1]]
        for block in self.blocks:
            h = block(h, self.causal)
        return self.unembed(self.ln_f(h))[:, -1]

    @torch.no_grad()
    def load_grokkit(self, params: dict[str, Tensor], member: int = 0) -> "PlainTransformer":
        """Copy member ``member`` of grokkit's stacked weights (x @ W convention) into this
        model."""
        p = {k: v[member] for k, v in params.items()}
        self.embed.weight.copy_(p["W_E"])
        self.pos.copy_(p["W_pos"])
        for i, blk in enumerate(self.blocks):
            b = f"blocks.{i}."
            blk.ln1.weight.copy_(p[b + "ln1_w"])
            blk.ln1.bias.copy_(p[b + "ln1_b"])  # noqa: E702
            blk.ln2.weight.copy_(p[b + "ln2_w"])
            blk.ln2.bias.copy_(p[b + "ln2_b"])  # noqa: E702
            blk.attn.in_proj_weight.copy_(
                torch.cat([p[b + "W_Q"], p[b + "W_K"], p[b + "W_V"]], 1).T
            )
            blk.attn.in_proj_bias.copy_(torch.cat([p[b + "b_Q"], p[b + "b_K"], p[b + "b_V"]]))
            blk.attn.out_proj.weight.copy_(p[b + "W_O"].T)
            blk.attn.out_proj.bias.copy_(p[b + "b_O"])
            blk.mlp[0].weight.copy_(p[b + "W_in"].T)
            blk.mlp[0].bias.copy_(p[b + "b_in"])  # noqa: E702
            blk.mlp[2].weight.copy_(p[b + "W_out"].T)
            blk.mlp[2].bias.copy_(p[b + "b_out"])  # noqa: E702
        self.ln_f.weight.copy_(p["ln_f_w"])
        self.ln_f.bias.copy_(p["ln_f_b"])
        self.unembed.weight.copy_(p["W_U"].T)
        return self


class PlainTrainer:
    """One training step = forward, loss at "=", backward, AdamW step, warm-up schedule step."""

    def __init__(
        self,
        model: PlainTransformer,
        lr: float = 1e-3,
        weight_decay: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-8,
        warmup: int = 10,
    ):
        self.model = model
        self.opt = torch.optim.AdamW(
            model.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=weight_decay
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0
        )

    def step(self, tokens: Tensor, labels: Tensor) -> Tensor:
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(tokens), labels)
        loss.backward()
        self.opt.step()
        self.sched.step()
        return loss.detach()


def tokens_for(x: Tensor, y: Tensor, op_token: int, eq_token: int) -> Tensor:
    return torch.stack([x, torch.full_like(x, op_token), y, torch.full_like(x, eq_token)], dim=-1)
