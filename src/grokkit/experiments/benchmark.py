"""The grokking benchmark: every method that claims to speed up grokking, against a tuned baseline,
over seeds, under one definition of grokking time (``grokkit.analysis.grokking_time``).

**Methods** (``METHODS``), each first as its paper published it (variant ``published``), on the
paper's model and task recipe (2 layers of width 128, 4 heads, minibatches of 512, 10 warm-up
updates, betas 0.9/0.98):

* ``adamw``: the paper's AdamW, lr 1e-3, weight decay 1;
* ``grokfast-ema`` / ``grokfast-ma``: Adam with the Grokfast filters and the L2 penalties of their
  recipe for algorithmic data (EMA alpha 0.98, lambda 2, L2 0.005; MA window 100, lambda 5,
  L2 0.01; Lee et al. 2024, their main.py);
* ``orthograd``: ⊥AdamW as the StableMax authors' transformer run executes it (no weight decay,
  betas 0.9/0.999; Prieto et al. 2025);
* ``stablemax``: the StableMax loss with AdamW without weight decay (their recipe's optimiser;
  they used StableMax with MLPs, so on a transformer this is our combination);
* ``muon``: Muon on the blocks' hidden weight matrices and AdamW on the rest (embeddings,
  unembedding, biases, LayerNorms), as the Muon grokking study (Tveit et al. 2025, arXiv
  2504.16041) does; its text gives no learning rate or weight decay, so the paper's AdamW values
  (lr 1e-3, weight decay 1) are used for both parts;
* ``fixed-norm``: Omnigrok (Liu et al. 2022): Adam without weight decay, every member's global
  weight norm held at its value at initialisation after each update (their notebooks' procedure).

**A fair baseline.** Every method then gets the same small tuning budget on its own learning rate
and regularisation (``GRID``: two learning rates times two values of the method's regulariser, the
published point included), tuned on seeds that are not reported (``TUNING_SEEDS``): the point with
the lowest median steps to 95 % validation on the tuning seeds wins (ties: the published point,
then the order of the grid). Its reported seeds are the ``tuned`` variant. Every run has the same
step budget and evaluation interval, and stops once it has held 99 % validation for a while (the
times are all that is measured).

**Statistics** (``grokkit.analysis.statistics``). A run's time to a threshold lies in (previous
evaluation, first evaluation at it]; one never reached within the budget is right-censored there.
Medians are Kaplan-Meier medians with Brookmeyer-Crowley 95 % intervals (the interval's low end
read from the earliest possible times), ``resolution_steps`` the widest evaluation bracket. Each
method is compared with AdamW's same variant on the same task by the log-rank test (steps to
95 %), Fisher's exact test (how many reached 95 %) and the probability of improvement P(method
sooner than AdamW), pairs whose order the censoring hides counted as ties, with a stratified
bootstrap interval. The claims (``claims``): each method's variant "groks sooner than AdamW",
decided by the log-rank test, and "a fixed norm removes the delay", decided by the log-rank test
of the delays from 99 % training to 99 % validation; one Holm family per benchmark. Power is the
two-sample test on log times at each method's claimed speed-up (``CLAIMED_SPEEDUP``) and a seed
spread of ``SIGMA_LOG``. The ratio of medians (``speedup_*``) is descriptive (a bootstrap
interval), not a verdict.

**Cost.** Each method's milliseconds per training step (one member, this machine, this thread
count) and the bytes of training state one run holds (weights, optimiser and filter state).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from grokkit.analysis.grokking_time import (
    THRESHOLDS,
    GrokkingTime,
    Summary,
    censored_times,
    format_steps,
    grokking_time,
    ratio_of_medians,
    summarize,
)
from grokkit.config import RunConfig
from grokkit.errors import InputError
from grokkit.experiments import claims as claim_records, common

NAME = "benchmark"
DESCRIPTION = (
    "grokking speed-ups (Grokfast, ⊥AdamW, StableMax, Muon, fixed norm) vs a tuned AdamW: steps "
    "to 95 %/99 % validation over seeds"
)
CLAIM = (
    "Each method claims to make a network grok sooner: Grokfast-EMA up to 50x (Lee et al. 2024), "
    "Muon 1.5x (a mean grokking epoch of 102.9 against 153.1 for AdamW, Tveit et al. 2025), "
    "⊥AdamW and StableMax grok without weight decay (Prieto et al. 2025), and a fixed weight norm "
    "removes the delay between memorising and generalising (Liu et al. 2022)."
)
OPTIONS: tuple[str, ...] = ("seeds",)
METHODS = ("adamw", "grokfast-ema", "grokfast-ma", "orthograd", "stablemax", "muon", "fixed-norm")
VARIANTS = ("published", "tuned")
BASELINE = "adamw"
# Each method's published speed-up over its paper's baseline, the effect the power is computed
# at; ⊥AdamW, StableMax and the fixed norm claim no speed-up (2x is the effect assumed for them).
CLAIMED_SPEEDUP = {
    "grokfast-ema": 43.8,  # their README: 910 against 39,890 updates
    "grokfast-ma": 50.5,  # their README: 790 against 39,890 updates
    "orthograd": 2.0,
    "stablemax": 2.0,
    "muon": 1.49,  # Tveit et al. 2025: mean grokking epoch 102.9 against 153.1
    "fixed-norm": 2.0,
}
SIGMA_LOG = 0.3  # seed spread of log steps to 95 % (benchmarks/RESULTS.md: sd 0.1-0.3)

_ADAM = {"weight_decay": 0.0}
# method -> the run fields of its published recipe (on top of the paper's AdamW recipe)
RECIPES: dict[str, dict] = {
    "adamw": {},
    "grokfast-ema": {
        **_ADAM,
        "grad_filter": "ema",
        "grad_filter_alpha": 0.98,
        "grad_filter_lambda": 2.0,
        "l2": 0.005,
    },
    "grokfast-ma": {
        **_ADAM,
        "grad_filter": "ma",
        "grad_filter_window": 100,
        "grad_filter_lambda": 5.0,
        "l2": 0.01,
    },
    "orthograd": {**_ADAM, "orthogonal_grad": True, "beta2": 0.999},
    "stablemax": {**_ADAM, "loss": "stablemax"},
    "muon": {"muon": True},
    "fixed-norm": {**_ADAM, "fixed_norm": True},
}
# method -> (its regulariser's field, the values tuned); learning rates tuned for every method.
REGULARISERS: dict[str, tuple[str, tuple[float, float]]] = {
    "adamw": ("weight_decay", (1.0, 3.0)),
    "grokfast-ema": ("l2", (0.005, 0.02)),
    "grokfast-ma": ("l2", (0.01, 0.04)),
    "orthograd": ("weight_decay", (0.0, 1.0)),
    "stablemax": ("weight_decay", (0.0, 1.0)),
    "muon": ("weight_decay", (1.0, 3.0)),
    "fixed-norm": ("init_scale", (1.0, 0.5)),  # the norm it is held at: alpha x the usual init
}
LEARNING_RATES = (1e-3, 3e-3)
LABELS = {
    "adamw": "AdamW",
    "grokfast-ema": "Grokfast-EMA",
    "grokfast-ma": "Grokfast-MA",
    "orthograd": "⊥AdamW",
    "stablemax": "StableMax",
    "muon": "Muon",
    "fixed-norm": "fixed norm",
}

# scale -> tasks (operation, modulus, training fraction), reported seeds, tuning seeds, budget
SCALES = {
    "smoke": {
        "tasks": (("x+y", 11, 0.5),),
        "seeds": range(2),
        "tuning_seeds": range(100, 101),
        "steps": 30,
        "eval_every": 5,
    },
    "laptop": {
        # The paper's Figure 1 task at 70 % data: the paper's AdamW reaches 95 % validation at
        # ~1,500 updates there (~2,100 for x+y and ~2,800 for x/y at 50 %, measured on seed 0), so
        # a 3,000-update budget leaves a method twice AdamW's time and every run of the 2 x 2 grid
        # fits the 3-hour target; a second task would double it.
        "tasks": (("x/y", 97, 0.7),),
        "seeds": range(5),
        "tuning_seeds": range(100, 101),
        "steps": 3_000,
        "eval_every": 100,
    },
    "paper": {
        "tasks": (
            ("x+y", 97, 0.5),
            ("x-y", 97, 0.5),
            ("x*y", 97, 0.5),
            ("x/y", 97, 0.5),
            ("s5_xy", 97, 0.7),
        ),
        "seeds": range(10),
        "tuning_seeds": range(100, 103),
        "steps": 100_000,
        "eval_every": 100,
    },
}
HOLD_AFTER_99 = {"smoke": 0, "laptop": 200, "paper": 1_000}

REDUCTIONS = {
    "smoke": "x+y mod 11, 1 layer of width 16, 30 steps, 2 seeds: checks the code path only.",
    "laptop": (
        "x/y mod 97 at 70 % data, the paper's model; 5 reported seeds and 1 tuning seed "
        "per grid point; a budget of 3,000 updates (evaluated every 100), each run stopping 200 "
        "updates after it holds 99 % validation."
    ),
    "paper": (
        "x+y, x-y, x*y, x/y mod 97 at 50 % and S5 x·y at 70 %, the paper's model; 10 reported "
        "seeds, 3 tuning seeds; a budget of 100,000 updates (evaluated every 100)."
    ),
}


# ---------------------------------------------------------------- the runs


def _base(scale: str, task: tuple) -> RunConfig:
    operation, modulus, fraction = task
    s = SCALES[scale]
    return common.base_config(
        operation,
        scale,
        modulus=modulus,
        train_fraction=fraction,
        steps=s["steps"],
        eval_every=s["eval_every"],
        checkpoint_every=max(s["steps"] // 5, 1),
        stop_after_val_99=HOLD_AFTER_99[scale],
    )


def grid(method: str) -> list[dict]:
    """The tuning grid of a method: its published point first."""
    field, values = REGULARISERS[method]
    return [{"lr": lr, field: value} for value in values for lr in LEARNING_RATES]


def config(scale: str, task: tuple, method: str, point: dict, seed: int) -> RunConfig:
    preset = "adamw" if RECIPES[method].get("weight_decay", 1.0) > 0 else "adam"
    fields = {**RECIPES[method], **point}
    return _base(scale, task).with_changes(preset=preset, seed=seed, **fields)


def reported_seeds(scale: str, seeds: int | None = None) -> range:
    """The reported seeds: ``seeds`` of them (``--seeds``) or the scale's; never a tuning seed."""
    s = SCALES[scale]
    n = common.check_seeds(seeds, len(s["seeds"]), minimum=2)
    if n > min(s["tuning_seeds"]):
        raise InputError(
            f"--seeds must be at most {min(s['tuning_seeds'])}: the tuning seeds follow"
        )
    return range(n)


