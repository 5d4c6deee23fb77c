"""``--arch openai-grok``: the authors' released network, tokens, S5 convention, split and batches,
each checked against an independent construction written here from their files' definitions."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import tiny_run

from grokkit import openai_grok, runs
from grokkit.config import RunConfig
from grokkit.data import make_table
from grokkit.errors import ConfigError
from grokkit.fast_path import forward_openai_fast
from grokkit.model import (
    count_parameters,
    forward_openai_reference,
    init_parameters,
    openai_tokens,
)
from grokkit.population import Population
from grokkit.train import train_runs


def openai_run(**changes) -> RunConfig:
    return tiny_run(**changes).with_changes(arch="openai-grok")


# ---------------------------------------------------------------- their module structure, by hand


class Head(nn.Module):
    def __init__(self, d: int, dk: int):
        super().__init__()
        self.Wq, self.Wk, self.Wv = (nn.Linear(d, dk, bias=False) for _ in range(3))
        self.dk = dk

    def forward(self, h, mask):
        q, k, v = self.Wq(h), self.Wk(h), self.Wv(h)
        a = (q @ k.transpose(-2, -1)) / math.sqrt(self.dk)
        return a.masked_fill(mask == 0, float("-inf")).softmax(-1) @ v


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = nn.ModuleList(Head(d, d // heads) for _ in range(heads))
        self.Wo = nn.Linear(d, d, bias=False)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ffn = nn.Sequential(
            nn.Linear(d, 4 * d, bias=False), nn.ReLU(), nn.Linear(4 * d, d, bias=False)
        )

    def forward(self, h, mask):
        a = self.norm1(h + self.Wo(torch.cat([head(h, mask) for head in self.heads], dim=-1)))
        return self.norm2(a + self.ffn(a))


class TheirTransformer(nn.Module):
    """grok/transformer.py's Transformer, rebuilt from plain modules (post-LN, no biases,
    sinusoidal positions by their formula, untied output layer without bias)."""

    def __init__(self, layers: int, heads: int, d: int, vocab: int, context: int = 6):
        super().__init__()
        self.embedding = nn.Embedding(vocab, d)
        rows = [
            [
                math.sin(p / 10000 ** (i / d))
                if i % 2 == 0
                else math.cos(p / 10000 ** ((i - 1) / d))
                for i in range(d)
            ]
            for p in range(context)
        ]
        self.register_buffer("pe", torch.tensor(rows, dtype=torch.float32))
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.linear = nn.Linear(d, vocab, bias=False)

    def forward(self, tokens):
        T = tokens.shape[-1]
        h = self.embedding(tokens) + self.pe[:T]
        mask = torch.ones(T, T).tril()
        for block in self.blocks:
            h = block(h, mask)
        return self.linear(h)

    def load_grokkit(self, w: dict[str, torch.Tensor], heads: int) -> None:
        """grokkit's [d, d] W_Q holds head i's Wq.weight.T in columns i*dk:(i+1)*dk."""
        with torch.no_grad():
            self.embedding.weight.copy_(w["W_E"])
            self.linear.weight.copy_(w["W_U"].T)
            for layer, block in enumerate(self.blocks):
                b = f"blocks.{layer}."
                dk = w[b + "W_Q"].shape[1] // heads
                for i, head in enumerate(block.heads):
                    for ours, theirs in (("W_Q", head.Wq), ("W_K", head.Wk), ("W_V", head.Wv)):
                        theirs.weight.copy_(w[b + ours][:, i * dk : (i + 1) * dk].T)
                block.Wo.weight.copy_(w[b + "W_O"].T)
                block.ffn[0].weight.copy_(w[b + "W_in"].T)
                block.ffn[2].weight.copy_(w[b + "W_out"].T)
                for norm, name in ((block.norm1, "ln1"), (block.norm2, "ln2")):
                    norm.weight.copy_(w[b + name + "_w"])
                    norm.bias.copy_(w[b + name + "_b"])


def _weights(cfg, seed=0):
    # Random LayerNorm weights too, so a mix-up of ln1 and ln2 cannot hide.
    w = init_parameters(cfg, torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed + 1)
    for k in w:
        if ".ln" in k:
            w[k] = w[k] + 0.3 * torch.randn(w[k].shape, generator=g)
    return w


@pytest.mark.parametrize("op", ["x/y", "s5_xy"])
@pytest.mark.parametrize("layers", [1, 2])
def test_logits_equal_the_authors_module_structure(op, layers):
    config = RunConfig(operation=op, n_layers=layers, d_model=32, n_heads=4).with_changes(
        arch="openai-grok"
    )
    table = make_table(op, 97, "openai-grok")
    cfg = config.model_config(table.n_elements)
    w = _weights(cfg)
    theirs = TheirTransformer(layers, 4, 32, cfg.vocab_size)
    theirs.load_grokkit(w, 4)
    rows = torch.randperm(table.n_equations, generator=torch.Generator().manual_seed(0))[:300]
    x, y, c = table.x[rows], table.y[rows], table.result[rows]
    tokens = openai_tokens(cfg, x[None], y[None], c[None])  # [1, 300, 6]
    with torch.no_grad():
        expected = theirs(tokens[0])  # [300, 6, V]
    params = {k: v[None] for k, v in w.items()}
    every = forward_openai_reference(params, cfg, tokens, all_positions=True)[0]
    torch.testing.assert_close(every, expected, rtol=1e-5, atol=1e-5)
    fast = forward_openai_fast(params, cfg, x[None], y[None], c[None])[0]  # [300, 2, V]
    torch.testing.assert_close(fast, expected[:, 4:6], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_fast_gradients_equal_the_reference_in_float64(layers):
    # The fast pass computes layer 0 per token and the last layer's queries for two positions
    # only; the gradient of every weight must still be the reference's, for two members at once.
    config = RunConfig(operation="s5_xy", n_layers=layers, d_model=16, n_heads=2).with_changes(
        arch="openai-grok"
    )
    table = make_table("s5_xy", 97, "openai-grok")
    cfg = config.model_config(table.n_elements)
    members = [_weights(cfg, seed) for seed in (0, 5)]
    rows = torch.randint(0, table.n_equations, (2, 64), generator=torch.Generator().manual_seed(1))
    x, y, c = table.x[rows], table.y[rows], table.result[rows]
    weights = torch.randn(2, 64, 2, cfg.vocab_size, dtype=torch.float64)  # a loss reading all

    def grads(forward):
        params = {
            k: torch.stack([m[k] for m in members]).double().requires_grad_() for k in members[0]
        }
        (forward(params) * weights).sum().backward()
        return {k: p.grad for k, p in params.items()}

    fast = grads(lambda p: forward_openai_fast(p, cfg, x, y, c))
    ref = grads(lambda p: forward_openai_reference(p, cfg, openai_tokens(cfg, x, y, c)))
    assert fast.keys() == ref.keys()
    for k in ref:
        torch.testing.assert_close(fast[k], ref[k], rtol=1e-9, atol=1e-10, msg=k)


def test_paper_shape_has_their_parameter_count_and_vocabulary():
    cfg = RunConfig().with_changes(arch="openai-grok").model_config(97)
    # Per layer: Q, K, V, O (4 d^2), the MLP (8 d^2), two LayerNorms (4 d); no biases.
    d = 128
    assert count_parameters(cfg, embeddings=False) == 2 * (12 * d * d + 4 * d) == 394_240
    vocab = openai_grok.vocabulary("x/y", 97)
    assert len(vocab) == cfg.vocab_size == 239
    assert vocab[:2] == ("<|eos|>", "=")
    assert vocab[cfg.op_token] == "/"
    assert vocab[cfg.element_offset] == "0" and vocab[cfg.element_offset + 96] == "96"
    s5 = RunConfig(operation="s5_xy").with_changes(arch="openai-grok").model_config(120)
    assert vocab[s5.element_offset] == "01234" and vocab[s5.element_offset + 119] == "43210"
    assert vocab[s5.op_token] == "s5"


def test_s5_tables_follow_their_convention():
    """s5: c = b[a] on one-line arrays; s5conj: sympy's a*b*~a, sympy applying the left factor
    first, so c(i) = a^-1(b(a(i))); s5aba: a(b(a(i)))."""
    perms = [np.array(p) for p in itertools.permutations(range(5))]
    index = {tuple(p): i for i, p in enumerate(perms)}
    expected = {"s5_xy": [], "s5_xyx^-1": [], "s5_xyx": []}
    for a, b in itertools.product(perms, repeat=2):
        inv = np.argsort(a)
        expected["s5_xy"].append(index[tuple(b[a])])
        expected["s5_xyx^-1"].append(index[tuple(inv[b[a]])])
        expected["s5_xyx"].append(index[tuple(a[b[a]])])
    for op, want in expected.items():
        assert make_table(op, 97, "openai-grok").result.tolist() == want, op
    # ... which for s5_xy is grokkit's product with the operands swapped.
    ours = make_table("s5_xy").result.view(120, 120)
    assert torch.equal(make_table("s5_xy", 97, "openai-grok").result.view(120, 120), ours.T)


@pytest.mark.parametrize("op", ["x/y", "x+y", "s5_xy"])
def test_split_is_their_shuffle_of_their_equation_list(op):
    """Their list: operands in product order (division over (answer, divisor) as 'b*c / b = c'),
    shuffled by RandomState(seed).shuffle, the first round(N * fraction) for training."""
    if op == "s5_xy":
        names = ["".join(map(str, p)) for p in itertools.permutations(range(5))]
        eqs = [(a, b) for a in names for b in names]
    elif op == "x/y":
        eqs = [(str(b * c % 97), str(b)) for c in range(97) for b in range(97) if b != 0]
    else:
        eqs = [(str(a), str(b)) for a in range(97) for b in range(97)]
    rng = np.random.RandomState(0)
    rng.shuffle(eqs)
    n_train = round(len(eqs) * (30 / 100.0))
    expected = sorted(eqs[:n_train])
    table = make_table(op, 97, "openai-grok")
    names = table.operation.element_names
    config = RunConfig(operation=op, train_fraction=0.3, seed=5, split_seed=0).with_changes(
        arch="openai-grok"
    )
    train, val = config.split(table.n_equations)
    got = sorted((names[table.x[i]], names[table.y[i]]) for i in train.tolist())
    assert got == expected
    assert len(train) + len(val) == table.n_equations


def test_batches_cut_each_epoch_with_a_smaller_last_batch():
    pop = Population([openai_run(train_fraction=0.5)])  # 60 training equations, batch 16
    member = pop.members[0]
    sizes, seen = [], []
    for _ in range(8):  # two epochs: 16, 16, 16, 12, then again
        positions = member.next_batch_positions(pop.batch_size, within_epoch=True)
        sizes.append(len(positions))
        seen.append(positions)
    assert sizes == [16, 16, 16, 12] * 2
    first_epoch = torch.cat(seen[:4]).sort().values
    assert torch.equal(first_epoch, torch.arange(member.n_train))


def test_accuracy_counts_an_equation_only_when_every_token_after_eq_is_right():
    pop = Population([openai_run()])
    for _ in range(30):
        pop.step()
    cfg, t = pop.model_config, pop.table
    logits = forward_openai_reference(
        pop.parameters(), cfg, openai_tokens(cfg, t.x[None], t.y[None], pop.eval_targets)
    )[0]
    right = (logits[:, 0].argmax(-1) == t.result + cfg.element_offset) & (
        logits[:, 1].argmax(-1) == 0
    )
    loss = 0.5 * (
        F.cross_entropy(logits[:, 0], t.result + cfg.element_offset, reduction="none")
        + F.cross_entropy(logits[:, 1], torch.zeros_like(t.result), reduction="none")
    )
    val = ~pop.train_mask[0]
    ev = pop.evaluate()
    assert ev["val_accuracy"][0].item() == pytest.approx(right[val].float().mean().item(), abs=1e-6)
    assert ev["val_loss"][0].item() == pytest.approx(loss[val].mean().item(), rel=1e-4)


def test_population_member_equals_its_solo_run():
    configs = [
        openai_run(seed=0),
        openai_run(seed=1, lr=3e-3),
        openai_run(seed=2, weight_noise=0.01),
    ]
    together = Population(configs)
    for _ in range(12):
        together.step()
    for i, c in enumerate(configs):
        alone = Population([c])
        for _ in range(12):
            alone.step()
        torch.testing.assert_close(
            together.flat[i], alone.flat[0], rtol=1e-4, atol=1e-5, msg=f"member {i}"
        )


def test_resume_equals_a_straight_run(tmp_path):
    train_runs([openai_run(steps=40, snapshot_every=20)], [tmp_path / "straight"], progress=False)
    train_runs([openai_run(steps=20)], [tmp_path / "split"], progress=False)
    state = runs.load_checkpoint(tmp_path / "split")
    train_runs([openai_run(steps=40)], [tmp_path / "split"], states=[state], progress=False)
    a, b = runs.load_checkpoint(tmp_path / "straight"), runs.load_checkpoint(tmp_path / "split")
    assert torch.equal(a["flat"], b["flat"])
    assert a["position"] == b["position"]
    # A snapshot is the weights of that step: the split run's checkpoint at 20.
    assert torch.equal(runs.load_snapshot(tmp_path / "straight", 20), state["flat"])


def test_dropout_acts_on_the_feed_forward_output_only():
    """Their attention dropout is commented out: with the feed-forward output zero (W_out = 0),
    dropout changes nothing; with it, dropout does act."""
    cfg = openai_run().model_config(11)
    params = {k: v[None] for k, v in _weights(cfg).items()}
    gen = torch.Generator().manual_seed(0)
    tokens = openai_tokens(cfg, *(torch.randint(0, 11, (1, 20), generator=gen) for _ in range(3)))

    def with_dropout(p):
        return forward_openai_reference(
            p,
            cfg,
            tokens,
            dropout=torch.tensor([0.5]),
            generators=[torch.Generator().manual_seed(1)],
            dropout_rates=[0.5],
        )

    no_mlp = {k: torch.zeros_like(v) if k.endswith("W_out") else v for k, v in params.items()}
    torch.testing.assert_close(
        with_dropout(no_mlp), forward_openai_reference(no_mlp, cfg, tokens), rtol=0, atol=1e-6
    )
    assert not torch.allclose(
        with_dropout(params), forward_openai_reference(params, cfg, tokens), atol=1e-3
    )


def test_options_it_cannot_honour_are_refused():
    with pytest.raises(ConfigError, match="--norm pre"):
        RunConfig().with_changes(arch="openai-grok", norm="pre")
    with pytest.raises(ConfigError, match="--d-mlp 100"):
        RunConfig().with_changes(arch="openai-grok", d_mlp=100)
    with pytest.raises(ConfigError, match="--init nanda"):
        RunConfig().with_changes(arch="openai-grok", init="nanda")


def test_cli_refuses_in_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    for extra in (["--norm", "pre"], ["--arch", "transformer"]):
        args = ["--arch", "openai-grok", *extra] if extra[0] != "--arch" else extra
        proc = subprocess.run(
            [sys.executable, "-m", "grokkit.cli", "train", *args, "--out", str(out)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert not out.exists()


def test_config_json_records_the_arch_and_its_parameter_count(tmp_path):
    train_runs([openai_run(steps=2)], [tmp_path / "r"], progress=False)
    stored = json.loads((tmp_path / "r" / "config.json").read_text())
    assert stored["arch"] == "openai-grok" and stored["norm"] == "post"
    d = 32
    assert 2 * (12 * d * d + 4 * d) in stored["derived"].values()


def test_load_run_scores_the_table_as_training_does(tmp_path):
    """grokkit.load_run on an openai-grok run: predictions are element indices read at the
    element tokens, and accuracy (answer and closing <eos>) equals what training recorded."""
    from grokkit import load_run

    train_runs([openai_run(steps=60, eval_every=60)], [tmp_path / "r"], progress=False)
    run = load_run(tmp_path / "r")
    model = run.model()
    train, val = run.split()
    last = run.metrics.iloc[-1]
    assert model.accuracy(val) == pytest.approx(last["val_accuracy"], abs=1e-9)
    assert model.accuracy(train) == pytest.approx(last["train_accuracy"], abs=1e-9)
    assert model.logits().shape == (run.table.n_equations, model.config.vocab_size)
