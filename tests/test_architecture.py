"""The library stands on its own: no module imports the command line, argparse or itself in a
circle; the homes for interventions and loggers are wired into the training step and loop."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import torch
from conftest import tiny_run

import grokkit
from grokkit import runs
from grokkit.interventions import GradientIntervention, Interventions
from grokkit.population import Population
from grokkit.train import train_runs

PACKAGE = Path(grokkit.__file__).parent


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def library_modules() -> list[str]:
    return sorted(
        m for m in module_names() if not m.startswith("grokkit.cli") and not m.endswith("__main__")
    )


def test_importing_every_library_module_never_imports_the_command_line():
    code = (
        "import importlib, sys\n"
        f"for name in {library_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "import grokkit.experiments as e; e.FIGURES  # the figure modules load on first use\n"
        "bad = sorted(m for m in sys.modules if m.startswith('grokkit.cli'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"library modules imported the CLI: {out.stdout.strip()}"


def _imports(path: Path, names: dict[str, Path]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                found.add(full if full in names else node.module)
    return found


def test_only_the_command_line_knows_argparse():
    offenders = [
        m
        for m, p in module_names().items()
        if not m.startswith("grokkit.cli") and "argparse" in _imports(p, module_names())
    ]
    assert offenders == []


def test_the_import_graph_has_no_circles():
    names = module_names()
    edges = {m: {t for t in _imports(p, names) if t in names and t != m} for m, p in names.items()}
    # Function-level imports count too: they hid the old cli <-> sweep <-> reproduce circle.
    seen, on_path, circles = set(), [], []

    def visit(m: str) -> None:
        on_path.append(m)
        for t in sorted(edges[m]):
            if t in on_path:
                circles.append(on_path[on_path.index(t) :] + [t])
            elif t not in seen:
                visit(t)
        on_path.pop()
        seen.add(m)

    for m in sorted(names):
        if m not in seen:
            visit(m)
    assert circles == [], f"import circles: {circles}"


# ---------------------------------------------------------------- the interventions hook


class ZeroGradient(GradientIntervention):
    """Replaces every gradient by zero and counts its calls per member (state that must resume)."""

    def __init__(self, size: int):
        self.calls = torch.zeros(size, dtype=torch.long)

    def __call__(self, grad, flat):
        self.calls += 1
        return torch.zeros_like(grad)

    def member_state(self, i):
        return {"calls": int(self.calls[i])}

    def load_member_state(self, i, state):
        self.calls[i] = state["calls"]

    def keep(self, idx):
        self.calls = self.calls[idx.cpu()]


def test_an_intervention_sees_the_gradient_before_the_optimizer_and_resumes_with_the_member():
    configs = [tiny_run(seed=s, weight_decay=0.0) for s in (0, 1)]
    pop = Population(configs)
    pop.interventions = Interventions([ZeroGradient(2)])
    before = pop.flat.clone()
    for _ in range(3):
        pop.step()
    # Adam given zero gradients makes zero updates, so the weights did not move.
    assert torch.equal(pop.flat, before)
    state = pop.member_state(1)
    assert state["interventions"] == [{"calls": 3}]
    again = Population([configs[1]])
    again.interventions = Interventions([ZeroGradient(1)])
    again.load_member_state(0, state)
    assert int(again.interventions.items[0].calls[0]) == 3


def test_the_paper_runs_have_no_interventions_and_checkpoints_say_so():
    pop = Population([tiny_run()])
    assert not pop.interventions
    assert pop.member_state(0)["interventions"] == []


# ---------------------------------------------------------------- the loggers hook


class ListLogger:
    def __init__(self, run_dir, config):
        self.rows, self.summary, self.config = [], None, config

    def log_row(self, row):
        self.rows.append(dict(row))

    def close(self, summary):
        self.summary = summary


def test_loggers_receive_exactly_the_rows_of_metrics_csv(tmp_path):
    made = []

    def factory(run_dir, config):
        made.append(ListLogger(run_dir, config))
        return made[-1]

    configs = [tiny_run(seed=s) for s in (0, 1)]
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        d.mkdir()
    summaries = train_runs(configs, dirs, progress=False, loggers=[factory])
    assert len(made) == 2
    for logger, d, s, c in zip(made, dirs, summaries, configs):
        assert logger.config == c
        assert logger.summary == s
        assert [r["step"] for r in logger.rows] == [r["step"] for r in runs.read_metrics(d)]
        assert [r["val_accuracy"] for r in logger.rows] == [
            r["val_accuracy"] for r in runs.read_metrics(d)
        ]
