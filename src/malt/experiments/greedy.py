"""Greedy forward selection of auxiliary targets (MAC paper, App. A).

Start from the main target alone. Each round, add every remaining candidate to the current set
in turn and score it on the validation day; keep the candidate with the largest positive GAUC
gain and repeat; stop when no candidate improves the score or none is left. A tie goes to the
candidate listed first.

A set is scored on one or more validation seeds. With several, a candidate's gain is the mean
over seeds of its paired per-seed gains, and it counts as an improvement only beyond one
standard error of that mean: a gain within the seeds' noise keeps the smaller set.

`GreedySelection` is the procedure as a state machine (ask `pending()`, answer `update()`), so
that the rounds of many problems (models × targets) can be scored together in one batch of
runs; `greedy_forward` drives one problem with a plain scoring function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

AuxSet = tuple[str, ...]
Scores = Sequence[float | None] | None
"""A set's validation score on each seed (None: a failed run, or every run of the set)."""


@dataclass
class Round:
    """One round: the set it started from, its mean score, the mean score with each candidate
    added, and the candidate kept (None: none improved, the search stopped). `gains` holds each
    candidate's per-seed gains over the base (None for a failed candidate)."""

    base: AuxSet
    base_score: float
    tried: dict[str, float | None]
    chosen: str | None
    gains: dict[str, tuple[float, ...] | None] = field(default_factory=dict)
    base_seeds: tuple[float, ...] = ()
    """The base set's per-seed scores."""


@dataclass
class GreedySelection:
    """The search for one problem; see the module docstring."""

    candidates: Sequence[str]
    selected: AuxSet = ()
    score: float | None = None
    """Mean score of `selected` (None until the empty set has been scored)."""
    seed_scores: tuple[float, ...] = ()
    """Per-seed scores of `selected`."""
    rounds: list[Round] = field(default_factory=list)
    done: bool = False
    failed: bool = False
    """The empty set could not be scored, so nothing could be compared."""

    def __post_init__(self) -> None:
        if len(set(self.candidates)) != len(self.candidates):
            raise ValueError(f"candidates repeat: {list(self.candidates)}")
        self.remaining = list(self.candidates)

    def pending(self) -> list[AuxSet]:
        """The auxiliary sets to score next (empty when done)."""
        if self.done:
            return []
        if self.score is None:
            return [()]
        return [(*self.selected, c) for c in self.remaining]

    def update(self, scores: Sequence[Scores]) -> None:
        """Give the per-seed scores of `pending()`, in its order (None for a failed set)."""
        if len(scores) != len(self.pending()):
            raise ValueError(f"expected {len(self.pending())} scores, got {len(scores)}")
        if self.score is None:
            if not _finite(scores[0]):
                self.done = self.failed = True
                return
            self.seed_scores = tuple(float(s) for s in scores[0])
            self.score = float(np.mean(self.seed_scores))
            self.done = not self.remaining
            return
        gains = {c: _gains(s, self.seed_scores) for c, s in zip(self.remaining, scores)}
        tried = {c: None if g is None else self.score + float(np.mean(g))
                 for c, g in gains.items()}
        beyond = [c for c in self.remaining if gains[c] is not None and _beyond_noise(gains[c])]
        chosen = max(beyond, key=lambda c: tried[c], default=None)
        self.rounds.append(Round(self.selected, self.score, tried, chosen, gains,
                                 self.seed_scores))
        if chosen is None:
            self.done = True
            return
        self.selected = (*self.selected, chosen)
        self.seed_scores = tuple(float(s) for s in scores[self.remaining.index(chosen)])
        self.score = float(np.mean(self.seed_scores))
        self.remaining.remove(chosen)
        self.done = not self.remaining


def _gains(scores: Scores, base: tuple[float, ...]) -> tuple[float, ...] | None:
    """Per-seed gains of `scores` over `base` (None when a run failed)."""
    if not _finite(scores):
        return None
    if len(scores) != len(base):
        raise ValueError(f"a set scored on {len(scores)} seeds, its base on {len(base)}")
    return tuple(float(s) - b for s, b in zip(scores, base))


def _beyond_noise(gains: tuple[float, ...]) -> bool:
    """The mean gain is positive and, over several seeds, above its standard error."""
    mean = float(np.mean(gains))
    se = float(np.std(gains, ddof=1) / math.sqrt(len(gains))) if len(gains) > 1 else 0.0
    return mean > se


def _finite(scores: Scores) -> bool:
    """Every seed of the set scored (a finite score each)."""
    return scores is not None and len(scores) > 0 and \
        all(s is not None and math.isfinite(s) for s in scores)


def greedy_forward(candidates: Sequence[str],
                   evaluate: Callable[[AuxSet], Scores]) -> GreedySelection:
    """Run the selection for one problem, scoring each set on its seeds with `evaluate`."""
    state = GreedySelection(candidates)
    while not state.done:
        state.update([evaluate(s) for s in state.pending()])
    return state


BatchEvaluate = Callable[[Sequence[tuple[Hashable, AuxSet]]], Sequence[Scores]]
"""Per-seed scores of a batch of (problem, auxiliary set) pairs, in order."""


def run_greedy(problems: Mapping[Hashable, Sequence[str]],
               evaluate: BatchEvaluate) -> dict[Hashable, GreedySelection]:
    """Run the selection for every problem (key -> candidates), round by round, each round of
    every problem scored in one `evaluate` batch."""
    states = {key: GreedySelection(candidates) for key, candidates in problems.items()}
    while True:
        batch = [(key, s) for key, state in states.items() for s in state.pending()]
        if not batch:
            return states
        scores = list(evaluate(batch))
        if len(scores) != len(batch):
            raise ValueError(f"evaluate returned {len(scores)} scores for {len(batch)} sets")
        position = 0
        for state in states.values():
            n = len(state.pending())
            if n:
                state.update(scores[position:position + n])
                position += n
