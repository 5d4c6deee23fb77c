#!/usr/bin/env bash
# The GPU numbers for benchmarks/RESULTS.md in one command, for the day a GPU is at hand:
#   benchmarks/gpu.sh [OUT_DIR]          (DEVICE=cpu benchmarks/gpu.sh tries the script on a CPU)
# It writes OUT_DIR/gpu.json (default benchmarks/gpu-<date>/) with
#   - member-steps/s of the paper's configuration for populations 1, 8, 64 and 512, TF32 off and on;
#   - the time to grok x/y mod 97 at 50 % data (AdamW, the `make demo` run) on one GPU;
#   - the same two for the authors' network (--arch openai-grok);
#   - the projected hours of `grokkit reproduce all --scale paper` on this GPU (from `--plan`).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE="${DEVICE:-cuda}"
POPULATIONS="${POPULATIONS:-1 8 64 512}"
OUT="${1:-benchmarks/gpu-$(date +%Y%m%d-%H%M%S)}"
GROKKIT="${GROKKIT:-.venv/bin/grokkit}"
PY="${PY:-.venv/bin/python}"
[ -x "$GROKKIT" ] || make setup
mkdir -p "$OUT"

echo "bench: populations $POPULATIONS on $DEVICE" >&2
# shellcheck disable=SC2086  # the populations are separate arguments
"$GROKKIT" bench --device "$DEVICE" --population $POPULATIONS --json > "$OUT/bench.json"
# shellcheck disable=SC2086
"$GROKKIT" bench --device "$DEVICE" --population $POPULATIONS --tf32 --json > "$OUT/bench_tf32.json"
# shellcheck disable=SC2086
"$GROKKIT" bench --device "$DEVICE" --population $POPULATIONS --arch openai-grok --json > "$OUT/bench_openai_grok.json"

echo "time to grok: x/y mod 97, 50 %, AdamW" >&2
rm -rf "$OUT/grok"
"$GROKKIT" train --op x/y --modulus 97 --train-fraction 0.5 --optimizer adamw --steps 20000 \
    --stop-after-val-99 200 --device "$DEVICE" --quiet --no-plot --out "$OUT/grok"
rm -rf "$OUT/grok_openai_grok"
"$GROKKIT" train --arch openai-grok --op x/y --modulus 97 --train-fraction 0.5 --optimizer adamw --steps 20000 \
    --stop-after-val-99 200 --device "$DEVICE" --quiet --no-plot --out "$OUT/grok_openai_grok"

echo "projection: reproduce all --scale paper" >&2
"$GROKKIT" reproduce all --scale paper --plan --json --device "$DEVICE" > "$OUT/plan_paper.json"

"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])

def results(name):
    data = json.loads((out / name).read_text())
    return data["results"] if "results" in data else [data]

summary = json.loads((out / "grok" / "summary.json").read_text())
summary_oa = json.loads((out / "grok_openai_grok" / "summary.json").read_text())
plan = json.loads((out / "plan_paper.json").read_text())
report = {
    "hardware": results("bench.json")[0]["hardware"],
    "bench": results("bench.json"), "bench_tf32": results("bench_tf32.json"),
    "time_to_grok": {"steps_to_val_99": summary["steps_to_val_99"], "wall_seconds": summary["wall_seconds"]},
    "bench_openai_grok": results("bench_openai_grok.json"),
    "time_to_grok_openai_grok": {"steps_to_val_99": summary_oa["steps_to_val_99"], "wall_seconds": summary_oa["wall_seconds"]},
    "paper_scale_projected_hours": plan["estimated_seconds"] / 3600,
    "paper_scale_projected_hours_per_figure": {k: v["estimated_seconds"] / 3600 for k, v in plan["figures"].items()},
}
(out / "gpu.json").write_text(json.dumps(report, indent=2))
for r, t in zip(report["bench"], report["bench_tf32"]):
    print(f"E={r['population']:>4}: {r['member_steps_per_second']:>9.1f} member-steps/s "
          f"({t['member_steps_per_second']:.1f} with TF32)")
print(f"time to grok: step {summary['steps_to_val_99']}, {summary['wall_seconds']:.1f} s")
print(f"time to grok, openai-grok: step {summary_oa['steps_to_val_99']}, {summary_oa['wall_seconds']:.1f} s")
print(f"reproduce all --scale paper: projected {report['paper_scale_projected_hours']:.1f} h on {report['hardware']}")
print(f"written: {out / 'gpu.json'}")
EOF
