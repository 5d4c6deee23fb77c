"""Each run setting declared once, on its field.

A field of ``RunConfig`` or ``OptimizerConfig`` that a user sets is declared with
``setting(default, group, help, ...)`` in place of a bare default. The field's type and default
stay the dataclass's own, so ``to_dict``, run names and hashes do not see the declaration; its
metadata says how the setting is given from outside: the one-line help, the group it is listed
under, its flag where that is not the field's name, the values it takes, words for a default
that is not a value (``--seed``, ``never``), whether a sweep may vary it, and the setting it
needs to have any effect. It also carries what the rest of the library must know about the
setting, so that no list elsewhere repeats it: whether it came after grokkit 0.1 (``later``: left
out of a run's identity at its default), the tag it adds to a run's name (``tag``), its words in
a figure's title (``title``), whether a population's members must share it (``per_population``),
and whether it is a budget a resume may change (``budget``).

``declared(cls, ...)`` reads the declarations back as ``Setting`` records. From them
``grokkit.cli.run_flags`` builds the flags of ``train`` and ``sweep``, whose help shows each
default from the field, and the README's flag table (a test checks that the README holds the
table the declarations give). This module knows nothing of argparse.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import types
import typing
from dataclasses import dataclass, fields

from grokkit.errors import ConfigError

_KEY = "grokkit.setting"


def setting(
    default,
    group: str,
    help: str,
    *,
    flag: str | None = None,
    choices: typing.Iterable[str] | None = None,
    metavar: str | None = None,
    default_text: str | None = None,
    axis: bool = True,
    only_with: tuple[str, tuple[str, ...]] | None = None,
    later: int | None = None,
    tag: tuple[int, str] | None = None,
    title: tuple[int, str | typing.Callable] | None = None,
    per_population: bool = False,
    budget: bool = False,
):
    """A dataclass field holding ``default``, declared as a setting a user gives.

    group: where the flag is listed (a key of ``grokkit.cli.run_flags.GROUPS``). help: what the
    setting does, in one line, without its default (shown from the field). flag: default
    ``--field-name``. choices: the only values it takes; metavar: the placeholder shown for its
    value (choices are then listed in the help). default_text: the default in words, where the
    value alone would not say it (``None`` standing for "the recipe's"). axis: whether a sweep may
    give several values (schedule settings are shared by a population's members). only_with:
    ``(field, values)``: the setting acts only when that field holds one of those values, and a
    flag given without them is refused rather than ignored.

    later: the setting came after grokkit 0.1, as the ``later``-th of its class: at its default it
    is left out of a run's identity (names and hashes of older runs stay), and a sweep varies such
    axes in this order, after the others. tag: ``(place, text)``: a value other than the default
    adds ``text.format(value)`` to the run's name, at ``place`` among the tags (a switch's text
    has no ``{}``). title: ``(place, words)``: likewise, the words a figure's title gives a value
    other than the default (a format, or a function of the value). per_population: the members
    of one population share it (it acts on the whole stack; when ``only_with`` does not hold, it
    has no effect and parts no runs). budget: how long the run trains, which a resume may
    change."""
    declared = {
        "group": group,
        "help": help,
        "flag": flag,
        "choices": None if choices is None else tuple(choices),
        "metavar": metavar,
        "default_text": default_text,
        "axis": axis,
        "only_with": only_with,
        "later": later,
        "tag": tag,
        "title": title,
        "per_population": per_population,
        "budget": budget,
    }
    return dataclasses.field(default=default, metadata={_KEY: declared})


@dataclass(frozen=True)
class Setting:
    """One declared setting, as the command line and the documentation read it."""

    name: str  # the field's name, as config.json and ``RunConfig.with_changes`` know it
    owner: type  # the dataclass declaring it (RunConfig or OptimizerConfig)
    kind: type  # int, float, str or bool: the field's type, None aside
    default: object
    group: str
    help: str
    flag: str  # "--layers"
    choices: tuple[str, ...] | None
    metavar: str | None
    default_text: str  # the default as help and README show it
    axis: bool
    only_with: tuple[str, tuple[str, ...]] | None
    later: int | None  # came after grokkit 0.1, as the later-th of its class
    tag: tuple[int, str] | None  # (place among the run name's tags, format of the value)
    title: tuple[int, str | typing.Callable] | None  # (place in a title, words for the value)
    per_population: bool  # shared by a population's members
    budget: bool  # a budget or stop rule: a resume may change it

    def value(self, run):
        """This setting's value in ``run`` (a RunConfig; an optimizer setting is read from its
        ``optimizer``)."""
        owner = run if isinstance(run, self.owner) else run.optimizer
        return getattr(owner, self.name)

    def tag_of(self, value) -> str:
        """The tag ``value`` of this setting adds to a run's name."""
        return self.tag[1].format(value)

    def title_of(self, value) -> str:
        """The words a figure's title gives ``value`` of this setting."""
        words = self.title[1]
        return words(value) if callable(words) else words.format(value)

    def acts_in(self, run) -> bool:
        """Whether the setting has any effect in ``run`` (its ``only_with`` holds)."""
        if self.only_with is None:
            return True
        field, values = self.only_with
        return getattr(run, field) in values

    @property
    def dest(self) -> str:
        """The flag's attribute on parsed arguments (``--d-model``: ``d_model``)."""
        return self.flag.removeprefix("--").replace("-", "_")


