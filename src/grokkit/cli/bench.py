"""``grokkit bench``: time a training step of the paper's configuration."""

from __future__ import annotations

import argparse
import json

from grokkit.bench import benchmark
from grokkit.cli.catalogue import COMMANDS
from grokkit.cli.common import (
    add_backend_flag,
    add_device_flag,
    add_threads_flag,
    apply_threads,
    require_at_least,
)
from grokkit.config import RunConfig
from grokkit.devices import device_name, resolve_device
from grokkit.model import ARCHS


def register(sub) -> None:
    b = sub.add_parser("bench", help=COMMANDS["bench"])
    b.add_argument("--json", action="store_true", help="print one JSON object")
    add_device_flag(b)
    b.add_argument(
        "--population",
        type=int,
        nargs="+",
        default=[1],
        help="members trained together (E); several values: one measurement each",
    )
    b.add_argument("--tf32", action="store_true", help="TF32 float32 matmuls (CUDA only)")
    b.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 operands, float32 accumulation in the products (the run setting bf16)",
    )
    b.add_argument(
        "--arch",
        choices=list(ARCHS),
        default="grokkit",
        help="the model timed: grokkit's or the authors' (openai-grok); default grokkit",
    )
    b.add_argument("--steps", type=int, default=30, help="timed steps")
    b.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    add_threads_flag(b)
    add_backend_flag(b)
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for population in args.population:
        require_at_least("--population", population, 1)
    require_at_least("--steps", args.steps, 1)
    require_at_least("--warmup", args.warmup, 0)
    device = resolve_device(args.device)
    config = RunConfig(tf32=args.tf32, bf16=args.bf16).with_changes(arch=args.arch)
    apply_threads(args)
    results = [
        {
            **benchmark(
                device=device,
                population=population,
                steps=args.steps,
                warmup=args.warmup,
                config=config,
                backend=args.backend,
            ),
            "tf32": args.tf32,
            "arch": args.arch,
            "hardware": device_name(device),
        }
        for population in args.population
    ]
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else {"results": results}))
    else:
        for i, result in enumerate(results):
            if i:
                print()
            for k, v in result.items():
                print(f"{k}: {v}")
    return 0