def runs(scale: str, seeds: int | None = None) -> list[RunConfig]:
    """The first stage: every method's published recipe on the reported seeds, and its whole
    tuning grid on the tuning seeds. The tuned runs follow from these (``followup_runs``)."""
    common.check_scale(scale)
    s = SCALES[scale]
    out = []
    for task in s["tasks"]:
        for method in METHODS:
            published = grid(method)[0]
            out += [
                config(scale, task, method, published, seed)
                for seed in reported_seeds(scale, seeds)
            ]
            out += [
                config(scale, task, method, point, seed)
                for point in grid(method)
                for seed in s["tuning_seeds"]
            ]
    return out


def planned_followup_runs(scale: str, seeds: int | None = None) -> list[RunConfig]:
    """What ``--plan`` counts for the second stage before the tuning has run: every method's
    reported seeds at one grid point other than the published one (the tuned point is only
    known after the tuning; every point has the same budget)."""
    s = SCALES[scale]
    return [
        config(scale, task, method, grid(method)[1], seed)
        for task in s["tasks"]
        for method in METHODS
        for seed in reported_seeds(scale, seeds)
    ]


def _task_of(c: RunConfig) -> tuple:
    return (c.operation, c.modulus, c.train_fraction)


def _method_of(c: RunConfig) -> str:
    """The benchmark method a run belongs to, from its settings."""
    if c.optimizer.muon:
        return "muon"
    if c.fixed_norm:
        return "fixed-norm"
    if c.grad_filter != "none":
        return f"grokfast-{c.grad_filter}"
    if c.orthogonal_grad:
        return "orthograd"
    if c.loss == "stablemax":
        return "stablemax"
    return "adamw"


