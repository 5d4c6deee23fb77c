"""grokkit's training step against a plain PyTorch implementation, measured side by side.

    python benchmarks/compare.py [--json] [--threads N] [--steps 100] [--skip-grok]

Prints, from one process:
  1. ms per training step of the paper's configuration (x/y mod 97, 50 % data, batch 512, AdamW,
     2 layers x 128 x 4 heads): grokkit's Population.step() and benchmarks/baseline.py
     (nn.MultiheadAttention, the whole sequence through every layer, torch.optim.AdamW), timed
     alternately A, B, A, B ... so that load from other processes hits both alike; medians, ratio.
     Both start from the same weights; their logits and loss on one batch are compared first.
  2. ms per whole-table evaluation (Population.evaluate()).
  3. Time-to-grok: grokkit's default recipe from start until validation accuracy >= 99 %
     (wall seconds and steps, every scheduled evaluation included).
  4. Member-steps per second for populations of E = 1, 2, 4, 8, 16 (timed round-robin).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline import PlainTrainer, PlainTransformer, tokens_for  # noqa: E402

from grokkit import runs  # noqa: E402
from grokkit.backend_choice import choose_backend  # noqa: E402
from grokkit.cli.catalogue import Parser  # noqa: E402
from grokkit.config import RunConfig  # noqa: E402
from grokkit.devices import cpu_count, cpu_model, load_average  # noqa: E402
from grokkit.errors import InputError  # noqa: E402
from grokkit.fast_path import forward_fast  # noqa: E402
from grokkit.population import Population  # noqa: E402

BLOCK = 10  # steps per timed block


def make_baseline(pop: Population) -> tuple[PlainTransformer, PlainTrainer]:
    cfg = pop.model_config
    model = PlainTransformer(cfg.vocab_size, cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.d_mlp)
    model.load_grokkit(pop.parameters())
    o = pop.configs[0].optimizer
    trainer = PlainTrainer(
        model,
        lr=o.lr,
        weight_decay=o.weight_decay,
        betas=(o.beta1, o.beta2),
        eps=o.eps,
        warmup=o.warmup_steps,
    )
    return model, trainer


def check_same_function(pop: Population, model: PlainTransformer) -> dict:
    """Logits and loss of both implementations on one training batch, from the same weights."""
    cfg = pop.model_config
    eq = pop.train_equations[0, : pop.batch_size]
    labels = pop.train_labels[0, : pop.batch_size]
    x, y = pop.x[eq], pop.y[eq]
    with torch.no_grad():
        ours = forward_fast(pop.parameters(), cfg, x[None], y[None])[0]
        theirs = model(tokens_for(x, y, cfg.op_token, cfg.eq_token))
    return {
        "max_abs_logit_difference": float((ours - theirs).abs().max()),
        "loss_ours": float(F.cross_entropy(ours, labels)),
        "loss_baseline": float(F.cross_entropy(theirs, labels)),
    }


def time_steps(steps: int, warmup: int, backend: str) -> dict:
    config = RunConfig()
    chosen = choose_backend(backend, "cpu", [config])
    ours = Population([config], "cpu", chosen)
    started = time.perf_counter()
    ours.step()  # the first step: a compile, if the backend compiles, happens here
    first_step_s = time.perf_counter() - started
    twin = Population([config], "cpu")  # only its batch stream: the baseline sees the same batches
    model, trainer = make_baseline(ours)
    check = check_same_function(ours, model)
    cfg = ours.model_config

    def baseline_step() -> None:
        pos = twin.members[0].next_batch_positions(twin.batch_size)
        eq, labels = twin.train_equations[0, pos], twin.train_labels[0, pos]
        trainer.step(tokens_for(twin.x[eq], twin.y[eq], cfg.op_token, cfg.eq_token), labels)

    for _ in range(warmup):
        ours.step()
        baseline_step()
    # Interleaved in blocks of BLOCK steps: load from other processes hits both alike, while each
    # implementation still runs with warm caches as it would in training (single-step A, B, A, B
    # alternation evicts each other's working set and penalises the smaller one most).
    t_ours, t_base = [], []
    for _ in range(max(1, steps // BLOCK)):
        start = time.perf_counter()
        for _ in range(BLOCK):
            ours.step()
        t_ours.append((time.perf_counter() - start) / BLOCK)
        start = time.perf_counter()
        for _ in range(BLOCK):
            baseline_step()
        t_base.append((time.perf_counter() - start) / BLOCK)
    t_eval = []
    for _ in range(5):
        start = time.perf_counter()
        ours.evaluate()
        t_eval.append(time.perf_counter() - start)
    ms_ours = 1000 * statistics.median(t_ours)
    ms_base = 1000 * statistics.median(t_base)
    # The ratio of each pair of neighbouring blocks: both saw the same moment's load, so the spread
    # of these ratios shows how far this machine's noise moves the headline number.
    paired = sorted(b / o for o, b in zip(t_ours, t_base))
    quartiles = statistics.quantiles(paired, n=4) if len(paired) > 1 else [paired[0]] * 3
    return {
        "ms_per_step_ours": round(ms_ours, 2),
        "ms_per_step_baseline": round(ms_base, 2),
        "speedup": round(ms_base / ms_ours, 2),
        "speedup_paired_blocks": {
            "blocks": len(paired),
            "median": round(quartiles[1], 2),
            "quartiles": [round(quartiles[0], 2), round(quartiles[2], 2)],
            "range": [round(paired[0], 2), round(paired[-1], 2)],
        },
        "eval_ms_ours": round(1000 * statistics.median(t_eval), 1),
        "first_step_s": round(first_step_s, 2),
        "backend": chosen.as_dict(),
        "same_function_check": check,
    }


def time_to_grok(max_steps: int, backend: str = "auto") -> dict:
    """The user's experience: `grokkit train` with the defaults, in a fresh process, until
    validation accuracy first reaches 99 % (stop rule of 1 step), evaluations included."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "grok"
        command = [
            sys.executable,
            "-m",
            "grokkit.cli",
            "train",
            "--steps",
            str(max_steps),
            "--stop-after-val-99",
            "1",
            "--quiet",
            "--no-plot",
            "--device",
            "cpu",
            "--backend",
            backend,
            "--out",
            str(run_dir),
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        total = time.perf_counter() - start
        summary = runs.read_json(run_dir / "summary.json")
        rows = runs.read_metrics(run_dir)
    step = summary["steps_to_val_99"]
    wall = next((r["wall_seconds"] for r in rows if r["step"] == step), None)
    return {
        "grok_steps": step,
        "grok_wall_s": None if wall is None else round(float(wall), 1),
        "grok_evaluations": sum(1 for r in rows if step is None or r["step"] <= step),
        "grok_process_total_s": round(
            total, 1
        ),  # + interpreter start-up, imports, set-up, last checkpoint
    }


def population_scaling(sizes: list[int], steps: int, rounds: int) -> dict:
    pops = {
        E: Population(
            [RunConfig(seed=s) for s in range(E)],
            "cpu",
            choose_backend("eager", "cpu", [RunConfig()]),
        )
        for E in sizes
    }
    for pop in pops.values():
        for _ in range(2):
            pop.step()
    times: dict[int, list[float]] = {E: [] for E in sizes}
    for _ in range(rounds):  # round-robin so that load changes hit every size alike
        for E, pop in pops.items():
            start = time.perf_counter()
            for _ in range(steps):
                pop.step()
            times[E].append((time.perf_counter() - start) / steps)
    return {
        str(E): {
            "ms_per_step": round(1000 * statistics.median(t), 2),
            "member_steps_per_s": round(E / statistics.median(t), 1),
        }
        for E, t in times.items()
    }


def check_arguments(args: argparse.Namespace) -> list[int]:
    """The population sizes to time; an InputError naming the first bad flag."""
    for flag, value, least in (
        ("--threads", args.threads, 0),
        ("--steps", args.steps, 1),
        ("--warmup", args.warmup, 0),
        ("--grok-max-steps", args.grok_max_steps, 1),
        ("--population-steps", args.population_steps, 1),
        ("--population-rounds", args.population_rounds, 1),
    ):
        if value < least:
            raise InputError(f"{flag} must be at least {least}, got {value}")
    try:
        sizes = [int(s) for s in args.populations.split(",") if s.strip()]
    except ValueError:
        raise InputError(
            f"--populations takes comma-separated integers, got {args.populations!r}"
        ) from None
    if any(size < 1 for size in sizes):
        raise InputError(f"--populations sizes must be at least 1, got {args.populations!r}")
    return sizes


def main() -> int:
    # grokkit's parser: a bad flag is one line, not usage and message
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--steps", type=int, default=100, help="timed steps of each implementation")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--backend", default="auto", choices=("auto", "eager", "compiled"))
    ap.add_argument("--skip-grok", action="store_true", help="skip the time-to-grok run")
    ap.add_argument("--grok-max-steps", type=int, default=8000)
    ap.add_argument("--populations", default="1,2,4,8,16")
    ap.add_argument("--population-steps", type=int, default=3)
    ap.add_argument("--population-rounds", type=int, default=5)
    try:
        args = ap.parse_args()
        sizes = check_arguments(args)
    except InputError as e:  # one line, exit 2, as grokkit's own commands do
        print(f"compare.py: error: {e}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)

    result: dict = {
        "machine": {
            "cpu": cpu_model(),
            "cores": cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_average": load_average(),
        },
    }
    result["step"] = time_steps(args.steps, args.warmup, args.backend)
    if not args.json:
        s = result["step"]
        p = s["speedup_paired_blocks"]
        print(
            f"step: ours {s['ms_per_step_ours']} ms, baseline {s['ms_per_step_baseline']} ms, "
            f"speedup {s['speedup']}x (block pairs: median {p['median']}x, quartiles "
            f"{p['quartiles'][0]}-{p['quartiles'][1]}x over {p['blocks']}); "
            f"evaluation {s['eval_ms_ours']} ms; first step {s['first_step_s']} s; "
            f"backend {s['backend']['why']}; "
            f"same function: {s['same_function_check']}",
            flush=True,
        )
    if not args.skip_grok:
        result["grok"] = time_to_grok(args.grok_max_steps, args.backend)
        if not args.json:
            print(f"time-to-grok (x/y, 50 %): {result['grok']}", flush=True)
    result["population"] = population_scaling(sizes, args.population_steps, args.population_rounds)
    result["machine"]["load_average_end"] = load_average()
    if args.json:
        print(json.dumps(result))
    else:
        for E, r in result["population"].items():
            print(
                f"E={E:>3}: {r['ms_per_step']:8.2f} ms/step  "
                f"{r['member_steps_per_s']:8.1f} member-steps/s"
            )
        print(f"machine: {result['machine']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
