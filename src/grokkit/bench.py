"""Throughput of the paper's configuration: x/y mod 97, 50 % data, batch 512, AdamW, 2x128x4."""

from __future__ import annotations

import statistics

import torch

from grokkit import tuning
from grokkit.config import RunConfig
from grokkit.devices import wall_seconds
from grokkit.population import Population


def benchmark(
    device: str = "cpu",
    population: int = 1,
    steps: int = 30,
    warmup: int = 5,
    config: RunConfig | None = None,
) -> dict:
    """Median wall time of one training step (all E members), and member-steps per second."""
    base = config or RunConfig()
    pop = Population([base.with_changes(seed=i) for i in range(population)], device)
    dev = pop.device
    for _ in range(warmup):
        pop.step()
    times = [wall_seconds(pop.step, dev) for _ in range(steps)]
    # whole-table evaluation (train and validation sets), median of 3
    eval_times = [wall_seconds(pop.evaluate, dev) for _ in range(3)]
    gemm_choice = tuning.current() if dev.type == "cpu" else None  # the path these steps used
    eval_ms = 1000 * statistics.median(eval_times)
    ms = 1000 * statistics.median(times)
    return {
        "ms_per_step": round(ms, 3),
        "member_steps_per_second": round(population * 1000 / ms, 1),
        "population": population,
        "batch_size": pop.batch_size,
        "eval_ms": round(eval_ms, 1),
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onednn_linear": gemm_choice is not None and gemm_choice.path == "onednn",
        **(gemm_choice.as_dict() if gemm_choice is not None else {}),
        "fused_adamw": pop.optimizer.fused,
        "operation": base.operation,
        "modulus": base.modulus,
    }
