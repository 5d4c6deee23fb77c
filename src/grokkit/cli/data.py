"""``grokkit data``: an operation's whole table as CSV on stdout."""

from __future__ import annotations

import argparse
import sys

from grokkit.data import make_table


def register(sub) -> None:
    d = sub.add_parser("data", help="print an operation's whole table as CSV (x,y,result)")
    d.add_argument("--op", required=True, help="operation name, e.g. x/y or s5_xy")
    d.add_argument("--modulus", type=int, default=97)
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    make_table(args.op, args.modulus).to_csv(sys.stdout)
    return 0
