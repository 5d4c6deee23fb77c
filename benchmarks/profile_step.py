"""Where the training step's time goes: torch.profiler over steps of the paper's configuration.

    python benchmarks/profile_step.py [--threads N] [--population E] [--steps 20] [--top 15]
                                      [--arch grokkit|openai-grok] [--op OP] [--train-fraction F]

Prints the operators by self CPU time (total, calls, share of the profiled time) and how many
parallel regions one step enters (OpenMP-using operators called per step is the proxy: every
call of an operator that splits its work over threads is one region the other threads wait in).
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from grokkit.backend_choice import choose_backend
from grokkit.config import RunConfig
from grokkit.devices import cpu_model
from grokkit.population import Population


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--population", type=int, default=1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--backend", default="eager", choices=("auto", "eager", "compiled"))
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--arch", default="grokkit", choices=("grokkit", "openai-grok"))
    p.add_argument("--op", default="x/y")
    p.add_argument("--train-fraction", type=float, default=0.5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    base = RunConfig(operation=args.op, train_fraction=args.train_fraction)
    base = base.with_changes(arch=args.arch)
    configs = [base.with_changes(seed=i) for i in range(args.population)]
    pop = Population(configs, "cpu", choose_backend(args.backend, "cpu", configs))
    for _ in range(5):
        pop.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            pop.step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    print(
        f"{cpu_model()}, torch {torch.__version__}, {args.threads} thread(s), "
        f"{args.arch} {args.op} E = {args.population}: "
        f"{total / args.steps / 1000:.2f} ms of operator time per step"
    )
    print(f"{'operator':<40} {'ms/step':>8} {'calls/step':>10} {'share':>6}")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        print(
            f"{e.key[:40]:<40} {e.self_cpu_time_total / args.steps / 1000:8.3f} "
            f"{e.count / args.steps:10.1f} {e.self_cpu_time_total / total:6.1%}"
        )
    calls = sum(e.count for e in events if not e.key.startswith("aten::view")) / args.steps
    print(f"operator calls per step (views excluded): {calls:.0f}")


if __name__ == "__main__":
    main()
