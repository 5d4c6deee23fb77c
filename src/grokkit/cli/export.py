"""``grokkit export``: a run's model in another library's format (TransformerLens)."""

from __future__ import annotations

import argparse
from pathlib import Path

from grokkit.cli.catalogue import COMMANDS
from grokkit.errors import InputError

FORMATS = ("transformer-lens",)


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help=COMMANDS["export"],
        description="Write the model of a run folder (its last checkpoint, or a snapshot with "
        "--step) as a TransformerLens HookedTransformer: OUT/config.json and "
        "OUT/state_dict.pt, read back with grokkit.export.load_hooked_transformer(OUT).",
    )
    p.add_argument("dir", metavar="DIR", help="run folder")
    p.add_argument("--to", required=True, choices=FORMATS, help="the format (transformer-lens)")
    p.add_argument("out", metavar="OUT", help="new folder for the exported model")
    p.add_argument("--step", type=int, help="a kept snapshot's step (default: the last checkpoint)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} exists and is not an empty folder; nothing was written")
    # Imported here: pandas (the API) and TransformerLens are slow to import and optional.
    from grokkit.api import load_run
    from grokkit.export import save_hooked_transformer

    run_folder = load_run(args.dir)
    model = run_folder.model(args.step)
    hooked = model.to_hooked_transformer()  # TransformerLens missing: one line saying how to get it
    source = {
        "run": str(Path(args.dir).resolve()),
        "step": model.step,
        "operation": run_folder.config.operation,
        "modulus": run_folder.config.modulus,
    }
    save_hooked_transformer(hooked, out, model.config, source)
    print(
        f"export: {out} (TransformerLens HookedTransformer, step {model.step}, "
        f"norm {model.config.norm})"
    )
    return 0