def _point_of(c: RunConfig, method: str) -> dict:
    field, _ = REGULARISERS[method]
    value = getattr(c, field) if field == "init_scale" else getattr(c.optimizer, field)
    return {"lr": c.optimizer.lr, field: value}


def chosen_points(results, scale: str) -> dict[tuple, dict]:
    """(task, method) -> the grid point its tuning seeds reached 95 % soonest at (median steps;
    ties: the earlier point of the grid, the published one first)."""
    tuning = set(SCALES[scale]["tuning_seeds"])
    times: dict[tuple, dict[int, list]] = {}
    for r in results:
        if r.config.seed not in tuning:
            continue
        method = _method_of(r.config)
        points = grid(method)
        index = points.index(_point_of(r.config, method))
        time = grokking_time(_rows(r), r.config.steps)
        times.setdefault((_task_of(r.config), method), {}).setdefault(index, []).append(time)
    chosen = {}
    for key, by_point in times.items():
        best = min(by_point, key=lambda i: (summarize([t.steps_95 for t in by_point[i]]).median, i))
        chosen[key] = grid(key[1])[best]
    return chosen


def followup_runs(results, scale: str, seeds: int | None = None) -> list[RunConfig]:
    """The second stage: each method's reported seeds at its tuned point (runs equal to the
    published ones when the published point won: those are trained once)."""
    return [
        config(scale, task, method, point, seed)
        for (task, method), point in chosen_points(results, scale).items()
        for seed in reported_seeds(scale, seeds)
    ]


