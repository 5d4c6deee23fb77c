"""Interventions: what acts on the gradient between the backward pass and the optimizer.

An intervention transforms the population's flat gradient ``grad [E, P]`` (row i is member i's
gradient, laid out as ``grokkit.model.parameter_layout`` says) given the weights ``flat [E, P]``,
for every member at once. State it keeps (a filter's running average, say) is kept per member:
``member_state(i)`` cuts member i's part out for its checkpoint and ``load_member_state`` puts it
back, as the optimizer does, so a resumed run continues exactly and members restack freely.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


class GradientIntervention:
    """One transform of the flat gradient. Subclasses override ``__call__`` and, if they keep
    state, the three state methods."""

    def __call__(self, grad: Tensor, flat: Tensor) -> Tensor:
        raise NotImplementedError

    def member_state(self, i: int) -> dict:
        return {}

    def load_member_state(self, i: int, state: dict) -> None:
        pass

    def keep(self, idx: Tensor) -> None:
        """Drop every member not in ``idx`` (the population's ``keep``)."""


class Interventions:
    """A population's interventions, applied in order; empty for the paper's runs."""

    def __init__(self, items: Sequence[GradientIntervention] = ()):
        self.items = list(items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __call__(self, grad: Tensor, flat: Tensor) -> Tensor:
        for item in self.items:
            grad = item(grad, flat)
        return grad

    def member_state(self, i: int) -> list[dict]:
        return [item.member_state(i) for item in self.items]

    def load_member_state(self, i: int, states: list[dict]) -> None:
        if len(states) != len(self.items):
            raise ValueError(f"checkpoint holds {len(states)} intervention states, the run has {len(self.items)}")
        for item, state in zip(self.items, states):
            item.load_member_state(i, state)

    def keep(self, idx: Tensor) -> None:
        for item in self.items:
            item.keep(idx)
