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
Measured throughput is the time of a population of up to ``measured_members(device)`` members,
scaled linearly in the members: on a CPU the cost per member is flat
(benchmarks/RESULTS.md); on a GPU a population larger than the measured one is faster per member
than projected.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import torch

from grokkit.config import RunConfig
from grokkit.devices import wall_seconds
from grokkit.population import Population, population_key
from grokkit.sweep.executors import worker_threads
from grokkit.sweep.grid import list_schedule
from grokkit.train import evaluation_count

MEASURE_SECONDS = (
    1.0  # time measured steps for about this long (at least MIN_STEPS, at most MAX_STEPS)
)
MIN_STEPS, MAX_STEPS, WARMUP_STEPS = 3, 20, 2
CAVEAT = (
    "Costs are measured one process at a time; two workers sharing a 2-core CPU trained "
    "up to 8 % slower than projected in our measurements (docs/figures.md). Analysis and plotting "
    "are not included."
)


def measured_members(device: str) -> int:
    """Members of the measured population (at most the group's size): 4 on a CPU, where the cost
    per member is flat; 64 on an accelerator, whose throughput grows with the population."""
    return 4 if device == "cpu" else 64


@dataclass(frozen=True)
class StepCost:
    """Seconds per population step and per evaluation, per member."""

    step_seconds: float
    eval_seconds: float


@dataclass
class CostMeter:
    """Measures each kind of population once per (device, threads) and remembers it, so a
    projection over many figures measures every model size once."""

    device: str = "cpu"
    costs: dict = field(default_factory=dict)

    def cost(self, config: RunConfig, members: int, threads: int) -> StepCost:
        key = (_cost_key(config), min(members, measured_members(self.device)), threads, self.device)
        if key not in self.costs:
            self.costs[key] = measure(config, key[1], threads, self.device)
        return self.costs[key]


def _cost_key(config: RunConfig) -> tuple:
    # The evaluation schedule changes how often, not how long: leave it out of the key.
    return population_key(config.with_changes(eval_every=1))


def measure(config: RunConfig, members: int, threads: int, device: str = "cpu") -> StepCost:
    """Time a fresh population of ``members`` copies of ``config`` (seeds 0..members-1): the
    median of a few steps and one evaluation after a warm-up, with ``threads`` torch threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        pop = Population([config.with_changes(seed=s) for s in range(members)], device)
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
    return StepCost(statistics.median(times) / members, evaluation / members)


@dataclass(frozen=True)
class GroupProjection:
    runs: list[str]  # run names trained together
    seconds: float  # projected wall time of the population, alone on its worker


@dataclass(frozen=True)
class Projection:
    seconds: float  # projected wall time, every run using its whole budget
    groups: list[GroupProjection]
    jobs: int
    threads: int

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
        step_seconds = sum((c.steps - start) * cost.step_seconds for c in members)
        eval_seconds = sum(evaluation_count(c, start) * cost.eval_seconds for c in members)
        projected.append(GroupProjection(list(names), step_seconds + eval_seconds))
    return Projection(list_schedule([g.seconds for g in projected], jobs), projected, jobs, threads)