def _rows(result) -> list[dict]:
    from grokkit.runs import read_metrics  # here: `reproduce --list` imports this module

    return read_metrics(result.run_dir)


# ---------------------------------------------------------------- the numbers


@dataclass(frozen=True)
class Cell:
    """One task x method x variant: the point trained, each reported seed's times, and the
    summaries over seeds."""

    task: tuple
    method: str
    variant: str
    point: dict
    times: list[GrokkingTime]
    summaries: dict[str, Summary]  # "steps_95", "steps_99", "seconds_95", "train_99", "delay"
    ratio_95: tuple[float, float, float]  # against AdamW's same variant: ratio, interval
    ratio_99: tuple[float, float, float]
    ms_per_step: float
    state_bytes: int
    brackets: dict = None  # "steps_95", "steps_99", "delay": statistics.Times of the seeds
    versus: dict = None  # against AdamW's same variant (``compare``)
    seeds: tuple[int, ...] = ()  # the reported seeds, in the order of ``times``


@dataclass(frozen=True)
class Benchmark:
    cells: list[Cell]
    scale: str
    budget: int
    eval_every: int
    newton_schulz: str | None = None  # the precision Muon's iteration ran in here (``tuning``)


def _summaries(times: list[GrokkingTime], brackets: dict) -> dict[str, Summary]:
    """Steps to 95 % and 99 %: Kaplan-Meier medians and intervals (quartiles as before);
    seconds, training steps and delays: medians of the observed times."""
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
    """A method's seeds against AdamW's (steps to 95 %): log-rank p, Fisher p on the counts that
    reached 95 %, and P(method sooner) with its interval."""
    from grokkit.analysis import statistics

    a, b = cell_times["steps_95"], base_times["steps_95"]
    improvement = statistics.probability_of_improvement(a, b)
    return {
        "logrank": statistics.logrank(a, b),
        "fisher": statistics.fisher(a.n_reached, a.n, b.n_reached, b.n),
        "p_improvement": (improvement.probability, improvement.ci_low, improvement.ci_high),
    }


