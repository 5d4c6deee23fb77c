"""Populations, the training loop, checkpoints and exact resume."""

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_run

from grokkit import runs
from grokkit.config import derive_seed
from grokkit.population import Population
from grokkit.train import is_eval_step, train_runs


def train_steps(pop: Population, n: int) -> Population:
    for _ in range(n):
        pop.step()
    return pop


def test_population_member_equals_the_same_run_trained_alone():
    configs = [
        tiny_run(seed=0),
        tiny_run(seed=1, train_fraction=0.6, lr=3e-3, weight_decay=0.1),
        tiny_run(seed=2, weight_noise=0.01, update_noise=0.5),
        tiny_run(seed=3, decay_target="init", outliers=5),
    ]
    together = train_steps(Population(configs), 15)
    for i, c in enumerate(configs):
        alone = train_steps(Population([c]), 15)
        torch.testing.assert_close(
            together.flat[i], alone.flat[0], rtol=1e-4, atol=1e-5, msg=f"member {i}"
        )
        ev_t, ev_a = together.evaluate(), alone.evaluate()
        for k in ev_t:
            torch.testing.assert_close(ev_t[k][i], ev_a[k][0], rtol=1e-4, atol=1e-5)


def test_dropout_member_equals_its_solo_run():
    configs = [tiny_run(seed=0, dropout=0.1), tiny_run(seed=1, dropout=0.2)]
    together = train_steps(Population(configs), 10)
    for i, c in enumerate(configs):
        alone = train_steps(Population([c]), 10)
        torch.testing.assert_close(together.flat[i], alone.flat[0], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="dropout"):
        Population([tiny_run(dropout=0.1), tiny_run()])


def test_dropout_changes_training():
    a = train_steps(Population([tiny_run(dropout=0.1)]), 5)
    b = train_steps(Population([tiny_run()]), 5)
    assert not torch.allclose(a.flat, b.flat)


def test_weight_noise_takes_the_gradient_at_the_noisy_weights():
    """A.1.2: the forward pass sees W + sigma * eps; the update is applied to the clean W."""
    cfg = tiny_run(weight_noise=0.01)
    noisy = train_steps(Population([cfg]), 1)
    manual = Population([cfg.with_changes(weight_noise=0.0)])
    pos = manual.members[0].next_batch_positions(manual.batch_size)
    eq, labels = manual.train_equations[0, pos], manual.train_labels[0, pos]
    gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "noise"))
    eps = torch.randn(manual.flat.shape[1], generator=gen) * 0.01
    leaves = {k: v.detach().requires_grad_() for k, v in manual.views(manual.flat + eps).items()}
    logits = manual.logits(leaves, manual.x[eq][None], manual.y[eq][None], train=True)
    F.cross_entropy(logits[0], labels).backward()
    grad = torch.cat([leaves[k].grad.reshape(1, -1) for k in manual.shapes], dim=1)
    manual.optimizer.step(manual.flat, grad)
    torch.testing.assert_close(noisy.flat, manual.flat, rtol=1e-5, atol=1e-6)


def test_training_is_deterministic(tmp_path):
    a = train_runs([tiny_run()], [tmp_path / "a"], progress=False)[0]
    b = train_runs([tiny_run()], [tmp_path / "b"], progress=False)[0]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]  # noqa: E731
    assert strip(runs.read_metrics(tmp_path / "a")) == strip(runs.read_metrics(tmp_path / "b"))
    sa, sb = runs.load_checkpoint(tmp_path / "a"), runs.load_checkpoint(tmp_path / "b")
    assert torch.equal(sa["flat"], sb["flat"])
    assert a["val_accuracy"] == b["val_accuracy"]


def test_evaluating_more_often_changes_no_weight(tmp_path):
    """Evaluation only reads the weights: a run evaluated every few steps reaches the weights of
    one evaluated rarely, and the rows both evaluate agree (figures choose their evaluation
    interval for cost, not for what is trained)."""
    fine, coarse = tiny_run(steps=40, eval_every=2), tiny_run(steps=40, eval_every=20)
    train_runs([fine], [tmp_path / "fine"], progress=False)
    train_runs([coarse], [tmp_path / "coarse"], progress=False)
    a, b = runs.load_checkpoint(tmp_path / "fine"), runs.load_checkpoint(tmp_path / "coarse")
    assert torch.equal(a["flat"], b["flat"])
    rows = {r["step"]: r["val_accuracy"] for r in runs.read_metrics(tmp_path / "fine")}
    coarse_rows = runs.read_metrics(tmp_path / "coarse")
    both = [r for r in coarse_rows if r["step"] in rows]
    assert len(coarse_rows) < len(rows) and len(both) >= 3
    assert all(rows[r["step"]] == r["val_accuracy"] for r in both)


def test_resume_equals_a_straight_run(tmp_path):
    straight = tiny_run(steps=40)
    train_runs([straight], [tmp_path / "straight"], progress=False)
    train_runs([tiny_run(steps=20)], [tmp_path / "split"], progress=False)
    state = runs.load_checkpoint(tmp_path / "split")
    assert state["step"] == 20
    train_runs([tiny_run(steps=40)], [tmp_path / "split"], states=[state], progress=False)
    a, b = runs.load_checkpoint(tmp_path / "straight"), runs.load_checkpoint(tmp_path / "split")
    assert torch.equal(a["flat"], b["flat"])
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(a["optimizer"][key], b["optimizer"][key])
    assert torch.equal(a["batch_generator"], b["batch_generator"])
    ra, rb = runs.read_metrics(tmp_path / "straight"), runs.read_metrics(tmp_path / "split")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]  # noqa: E731
    assert strip(ra) == strip(rb)


