"""The benchmark's results that travel: a laptop (or paper) run's table and figure copied into the
repository's ``benchmarks/results/``, with the CPU model, the date and the wall time beside them,
so that a user reads the benchmark without running it.

    python benchmarks/publish_benchmark.py OUT [--dest benchmarks/results]

copies OUT/benchmark.csv and OUT/benchmark.png to DEST/benchmark-<scale>.csv and .png and writes
DEST/benchmark-<scale>.md (machine, date, wall time, the verdicts). A smoke run is refused: its
numbers check the code path and must never read as results.
"""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

from grokkit.errors import InputError

DEST = Path("benchmarks/results")
PUBLISHED_SCALES = ("laptop", "paper")


def publish(out_dir: Path, dest: Path = DEST, today: datetime.date | None = None) -> list[Path]:
    """Copy a finished benchmark's CSV and PNG into ``dest`` with a note of where and when they
    were measured; returns the files written."""
    out_dir, dest = Path(out_dir), Path(dest)
    meta_path = out_dir / "benchmark.json"
    if not meta_path.is_file():
        raise InputError(f"{out_dir} holds no finished benchmark (no benchmark.json)")
    meta = json.loads(meta_path.read_text())
    scale = meta.get("scale")
    if scale not in PUBLISHED_SCALES:
        raise InputError(
            f"{out_dir} is a {scale} benchmark; only {' or '.join(PUBLISHED_SCALES)} results are "
            "published (smoke numbers check the code path only)"
        )
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in ("csv", "png"):
        target = dest / f"benchmark-{scale}.{suffix}"
        shutil.copyfile(out_dir / f"benchmark.{suffix}", target)
        written.append(target)
    note = dest / f"benchmark-{scale}.md"
    note.write_text(_note(meta, today or datetime.date.today()))
    return [*written, note]


def _note(meta: dict, today: datetime.date) -> str:
    cpu = meta.get("cpu") or meta.get("hardware", "unknown")
    lines = [
        f"# grokkit benchmark, {meta['scale']} scale",
        "",
        f"- measured on: {cpu} ({meta.get('device', 'cpu')})",
        f"- date: {today.isoformat()}",
        f"- wall time of the last call on the folder: {meta.get('wall_seconds', 0) / 3600:.2f} h "
        f"({meta.get('train_wall_seconds', 0) / 3600:.2f} h training; a resumed or re-analysed "
        "benchmark counts only its last call, docs/benchmark.md gives the whole run's)",
        f"- runs: {meta.get('n_runs')}; reductions: {meta.get('reductions', '')}",
        f"- table: benchmark-{meta['scale']}.csv; figure: benchmark-{meta['scale']}.png",
        "",
        "## Verdicts",
        "",
        "Each row against its baseline: the log-rank test on steps to 95 % validation (censored at "
        "the budget), Holm-corrected over the benchmark; undetermined unless p < 0.05 after Holm. "
        "Power: the test's at the method's claimed speed-up (Grokfast 43.8x / 50.5x, Muon 1.49x, "
        "the others 2x; log sd 0.3), so an undetermined row at high power argues against an "
        "effect that large, without deciding a smaller one. Measured: P(sooner than the "
        "baseline) with its stratified bootstrap interval (the delay claim: the Kaplan-Meier "
        "median delay).",
        "",
        *[_verdict_line(r) for r in meta.get("claims", [])],
        "",
        "## In numbers",
        "",
        meta.get("numbers", ""),
        "",
    ]
    return "\n".join(lines)


def _verdict_line(r: dict) -> str:
    """One claim record in a line: its verdict, its test's p-value (Holm-corrected and raw), its
    power and the measured value with its interval."""
    low, high = r.get("interval") or (None, None)
    return (
        f"- {r['id']}: **{r['verdict']}** ({r.get('test', '')}; p = {_g(r.get('p_value'))} "
        f"after Holm, {_g(r.get('p_value_raw'))} raw; power {_g(r.get('power'))}; measured "
        f"{_g(r.get('measured'))} [{_g(low)}, {_g(high)}])"
    )


def _g(x) -> str:
    return "n/a" if x is None else f"{x:.2g}" if isinstance(x, float) else str(x)
