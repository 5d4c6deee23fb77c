"""The flags that define a run, shared by ``train`` (one value each) and ``sweep`` (grids).

Every flag is made from its setting's declaration on the ``RunConfig`` or ``OptimizerConfig``
field (``grokkit.settings``): its name, type, choices, help, the default its help shows, its
group, and whether a sweep may give it several values. Nothing about a setting is written here
but how ``--batch-size`` reads ``full``.
The README's flag table is made from the same declarations: ``python -m grokkit.cli.run_flags
--markdown`` prints it, ``--readme README.md`` rewrites it between its markers, and
tests/test_run_flags.py fails when the README's table differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grokkit.config import SETTINGS, RunConfig
from grokkit.errors import InputError
from grokkit.optim import DEFAULT_PRESET, OptimizerConfig, preset
from grokkit.settings import Setting

_BY_NAME = {s.name: s for s in SETTINGS}

# Group -> title, in the order --help and the README list them; within a group the settings come
# in field order (RunConfig's, then OptimizerConfig's).
GROUPS = {
    "task": "task",
    "schedule": "schedule",
    "model": "model",
    "optimisation": "optimisation (individual knobs override the preset)",
    "methods": "methods that followed the paper",
    "execution": "execution",
}


def _order_added(s: Setting) -> tuple[int, int]:
    """The preset, the run's settings of grokkit 0.1 as declared, the optimizer's as declared,
    then the run's axes added since, in the order they came (declared ``later``). A sweep varies
    its axes in this order (the last fastest), so that its runs, and so its populations, come as
    they always have; a schedule setting is never an axis and keeps its declared place."""
    if s.name == "preset":
        return (0, 0)
    if s.owner is OptimizerConfig:
        return (2, SETTINGS.index(s))
    if s.axis and s.later is not None:
        return (3, s.later)
    return (1, SETTINGS.index(s))


_IN_ORDER_ADDED = sorted(SETTINGS, key=_order_added)
# Flag dest -> field. Every flag defaults to None so that --resume can refuse it and a sweep can
# tell a grid axis from an unset flag. RUN_FLAGS: what --resume refuses (the budget, --steps, is
# the one setting a resume may change) less the preset, which config_from_args applies first.
RUN_FLAGS = {s.dest: s.name for s in _IN_ORDER_ADDED if s.name not in ("steps", "preset")}
# A sweep's grid axes (--optimizer names a whole preset) and its single values.
GRID_FLAGS = {s.dest: s.name for s in _IN_ORDER_ADDED if s.axis}
SINGLE_FLAGS = {s.dest: s.name for s in _IN_ORDER_ADDED if not s.axis}


def batch_size(text: str) -> int:
    """``full`` (0: the whole training set) or a positive integer."""
    if text == "full":
        return 0
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"batch size must be an integer or 'full', got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"batch size must be >= 1 or 'full', got {value}")
    return value


def on_off(text: str) -> bool:
    """``on`` or ``off`` (a sweep axis of a switch)."""
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return text == "on"


# How a flag's text is read: by its field's type (argparse's default, text, for a str), except
# where the flag takes words its field's type does not.
_READERS = {int: int, float: float, str: None}
_SPECIAL_READERS = {"batch_size": batch_size}


def _in_group(group: str) -> list[Setting]:
    return [s for s in SETTINGS if s.group == group]


def meaning(s: Setting) -> str:
    """What a setting's flag does, as --help and the README say it (without its default)."""
    text = s.help
    if s.choices and s.metavar:  # a placeholder hides the choices: name them
        text += ": " + ", ".join(s.choices)
    if s.only_with:
        field, values = s.only_with
        text += f", with {_BY_NAME[field].flag} {' or '.join(values)}"
    return text


def describe(s: Setting, grid: bool = False) -> str:
    """The help of a setting's flag, its default (from the declaration) included."""
    if grid and s.kind is bool:
        return f"{meaning(s)} (on and/or off; default: {s.default_text})"
    return f"{meaning(s)} (default: {s.default_text})"


def _add_flag(group, s: Setting, grid: bool) -> None:
    if s.kind is bool:  # a switch: --flag for one run, --flag on off in a grid
        if grid:
            kw = {"type": on_off, "choices": [True, False], "metavar": "on|off"}
        else:
            kw = {"action": "store_const", "const": True}
    else:
        kw = {"type": _SPECIAL_READERS.get(s.name, _READERS[s.kind]), "metavar": s.metavar}
        if s.choices:
            kw["choices"] = list(s.choices)
    if grid:
        kw["nargs"] = "+"
        if kw.get("metavar") is None and "choices" not in kw:
            kw["metavar"] = "V"
    group.add_argument(s.flag, help=describe(s, grid).replace("%", "%%"), **kw)


