"""Copy a finished laptop (or paper) benchmark into benchmarks/results/ (the library's
grokkit.experiments.benchmark_results.publish, from the command line).

    python benchmarks/publish_benchmark.py OUT [--dest benchmarks/results]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grokkit.errors import InputError
from grokkit.experiments.benchmark_results import DEST, publish


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the folder `grokkit reproduce benchmark --out` wrote")
    parser.add_argument("--dest", default=str(DEST), help="default: benchmarks/results")
    args = parser.parse_args(argv)
    try:
        for path in publish(Path(args.out), Path(args.dest)):
            print(path)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
