"""``grokkit compare``: the curves of several runs, or of a sweep's runs grouped by a field, in one
figure."""

from __future__ import annotations

import argparse
from pathlib import Path

from grokkit.cli.catalogue import COMMANDS
from grokkit.errors import InputError


def register(sub) -> None:
    p = sub.add_parser(
        "compare",
        help=COMMANDS["compare"],
        description="Overlay validation (solid) and training (dashed) accuracy and loss of every "
        "run given. A sweep or reproduce folder stands for all of its runs; --by "
        "colours the runs by a configuration field (one legend entry per value).",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run folders and/or sweep folders")
    p.add_argument(
        "--by",
        metavar="FIELD",
        help="group by this config field, e.g. train_fraction, preset, seed, lr, operation; "
        "a flag's name works too (optimizer, --train-fraction, heads)",
    )
    p.add_argument(
        "--out",
        default="compare.png",
        help="the figure (PNG, a PDF beside it; default compare.png)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise InputError(f"--out must name a .png file, got {out}")
    from grokkit.runs import check_parents

    check_parents(out)
    # Imported here: the notebook API brings pandas, which the other commands should not pay for.
    from grokkit.api import load_runs

    found = load_runs(args.dirs)
    found = [r for r in found if len(r.metrics)]
    if not found:
        raise InputError("none of the given runs has any metrics yet")
    by = args.by and args.by.lstrip("-")
    if by:
        field = field_name(by, found[0].config.flat_dict())
        values = [r.field(field) for r in found]  # an unknown field: one line naming the choices
        order = sorted(set(values), key=lambda v: (v is None, 0 if v is None else v))
        curves = [
            (f"{by} = {v}", r.metrics.to_dict("records"))
            for v in order
            for value, r in zip(values, found)
            if value == v
        ]
    # Imported here: matplotlib costs ~0.4 s, which the other commands should not pay.
    from grokkit.plots import comparison_labels, plot_comparison

    # The title says what the runs share and what is compared; without --by each run's label
    # gives the settings that differ between the runs.
    title, labels = comparison_labels(
        [r.config.flat_dict() for r in found], [r.path.name for r in found], by=field if by else ""
    )
    if not by:
        curves = [(label, r.metrics.to_dict("records")) for label, r in zip(labels, found)]
    png = plot_comparison(curves, out, title=title, legend_title=by or "")
    print(f"compare: {png} ({len(found)} runs)")
    return 0


def field_name(name: str, fields: dict) -> str:
    """The config field ``--by`` names: a field (``train_fraction``, ``lr``) as it is, or the
    name of a train/sweep flag, with or without its dashes (``--optimizer`` is the ``preset``
    field, ``train-fraction`` is ``train_fraction``, ``heads`` is ``n_heads``). An unknown name
    is returned as given, for ``Run.field`` to refuse in one line."""
    from grokkit.cli.run_flags import GRID_FLAGS, SINGLE_FLAGS

    if name in fields:
        return name
    dest = name.lstrip("-").replace("-", "_")
    if dest in fields:
        return dest
    return {**GRID_FLAGS, **SINGLE_FLAGS}.get(dest, name)
