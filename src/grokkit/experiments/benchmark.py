"""The grokking benchmark (``reproduce benchmark``): every method that claims to speed up grokking,
each at its best under an equal tuning budget on common tasks, and each as its paper ran it on
its paper's own task and baseline, over seeds, under one definition of grokking time
(``grokkit.analysis.grokking_time``).

The pieces: ``benchmark_spaces`` (each method's declared search space, its Sobol trials, the
seed streams), ``benchmark_design`` (the scales, the cells and the claim each tests, the runs of
the two stages), ``benchmark_tuning`` (each trial's score, the winner, the edge), this module
(the numbers and the verdicts), ``benchmark_table`` (benchmark.csv, benchmark.json, the words),
``benchmark_aggregate`` (IQM and performance profiles over tasks), ``benchmark_plot`` (the
figure) and ``benchmark_results`` (the laptop run's files under benchmarks/results/).

**Statistics** (``grokkit.analysis.statistics``). A run's time to a threshold lies in (previous
evaluation, first evaluation at it]; one never reached within the budget is right-censored there.
Medians are Kaplan-Meier medians with Brookmeyer-Crowley 95 % intervals; ``resolution_steps`` the
widest evaluation bracket. Each row with a baseline (the ``baseline`` of its ``CellSpec``: the
paper's baseline on its own task, or tuned AdamW on a common task) is compared with it by the
log-rank test (steps to 95 %), Fisher's exact test (how many reached 95 %) and the probability of
improvement with a stratified bootstrap interval. The claims: each such row's claim, decided by
the log-rank test, and "a fixed norm removes the delay" (log-rank on the delays from 99 %
training to 99 % validation); one Holm family. Power: the two-sample test on log times at each
method's claimed speed-up (``CLAIMED_SPEEDUP``) and a seed spread of ``SIGMA_LOG``.

**Time.** Each method's milliseconds per training step are measured alone (one member, one
population, nothing else training in this process: ``cost``), not read from populations that
shared the machine; time-to-target is steps x that cost, and the tuning's cost is the steps its
trials trained x the same cost.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from grokkit.analysis.grokking_time import (
    THRESHOLDS,
    GrokkingTime,
    Summary,
    censored_times,
    grokking_time,
    ratio_of_medians,
    summarize,
)
from grokkit.config import RunConfig
from grokkit.devices import device_name
from grokkit.errors import InputError
from grokkit.experiments import (
    benchmark_design as design,
    benchmark_tuning as tuning,
    claims as claim_records,
)
from grokkit.experiments.benchmark_design import (  # noqa: F401  (the figure module's interface)
    BASELINE,
    METHODS,
    SCALES,
    VARIANTS,
    planned_followup_runs,
    run_count,
    runs,
)
from grokkit.experiments.benchmark_table import (  # noqa: F401
    CLAIMED_SPEEDUP,
    CSV_HEADER,
    LABELS,
    REDUCTIONS,
    SIGMA_LOG,
    claim_power,
    csv_rows,
    describe,
    family_alpha,
    json_data,
    plot,
    task_label,
)
from grokkit.experiments.benchmark_tuning import followup_runs  # noqa: F401
from grokkit.runs import read_json, write_json

NAME = "benchmark"
DESCRIPTION = (
    "grokking speed-ups (Grokfast, ⊥AdamW, StableMax, Muon, fixed norm) vs a tuned AdamW and on "
    "their own tasks: steps to 95 %/99 % validation over seeds"
)
CLAIM = (
    "Each method claims to make a network grok sooner: Grokfast-EMA up to 50x (Lee et al. 2024), "
    "Muon 1.5x (a mean grokking epoch of 102.9 against 153.1 for AdamW, Tveit et al. 2025), "
    "⊥AdamW and StableMax grok without weight decay (Prieto et al. 2025), and a fixed weight norm "
    "removes the delay between memorising and generalising (Liu et al. 2022)."
)
OPTIONS: tuple[str, ...] = ("seeds",)

# ---------------------------------------------------------------- the numbers


@dataclass(frozen=True)
class Cell:
    """One reported row: its spec, the point trained, each reported seed's times, the summaries
    over seeds, the comparison with its baseline, and what it costs."""

    spec: design.CellSpec
    point: dict | None
    times: list[GrokkingTime]
    summaries: dict[str, Summary]  # "steps_95", "steps_99", "seconds_95", "train_99", "delay"
    ratio_95: tuple[float, float, float]  # against its baseline: ratio, interval
    ratio_99: tuple[float, float, float]
    ms_per_step: float
    state_bytes: int
    brackets: dict | None = None  # "steps_95", "steps_99", "delay": statistics.Times
    versus: dict | None = None  # against its baseline (``compare``)
    seeds: tuple[int, ...] = ()
    tuning: tuning.Tuning | None = None  # tuned rows: their method's tuning

    @property
    def task(self) -> tuple:
        return self.spec.task

    @property
    def method(self) -> str:
        return self.spec.method

    @property
    def variant(self) -> str:
        return self.spec.variant


@dataclass(frozen=True)
class Benchmark:
    cells: list[Cell]
    scale: str
    budget: int
    eval_every: int
    newton_schulz: str | None = None  # the precision Muon's iteration ran in here
    aggregates: dict | None = None  # ``benchmark_aggregate.bootstrap`` over the common tasks

    def cell(self, task: tuple, method: str, variant: str) -> Cell | None:
        return next(
            (c for c in self.cells if (c.task, c.method, c.variant) == (task, method, variant)),
            None,
        )


def _summaries(times: list[GrokkingTime], brackets: dict) -> dict[str, Summary]:
    """Steps to 95 % and 99 % and the delay: Kaplan-Meier medians and intervals (quartiles as
    before); seconds and training steps: medians of the observed times."""
    return {
        "steps_95": _km_summary([t.steps_95 for t in times], brackets["steps_95"]),
        "steps_99": _km_summary([t.steps_99 for t in times], brackets["steps_99"]),
        "seconds_95": summarize([t.seconds_95 for t in times]),
        "train_99": summarize([t.train_steps_99 for t in times]),
        "delay": _km_summary([t.delay_99 for t in times], brackets["delay"]),
    }


def _km_summary(values: list, times) -> Summary:
    from grokkit.analysis.statistics import km_median

    old, km = summarize(values), km_median(times)
    return Summary(km.n, km.reached, km.median, old.q25, old.q75, km.ci_low, km.ci_high)


def _brackets(rows_of_runs: list[list[dict]], budgets: list[int]) -> dict:
    """Each seed's (previous evaluation, first evaluation] at 95 % and 99 %, and its delay from
    99 % training to 99 % validation (censored at the budget less the training time; runs that
    never reached 99 % training are left out)."""
    from grokkit.analysis.statistics import Times

    delays = []
    for rows, budget in zip(rows_of_runs, budgets):
        t = grokking_time(rows, budget)
        if t.train_steps_99 is not None:
            d = t.delay_99
            delays.append((d, d, budget - t.train_steps_99))
    return {
        "steps_95": censored_times(rows_of_runs, budgets, 0.95),
        "steps_99": censored_times(rows_of_runs, budgets, 0.99),
        "delay": Times.from_brackets(delays),
    }


def compare(cell_times, base_times) -> dict:
    """A row's seeds against its baseline's (steps to 95 %): log-rank p, Fisher p on the counts
    that reached 95 %, and P(row sooner) with its interval."""
    from grokkit.analysis import statistics

    a, b = cell_times["steps_95"], base_times["steps_95"]
    improvement = statistics.probability_of_improvement(a, b)
    return {
        "logrank": statistics.logrank(a, b),
        "fisher": statistics.fisher(a.n_reached, a.n, b.n_reached, b.n),
        "p_improvement": (improvement.probability, improvement.ci_low, improvement.ci_high),
    }


def cost(config: RunConfig) -> tuple[float, int]:
    """(ms per training step of one member measured alone on this machine, with this process's
    threads; bytes of training state per run)."""
    import torch

    from grokkit.population import Population
    from grokkit.sweep.projection import measure as measure_step

    step = measure_step(config, 1, torch.get_num_threads())
    pop = Population([config])
    state = [pop.flat, pop.optimizer.member_state(0), pop.interventions.member_state(0)]
    return 1000 * step.step_seconds, _bytes(state)


COSTS_FILE = "benchmark-costs.json"
# Rounds of cost measurements: each round times every method once, in a rotated order, and a
# method's cost is its median over the rounds, so warm-up and drift fall on every method alike
# (one measurement each put the first method timed 30 % above the same model timed later).
COST_ROUNDS = {"smoke": 1, "laptop": 5, "paper": 5}


def _cost_key(spec) -> str:
    return json.dumps([*spec.task, spec.method, spec.fields], sort_keys=True)


def costs_alone(configs: dict[str, RunConfig], rounds: int) -> dict[str, tuple[float, int]]:
    """key -> (median ms per step alone over ``rounds`` rotated rounds, bytes of state)."""
    keys = list(configs)
    samples: dict[str, list[tuple[float, int]]] = {k: [] for k in keys}
    for r in range(rounds if keys else 0):
        shift = r % len(keys)
        for k in keys[shift:] + keys[:shift]:
            samples[k].append(cost(configs[k]))
    return {k: (median(ms for ms, _ in v), v[0][1]) for k, v in samples.items() if v}


def _out_dir(results) -> Path | None:
    """The benchmark's folder (its runs lie in OUT/runs/<name>); None for results that have no
    folder (none at all, or made in memory): their costs are measured and not kept."""
    run_dir = getattr(results[0], "run_dir", None) if results else None
    return Path(run_dir).parent.parent if isinstance(run_dir, (str, os.PathLike)) else None


def read_costs(out_dir: Path | None) -> dict:
    """The costs measured alone by an earlier analysis of this folder on this CPU with as many
    threads, so that analysing a finished benchmark again gives the same table; {} when there
    are none, they were measured on another CPU or thread count, or the file is damaged (then
    they are measured again)."""
    path = None if out_dir is None else Path(out_dir) / COSTS_FILE
    if path is None or not path.is_file():
        return {}
    try:
        stored = read_json(path)
    except InputError:
        return {}
    if not isinstance(stored, dict) or stored.get("measured_on") != _measured_on():
        return {}
    costs = stored.get("costs")
    valid = isinstance(costs, dict) and all(
        isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)
        for v in costs.values()
    )
    return {k: tuple(v) for k, v in costs.items()} if valid else {}


def write_costs(out_dir: Path | None, costs: dict) -> None:
    if out_dir is not None and costs:
        record = {"measured_on": _measured_on(), "costs": {k: list(v) for k, v in costs.items()}}
        write_json(Path(out_dir) / COSTS_FILE, record)


def _measured_on() -> str:
    """The CPU and the thread count ``cost`` times with: costs kept for another are not reused."""
    import torch

    return f"{device_name('cpu')}; {torch.get_num_threads()} thread(s)"


def _bytes(value) -> int:
    if hasattr(value, "element_size"):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_bytes(v) for v in value)
    return 0


def _key(c: RunConfig) -> str:
    return json.dumps(c.to_dict(), sort_keys=True, default=str)


def _raw_cell(spec, point, members) -> dict:
    rows = [tuning.rows_of(r) for r in members]
    times = [grokking_time(m, r.config.steps) for m, r in zip(rows, members)]
    brackets = _brackets(rows, [r.config.steps for r in members])
    return {"spec": spec, "point": point, "members": members, "times": times, "b": brackets}


def measure(results, scale: str, seeds: int | None = None) -> Benchmark:
    s = SCALES[scale]
    tunings = tuning.tunings(results, scale)
    chosen = {k: t.point for k, t in tunings.items()}
    by_config = {_key(r.config): r for r in results}
    raw = {}
    for spec in design.cells(scale):
        point = design.cell_point(scale, spec, chosen)
        planned = design.cell_runs(scale, spec, point, seeds) if point is not None else []
        members = [by_config[k] for k in map(_key, planned) if k in by_config]
        raw[(spec.task, spec.method, spec.variant)] = _raw_cell(spec, point, members)
    out_dir = _out_dir(results)
    costs = read_costs(out_dir)
    wanted = {_cost_key(r["spec"]): r["members"][0].config for r in raw.values() if r["members"]}
    missing = {k: c for k, c in wanted.items() if k not in costs}
    costs.update(costs_alone(missing, COST_ROUNDS[scale]))
    cells = [_cell(r, raw, tunings, costs, scale) for r in raw.values()]
    write_costs(out_dir, costs)
    bench = Benchmark(cells, scale, s["steps"], s["eval_every"], _newton_schulz_dtype())
    return Benchmark(**{**vars(bench), "aggregates": _aggregates(bench)})


def _cell(r: dict, raw: dict, tunings: dict, costs: dict, scale: str) -> Cell:
    spec, members, times = r["spec"], r["members"], r["times"]
    base = raw[(spec.task, *spec.baseline)] if spec.baseline else r
    ratios = {
        th: ratio_of_medians([b.steps(th) for b in base["times"]], [t.steps(th) for t in times])
        for th in THRESHOLDS
    }
    ms, state = (math.nan, 0)
    if members:
        ms, state = costs[_cost_key(spec)]
    t = None
    if spec.variant != "published":
        t = tunings.get((design.tuning_task_of(scale, spec.task), spec.method))
    return Cell(
        spec,
        r["point"],
        times,
        _summaries(times, r["b"]),
        tuple(vars(ratios[0.95]).values()),
        tuple(vars(ratios[0.99]).values()),
        ms,
        state,
        r["b"],
        compare(r["b"], base["b"]) if spec.baseline else None,
        tuple(m.config.seed for m in members),
        t,
    )


def time_to_target(c: Cell) -> list[float]:
    """Each seed's seconds to 95 % validation: its steps x the method's ms per step alone."""
    return [math.inf if t.steps_95 is None else t.steps_95 * c.ms_per_step / 1000 for t in c.times]


def _aggregates(bench: Benchmark) -> dict | None:
    from grokkit.experiments import benchmark_aggregate as aggregate

    times = {
        (c.method, c.task): time_to_target(c)
        for c in bench.cells
        if c.variant == "tuned" and c.times and not math.isnan(c.ms_per_step)
    }
    return aggregate.bootstrap(times) if times else None


def _newton_schulz_dtype() -> str:
    """The precision this machine iterates Muon's Newton-Schulz in, with one thread (a worker's
    on a 2-core machine with 2 jobs)."""
    from grokkit.backend_choice import choose_backend
    from grokkit.config import RunConfig

    muon = RunConfig().with_changes(muon=True)
    return "torch." + choose_backend("eager", "cpu", [muon], threads=1).newton_schulz


# ---------------------------------------------------------------- verdicts


def claims(bench: Benchmark) -> list[claim_records.Claim]:
    """Each row with a baseline against it, and the fixed norm's delay; one Holm family."""

    compared = [c for c in bench.cells if c.versus]
    first = SCALES[bench.scale]["tasks"][0]
    alpha = family_alpha(bench)
    out = [_speed_claim(bench, c) for c in compared]
    fixed = bench.cell(first, "fixed-norm", "published")
    out.append(_delay_claim(fixed, bench.cell(first, "adamw", "published"), alpha))
    return out