def cost(config: RunConfig) -> tuple[float, int]:
    """(ms per training step of one member on this machine, bytes of training state per run)."""
    import torch

    from grokkit.population import Population
    from grokkit.sweep.projection import measure as measure_step

    step = measure_step(config, 1, torch.get_num_threads())
    pop = Population([config])
    state = [pop.flat, pop.optimizer.member_state(0), pop.interventions.member_state(0)]
    return 1000 * step.step_seconds, _bytes(state)


def _bytes(value) -> int:
    if hasattr(value, "element_size"):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_bytes(v) for v in value)
    return 0


def measure(results, scale: str, seeds: int | None = None) -> Benchmark:
    s = SCALES[scale]
    reported = set(reported_seeds(scale, seeds))
    chosen = chosen_points(results, scale)
    by_key = {}
    for r in results:
        if r.config.seed in reported:
            method = _method_of(r.config)
            key = (_task_of(r.config), method, tuple(sorted(_point_of(r.config, method).items())))
            by_key.setdefault(key, []).append(r)
    raw = []
    for task in s["tasks"]:
        for method in METHODS:
            for variant in VARIANTS:
                point = grid(method)[0] if variant == "published" else chosen[(task, method)]
                members = by_key.get((task, method, tuple(sorted(point.items()))), [])
                rows = [_rows(r) for r in members]
                times = [grokking_time(m, r.config.steps) for m, r in zip(rows, members)]
                brackets = _brackets(rows, [r.config.steps for r in members])
                raw.append((task, method, variant, point, members, times, brackets))
    baseline = {(t, v): (times, b) for t, m, v, _, _, times, b in raw if m == BASELINE}
    costs: dict[str, tuple[float, int]] = {}  # the tuned point is often the published one
    cells = []
    for task, method, variant, point, members, times, brackets in raw:
        base, base_brackets = baseline[(task, variant)]
        ratios = {
            th: ratio_of_medians([b.steps(th) for b in base], [t.steps(th) for t in times])
            for th in THRESHOLDS
        }
        ms, state = (math.nan, 0)
        if members:
            name = members[0].run_dir.name
            ms, state = costs[name] = costs.get(name) or cost(members[0].config)
        cells.append(
            Cell(
                task,
                method,
                variant,
                point,
                times,
                _summaries(times, brackets),
                tuple(vars(ratios[0.95]).values()),
                tuple(vars(ratios[0.99]).values()),
                ms,
                state,
                brackets,
                compare(brackets, base_brackets),
                tuple(r.config.seed for r in members),
            )
        )
    return Benchmark(cells, scale, s["steps"], s["eval_every"], _newton_schulz_dtype())


def _newton_schulz_dtype() -> str:
    """The precision this machine iterates Muon's Newton-Schulz in, with one thread (a worker's
    on a 2-core machine with 2 jobs)."""
    from grokkit.backend_choice import choose_backend
    from grokkit.config import RunConfig

    muon = RunConfig().with_changes(muon=True)
    return "torch." + choose_backend("eager", "cpu", [muon], threads=1).newton_schulz


# ---------------------------------------------------------------- files