def test_resume_of_a_population_member_alone_equals_the_population(tmp_path):
    configs = [tiny_run(seed=0, steps=30), tiny_run(seed=1, steps=30)]
    train_runs(configs, [tmp_path / "p0", tmp_path / "p1"], progress=False)
    train_runs([tiny_run(seed=1, steps=10)], [tmp_path / "solo"], progress=False)
    state = runs.load_checkpoint(tmp_path / "solo")
    train_runs([tiny_run(seed=1, steps=30)], [tmp_path / "solo"], states=[state], progress=False)
    a, b = runs.load_checkpoint(tmp_path / "p1"), runs.load_checkpoint(tmp_path / "solo")
    torch.testing.assert_close(a["flat"], b["flat"], rtol=1e-4, atol=1e-5)


def test_summary_and_metrics_follow_the_contract(tmp_path):
    summary = train_runs([tiny_run(steps=23)], [tmp_path / "r"], progress=False)[0]
    on_disk = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert on_disk == summary
    for key in (
        "steps_done",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "best_val_accuracy",
        "steps_to_train_99",
        "steps_to_val_99",
        "wall_seconds",
    ):
        assert key in summary
    rows = runs.read_metrics(tmp_path / "r")
    steps = [r["step"] for r in rows]
    assert steps[0] == 0 and steps[-1] == 23 == summary["steps_done"]
    assert steps == sorted(set(steps))
    assert summary["best_val_accuracy"] == max(r["val_accuracy"] for r in rows)
    first = next((r["step"] for r in rows if r["train_accuracy"] >= 0.99), None)
    assert summary["steps_to_train_99"] == first


def test_eval_schedule_is_log_spaced_then_regular():
    cfg = tiny_run(eval_every=100)
    steps = [s for s in range(1, 2001) if is_eval_step(s, cfg)]
    assert steps[:10] == list(range(1, 11))  # every step while log spacing is that dense
    per_decade = [sum(1 for s in steps if 10**k <= s < 10 ** (k + 1)) for k in (1, 2)]
    assert all(18 <= n <= 30 for n in per_decade), per_decade  # ~20 per decade (+ multiples of 100)
    assert all(s % 100 == 0 for s in steps if s >= 800)  # then every eval_every steps
    assert set(range(100, 2001, 100)) <= set(steps)


def test_stop_after_val_99_needs_an_unbroken_streak(tmp_path, monkeypatch):
    real_evaluate = Population.evaluate

    def scripted(self):  # validation accuracy: >= 99 % from step 30, one dip at step 60
        out = real_evaluate(self)
        ok = self.step_count >= 30 and self.step_count != 60
        out["val_accuracy"] = torch.full_like(out["val_accuracy"], 1.0 if ok else 0.5)
        return out

    monkeypatch.setattr(Population, "evaluate", scripted)
    summary = train_runs(
        [tiny_run(steps=500, eval_every=10, stop_after_val_99=50)], [tmp_path / "r"], progress=False
    )[0]
    assert summary["status"] == "stopped_early"
    assert summary["steps_to_val_99"] == 30
    assert summary["steps_done"] == 120  # the streak restarts at 70 after the dip at 60
    assert runs.load_checkpoint(tmp_path / "r")["step"] == 120


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real_step = Population.step

    def poisoned_step(self):
        if self.step_count == 14:
            self.flat[0, 0] = float("nan")
        return real_step(self)

    monkeypatch.setattr(Population, "step", poisoned_step)
    summary = train_runs([tiny_run(steps=40)], [tmp_path / "r"], progress=False)[0]
    assert summary["status"] == "diverged"
    assert "non-finite" in summary["message"] and "step 10" in summary["message"]
    state = runs.load_checkpoint(tmp_path / "r")
    assert state["step"] == 10 and torch.isfinite(state["flat"]).all()


def test_each_step_differentiates_afresh():
    """The step's autograd leaves are kept between steps (views of the weights, updated in
    place): the gradient the optimizer gets at step 3 must be step 3's alone, at the current
    weights, and not accumulate earlier steps' gradients."""
    pop = train_steps(Population([tiny_run()]), 2)
    twin = Population.from_member_states([pop.member_state(0)])
    seen = {}
    step = pop.optimizer.step
    pop.optimizer.step = lambda flat, grad, noise=None: (
        seen.setdefault("grad", grad.clone()),
        step(flat, grad, noise),
    )
    pop.step()
    pos = twin.members[0].next_batch_positions(twin.batch_size)
    eq, labels = twin.train_equations[0, pos], twin.train_labels[0, pos]
    leaves = {k: v.detach().requires_grad_() for k, v in twin.views(twin.flat.clone()).items()}
    F.cross_entropy(
        twin.logits(leaves, twin.x[eq][None], twin.y[eq][None], train=True)[0], labels
    ).backward()
    expected = torch.cat([leaves[k].grad.reshape(1, -1) for k in twin.shapes], dim=1)
    torch.testing.assert_close(seen["grad"], expected, rtol=1e-5, atol=1e-7)
