"""What a sweep trains: the grid's runs, their folder names, and their grouping into populations."""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import fields, replace

from grokkit.config import RunConfig
from grokkit.errors import InputError
from grokkit.optim import OptimizerConfig, preset
from grokkit.population import population_key

_RUN_FIELDS = {f.name for f in fields(RunConfig)}
_OPT_FIELDS = {f.name for f in fields(OptimizerConfig)}


def expand_grid(base: RunConfig, grid: dict[str, Sequence]) -> list[RunConfig]:
    """Every combination of the grid's values applied to ``base`` (the cartesian product).

    Keys are RunConfig field names or OptimizerConfig field names (lr, weight_decay, dropout, ...),
    plus ``"preset"``: a name from ``grokkit.optim.PRESETS`` that replaces the whole optimizer
    config (and sets ``RunConfig.preset``) before the other optimizer keys are applied. The order
    is that of ``itertools.product`` over the keys in the dict's order (the last key varies
    fastest), so the same grid always gives the same list. Values that are not sequences are
    taken as a single value.
    """
    keys = list(grid)
    for k in keys:
        if k != "preset" and k not in _RUN_FIELDS and k not in _OPT_FIELDS:
            raise InputError(
                f"unknown sweep key {k!r}; use RunConfig or OptimizerConfig field names or 'preset'"
            )
    values = []
    for k in keys:
        v = grid[k]
        v = list(v) if isinstance(v, (list, tuple, range)) else [v]
        if not v:
            raise InputError(f"sweep key {k!r} has no values")
        values.append(v)
    configs = []
    for combo in itertools.product(*values):
        changes = dict(zip(keys, combo))
        cfg = base
        if "preset" in changes:
            name = changes.pop("preset")
            cfg = replace(cfg, optimizer=preset(name), preset=name)
        configs.append(cfg.with_changes(**changes) if changes else cfg)
    return configs


def config_hash(config: RunConfig) -> str:
    """Eight hex digits of a SHA-256 of the full configuration (canonical JSON of
    ``RunConfig.identity_dict``: fields added later count only once they are set)."""
    text = json.dumps(config.identity_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _safe_operation(op: str) -> str:
    op = op.replace("^-1", "_inv").replace("^", "").replace("/", "_div_")
    return "".join(ch if ch.isalnum() or ch in "+-_." else "_" for ch in op)


def run_name(config: RunConfig, method_tags: bool = True) -> str:
    """A readable, filesystem-safe folder name, unique per configuration and stable across
    versions of Python: e.g. ``x_div_y-p97-f0.300-adamw-k0-s2-1a2b3c4d`` (operation, modulus,
    train fraction, preset, outliers, seed, the architecture and ``RunConfig.method_tags`` when
    not the defaults, e.g. ``...-s0-grokfast_ema-lambda2-l2_0.005-<hash>``, then a hash of the
    whole config). In the operation,
    ``/`` becomes ``_div_``, ``^-1`` becomes ``_inv`` and other ``^`` are dropped (``x2+y2``).
    ``method_tags=False``: the name grokkit gave such a run before the tags (the same hash), so
    a sweep can adopt the folder of a run trained then (``folder.adopt_untagged_folders``)."""
    parts = [_safe_operation(config.operation)]
    if not config.operation.startswith("s5"):
        parts.append(f"p{config.modulus}")
    parts += [
        f"f{config.train_fraction:.3f}",
        config.preset or "custom",
        f"k{config.outliers}",
        f"s{config.seed}",
    ]
    if config.arch != "grokkit":  # the default architecture keeps the names runs always had
        parts.append(config.arch)
    if method_tags:
        parts += config.method_tags()  # likewise: none for the paper's runs
    parts.append(config_hash(config))
    return "-".join(parts)


def _balanced_chunks(items: list[int], limit: int) -> list[list[int]]:
    """At most ``limit`` items per chunk, as few chunks as that allows, sizes differing by <= 1."""
    n_chunks = math.ceil(len(items) / limit)
    size, extra = divmod(len(items), n_chunks)
    out, start = [], 0
    for c in range(n_chunks):
        stop = start + size + (c < extra)
        out.append(items[start:stop])
        start = stop
    return out


def group(keys: list, max_population: int) -> list[list[int]]:
    """Indices with equal keys, in chunks of at most ``max_population``, in first-seen order."""
    if max_population < 1:
        raise InputError(f"max population must be >= 1, got {max_population}")
    by_key: dict = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)
    return [
        chunk for members in by_key.values() for chunk in _balanced_chunks(members, max_population)
    ]


def plan(configs: list[RunConfig], max_population: int) -> list[list[int]]:
    """Groups of indices into ``configs`` that can train as one population: equal
    ``population_key``, at most ``max_population`` each (a key's runs are split into as few
    chunks as possible, of equal sizes to within one). Groups come in order of their first run."""
    return group([population_key(c) for c in configs], max_population)


def list_schedule(durations: list[float], workers: int) -> float:
    """Makespan of tasks handed out in order, each to the worker that is free first (how a
    process pool and Ray's queue hand out the populations)."""
    free_at = [0.0] * max(1, workers)
    heapq.heapify(free_at)
    for d in durations:
        heapq.heappush(free_at, heapq.heappop(free_at) + d)
    return max(free_at)


def balance_workers(
    groups: list[tuple[list[str], bool]], workers: int, cost: dict[str, float]
) -> list[tuple[list[str], bool]]:
    """Populations split so that ``workers`` workers finish together, largest first.

    ``cost``: each run's remaining work (``grokkit.step_flops.run_flops``). A population costs
    the sum of its members' work (on a CPU the cost per member is flat in the population's size,
    benchmarks/RESULTS.md), and the pool hands populations out in order to the first free worker
    (``list_schedule``). The costliest population is halved, again and again (up to four
    populations per worker), and the first of these splittings whose schedule ends soonest is
    kept: the fewest splits for the best balance. One halving alone may not help (two workers, a
    population of 16 units beside one of 8: halving either still leaves 16 or 8 + 8 on one worker)
    where two do (4 + 8 and 4 + 8). The halves take every other run, because a grid's neighbours
    (seeds of one data fraction) tend to take equally long. The result is ordered by decreasing
    cost, the order in which a list schedule finishes soonest. Counting runs instead of their
    work left a population of the authors' network (twice the cost per step) training alone for
    an hour while the other worker idled."""
    groups = [(list(g), resume) for g, resume in groups]

    def total(g: tuple[list[str], bool]) -> float:
        return sum(cost[n] for n in g[0])

    def makespan(gs: list[tuple[list[str], bool]]) -> float:
        return list_schedule(sorted(map(total, gs), reverse=True), workers)

    best, best_span = groups, makespan(groups)
    while len(groups) < 4 * workers:
        splittable = [i for i, (g, _) in enumerate(groups) if len(g) > 1]
        if not splittable:
            break
        i = max(splittable, key=lambda k: total(groups[k]))
        g, resume = groups[i]
        groups = groups[:i] + [(g[0::2], resume), (g[1::2], resume)] + groups[i + 1 :]
        span = makespan(groups)
        if span < best_span * (1 - 1e-9):
            best, best_span = groups, span
    return sorted(best, key=total, reverse=True)
