"""Throughput of the paper's configuration: x/y mod 97, 50 % data, batch 512, AdamW, 2x128x4,
and the step's place under the machine's measured limit (``grokkit.peak``).

Two counts of a step's arithmetic are reported. ``dense_flops_per_step``: what the model's
shapes make a plain implementation compute (``grokkit.step_flops``, all members), the same work
the plain baseline does. ``flops_per_step``: the products the timed step itself issues (the fast
path computes rows once per element, not once per example), counted by PyTorch's
FlopCounterMode over one step. ``fraction_of_peak`` is the second over the step's time against
the float32 peak measured at the same thread count (the bfloat16 one for ``bf16`` products in
hardware): how well the step uses the machine;
``dense_fraction_of_peak``, the first's: how fast the model trains, in the units of the plain
implementation.
"""

from __future__ import annotations

import statistics
import time
import warnings

import torch

from grokkit.backend_choice import choose_backend
from grokkit.config import RunConfig
from grokkit.devices import wall_seconds
from grokkit.model import _linear
from grokkit.peak import fraction_of_peak, gemm_peak_gflops
from grokkit.population import Population
from grokkit.step_flops import muon_flops, training_step_flops


def counted_step_flops(configs: list[RunConfig], device: str = "cpu") -> int:
    """The FLOPs of one training step of a population of ``configs`` as PyTorch counts the
    products it issues (on a population of its own, so that no timed state moves)."""
    from torch.utils.flop_counter import FlopCounterMode

    with warnings.catch_warnings():  # the timed population has said what it had to say
        warnings.simplefilter("ignore")
        pop = Population(configs, device)
    # Plain PyTorch products (the default backend): the counter sees each one as it is issued.
    with FlopCounterMode(display=False) as counter:
        pop.step()
    return counter.get_total_flops()


def benchmark(
    device: str = "cpu",
    population: int = 1,
    steps: int = 30,
    warmup: int = 5,
    config: RunConfig | None = None,
    backend: str = "auto",
) -> dict:
    """Median wall time of one training step (all E members), and member-steps per second, on
    the backend ``backend`` resolves to (grokkit.backend_choice; said in the result, with why)."""
    base = config or RunConfig()
    configs = [base.with_changes(seed=i) for i in range(population)]
    chosen = choose_backend(backend, device, configs)
    pop = Population(configs, device, chosen)
    dev = pop.device
    started = time.perf_counter()
    pop.step()  # the first step: a compile, if any, happens here
    first_step_s = time.perf_counter() - started
    for _ in range(warmup):
        pop.step()
    times = [wall_seconds(pop.step, dev) for _ in range(steps)]
    # whole-table evaluation (train and validation sets), median of 3
    eval_times = [wall_seconds(pop.evaluate, dev) for _ in range(3)]
    eval_ms = 1000 * statistics.median(eval_times)
    ms = 1000 * statistics.median(times)
    roofline = _roofline(pop, base, ms / 1000) if dev.type == "cpu" else {}
    return {
        "ms_per_step": round(ms, 3),
        "member_steps_per_second": round(population * 1000 / ms, 1),
        "population": population,
        "batch_size": pop.batch_size,
        "eval_ms": round(eval_ms, 1),
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onednn_linear": chosen.linear is not _linear,
        "gemm": chosen.gemm,
        "compiled": chosen.compiled,
        "backend_why": chosen.why,
        "first_step_s": round(first_step_s, 2),
        "fused_adamw": pop.optimizer.fused,
        "bf16": chosen.bf16 or "off",
        "operation": base.operation,
        "modulus": base.modulus,
        **roofline,
    }


def _roofline(pop: Population, config: RunConfig, seconds: float) -> dict:
    """The step's FLOPs (both counts), the measured peaks and the fractions of the float32 one."""
    dense = pop.size * training_step_flops(pop.model_config, pop.batch_size)
    if config.optimizer.muon:
        dense += pop.size * muon_flops(pop.model_config)
    issued = counted_step_flops(pop.configs, str(pop.device))
    peak, peak_bf16 = gemm_peak_gflops(torch.float32), gemm_peak_gflops(torch.bfloat16)
    # bfloat16 products in hardware are held against the bfloat16 peak; emulated ones multiply
    # in float32, so the float32 peak is their limit.
    limit = peak_bf16 if pop.backend.bf16 == "hardware" else peak
    return {
        "flops_per_step": issued,
        "dense_flops_per_step": dense,
        "peak_gflops": round(peak, 1),
        "peak_gflops_bf16": round(peak_bf16, 1),
        "fraction_of": "bf16 peak" if pop.backend.bf16 == "hardware" else "float32 peak",
        "fraction_of_peak": round(fraction_of_peak(issued, seconds, limit), 3),
        "dense_fraction_of_peak": round(fraction_of_peak(dense, seconds, limit), 3),
    }