def claim_id(c: Cell) -> str:
    return f"{task_label(c.task)}: {c.method} {c.variant}"


def _speed_claim(bench: Benchmark, c: Cell) -> claim_records.Claim:
    v, n = c.versus, c.brackets["steps_95"].n
    base = bench.cell(c.task, *c.spec.baseline)
    base_n = base.brackets["steps_95"].n
    test, p_imp = v["logrank"], v["p_improvement"]
    sooner = test.statistic < 0 if not math.isnan(test.statistic) else False
    speedup = CLAIMED_SPEEDUP.get(c.method, 2.0)
    return claim_records.Claim(
        id=claim_id(c),
        claim=(
            f"{LABELS[c.method]} ({c.variant}, {c.spec.role} task): {c.spec.claim}; measured: "
            f"P(sooner than {LABELS[base.method]} {base.variant}) with its bootstrap interval; "
            f"Fisher p on the counts reached = {v['fisher'].p_value:.3g}."
        ),
        paper_value=f"{speedup:g}x sooner (the effect the power assumes)",
        measured=p_imp[0],
        interval=(p_imp[1], p_imp[2]),
        test=test.name + " (steps to 95 %, right-censored at the budget)",
        null=test.null,
        p_value=test.p_value,
        power=claim_power(bench, c),
        if_rejected="holds" if sooner else "contradicted",
        why="" if n and base_n else "no reported seed trained",
    )


