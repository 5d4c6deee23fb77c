"""Lion (Chen et al. 2023, arXiv 2302.06675) as ``--optimizer lion``: the batched update against
the paper's update written out here member by member, and resuming, dropping members and
training through the population, the checkpoints and the command line."""

from __future__ import annotations

import json

import pytest
import torch
from cli_harness import TINY, assert_one_line, run_cli
from conftest import tiny_run

from grokkit import runs
from grokkit.errors import ConfigError
from grokkit.optim import BatchedLion, OptimizerConfig, preset
from grokkit.population import Population, population_key
from grokkit.sweep.grid import run_name
from grokkit.train import train_runs


def lion_reference(w, m, g, lr, wd, beta1, beta2):
    """The paper's Algorithm 2 for one tensor, decoupled weight decay included."""
    c = beta1 * m + (1 - beta1) * g
    w = w * (1 - lr * wd) - lr * torch.sign(c)
    m = beta2 * m + (1 - beta2) * g
    return w, m


MEMBERS = [
    OptimizerConfig(update_rule="lion", lr=1e-4, weight_decay=10.0, beta2=0.99),
    OptimizerConfig(update_rule="lion", lr=3e-3, weight_decay=0.0, beta1=0.5, warmup_steps=3),
    OptimizerConfig(update_rule="lion", lr=1e-2, weight_decay=0.5, beta1=0.95, beta2=0.9),
]


def test_batched_lion_is_the_papers_update_for_each_member():
    gen = torch.Generator().manual_seed(0)
    flat = torch.randn(3, 200, generator=gen)
    grads = [torch.randn(3, 200, generator=gen) for _ in range(8)]
    opt = BatchedLion(MEMBERS, flat)
    weights = flat.clone()
    for g in grads:
        opt.step(weights, g)
    for i, c in enumerate(MEMBERS):
        w, m = flat[i].clone(), torch.zeros(200)
        for u, g in enumerate(grads, start=1):
            w, m = lion_reference(w, m, g[i], c.lr_at(u), c.weight_decay, c.beta1, c.beta2)
        torch.testing.assert_close(weights[i], w, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(opt.exp_avg[i], m, rtol=1e-6, atol=1e-7)
    # The sign, not the gradient's size, sets the step: one update moves every weight of a
    # member without decay by its scheduled rate exactly (member 1: 3e-3 / 3 in the warm-up).
    once = flat.clone()
    BatchedLion(MEMBERS, flat).step(once, grads[0])
    torch.testing.assert_close((once[1] - flat[1]).abs(), torch.full((200,), 1e-3))


def test_a_member_cut_out_and_stacked_again_continues_as_it_would_have():
    gen = torch.Generator().manual_seed(1)
    flat = torch.randn(3, 64, generator=gen)
    grads = [torch.randn(3, 64, generator=gen) for _ in range(6)]
    together, w_together = BatchedLion(MEMBERS, flat), flat.clone()
    for g in grads[:3]:
        together.step(w_together, g)
    state = together.member_state(2)
    alone, w_alone = BatchedLion([MEMBERS[2]], flat[2:].clone()), w_together[2:].clone()
    alone.load_member_state(0, state)
    together.keep(torch.tensor([0, 2]))
    w_together = w_together[[0, 2]]
    for g in grads[3:]:
        together.step(w_together, g[[0, 2]])
        alone.step(w_alone, g[2:])
    assert torch.equal(w_together[1], w_alone[0])
    assert alone.step_count == together.step_count == 6


def test_the_recipe_and_its_population():
    lion = preset("lion")
    assert (lion.update_rule, lion.lr, lion.weight_decay, lion.beta1, lion.beta2) == (
        "lion",
        1e-4,
        10.0,
        0.9,
        0.99,
    )
    adamw, with_lion = tiny_run(), tiny_run(update_rule="lion")
    assert population_key(adamw) != population_key(with_lion)  # one optimizer per stack
    assert isinstance(Population([with_lion]).optimizer, BatchedLion)
    # The preset names the rule: it is not repeated as a tag; another preset's run is tagged.
    assert tiny_run().with_changes(preset="lion", update_rule="lion").method_tags() == []
    assert tiny_run(update_rule="lion").method_tags() == ["lion"]
    assert tiny_run(update_rule="lion").method_description() == "Lion update rule"
    assert run_name(tiny_run()) == run_name(tiny_run(update_rule="adamw"))  # default: no change
    with pytest.raises(ConfigError, match="--update-rule lion cannot be honoured"):
        tiny_run(update_rule="lion", muon=True)
    with pytest.raises(ConfigError, match="update rule must be one of adamw, lion"):
        tiny_run(update_rule="sgd")


def test_resume_with_lion_equals_a_straight_run(tmp_path):
    changes = {"update_rule": "lion", "lr": 3e-3, "weight_decay": 0.3, "decay_target": "init"}
    train_runs([tiny_run(steps=30, **changes)], [tmp_path / "straight"], progress=False)
    train_runs([tiny_run(steps=10, **changes)], [tmp_path / "split"], progress=False)
    state = runs.load_checkpoint(tmp_path / "split")  # checked against Lion's state vectors
    assert set(state["optimizer"]) == {"exp_avg", "step_count", "initial"}
    train_runs(
        [tiny_run(steps=30, **changes)], [tmp_path / "split"], states=[state], progress=False
    )
    a, b = runs.load_checkpoint(tmp_path / "straight"), runs.load_checkpoint(tmp_path / "split")
    assert torch.equal(a["flat"], b["flat"])


def test_train_with_lion_on_the_command_line_lowers_the_training_loss(tmp_path, capsys):
    out = tmp_path / "run"
    # The recipe (lr 1e-4) is for long runs; 3e-3 lets 50 steps of a tiny model learn, with the
    # decay per update, lr * wd, kept at the recipe's 1e-3.
    flags = "--optimizer lion --lr 3e-3 --weight-decay 0.3 --steps 50".split()
    code, _, err = run_cli(capsys, "train", *TINY, *flags, "--out", out)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "lion" and config["optimizer"]["update_rule"] == "lion"
    assert config["optimizer"]["beta2"] == 0.99
    rows = runs.read_metrics(out)
    assert rows[-1]["train_loss"] < 0.8 * rows[0]["train_loss"]  # measured: 2.71 to 1.69
    code, _, err = run_cli(capsys, "train", *TINY, "--optimizer", "lion", "--muon", "--out", out)
    assert code == 2
    assert_one_line(err, "--update-rule lion cannot be honoured")
