"""``grokkit analyze``: measures of a trained run. ``fourier``: the Fourier progress measures of
Nanda et al. (2023) over the snapshots of a modular-addition run (grokkit.analysis.fourier)."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from grokkit.cli.catalogue import COMMANDS
from grokkit.errors import InputError


def register(sub) -> None:
    p = sub.add_parser(
        "analyze",
        help=COMMANDS["analyze"],
        description="Measures of a trained run, written beside it (or to --out).",
    )
    analyses = p.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")
    fourier = analyses.add_parser(
        "fourier",
        help="Fourier progress measures of an x+y run over its snapshots",
        description="The progress measures of Nanda et al. (2023) at every weight snapshot of an "
        "x+y run trained with --snapshot-every N: train, test, restricted and "
        "excluded loss, the Gini coefficients of W_E's and W_L's Fourier norms, the "
        "total squared weight norm, and the phases memorisation / circuit formation "
        "/ clean-up. Writes fourier.csv, fourier.json, fourier.png and fourier.pdf.",
    )
    fourier.add_argument(
        "dir", metavar="DIR", help="run folder (x+y, trained with --snapshot-every N)"
    )
    fourier.add_argument(
        "--key-freqs",
        metavar="K,K,...",
        help="key frequencies, e.g. 14,35,41 (default: found from the final snapshot's logits)",
    )
    fourier.add_argument(
        "--energy",
        type=float,
        metavar="FRACTION",
        help="without --key-freqs: keep the fewest frequencies holding this "
        "fraction of the final logits' (x+y) energy (default "
        "0.95)",
    )
    fourier.add_argument("--out", metavar="OUT_DIR", help="folder for the files (default: DIR)")
    fourier.set_defaults(func=run)


def parse_key_freqs(text: str) -> list[int]:
    """``14,35,41`` as [14, 35, 41]; the range is checked against the run's modulus later."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.lstrip("-").isdigit() for part in parts):
        raise InputError(f"--key-freqs must be integers separated by commas, got {text!r}")
    return [int(part) for part in parts]


def run(args: argparse.Namespace) -> int:
    key_freqs = None if args.key_freqs is None else parse_key_freqs(args.key_freqs)
    if key_freqs is not None and args.energy is not None:
        raise InputError("--energy chooses the key frequencies; give it or --key-freqs, not both")
    if args.energy is not None and not 0 < args.energy <= 1:  # NaN too
        raise InputError(f"--energy must be a fraction in (0, 1], got {args.energy}")
    out = Path(args.out) if args.out else Path(args.dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    from grokkit import runs

    runs.check_parents(out)

    # Its files go beside the run: not while a training process writes that folder.
    lock = (
        runs.folder_lock(Path(args.dir), "run folder")
        if out == Path(args.dir)
        else contextlib.nullcontext()
    )
    with lock:
        return _fourier(args, out, key_freqs)


def _fourier(args: argparse.Namespace, out: Path, key_freqs: list[int] | None) -> int:
    # Imported here: pandas (the API) and matplotlib are slow to import.
    from grokkit.analysis.fourier import (
        DEFAULT_ENERGY,
        describe_fall,
        describe_phases,
        progress_measures,
        write_progress_measures,
    )
    from grokkit.api import load_run

    run_folder = load_run(args.dir)
    energy = DEFAULT_ENERGY if args.energy is None else args.energy
    measures = progress_measures(run_folder, key_freqs=key_freqs, energy=energy)
    paths = write_progress_measures(measures, out)

    steps = measures.curves["step"]
    curves, phases = measures.curves, measures.phases
    after = phases.get("memorisation_end")
    print(
        f"fourier: x+y mod {measures.modulus}, {len(steps)} snapshots (steps {steps.iloc[0]} to "
        f"{steps.iloc[-1]}), {measures.loss} loss"
    )
    print(
        f"key frequencies: {', '.join(map(str, measures.key_freqs)) or 'none'} "
        f"({measures.key_source}; {100 * measures.key_energy_fraction:.1f}% of the final "
        "centred logits' energy)"
    )
    print(f"phases: {describe_phases(phases)}")
    since = "over the whole run" if after is None else f"from step {after} on"
    falls = [
        describe_fall(steps, curves[f"{k}_loss"], after=after, name=f"{k} loss")
        for k in ("restricted", "test")
    ]
    print(f"falls: {'; '.join(falls)} ({since})")
    print(f"wrote: {', '.join(str(p) for p in paths)}")
    return 0
