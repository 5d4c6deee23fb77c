"""How long a sweep will take on this machine, projected before anything trains.

The projection measures, on the device the sweep will use and with the threads each worker will
get, the wall time of a few training steps and of one evaluation for every kind of population the
sweep trains (``population_key``: operation, model, batch size, dropout, interventions), then
counts the steps and evaluations each population makes (``train.evaluation_count``) and lays the
populations out on the workers in the order the executor hands them out.

Every run is counted with its whole budget: runs that stop once they generalised
(``stop_after_val_99``) take less, and run folders written in the meantime are not foreseen. It
is not a bound, though: the costs are measured with one process at a time, and workers that share
a CPU's caches and memory run a little slower (``CAVEAT``).
Measured costs are kept on disk per CPU model, thread count, PyTorch version, device and kind
(``costs.json`` beside gemm.json), so a second ``--plan`` measures nothing: a cost
measured while the machine was oversubscribed is used but not kept, and ``--remeasure`` (or
``GROKKIT_REMEASURE=1``) measures again. Each kept measurement records the quartiles of its step
times; the projection states its spread (``low``, ``high``) from the lowest and highest quartile
of every measurement of that kind kept so far (at most ``KEPT_MEASUREMENTS``).
Measured throughput is the time of a population of up to ``measured_members(device)`` members,
scaled linearly in the members: on a CPU the cost per member is flat
(benchmarks/RESULTS.md); on a GPU a population larger than the measured one is faster per member
than projected.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass, field

import torch

from grokkit import backend_choice
from grokkit.config import RunConfig
from grokkit.devices import load_average, wall_seconds
from grokkit.files import atomic_write_text, read_regular_bytes
from grokkit.population import Population, population_key
from grokkit.sweep.executors import worker_threads
from grokkit.sweep.grid import list_schedule
from grokkit.train import evaluation_count

MEASURE_SECONDS = (
    1.0  # time measured steps for about this long (at least MIN_STEPS, at most MAX_STEPS)
)
MIN_STEPS, MAX_STEPS, WARMUP_STEPS = 3, 20, 2
KEPT_MEASUREMENTS = 5
COSTS_FILE = "costs.json"
CAVEAT = (
    "Costs are measured one process at a time; two workers sharing a 2-core CPU trained "
    "up to 17 % slower than projected in our measurements (docs/figures.md). Analysis and plotting "
    "are not included."
)


def measured_members(device: str) -> int:
    """Members of the measured population (at most the group's size): 4 on a CPU, where the cost
    per member is flat; 64 on an accelerator, whose throughput grows with the population."""
    return 4 if device == "cpu" else 64


@dataclass(frozen=True)
class StepCost:
    """Seconds per population step and per evaluation, per member; ``step_low``/``step_high``:
    the spread of the step's seconds (quartiles, over every kept measurement)."""

    step_seconds: float
    eval_seconds: float
    step_low: float = 0.0
    step_high: float = 0.0

    def __post_init__(self):
        if not self.step_low:
            object.__setattr__(self, "step_low", self.step_seconds)
        if not self.step_high:
            object.__setattr__(self, "step_high", self.step_seconds)


@dataclass
class CostMeter:
    """Measures each kind of population once per (device, threads) and remembers it, so a
    projection over many figures measures every model size once."""

    device: str = "cpu"
    costs: dict = field(default_factory=dict)
    remeasure: bool = field(default_factory=lambda: os.environ.get("GROKKIT_REMEASURE") == "1")
    measured: int = 0  # kinds timed by this meter (the others came from the cache)

    def cost(self, config: RunConfig, members: int, threads: int) -> StepCost:
        key = (_cost_key(config), min(members, measured_members(self.device)), threads, self.device)
        if key not in self.costs:
            disk_key = _disk_key(key)
            kept = [] if self.remeasure else _valid(_read_costs().get(disk_key))
            if not kept:
                cost = measure(config, key[1], threads, self.device)
                self.measured += 1
                kept = _keep(disk_key, cost)
            self.costs[key] = _combined(kept)
        return self.costs[key]


def _disk_key(key: tuple) -> str:
    kind, members, threads, device = key
    return f"{backend_choice.cache_key(threads)}|{device}|members={members}|{kind!r}"


def _read_costs() -> dict:
    try:
        data = json.loads(read_regular_bytes(backend_choice.cache_path().with_name(COSTS_FILE)))
    except (OSError, ValueError):  # missing or damaged: measure again
        return {}
    return data if isinstance(data, dict) else {}


def _keep(disk_key: str, cost: StepCost) -> list[dict]:
    """Add a measurement to the kept ones (unless the machine was oversubscribed: then only this
    process uses it); returns the measurements to combine."""
    entry = {**vars(cost), "load_average": load_average(), "at": time.time()}
    if backend_choice.oversubscribed():
        return [entry]
    data = _read_costs()
    kept = _valid(data.get(disk_key))[-(KEPT_MEASUREMENTS - 1) :]
    data[disk_key] = kept = [*kept, entry]
    try:
        atomic_write_text(
            backend_choice.cache_path().with_name(COSTS_FILE), json.dumps(data, indent=1)
        )
    except OSError:  # a read-only home: measure again next time
        pass
    return kept


_FIELDS = ("step_seconds", "eval_seconds", "step_low", "step_high")


def _valid(entries) -> list[dict]:
    """The well-formed measurements of a cache entry (a damaged one is measured again)."""
    if not isinstance(entries, list):
        return []
    return [
        e
        for e in entries
        if isinstance(e, dict)
        and all(isinstance(e.get(f), (int, float)) and 0 < e[f] < 1e6 for f in _FIELDS)
    ]


def _combined(kept: list[dict]) -> StepCost:
    """The latest measurement's costs, with the spread of all kept ones."""
    latest = kept[-1]
    return StepCost(
        latest["step_seconds"],
        latest["eval_seconds"],
        min(e["step_low"] for e in kept),
        max(e["step_high"] for e in kept),
    )


def _cost_key(config: RunConfig) -> tuple:
    # The evaluation schedule changes how often, not how long: leave it out of the key.
    return population_key(config.with_changes(eval_every=1))


def measure(config: RunConfig, members: int, threads: int, device: str = "cpu") -> StepCost:
    """Time a fresh population of ``members`` copies of ``config`` (seeds 0..members-1): the
    median of a few steps and one evaluation after a warm-up, with ``threads`` torch threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        configs = [config.with_changes(seed=s) for s in range(members)]
        # Eager, with the machine's GEMM: a plan must not pay a compile to cost a run.
        backend = backend_choice.choose_backend("eager", device, configs, threads)
        pop = Population(configs, device, backend)
        for _ in range(WARMUP_STEPS):
            pop.step()
        times, started = [], time.perf_counter()
        while len(times) < MAX_STEPS and (
            len(times) < MIN_STEPS or time.perf_counter() - started < MEASURE_SECONDS
        ):
            times.append(wall_seconds(pop.step, pop.device))
        pop.evaluate()  # warm-up: the first evaluation allocates its buffers
        evaluation = wall_seconds(pop.evaluate, pop.device)
    finally:
        torch.set_num_threads(previous)
    q25, _, q75 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    return StepCost(
        statistics.median(times) / members, evaluation / members, q25 / members, q75 / members
    )


@dataclass(frozen=True)
class GroupProjection:
    runs: list[str]  # run names trained together
    seconds: float  # projected wall time of the population, alone on its worker
    low: float = 0.0  # the same with the spread's low and high step costs
    high: float = 0.0


@dataclass(frozen=True)
class Projection:
    seconds: float  # projected wall time, every run using its whole budget
    groups: list[GroupProjection]
    jobs: int
    threads: int
    low: float = 0.0  # the spread: every population at its low, or high, measured step cost
    high: float = 0.0

    @property
    def run_seconds(self) -> dict[str, float]:
        """Each run's share of its population's time."""
        return {n: g.seconds / len(g.runs) for g in self.groups for n in g.runs}


def project(
    configs: dict[str, RunConfig],
    groups: list[tuple[list[str], bool]],
    start_steps: dict[str, int],
    jobs: int,
    meter: CostMeter,
) -> Projection:
    """The wall time of training ``groups`` (run names; from ``sweep.plan_sweep``) on ``jobs``
    workers, each with the threads the executor gives it (``worker_threads``)."""
    threads = worker_threads(jobs) if meter.device == "cpu" else torch.get_num_threads()
    projected = []
    for names, _ in groups:
        members = [configs[n] for n in names]
        cost = meter.cost(members[0], len(members), threads)
        start = start_steps.get(names[0], 0)
        # Members run in lockstep until each one's budget: the population shrinks as they end.
        steps = sum(c.steps - start for c in members)
        eval_seconds = sum(evaluation_count(c, start) * cost.eval_seconds for c in members)
        projected.append(
            GroupProjection(
                list(names),
                steps * cost.step_seconds + eval_seconds,
                steps * cost.step_low + eval_seconds,
                steps * cost.step_high + eval_seconds,
            )
        )
    return Projection(
        list_schedule([g.seconds for g in projected], jobs),
        projected,
        jobs,
        threads,
        list_schedule([g.low for g in projected], jobs),
        list_schedule([g.high for g in projected], jobs),
    )
