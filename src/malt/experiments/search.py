"""Learning-rate × λ grid search on the validation protocol (MAC paper §6.1).

With T training days, each setting is trained on days 1…T−1 and scored by the main view's GAUC
on day T; the best setting is then trained on all T days and tested on the test day (that last
step belongs to the study). A problem whose grid has a single setting needs no validation run.

The search is written against an `evaluate` function so that many problems (models × targets)
share one batch of runs, and so that tests can score settings without training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Setting:
    """One grid point; `aux_weight` None means the reference λ of the target."""

    lr: float
    aux_weight: float | None = None

    @property
    def label(self) -> str:
        weight = "ref" if self.aux_weight is None else f"{self.aux_weight:g}"
        return f"lr {self.lr:g}, λ {weight}"


def grid(lrs: Iterable[float], aux_weights: Iterable[float | None], *,
         uses_aux: bool = True) -> list[Setting]:
    """Every (lr, λ) pair in the given orders; λ collapses to None for a run without auxiliary
    views (its value changes nothing)."""
    weights = list(dict.fromkeys(aux_weights)) if uses_aux else [None]
    settings = [Setting(float(lr), w) for lr in dict.fromkeys(lrs) for w in weights]
    if not settings:
        raise ValueError("the search grid is empty")
    return settings


def select(scores: Mapping[Setting, float | None]) -> Setting | None:
    """The setting with the highest finite score (the first one on a tie); None if no setting
    has a score (every run failed)."""
    best, best_score = None, -math.inf
    for setting, score in scores.items():
        if score is not None and math.isfinite(score) and score > best_score:
            best, best_score = setting, score
    return best


@dataclass
class SearchResult:
    """The selected setting (None when every validation run failed) and every score."""

    setting: Setting | None
    scores: dict[Setting, float | None] = field(default_factory=dict)
    """Validation score per setting; empty when the grid had one setting (nothing to run)."""


Evaluate = Callable[[Sequence[tuple[Hashable, Setting]]], Sequence[float | None]]
"""Scores of a batch of (problem, setting) pairs, in order; None for a failed run."""


def search(problems: Mapping[Hashable, Sequence[Setting]],
           evaluate: Evaluate) -> dict[Hashable, SearchResult]:
    """Select a setting for every problem; all validation runs go to `evaluate` in one batch."""
    batch = [(key, s) for key, settings in problems.items() if len(settings) > 1
             for s in settings]
    scores = list(evaluate(batch)) if batch else []
    if len(scores) != len(batch):
        raise ValueError(f"evaluate returned {len(scores)} scores for {len(batch)} settings")
    by_problem: dict[Hashable, dict[Setting, float | None]] = {}
    for (key, setting), score in zip(batch, scores):
        by_problem.setdefault(key, {})[setting] = score
    results = {}
    for key, settings in problems.items():
        if len(settings) == 1:
            results[key] = SearchResult(settings[0])
        else:
            found = by_problem[key]
            results[key] = SearchResult(select(found), found)
    return results
