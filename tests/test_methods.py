"""Methods that followed the paper: Grokfast filters, ⊥Grad, StableMax, the softmax-collapse
diagnostic, the initialisation scale and the LayerNorm-free model, each against its definition."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_run

from grokkit import runs
from grokkit.api import load_run
from grokkit.cli import main
from grokkit.errors import ConfigError
from grokkit.interventions import GrokfastEMA, GrokfastMA, OrthogonalGrad
from grokkit.losses import softmax_collapse, softmax_cross_entropy, stablemax_cross_entropy
from grokkit.population import Population
from grokkit.train import train_runs


def _grads(n: int, E: int = 2, P: int = 5) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(E, P, generator=gen, dtype=torch.float64) for _ in range(n)]


def test_grokfast_ema_against_a_hand_computation():
    g = _grads(4)
    alpha, lamb = [0.9, 0.5], [2.0, 3.0]
    f = GrokfastEMA(alpha, lamb)
    a, la = (
        torch.tensor(alpha, dtype=torch.float64).view(-1, 1),
        torch.tensor(lamb, dtype=torch.float64).view(-1, 1),
    )
    mu = g[0]  # the filter starts at the first gradient
    torch.testing.assert_close(f(g[0], None), g[0] + la * mu)
    for t in range(1, 4):
        mu = a * mu + (1 - a) * g[t]
        torch.testing.assert_close(f(g[t], None), g[t] + la * mu)


def test_grokfast_ma_against_a_hand_computation():
    g = _grads(12)  # four windows: the kept sum is renewed at each full window
    f = GrokfastMA(window=3, lamb=[5.0, 1.0])
    la = torch.tensor([5.0, 1.0], dtype=torch.float64).view(-1, 1)
    assert torch.equal(f(g[0], None), g[0]) and torch.equal(f(g[1], None), g[1])  # window not full
    for t in range(2, 12):
        mean = (g[t - 2] + g[t - 1] + g[t]) / 3  # the last three, this one included
        torch.testing.assert_close(f(g[t], None), g[t] + la * mean)


@pytest.mark.parametrize("stop", [2, 5])  # before and after the window filled
def test_grokfast_ma_state_round_trip_continues_exactly(stop):
    g = _grads(9)
    straight = GrokfastMA(window=4, lamb=[5.0, 1.0])
    expected = [straight(x, None) for x in g]
    first = GrokfastMA(window=4, lamb=[5.0, 1.0])
    for x in g[:stop]:
        first(x, None)
    second = GrokfastMA(window=4, lamb=[5.0, 1.0])
    for i in range(2):
        second.load_member_state(i, first.member_state(i))
    for x, want in zip(g[stop:], expected[stop:]):
        torch.testing.assert_close(second(x, None), want, rtol=0, atol=1e-15)


def test_orthogonal_grad_is_orthogonal_per_tensor_and_keeps_each_norm():
    gen = torch.Generator().manual_seed(1)
    segments = [(0, 3), (3, 4), (7, 2)]
    w, g = (
        torch.randn(2, 9, generator=gen, dtype=torch.float64),
        torch.randn(2, 9, generator=gen, dtype=torch.float64),
    )
    out = OrthogonalGrad([size for _, size in segments])(g, w)
    for offset, size in segments:
        part = slice(offset, offset + size)
        for e in range(2):
            assert abs(float(out[e, part] @ w[e, part])) < 1e-12
            assert float(out[e, part].norm()) == pytest.approx(float(g[e, part].norm()), rel=1e-12)
            # g_perp is g minus its projection on w, rescaled: it lies in span(g, w).
            want = g[e, part] - (g[e, part] @ w[e, part]) / (w[e, part] @ w[e, part]) * w[e, part]
            torch.testing.assert_close(out[e, part], want * g[e, part].norm() / want.norm())


def test_stablemax_equals_its_formula_and_never_returns_nan():
    logits = torch.tensor([[2.0, -1.0, 0.0], [-3.0, 0.5, 4.0]])
    labels = torch.tensor([0, 1])
    s = lambda x: x + 1 if x >= 0 else 1 / (1 - x)  # noqa: E731
    for row, label, loss in zip(
        logits.tolist(), labels.tolist(), stablemax_cross_entropy(logits, labels).tolist()
    ):
        assert loss == pytest.approx(-math.log(s(row[label]) / sum(map(s, row))), rel=1e-6)
    extreme = torch.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], requires_grad=True)
    loss = stablemax_cross_entropy(extreme, torch.tensor([1, 2]))
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(extreme.grad).all()
    assert loss[0] > 10 and loss[1] < 1e-3  # a confident wrong and a confident right answer


def test_softmax_collapse_on_constructed_logits():
    logits = torch.tensor([[0.0, -200.0, -300.0], [0.0, -5.0, -8.0], [40.0, -80.0, 0.0]])
    assert softmax_collapse(logits).tolist() == [True, False, True]
    # Where it collapses, the float32 cross-entropy gradient of the right answer is exactly zero.
    x = logits.clone().requires_grad_()
    softmax_cross_entropy(x, torch.tensor([0, 0, 0])).sum().backward()
    assert torch.equal(x.grad[0], torch.zeros(3)) and x.grad[1].abs().sum() > 0


def test_init_scale_multiplies_every_initial_weight():
    one, two = Population([tiny_run()]), Population([tiny_run(init_scale=2.5)])
    torch.testing.assert_close(two.flat, 2.5 * one.flat, rtol=0, atol=0)


@pytest.mark.parametrize(
    "changes",
    [
        {"grad_filter": "ema"},
        {"grad_filter": "ma", "grad_filter_window": 4},
        {"orthogonal_grad": True, "grad_filter": "ema"},
        {"loss": "stablemax"},
        {"muon": True, "l2": 0.01},
        {"fixed_norm": True, "init_scale": 2.0},
    ],
)
def test_resume_with_a_method_equals_a_straight_run(tmp_path, changes):
    train_runs([tiny_run(steps=30, **changes)], [tmp_path / "straight"], progress=False)
    train_runs([tiny_run(steps=10, **changes)], [tmp_path / "split"], progress=False)
    state = runs.load_checkpoint(tmp_path / "split")
    train_runs(
        [tiny_run(steps=30, **changes)], [tmp_path / "split"], states=[state], progress=False
    )
    a, b = runs.load_checkpoint(tmp_path / "straight"), runs.load_checkpoint(tmp_path / "split")
    assert torch.equal(a["flat"], b["flat"])
    assert (
        runs.read_metrics(tmp_path / "straight")[-1]["val_loss"]
        == runs.read_metrics(tmp_path / "split")[-1]["val_loss"]
    )


def test_methods_change_training_and_members_keep_their_own_strength(tmp_path):
    plain = Population([tiny_run()])
    filtered = Population(
        [tiny_run(grad_filter="ema"), tiny_run(grad_filter="ema", grad_filter_lambda=0.0)]
    )
    for _ in range(5):
        plain.step()
        filtered.step()
    assert not torch.equal(filtered.flat[0], plain.flat[0])  # lambda 2 changes the updates
    torch.testing.assert_close(
        filtered.flat[1], plain.flat[0], rtol=1e-5, atol=1e-6
    )  # lambda 0: none


def test_methods_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    flags = [
        "--op",
        "x+y",
        "--modulus",
        "11",
        "--d-model",
        "32",
        "--heads",
        "4",
        "--d-mlp",
        "64",
        "--batch-size",
        "16",
        "--steps",
        "10",
        "--eval-every",
        "5",
        "--device",
        "cpu",
        "--quiet",
        "--no-plot",
        "--grad-filter",
        "ma",
        "--grad-filter-window",
        "3",
        "--loss",
        "stablemax",
        "--orthogonal-grad",
        "--init-scale",
        "0.5",
        "--norm",
        "none",
    ]
    assert main(["train", *flags, "--out", str(out)]) == 0
    config = runs.read_config(out)
    assert (
        config.grad_filter,
        config.grad_filter_window,
        config.loss,
        config.orthogonal_grad,
        config.init_scale,
        config.norm,
    ) == ("ma", 3, "stablemax", True, 0.5, "none")
    assert all(0.0 <= r["softmax_collapse"] <= 1.0 for r in runs.read_metrics(out))
    assert main(["train", "--grad-filter", "lowpass", "--out", str(tmp_path / "x")]) == 2
    assert (
        main(
            [
                "train",
                "--grad-filter",
                "ema",
                "--grad-filter-alpha",
                "1.5",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "grad filter alpha must be in [0, 1), got 1.5" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="init scale"):
        tiny_run(init_scale=0.0)


def test_part_norms_add_up_to_the_weight_norm(tmp_path):
    train_runs([tiny_run(steps=10, n_layers=2)], [tmp_path / "r"], progress=False)
    rows = runs.read_metrics(tmp_path / "r")
    weights = runs.load_checkpoint(tmp_path / "r")["flat"]
    last = rows[-1]
    parts = ["norm_embed", "norm_block_0", "norm_block_1", "norm_unembed"]
    assert [k for k in last if k.startswith("norm_")] == parts
    assert math.sqrt(sum(last[p] ** 2 for p in parts)) == pytest.approx(
        last["weight_norm"], rel=1e-5
    )
    assert last["weight_norm"] == pytest.approx(float(weights.norm()), rel=1e-6)
    run = load_run(tmp_path / "r")
    w = run.model().weights
    embed = math.sqrt(float(w["W_E"].pow(2).sum() + w["W_pos"].pow(2).sum()))
    assert last["norm_embed"] == pytest.approx(embed, rel=1e-5)


@pytest.mark.parametrize(
    "command,flags,message",
    [
        (
            "train",
            ["--grad-filter-alpha", "0.9"],
            "--grad-filter-alpha applies to --grad-filter ema",
        ),
        (
            "train",
            ["--grad-filter", "ema", "--grad-filter-window", "10"],
            "--grad-filter-window applies to --grad-filter ma",
        ),
        (
            "sweep",
            ["--grad-filter-lambda", "1", "2"],
            "--grad-filter-lambda applies to --grad-filter ema or ma",
        ),
    ],
)
def test_a_filter_setting_without_its_filter_is_refused(tmp_path, capsys, command, flags, message):
    out = tmp_path / "out"
    assert main([command, *flags, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err and not out.exists()
    assert (
        main(
            [
                "sweep",
                "--grad-filter",
                "none",
                "ema",
                "--grad-filter-alpha",
                "0.9",
                "--steps",
                "0",
                "--op",
                "x+y",
                "--modulus",
                "5",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )  # one run uses it
