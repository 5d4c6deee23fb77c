"""``reproduce --plan``: the runs a call would train and its projected wall time."""

from __future__ import annotations

import json
import random

import pytest
import torch

from grokkit.cli import main
from grokkit.config import RunConfig
from grokkit.experiments.reproduce import figure_runs, plan_figure, plan_figures, reproduce_figure
from grokkit.sweep import plan_sweep, run_name
from grokkit.sweep.grid import balance_workers, list_schedule
from grokkit.sweep.projection import CostMeter, StepCost, project
from grokkit.train import evaluation_count, needs_evaluation


def test_evaluation_count_equals_the_schedule_walked_step_by_step():
    rng = random.Random(0)
    for _ in range(300):
        c = RunConfig(
            steps=rng.randint(1, 5000),
            eval_every=rng.randint(1, 300),
            checkpoint_every=rng.randint(1, 2000),
        )
        start = rng.choice([0, rng.randint(0, c.steps)])
        walked = sum(needs_evaluation(s, c) for s in range(start + 1, c.steps + 1)) + (start == 0)
        assert evaluation_count(c, start) == walked, (
            c.steps,
            c.eval_every,
            c.checkpoint_every,
            start,
        )


def test_populations_go_to_the_worker_that_is_free_first():
    assert list_schedule([3.0, 1.0, 1.0, 1.0], 2) == 3.0
    assert list_schedule([2.0, 2.0, 2.0], 2) == 4.0
    assert list_schedule([2.0, 2.0, 2.0], 1) == 6.0


def test_balance_workers_splits_the_largest_population_until_each_worker_has_one():
    names = [f"r{i}" for i in range(16)]
    equal = dict.fromkeys([*names, "a"], 1.0)
    assert balance_workers([(names, False)], 2, equal) == [
        (names[0::2], False),
        (names[1::2], False),
    ]
    split = balance_workers([(names[:3], True), (["a"], False)], 4, equal)
    assert sorted(n for g, _ in split for n in g) == sorted([*names[:3], "a"]) and len(split) == 4
    assert all(resume for g, resume in split if g[0] in names)
    assert balance_workers([(["a"], False)], 2, equal) == [(["a"], False)]  # one run: no split
    assert balance_workers([(names, False)], 1, equal) == [(names, False)]


def test_balance_workers_gives_each_worker_the_same_work_not_the_same_runs():
    """fig7's case: 8 runs of a network twice as costly per step beside 8 of the other. Split by
    count, one worker trains the costly population alone (16 units) while the other finishes
    at 8; split by work, each worker gets 12."""
    costly, cheap = [f"o{i}" for i in range(8)], [f"g{i}" for i in range(8)]
    cost = {**dict.fromkeys(costly, 2.0), **dict.fromkeys(cheap, 1.0)}
    groups = balance_workers([(cheap, False), (costly, False)], 2, cost)
    loads = [sum(cost[n] for n in g) for g, _ in groups]
    assert loads == sorted(loads, reverse=True)  # largest first: the list schedule's best order
    assert list_schedule(loads, 2) == 12.0
    assert sorted(n for g, _ in groups for n in g) == sorted(costly + cheap)
    assert all(len(set(n[0] for n in g)) == 1 for g, _ in groups)  # never mixes two populations


def test_a_sweep_of_one_kind_fills_both_workers():
    configs = [RunConfig(seed=s) for s in range(16)]
    assert [len(g) for g, _ in plan_sweep(configs, None, 16, "cpu", jobs=2).groups] == [8, 8]
    assert [len(g) for g, _ in plan_sweep(configs, None, 16, "cpu", jobs=1).groups] == [16]


class FixedCosts(CostMeter):
    def cost(self, config, members, threads):
        return StepCost(step_seconds=0.01, eval_seconds=0.5)


def test_projection_is_steps_and_evaluations_times_their_measured_cost():
    a = RunConfig(steps=1000, eval_every=100, seed=0)
    b = a.with_changes(seed=1, steps=500)
    configs = {"a": a, "b": b}
    one = project(configs, [(["a", "b"], False)], {}, jobs=1, meter=FixedCosts())
    expected = 0.01 * (1000 + 500) + 0.5 * (evaluation_count(a) + evaluation_count(b))
    assert one.seconds == pytest.approx(expected)
    two = project(configs, [(["a"], False), (["b"], False)], {}, jobs=2, meter=FixedCosts())
    assert two.seconds == pytest.approx(0.01 * 1000 + 0.5 * evaluation_count(a))  # b runs alongside
    resumed = project(configs, [(["a"], True)], {"a": 400}, jobs=1, meter=FixedCosts())
    assert resumed.seconds == pytest.approx(0.01 * 600 + 0.5 * evaluation_count(a, 400))