CSV_HEADER = [
    "task",
    "method",
    "variant",
    "seeds",
    "grokked_95",
    "grokked_99",
    "median_steps_95",
    "ci_low_95",
    "ci_high_95",
    "median_steps_99",
    "ci_low_99",
    "ci_high_99",
    "ms_per_step",
    "q25_steps_95",
    "q75_steps_95",
    "q25_steps_99",
    "q75_steps_99",
    "median_seconds_95",
    "median_train_steps_99",
    "median_delay_99",
    "speedup_95",
    "speedup_95_low",
    "speedup_95_high",
    "speedup_99",
    "speedup_99_low",
    "speedup_99_high",
    "state_bytes",
    "lr",
    "regulariser",
    "regulariser_value",
    "budget",
    "eval_every",
    "km_median_steps_95",
    "km_ci_low_95",
    "km_ci_high_95",
    "p_improvement",
    "p_improvement_low",
    "p_improvement_high",
    "logrank_p",
    "fisher_p",
    "resolution_steps",
]


def task_label(task: tuple) -> str:
    operation, modulus, fraction = task
    name = operation if operation.startswith("s5") else f"{operation} mod {modulus}"
    return f"{name}, {100 * fraction:.0f}%"


def _cell_value(value: float, budget: int) -> str | float | None:
    """A time for the CSV: a number, ``>budget`` when censored, empty when unknown."""
    if value is None or math.isnan(value):
        return None
    return f">{budget}" if math.isinf(value) else value


def _ratio_cells(bench: Benchmark, c: Cell, ratio: tuple) -> list:
    r, low, high = (None if math.isnan(v) else v for v in ratio)
    if r is not None:
        r = _censored_ratio(r, _baseline(bench, c), c, bench.budget)
    return [r, low, high]


def csv_rows(bench: Benchmark) -> list[list]:
    rows = []
    for c in bench.cells:
        s95, s99 = c.summaries["steps_95"], c.summaries["steps_99"]
        field, _ = REGULARISERS[c.method]

        def t(value: float) -> str | float | None:
            return _cell_value(value, bench.budget)

        rows.append(
            [
                task_label(c.task),
                c.method,
                c.variant,
                s95.seeds,
                s95.reached,
                s99.reached,
                *(t(v) for v in (s95.median, s95.ci_low, s95.ci_high)),
                *(t(v) for v in (s99.median, s99.ci_low, s99.ci_high)),
                None if math.isnan(c.ms_per_step) else round(c.ms_per_step, 3),
                *(t(v) for v in (s95.q25, s95.q75, s99.q25, s99.q75)),
                t(c.summaries["seconds_95"].median),
                t(c.summaries["train_99"].median),
                t(c.summaries["delay"].median),
                *(_ratio_cells(bench, c, c.ratio_95)),
                *(_ratio_cells(bench, c, c.ratio_99)),
                c.state_bytes,
                c.point["lr"],
                field,
                c.point[field],
                bench.budget,
                bench.eval_every,
                *(t(v) for v in (s95.median, s95.ci_low, s95.ci_high)),
                *_versus_cells(c),
            ]
        )
    return rows


def _versus_cells(c: Cell) -> list:
    """P(improvement) and its interval, log-rank p, Fisher p (empty for AdamW against itself),
    and the widest evaluation bracket of the seeds that reached 95 %."""
    resolution = c.brackets["steps_95"].resolution if c.brackets else math.nan
    resolution = None if math.isnan(resolution) else resolution
    if c.method == BASELINE or not c.versus:
        return [None] * 5 + [resolution]
    v = c.versus
    finite = [None if math.isnan(x) else x for x in v["p_improvement"]]
    p_values = [None if math.isnan(t.p_value) else t.p_value for t in (v["logrank"], v["fisher"])]
    return [*finite, *p_values, resolution]


