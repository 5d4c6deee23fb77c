"""``grokkit data``: an operation's whole table as CSV on stdout."""

from __future__ import annotations

import argparse
import sys

from grokkit.cli.catalogue import COMMANDS
from grokkit.data import table_arrays, write_csv


def register(sub) -> None:
    d = sub.add_parser("data", help=COMMANDS["data"])
    d.add_argument("--op", required=True, help="operation name, e.g. x/y or s5_xy")
    d.add_argument(
        "--modulus",
        type=int,
        default=97,
        help="p of the modular operations (default 97; a prime for the division ones; "
        "S5 ignores it)",
    )
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    write_csv(*table_arrays(args.op, args.modulus), sys.stdout)
    return 0