def add_run_flags(p: argparse.ArgumentParser, grid: bool = False) -> None:
    """The flags that define a run, in their groups. With ``grid`` (grokkit sweep) every flag
    declared as an axis takes one or more values (its group's title says ``[grid]``)."""
    for key, title in GROUPS.items():
        members = _in_group(key)
        gridded = grid and all(s.axis for s in members)
        group = p.add_argument_group(title + (" [grid]" if gridded else ""))
        for s in members:
            _add_flag(group, s, grid and s.axis)


def check_method_flags(args: argparse.Namespace) -> None:
    """Refuse a setting given without the setting it needs (a Grokfast setting without a filter
    it applies to): silently ignored, it would leave the user believing the run was filtered.
    The narrowest first: it names the filter the user most likely meant."""
    needing = sorted((s for s in SETTINGS if s.only_with), key=lambda s: len(s.only_with[1]))
    for s in needing:
        field, values = s.only_with
        chosen = getattr(args, _BY_NAME[field].dest, None) or ()
        chosen = {chosen} if isinstance(chosen, str) else set(chosen)
        if getattr(args, s.dest, None) is not None and not chosen & set(values):
            needed = f"{_BY_NAME[field].flag} {' or '.join(values)}"
            raise InputError(f"{s.flag} applies to {needed}; give that too")


def given_run_flags(args: argparse.Namespace) -> list[str]:
    """The run-defining flags given on the command line, as typed (``--train-fraction``)."""
    names = (*RUN_FLAGS.values(), "preset")
    return [_BY_NAME[n].flag for n in names if getattr(args, _BY_NAME[n].dest, None) is not None]


def config_from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    """A RunConfig from the preset, then each flag that was given."""
    check_method_flags(args)
    base = base or RunConfig()
    name = getattr(args, "optimizer", None) or DEFAULT_PRESET
    changes = {"optimizer": preset(name), "preset": name}
    if getattr(args, "steps", None) is not None:
        changes["steps"] = args.steps
    cfg = base.with_changes(**changes)
    flags = {
        field: getattr(args, flag)
        for flag, field in RUN_FLAGS.items()
        if getattr(args, flag, None) is not None
    }
    return cfg.with_changes(**flags) if flags else cfg


# The README's flag table lies between these two lines.
TABLE_START = (
    "<!-- run flags: made from the settings' declarations by "
    "`python -m grokkit.cli.run_flags --readme README.md`; tests/test_run_flags.py checks it -->"
)
TABLE_END = "<!-- end of run flags -->"


def _markdown(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*")


def markdown_table() -> str:
    """Every run flag of ``train`` and ``sweep`` as a Markdown table, in --help's order (a sweep
    takes several values of a ``grid`` flag, one of the others)."""
    rows = ["| flag | meaning | default | in a sweep |", "|---|---|---|---|"]
    for key in GROUPS:
        for s in _in_group(key):
            value = "{" + ",".join(s.choices) + "}" if s.choices and not s.metavar else s.metavar
            flag = f"`{s.flag}{' ' + value if value and s.kind is not bool else ''}`"
            if s.dest != s.name:  # the field's name in RunConfig and config.json
                flag += f" (`{s.name}`)"
            if not s.axis:
                sweep = "one value"
            else:
                sweep = "grid: `on` `off`" if s.kind is bool else "grid"
            text, default = _markdown(meaning(s)), _markdown(s.default_text)
            rows.append(f"| {flag} | {text} | {default} | {sweep} |")
    return "\n".join(rows) + "\n"


def with_table(readme: str) -> str:
    """``readme`` with the flag table between its markers replaced by ``markdown_table()``."""
    start, end = readme.find(TABLE_START), readme.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no flag table between {TABLE_START!r} and {TABLE_END!r}")
    start += len(TABLE_START)
    return readme[:start] + "\n" + markdown_table() + readme[end:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m grokkit.cli.run_flags",
        description="The README's table of the run flags, made from the settings' declarations.",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--markdown", action="store_true", help="print the table")
    what.add_argument("--readme", metavar="FILE", help="rewrite the table in FILE")
    args = p.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown_table())
    else:
        path = Path(args.readme)
        path.write_text(with_table(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