def plot(bench: Benchmark, out_dir: Path) -> list[Path]:
    # Imported here: `reproduce --list` and `--plan` import every figure module.
    import matplotlib.pyplot as plt

    from grokkit.experiments.benchmark_plot import draw_task
    from grokkit.plots import apply_style

    apply_style()
    tasks = list(dict.fromkeys(c.task for c in bench.cells))
    fig, axes = plt.subplots(
        len(tasks), 1, figsize=(8.0, 3.4 * len(tasks)), squeeze=False, constrained_layout=True
    )
    for task, ax in zip(tasks, axes[:, 0]):
        draw_task(ax, [c for c in bench.cells if c.task == task], bench.budget, LABELS)
        ax.set_title(task_label(task))
    common.add_caption(
        fig,
        common.caption(
            REDUCTIONS,
            bench.scale,
            f"Kaplan-Meier median over seeds with its 95 % interval (Brookmeyer-Crowley, the "
            f"evaluation interval included); the first evaluated step (every "
            f"{bench.eval_every}) at or above the threshold. Seeds that never got there within "
            f"{bench.budget:,} updates are censored (triangles at the budget).",
        ),
    )
    out_dir = Path(out_dir)
    csv_path = common.write_csv(out_dir / f"{NAME}.csv", CSV_HEADER, csv_rows(bench))
    return [*common.save(fig, out_dir, NAME), csv_path]


def json_data(bench: Benchmark) -> dict:
    """What benchmark.json holds besides the figure's metadata (``reproduce`` writes both into
    it): the definition, and every cell with each seed's times (None: censored)."""

    def finite(x):
        return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x

    cells = [
        {
            "task": task_label(c.task),
            "method": c.method,
            "variant": c.variant,
            "point": c.point,
            "seeds": [
                {
                    "steps_95": t.steps_95,
                    "steps_99": t.steps_99,
                    "seconds_95": t.seconds_95,
                    "seconds_99": t.seconds_99,
                    "train_steps_99": t.train_steps_99,
                    "delay_99": t.delay_99,
                }
                for t in c.times
            ],
            "summaries": {
                k: {f: finite(v) for f, v in vars(s).items()} | {"censored": math.isinf(s.median)}
                for k, s in c.summaries.items()
            },
            "speedup_95": [finite(v) for v in c.ratio_95],
            "speedup_99": [finite(v) for v in c.ratio_99],
            "ms_per_step": finite(c.ms_per_step),
            "state_bytes": c.state_bytes,
        }
        for c in bench.cells
    ]
    runs = [
        {
            "task": task_label(c.task),
            "method": c.method,
            "variant": c.variant,
            "seed": seed,
            "steps_to_95": t.steps_95,
            "steps_to_99": t.steps_99,
            "budget": t.budget,
            "censored_95": t.steps_95 is None,
        }
        for c in bench.cells
        for seed, t in zip(c.seeds, c.times)
    ]
    return {
        "budget": bench.budget,
        "eval_every": bench.eval_every,
        "runs": runs,
        "muon_newton_schulz_dtype": bench.newton_schulz,
        "definition": "first evaluated step at or above the validation-accuracy threshold; "
        "null when not within the budget (censored)",
        "cells": cells,
    }


# ---------------------------------------------------------------- verdicts


def _censored_ratio(r: float, base: Cell, cell: Cell, budget: int) -> float | str:
    """A ratio of medians as a number, or, where one median is censored, the bound it is known
    by: "<b" when the method's is (AdamW's median / the budget), ">b" when AdamW's is."""
    if r == 0:
        return f"<{base.summaries['steps_95'].median / budget:.3g}"
    if math.isinf(r):
        return f">{budget / cell.summaries['steps_95'].median:.3g}"
    return r


def _baseline(bench: Benchmark, cell: Cell) -> Cell:
    return next(
        c
        for c in bench.cells
        if c.task == cell.task and c.variant == cell.variant and c.method == BASELINE
    )


def claims(bench: Benchmark) -> list[claim_records.Claim]:
    """Per task, each method's variants against AdamW's same variant, and the fixed norm's
    delay (the module's docstring); one Holm family."""
    from grokkit.analysis import statistics

    tasks = list(dict.fromkeys(c.task for c in bench.cells))
    compared = [c for c in bench.cells if c.method != BASELINE and c.versus]
    m = len(compared) + len(tasks)
    alpha = claim_records.ALPHA / max(m, 1)  # Holm's first level: the power's bound
    out = [_speed_claim(c, alpha, statistics) for c in compared]
    for task in tasks:
        cell = {(c.method, c.variant): c for c in bench.cells if c.task == task}
        out.append(
            _delay_claim(cell[("fixed-norm", "published")], cell[("adamw", "published")], alpha)
        )
    return out


