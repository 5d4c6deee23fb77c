"""What the command-line and fault tests share: a tiny run's flags, calling ``grokkit`` in-process,
and the two checks every bad-input case makes (one line on stderr; nothing on disk changed)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from grokkit import runs
from grokkit.cli import main

# One layer of width 32 on x+y mod 11: a run of 20 steps takes well under a second.
TINY = (
    "--op x+y --modulus 11 --d-model 32 --heads 2 --d-mlp 64 --layers 1 --quiet --no-plot "
    "--device cpu --checkpoint-every 10"
).split()
SWEEP_TINY = [a for a in TINY if a != "--no-plot"] + "--steps 20 --jobs 1".split()


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``grokkit ARGV`` in this process: (exit code, stdout, stderr) of that call alone."""
    capsys.readouterr()  # drop anything printed before
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` (lock files aside) and a hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != runs.LOCK_FILE
    }


def assert_one_line(err: str, *keywords: str) -> None:
    """stderr is one ``grokkit: ...`` line, no traceback, naming every keyword."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert "Traceback" not in err
    assert lines[0].startswith("grokkit: ")
    for k in keywords:
        assert k in lines[0], f"{k!r} not in {lines[0]!r}"