def _kind(hint) -> type:
    union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    kinds = [k for k in typing.get_args(hint) if k is not type(None)] if union else [hint]
    if len(kinds) != 1:
        raise TypeError(f"a setting has one type besides None, not {hint}")
    return kinds[0]


def _default_text(default) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def declared(*classes: type) -> tuple[Setting, ...]:
    """The declared settings of these dataclasses, each class's in field order."""
    out = []
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if _KEY not in f.metadata:
                continue
            d = f.metadata[_KEY]
            out.append(
                Setting(
                    name=f.name,
                    owner=cls,
                    kind=_kind(hints[f.name]),
                    default=f.default,
                    group=d["group"],
                    help=d["help"],
                    flag=d["flag"] or "--" + f.name.replace("_", "-"),
                    choices=d["choices"],
                    metavar=d["metavar"],
                    default_text=d["default_text"] or _default_text(f.default),
                    axis=d["axis"],
                    only_with=d["only_with"],
                    later=d["later"],
                    tag=d["tag"],
                    title=d["title"],
                    per_population=d["per_population"],
                    budget=d["budget"],
                )
            )
    return tuple(out)


# ---------------------------------------------------------------- types of a settings dataclass

_KINDS = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "text",
    type(None): "null",
}


@functools.cache
def _field_kinds(cls) -> tuple[tuple[str, tuple], ...]:
    """(name, accepted types) of each field of a settings dataclass, from its annotations."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        hint = hints[f.name]
        union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        out.append((f.name, typing.get_args(hint) if union else (hint,)))
    return tuple(out)


def _fits(value, kind) -> bool:
    if kind is int:  # a bool is an int to Python, and 1e18 a float: neither is a count
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:  # an integer is a number
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind is type(None):
        return value is None
    return isinstance(value, kind)


def check_field_types(settings) -> None:
    """Refuse a setting of the wrong type, as a hand-edited config.json can hold: a float or a
    bool where an integer belongs (``"steps": 1e18``, ``"n_layers": true``), text where a number
    belongs. ConfigError names the field (as config.json names it) and the value."""
    for name, kinds in _field_kinds(type(settings)):
        value = getattr(settings, name)
        if type(value) in kinds:  # exactly a declared type (a bool is not an int here): fits
            continue
        if not any(_fits(value, kind) for kind in kinds):
            expected = " or ".join(_KINDS.get(kind, kind.__name__) for kind in kinds)
            raise ConfigError(
                f"{name} has the wrong type: expected {expected}, got {value!r}"[:200]
            )
