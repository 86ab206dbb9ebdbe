"""The loss contract between a model and the trainer: named, weighted loss terms.

A model's `loss_terms(outputs, batch)` returns `LossTerms`, an ordered set of `LossTerm`s. Each
term has a name (logged as `loss/<name>`), a scalar value, its own weight w and a role:

- `main`: part of the main task; it enters the loss as w · value.
- `auxiliary`: an auxiliary task; it enters as λ · w · value, λ being the task's auxiliary
  weight (`Task.aux_weight`), and is left out entirely when λ = 0.

The trainer's loss is therefore

    L = Σ_main w · value + λ · Σ_auxiliary w · value

(in that grouping, the terms in the model's order). The task weightings and gradient methods
(`train.grad_method`) receive the tasks instead: the main task, Σ_main w · value, then one loss
w · value per auxiliary term, and λ beside them; at λ = 0 the trainer uses no such method and
trains the main terms. A
model states its terms' weights and roles itself, so a new model or a new auxiliary-learning
method needs no case of its own in the trainer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, get_args

import torch

Role = Literal["main", "auxiliary"]
ROLES = get_args(Role)


@dataclass(frozen=True, eq=False)
class LossTerm:
    """One term of a model's loss."""

    name: str
    """Its key in the logged losses (`loss/<name>`): a view, or a name of the model's own."""
    value: torch.Tensor
    """A scalar tensor: the term before any weight (a mean over the batch rows)."""
    weight: float = 1.0
    """The term's own factor w."""
    role: Role = "auxiliary"
    """`main`: part of the main task, weighted by w alone; `auxiliary`: a task of its own,
    weighted by λ · w (see the module docstring)."""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"loss term '{self.name}': role '{self.role}' is not one of "
                             f"{ROLES}")
        if self.value.ndim != 0:
            raise ValueError(f"loss term '{self.name}' must be a scalar, got shape "
                             f"{tuple(self.value.shape)}")

    @cached_property
    def weighted(self) -> torch.Tensor:
        """w · value (the value itself when w is 1, which is the same number)."""
        return self.value if self.weight == 1.0 else self.weight * self.value


@dataclass(frozen=True, eq=False)
class LossTerms:
    """A model's loss terms, in its order: at least one `main` term, names unique."""

    terms: tuple[LossTerm, ...]
    main: tuple[LossTerm, ...] = field(init=False)
    auxiliary: tuple[LossTerm, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = [t.name for t in self.terms]
        if len(set(names)) != len(names):
            raise ValueError(f"loss term names repeat: {names}")
        object.__setattr__(self, "main", tuple(t for t in self.terms if t.role == "main"))
        object.__setattr__(self, "auxiliary",
                           tuple(t for t in self.terms if t.role == "auxiliary"))
        if not self.main:
            raise ValueError(f"no loss term has the role 'main' (terms: {names})")

    @classmethod
    def of_views(cls, losses: Mapping[str, torch.Tensor], main: str) -> LossTerms:
        """One term per view of `losses` (view -> scalar), each of weight 1: the view `main` is
        the main task, every other view an auxiliary task."""
        return cls(tuple(view_terms(losses, main)))

    def __getitem__(self, name: str) -> LossTerm:
        for term in self.terms:
            if term.name == name:
                return term
        raise KeyError(name)

    def __iter__(self) -> Iterator[LossTerm]:
        return iter(self.terms)

    def main_loss(self) -> torch.Tensor:
        """The main task's loss: Σ_main w · value."""
        return _sum_in_order(t.weighted for t in self.main)

    def total(self, aux_weight: float) -> torch.Tensor:
        """The loss to minimise: Σ_main w · value + λ · Σ_auxiliary w · value, the auxiliary
        terms left out when λ = `aux_weight` is 0."""
        main = self.main_loss()
        if aux_weight == 0 or not self.auxiliary:
            return main
        return main + aux_weight * sum(t.weighted for t in self.auxiliary)

    def tasks(self) -> list[torch.Tensor]:
        """The losses gradient methods take one gradient each of: the main task's, then every
        auxiliary term's w · value (λ is not in them: the method applies it, if at all)."""
        return [self.main_loss(), *(t.weighted for t in self.auxiliary)]

    def logged(self) -> dict[str, float]:
        """name -> w · value of every term (λ not applied), as numbers."""
        return {t.name: float(t.weighted.detach()) for t in self.terms}


def view_terms(losses: Mapping[str, torch.Tensor], main: str, weight: float = 1.0
               ) -> list[LossTerm]:
    """`LossTerm`s of per-view losses (view -> scalar) in their order, each of weight `weight`:
    `main`'s in the main role, the others auxiliary."""
    return [LossTerm(view, value, weight, "main" if view == main else "auxiliary")
            for view, value in losses.items()]


def _sum_in_order(values: Iterable[torch.Tensor]) -> torch.Tensor:
    """values[0] + values[1] + ... (the first value itself when there is one)."""
    iterator = iter(values)
    out = next(iterator)
    for value in iterator:
        out = out + value
    return out
