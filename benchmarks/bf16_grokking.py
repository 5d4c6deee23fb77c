"""Does a run still grok, at the same step, with bfloat16 products? (issue 22, the run setting bf16)

    python benchmarks/bf16_grokking.py --out DIR [--tasks x/y s5] [--seeds 8] [--jobs 2]
                                       [--plot FILE] [--analyse-only]

For each task, one sweep trains every seed twice, in float32 and with ``--bf16 on`` (bfloat16
operands, float32 accumulation in every product: in hardware where the CPU has it, emulated with
the same numbers elsewhere), from the same initial weights and batch order:

  x/y   x/y mod 97 at 50 % data, the paper's recipe, up to 20,000 steps (``make demo``'s task)
  s5    the composition of S5 at 70 % data (fig7's task), up to 8,000 steps

A re-run with the same --out resumes (the sweep's own contract). The analysis, per task:
how many seeds reach 99 % validation accuracy in each arm; per seed, the step at which they do
(the first evaluation at >= 99 %) and its ratio bf16 / float32; a Wilcoxon signed-rank test of
the paired log-ratios (null: bfloat16 products do not shift the step at which a seed groks; the
log-ratio's distribution is symmetric around 0) and a percentile bootstrap 95 % interval of the
median ratio over seeds. Training trajectories are chaotic (another float32 summation order
moves a seed's step by ~10 %), so a single seed's ratio says little; the test is over seeds.
"""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from grokkit.analysis.grokking_time import format_steps, summarize
from grokkit.devices import cpu_model
from grokkit.precision import bf16_path

TASKS = {
    "x/y": [
        "--op", "x/y", "--train-fraction", "0.5", "--steps", "20000",
        "--stop-after-val-99", "200",
    ],
    "s5": [
        "--op", "s5_xy", "--train-fraction", "0.7", "--steps", "8000",
        "--stop-after-val-99", "200", "--eval-every", "100",
    ],
}  # fmt: skip
TITLES = {"x/y": "x/y mod 97, 50 % data", "s5": "S5 composition (s5_xy), 70 % data"}


def folder(out: Path, task: str) -> Path:
    return out / task.replace("/", "_div_")


def train(out: Path, task: str, seeds: int, jobs: int) -> None:
    cmd = [
        sys.executable, "-m", "grokkit.cli", "sweep", "--out", str(folder(out, task)),
        *TASKS[task], "--seed", *map(str, range(seeds)), "--bf16", "off", "on",
        "--max-population", "4", "--jobs", str(jobs),
    ]  # fmt: skip
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)


def _step(value: str) -> int | None:
    return int(float(value)) if value not in ("", "None", "nan") else None


def read_arms(path: Path) -> dict[bool, dict[int, dict]]:
    """{bf16: {seed: row}} from a sweep's index.csv."""
    arms: dict[bool, dict[int, dict]] = {False: {}, True: {}}
    with open(path / "index.csv", newline="") as f:
        for row in csv.DictReader(f):
            arms[row["bf16"] == "True"][int(row["seed"])] = row
    return arms


def analyse(out: Path, task: str) -> dict:
    arms = read_arms(folder(out, task))
    seeds = sorted(set(arms[False]) & set(arms[True]))
    rows, pairs = [], []
    for s in seeds:
        f32, b16 = (_step(arms[b][s]["steps_to_val_99"]) for b in (False, True))
        t32, t16 = (_step(arms[b][s]["steps_to_train_99"]) for b in (False, True))
        rows.append((s, t32, f32, t16, b16))
        if f32 and b16:
            pairs.append((f32, b16))
    result = {
        "task": task,
        "budget": int(arms[False][seeds[0]]["steps"]) if seeds else 0,
        "seeds": len(seeds),
        "grokked_float32": sum(r[2] is not None for r in rows),
        "grokked_bf16": sum(r[4] is not None for r in rows),
        "rows": rows,
    }
    if len(pairs) >= 2:
        ratios = np.array([b / f for f, b in pairs])
        logs = np.log(ratios)
        p = stats.wilcoxon(logs).pvalue if np.any(logs != 0) else 1.0
        ratio = summarize(ratios)  # median and percentile-bootstrap interval over seeds
        result |= {
            "median_ratio": ratio.median,
            "interval": (ratio.ci_low, ratio.ci_high),
            "wilcoxon_p": float(p),
            "pairs": len(pairs),
        }
    return result


def report(r: dict) -> None:
    print(f"\n## {r['task']}: {r['seeds']} seeds")
    print("| seed | float32: train 99 % | float32: val 99 % | bf16: train 99 % | bf16: val 99 % |")
    print("|---|---|---|---|---|")
    for s, t32, f32, t16, b16 in r["rows"]:
        cells = [
            format_steps(math.inf if v is None else v, r["budget"]) for v in (t32, f32, t16, b16)
        ]
        print(f"| {s} | " + " | ".join(cells) + " |")
    print(f"grokked (val >= 99 %): float32 {r['grokked_float32']}/{r['seeds']}, "
          f"bf16 {r['grokked_bf16']}/{r['seeds']}")  # fmt: skip
    if "median_ratio" in r:
        lo, hi = r["interval"]
        print(
            f"step of grokking, bf16 / float32 over {r['pairs']} seeds that grokked in both: "
            f"median {r['median_ratio']:.3f}, 95 % bootstrap interval [{lo:.3f}, {hi:.3f}]; "
            f"Wilcoxon signed-rank p = {r['wilcoxon_p']:.3g} (null: no shift)"
        )


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 4), squeeze=False)
    for ax, r in zip(axes[0], results):
        done = [(f, b) for _, _, f, _, b in r["rows"] if f and b]
        budget = max([v for row in r["rows"] for v in (row[2], row[4]) if v] or [1])
        if done:
            f, b = zip(*done)
            ax.scatter(f, b, color="C0", zorder=3, label="seed (both arms grokked)")
        lim = (0, budget * 1.15)
        ax.plot(lim, lim, color="0.5", lw=1, label="same step")
        ax.set(xlim=lim, ylim=lim, xlabel="float32: step of 99 % validation accuracy",
               ylabel="bf16 products: step of 99 % validation accuracy")  # fmt: skip
        title = f"{TITLES[r['task']]}: {r['grokked_float32']}/{r['seeds']} float32 and "
        title += f"{r['grokked_bf16']}/{r['seeds']} bf16 seeds grokked"
        if "median_ratio" in r:
            title += f"\nmedian ratio {r['median_ratio']:.2f}, Wilcoxon p {r['wilcoxon_p']:.2g}"
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    print(f"plot: {path}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--plot", type=Path)
    p.add_argument("--analyse-only", action="store_true", help="read the sweeps, train nothing")
    args = p.parse_args()
    if args.seeds < 2:
        p.error(f"--seeds must be at least 2 for a paired test, got {args.seeds}")
    if args.analyse_only:
        missing = [t for t in args.tasks if not (folder(args.out, t) / "index.csv").is_file()]
        if missing:
            p.error(
                f"no sweep of {', '.join(missing)} under {args.out}: run without --analyse-only"
            )
    print(f"CPU: {cpu_model()}; bf16 products here: {bf16_path(torch.device('cpu'))}")
    if not args.analyse_only:
        for task in args.tasks:
            train(args.out, task, args.seeds, args.jobs)
    results = [analyse(args.out, task) for task in args.tasks]
    for r in results:
        report(r)
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