@pytest.mark.slow
def test_the_plan_lists_exactly_the_runs_a_real_call_trains(tmp_path):
    torch.set_num_threads(1)
    # fig3: runs of both architectures (its analysis takes seconds, fig7's sharpness minutes)
    plan = plan_figure("fig3", "smoke", tmp_path, jobs=1)
    planned = {r["run_name"] for r in plan["runs"] if r["status"] == "new"}
    assert planned == {run_name(c) for c in figure_runs("fig3", "smoke")}
    assert {r["arch"] for r in plan["runs"]} == {"grokkit", "openai-grok"}
    assert plan["estimated_seconds"] > 0
    reproduce_figure("fig3", "smoke", tmp_path, jobs=1, progress=False)
    assert {p.name for p in (tmp_path / "runs").iterdir()} == planned
    again = plan_figure("fig3", "smoke", tmp_path, jobs=1)
    assert {r["status"] for r in again["runs"]} == {"done"} and again["estimated_seconds"] == 0


def test_a_run_two_figures_share_is_planned_once():
    plan = plan_figures(["fig1-left", "fig4"], "smoke", None, jobs=1)
    status = {(r["figure"], r["status"]) for r in plan["runs"]}
    assert status == {("fig1-left", "new"), ("fig4", "shared")}
    assert plan["figures"]["fig4"]["estimated_seconds"] == 0


def test_plan_json_on_the_command_line(capsys):
    assert (
        main(["reproduce", "fig2-left", "--scale", "smoke", "--plan", "--json", "--jobs", "1"]) == 0
    )
    plan = json.loads(capsys.readouterr().out)
    configs = figure_runs("fig2-left", "smoke")
    assert len(plan["runs"]) == len(configs) and plan["estimated_seconds"] > 0
    keys = {"operation", "modulus", "train_fraction", "seed", "preset", "steps", "status"}
    assert keys <= set(plan["runs"][0])
    assert sorted((r["preset"], r["train_fraction"]) for r in plan["runs"]) == sorted(
        (c.preset, c.train_fraction) for c in configs
    )


def test_plan_text_and_bad_flags(capsys):
    assert main(["reproduce", "fig1-left", "--scale", "smoke", "--plan"]) == 0
    out = capsys.readouterr().out
    assert "projected training time" in out and "x+y" in out
    assert main(["reproduce", "fig1-left", "--scale", "smoke", "--json"]) == 2
    assert "--json goes with --plan" in capsys.readouterr().err


def test_a_second_plan_reads_the_costs_this_machine_measured(tmp_path, monkeypatch):
    """Costs are measured once per machine, thread count, PyTorch and kind, then read back by
    later processes (a new meter); --remeasure and a damaged cache measure again; a measurement
    made on an oversubscribed machine is used once and not kept."""
    from grokkit import backend_choice
    from grokkit.sweep import projection

    monkeypatch.setenv("GROKKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(backend_choice, "oversubscribed", lambda: False)
    measured = []

    def fake_measure(config, members, threads, device="cpu"):
        measured.append(config.d_model)
        n = len(measured)  # exact binary fractions: the comparisons below are exact
        return StepCost(0.5 * n, 0.5, 0.25 * n, 0.75 * n)

    monkeypatch.setattr(projection, "measure", fake_measure)
    config = RunConfig(steps=100)
    first = CostMeter("cpu").cost(config, 1, 1)
    again = CostMeter("cpu").cost(config, 1, 1)  # another process: from the file
    assert first == again == StepCost(0.5, 0.5, 0.25, 0.75) and measured == [128]
    assert CostMeter("cpu").cost(config, 1, 2) == StepCost(1.0, 0.5, 0.5, 1.5)  # threads
    assert len(measured) == 2
    # --remeasure: measured again, and the spread covers both kept measurements
    third = CostMeter("cpu", remeasure=True).cost(config, 1, 1)
    assert third == StepCost(1.5, 0.5, 0.25, 2.25) and len(measured) == 3
    assert CostMeter("cpu").cost(config, 1, 1) == third
    # a damaged file is measured again (and rewritten), never a traceback
    (tmp_path / projection.COSTS_FILE).write_text('{"x": [{"step_seconds": "fast"}]')
    CostMeter("cpu").cost(config, 1, 1)
    assert len(measured) == 4
    # oversubscribed: used, not kept
    monkeypatch.setattr(backend_choice, "oversubscribed", lambda: True)
    busy = RunConfig(steps=100, d_model=64)
    CostMeter("cpu").cost(busy, 1, 1)
    CostMeter("cpu").cost(busy, 1, 1)
    assert measured[-2:] == [64, 64]


def test_the_projection_spread_is_the_costs_spread_through_the_schedule():
    class Spread:
        device = "cpu"

        def cost(self, config, members, threads):
            return StepCost(0.01, 0.5, 0.008, 0.013)

    a = RunConfig(steps=1000, eval_every=100, seed=0)
    configs = {"a": a, "b": a.with_changes(seed=1, steps=400)}
    p = project(configs, [(["a"], False), (["b"], False)], {}, jobs=1, meter=Spread())
    evals = 0.5 * (evaluation_count(a) + evaluation_count(configs["b"]))
    assert (p.low, p.seconds, p.high) == pytest.approx(
        (0.008 * 1400 + evals, 0.01 * 1400 + evals, 0.013 * 1400 + evals)
    )
