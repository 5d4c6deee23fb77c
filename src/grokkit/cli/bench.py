"""``grokkit bench``: time a training step of the paper's configuration."""

from __future__ import annotations

import argparse
import json

from grokkit.bench import benchmark
from grokkit.cli.common import add_device_flag, require_at_least
from grokkit.devices import resolve_device


def register(sub) -> None:
    b = sub.add_parser("bench", help="time a training step of the paper's configuration")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    add_device_flag(b)
    b.add_argument("--population", type=int, default=1, help="members trained together (E)")
    b.add_argument("--steps", type=int, default=30, help="timed steps")
    b.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_at_least("--population", args.population, 1)
    require_at_least("--steps", args.steps, 1)
    require_at_least("--warmup", args.warmup, 0)
    result = benchmark(device=resolve_device(args.device), population=args.population,
                       steps=args.steps, warmup=args.warmup)  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0
