"""The training step against this machine's measured limit, for populations and thread counts.

    python benchmarks/roofline.py [--threads 1 2] [--population 1 2 4 8 16] [--plot FILE]
                                  [--json]

For each thread count and population size E: ms per step, member-steps per second, the FLOPs the
step issues (PyTorch's count of the fast path's products) and the dense model's, the float32 GEMM
peak measured at that thread count, and the fraction of it the step reaches
(``grokkit.bench``). The plot shows member-steps/s against E with, per thread count, the rate the
peak would allow (the roofline: peak / the FLOPs of one member's step); the second panel the
fraction of peak. Record the CPU model with the numbers (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json

import torch

from grokkit.bench import benchmark
from grokkit.devices import cpu_model, load_average


def measure(threads: list[int], populations: list[int], steps: int) -> list[dict]:
    rows = []
    for t in threads:
        torch.set_num_threads(t)
        for e in populations:
            r = benchmark("cpu", population=e, steps=steps, warmup=5)
            rows.append(r)
            print(
                f"threads {t}, E {e:>2}: {r['ms_per_step']:8.2f} ms/step, "
                f"{r['member_steps_per_second']:6.1f} member-steps/s, "
                f"{r['fraction_of_peak']:.0%} of {r['peak_gflops']:.0f} GFLOP/s "
                f"(dense-equivalent {r['dense_fraction_of_peak']:.0%})",
                flush=True,
            )
    return rows


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rate, share) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for t, color in zip(sorted({r["threads"] for r in rows}), ("tab:blue", "tab:orange")):
        mine = [r for r in rows if r["threads"] == t]
        es = [r["population"] for r in mine]
        rate.plot(
            es,
            [r["member_steps_per_second"] for r in mine],
            "o-",
            color=color,
            label=f"{t} thread(s), measured",
        )
        roof = [r["peak_gflops"] * 1e9 / (r["flops_per_step"] / r["population"]) for r in mine]
        rate.plot(es, roof, "--", color=color, label=f"{t} thread(s), at the float32 GEMM peak")
        share.plot(
            es, [r["fraction_of_peak"] for r in mine], "o-", color=color, label=f"{t} thread(s)"
        )
    for ax in (rate, share):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("population size E (members trained together)")
        ax.grid(alpha=0.3)
    rate.set_yscale("log")
    rate.set_ylabel("member-steps per second")
    rate.set_title("throughput under the roofline")
    share.set_ylabel("fraction of the measured float32 peak")
    share.set_ylim(0, 1)
    share.set_title("the step's issued FLOPs / time / peak")
    rate.legend(fontsize=7)
    fig.suptitle(f"{cpu_model()}, torch {torch.__version__}", fontsize=9)
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--population", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--plot", help="write the figure here (PNG)")
    p.add_argument("--json", action="store_true", help="print every measurement as JSON")
    args = p.parse_args()
    print(f"{cpu_model()}, torch {torch.__version__}, load average {load_average()}")
    rows = measure(args.threads, args.population, args.steps)
    if args.plot:
        plot(rows, args.plot)
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