def _delay_claim(fixed: Cell, adamw: Cell, alpha: float) -> claim_records.Claim:
    from grokkit.analysis import statistics

    a, b = fixed.brackets["delay"], adamw.brackets["delay"]
    test = statistics.logrank(a, b)
    km = statistics.km_median(a)
    shorter = test.statistic < 0 if not math.isnan(test.statistic) else False
    return claim_records.Claim(
        id=f"{task_label(fixed.task)}: fixed-norm delay",
        claim=(
            "A fixed weight norm shortens the delay from 99 % training to 99 % validation "
            "(Omnigrok: it removes it); measured: the fixed norm's Kaplan-Meier median delay."
        ),
        paper_value="no delay",
        measured=km.median,
        interval=(km.ci_low, km.ci_high),
        test=test.name + " (delays, censored at the budget)",
        null=test.null,
        p_value=test.p_value,
        power=statistics.power_log_ratio(10.0, 0.5, max(a.n, 2), max(b.n, 2), alpha),
        if_rejected="holds" if shorter else "contradicted",
        why="" if a.n and b.n else "no run reached 99 % training accuracy in one of the arms",
    )


def planned_power(scale: str, seeds: int | None = None) -> list[dict]:
    """Each claim's power at the planned reported seeds against its method's claimed speed-up
    (the delay claim: a 10-fold shorter delay), at the family's first Holm level."""
    from grokkit.analysis import statistics

    specs = [c for c in design.cells(scale) if c.baseline]
    tasks = SCALES[scale]["tasks"]
    n_of = dict(zip(tasks, design.seeds_per_task(scale, seeds)))
    n_first = n_of[tasks[0]]
    alpha = claim_records.ALPHA / (len(specs) + 1)
    rows = []
    for spec in specs:
        n = n_of.get(spec.task, n_first)
        speedup = CLAIMED_SPEEDUP.get(spec.method, 2.0)
        rows.append(
            {
                "id": f"{task_label(spec.task)}: {spec.method} {spec.variant}",
                "power": statistics.power_log_ratio(speedup, SIGMA_LOG, n, n, alpha),
                "effect": f"{speedup:g}x sooner, log sd {SIGMA_LOG:g}, {n} seeds per arm",
            }
        )
    rows.append(
        {
            "id": f"{task_label(tasks[0])}: fixed-norm delay",
            "power": statistics.power_log_ratio(10.0, 0.5, n_first, n_first, alpha),
            "effect": "a 10-fold shorter delay, log sd 0.5",
        }
    )
    return rows
