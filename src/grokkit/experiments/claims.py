"""A figure's verdicts as records: each claim one declared test, decided as a family.

A figure module's ``claims(measured)`` returns one ``Claim`` per statement of its paper it tests:
the statement, the paper's value, what we measured and its interval, the test, its null
hypothesis, the raw p-value, the power against the paper's effect, and which verdict a rejection
of the null would give (``if_rejected``: a difference in the paper's direction supports it, one
in the other direction or a rejection of the paper's own value contradicts it).

``decide`` turns a figure's claims into the records of ``<figure>.json``'s ``claims``:

* the family's p-values are corrected together by Holm's method; ``p_value`` is the corrected
  one (``p_value_raw`` the test's own), so ``holds`` and ``contradicted`` always mean
  ``p_value < alpha``;
* a claim whose test could not be made (one run per point, a statistic undefined), and every
  claim at smoke scale, is ``undetermined`` and says why;
* a test that does not reject is ``undetermined``, with its power: "no significant difference"
  is never "same".

The prose verdict of REPORT.md and of the CLI is made from these records (``prose``), never the
other way round.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from grokkit.analysis import statistics
from grokkit.analysis.statistics import holm

ALPHA = 0.05
VERDICTS = ("holds", "contradicted", "undetermined")
SMOKE_REASON = "code path only: smoke scale trains tiny models for tens of steps"


@dataclass(frozen=True)
class Claim:
    """One claim of a figure and the test that decides it (before the family's correction)."""

    id: str
    claim: str
    paper_value: str
    measured: float | str | None
    interval: tuple[float, float] | None
    test: str
    null: str
    p_value: float
    power: float | None
    if_rejected: str = "holds"  # the verdict a rejection of ``null`` gives: holds | contradicted
    why: str = ""  # why a test could not be made (then p_value is nan)
    alpha: float = ALPHA

    @classmethod
    def untestable(cls, id: str, claim: str, paper_value: str, measured, why: str) -> Claim:
        """A claim no test here can decide (one run per point, ...): always undetermined."""
        return cls(id, claim, paper_value, measured, None, "none", "none", math.nan, None, why=why)


def decide(claims: list[Claim], scale: str) -> list[dict]:
    """The family's records: Holm-corrected p-values and a verdict each (see the module)."""
    adjusted = holm([c.p_value for c in claims])
    return [_record(c, p, scale) for c, p in zip(claims, adjusted)]


def _record(c: Claim, p: float, scale: str) -> dict:
    record = asdict(replace(c, p_value=p))
    record["p_value_raw"] = c.p_value
    record["interval"] = list(c.interval) if c.interval is not None else None
    record["verdict"], record["why"] = _verdict(c, p, scale)
    return _finite(record)


def _verdict(c: Claim, p: float, scale: str) -> tuple[str, str]:
    if scale == "smoke":
        return "undetermined", SMOKE_REASON
    if math.isnan(p):
        return "undetermined", c.why or "no test could be made"
    if p < c.alpha:
        return c.if_rejected, c.why
    power = "unknown" if c.power is None or math.isnan(c.power) else f"{c.power:.2f}"
    return "undetermined", (
        f"the test did not reject its null at alpha {c.alpha:g} after the family's correction "
        f"(power against the paper's effect: {power})"
    )


def _finite(value):
    """JSON has no nan or inf: None and the strings "inf"/"-inf" stand for them."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def format_value(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and (abs(value) >= 1000 or value == int(value)):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def format_p(p) -> str:
    if p is None:
        return "p n/a"
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}" if p < 0.01 else f"p = {p:.3f}"


def line(record: dict) -> str:
    """One record as one line of REPORT.md: verdict, claim, measured and interval, test, p,
    alpha, power, and why when undetermined."""
    interval = record["interval"]
    inside = f" [{format_value(interval[0])}, {format_value(interval[1])}]" if interval else ""
    power = record["power"]
    test = (
        f"{record['test']} (null: {record['null']}), {format_p(record['p_value'])} "
        f"(Holm; raw {format_p(record['p_value_raw'])[2:]}), alpha {record['alpha']:g}, "
        f"power {'n/a' if power is None else f'{power:.2f}'}"
        if record["test"] != "none"
        else "no test"
    )
    why = f" — {record['why']}" if record["verdict"] == "undetermined" and record["why"] else ""
    return (
        f"**{record['verdict']}** `{record['id']}`: {record['claim']} Paper: "
        f"{record['paper_value']}; measured {format_value(record['measured'])}{inside}; "
        f"{test}{why}"
    )


def prose(records: list[dict]) -> str:
    """The verdict sentence of a figure, made from its records alone."""
    if not records:
        return "No claim tested."
    counts = {v: sum(r["verdict"] == v for r in records) for v in VERDICTS}
    head = (
        f"{len(records)} claim(s) tested: {counts['holds']} hold, {counts['contradicted']} "
        f"contradicted, {counts['undetermined']} undetermined."
    )
    decided = [
        f"{r['id']} {r['verdict']} ({format_p(r['p_value'])})"
        for r in records
        if r["verdict"] != "undetermined"
    ]
    return head + (f" Decided: {'; '.join(decided)}." if decided else "")


# ---------------------------------------------------------------- helpers for figure modules


def family_alpha(n_claims: int, alpha: float = ALPHA) -> float:
    """The level the family's smallest p-value must reach after Holm: alpha / its size. A
    claim's power is stated at this level (a lower bound of its power under Holm)."""
    return alpha / max(1, n_claims)


def sign_claim(
    id: str,
    claim: str,
    paper_value: str,
    plus: int,
    minus: int,
    undecided: int,
    unit: str,
    power: float,
    assumed: str,
) -> Claim:
    """A claim decided by a two-sided exact sign test: ``plus`` units read as the paper says,
    ``minus`` the other way, ``undecided`` dropped. Measured: the share of decided units that
    read as the paper, with its Clopper-Pearson interval."""
    n = plus + minus
    test = (
        f"exact two-sided sign test over {unit}s ({n} decided, {undecided} undecided and "
        f"dropped); power assumes {assumed}"
    )
    null = f"a {unit} is as likely to go against the claim as for it (probability 1/2)"
    if n == 0:
        return Claim(
            id,
            claim,
            paper_value,
            None,
            None,
            test,
            null,
            math.nan,
            power,
            why=f"no {unit} decided the comparison ({undecided} undecided)",
        )
    return Claim(
        id,
        claim,
        paper_value,
        plus / n,
        statistics.share_interval(plus, n),
        test,
        null,
        statistics.sign_p(plus, minus),
        power,
        if_rejected="holds" if plus > minus else "contradicted",
    )


def format_median(median: statistics.Median, budget: int | None = None) -> str:
    """A Kaplan-Meier median in words: ``3,300 [2,900, 4,100]`` or ``>8,000`` (censored)."""
    if math.isnan(median.median):
        return "n/a"
    if math.isinf(median.median):
        return f">{budget:,}" if budget else "beyond every time observed"

    def f(x: float) -> str:
        return "inf" if math.isinf(x) else "n/a" if math.isnan(x) else f"{x:,.0f}"

    return f"{median.median:,.0f} [{f(median.ci_low)}, {f(median.ci_high)}]"


def powers(claims: Sequence[Claim]) -> list[dict]:
    """Each claim's id, power (None: untestable) and the paper's value it is powered against,
    for a figure's plan (``planned_power``)."""
    return [{"id": c.id, "power": c.power, "effect": c.paper_value} for c in claims]