def _speed_claim(c: Cell, alpha: float, statistics) -> claim_records.Claim:
    v, n = c.versus, c.brackets["steps_95"].n
    base_n = n  # the same reported seeds for every cell
    test = v["logrank"]
    p_imp = v["p_improvement"]
    sooner = test.statistic < 0 if not math.isnan(test.statistic) else False
    return claim_records.Claim(
        id=f"{task_label(c.task)}: {c.method} {c.variant}",
        claim=(
            f"{LABELS[c.method]} ({c.variant}) reaches 95 % validation sooner than AdamW "
            f"({c.variant}); measured: P(sooner) with its bootstrap interval; Fisher p on the "
            f"counts reached = {v['fisher'].p_value:.3g}."
        ),
        paper_value=f"{CLAIMED_SPEEDUP[c.method]:g}x sooner (the effect the power assumes)",
        measured=p_imp[0],
        interval=(p_imp[1], p_imp[2]),
        test=test.name + " (steps to 95 %, right-censored at the budget)",
        null=test.null,
        p_value=test.p_value,
        power=statistics.power_log_ratio(CLAIMED_SPEEDUP[c.method], SIGMA_LOG, n, base_n, alpha),
        if_rejected="holds" if sooner else "contradicted",
        why="" if n else "no reported seed trained",
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
    """Each speed claim's power at the planned reported seeds against its method's claimed
    speed-up (the delay claim: a 10-fold shorter delay), at the family's first Holm level."""
    from grokkit.analysis import statistics

    n = len(reported_seeds(scale, seeds))
    tasks = SCALES[scale]["tasks"]
    alpha = claim_records.ALPHA / ((2 * (len(METHODS) - 1) + 1) * len(tasks))
    rows = [
        {
            "id": f"{task_label(task)}: {method} {variant}",
            "power": statistics.power_log_ratio(CLAIMED_SPEEDUP[method], SIGMA_LOG, n, n, alpha),
            "effect": f"{CLAIMED_SPEEDUP[method]:g}x sooner, log sd {SIGMA_LOG:g}",
        }
        for task in tasks
        for method in METHODS
        if method != BASELINE
        for variant in VARIANTS
    ]
    rows += [
        {
            "id": f"{task_label(task)}: fixed-norm delay",
            "power": statistics.power_log_ratio(10.0, 0.5, n, n, alpha),
            "effect": "a 10-fold shorter delay, log sd 0.5",
        }
        for task in tasks
    ]
    return rows


def describe(bench: Benchmark) -> str:
    """Per task, each tuned method's Kaplan-Meier median steps to 95 % with its interval and
    P(sooner than tuned AdamW)."""
    parts = []
    for task in dict.fromkeys(c.task for c in bench.cells):
        cells = [c for c in bench.cells if c.task == task and c.variant == "tuned"]
        parts.append(
            f"{task_label(task)}, tuned, Kaplan-Meier median steps to 95 % [95 % interval] "
            f"(evaluations every {bench.eval_every}): "
            + "; ".join(_cell_text(c, bench.budget) for c in cells)
            + "."
        )
    return " ".join(parts)


def _cell_text(c: Cell, budget: int) -> str:
    s = c.summaries["steps_95"]
    text = (
        f"{LABELS[c.method]} {format_steps(s.median, budget)} "
        f"[{format_steps(s.ci_low, budget)}, {format_steps(s.ci_high, budget)}] "
        f"({s.reached}/{s.seeds})"
    )
    if c.method != BASELINE and c.versus:
        p, low, high = c.versus["p_improvement"]
        text += f", P(sooner than AdamW) {p:.2f} [{low:.2f}, {high:.2f}]"
    return text
