"""Greedy forward selection of auxiliary targets (MAC paper, App. A).

Start from the main target alone. Each round, add every remaining candidate to the current set
in turn and score it on the validation day; keep the candidate with the largest positive GAUC
gain and repeat; stop when no candidate improves the score or none is left. A tie goes to the
candidate listed first.

`GreedySelection` is the procedure as a state machine (ask `pending()`, answer `update()`), so
that the rounds of many problems (models × targets) can be scored together in one batch of
runs; `greedy_forward` drives one problem with a plain scoring function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

AuxSet = tuple[str, ...]


@dataclass
class Round:
    """One round: the set it started from, its score, the score with each candidate added,
    and the candidate kept (None: none improved, the search stopped)."""

    base: AuxSet
    base_score: float
    tried: dict[str, float | None]
    chosen: str | None


@dataclass
class GreedySelection:
    """The search for one problem; see the module docstring."""

    candidates: Sequence[str]
    selected: AuxSet = ()
    score: float | None = None
    """Score of `selected` (None until the empty set has been scored)."""
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

    def update(self, scores: Sequence[float | None]) -> None:
        """Give the scores of `pending()`, in its order (None for a failed run)."""
        if len(scores) != len(self.pending()):
            raise ValueError(f"expected {len(self.pending())} scores, got {len(scores)}")
        if self.score is None:
            if not _finite(scores[0]):
                self.done = self.failed = True
                return
            self.score = float(scores[0])
            self.done = not self.remaining
            return
        tried = dict(zip(self.remaining, scores))
        best = max((c for c in self.remaining if _finite(tried[c])), key=lambda c: tried[c],
                   default=None)
        chosen = best if best is not None and tried[best] > self.score else None
        self.rounds.append(Round(self.selected, self.score, tried, chosen))
        if chosen is None:
            self.done = True
            return
        self.selected = (*self.selected, chosen)
        self.score = float(tried[chosen])
        self.remaining.remove(chosen)
        self.done = not self.remaining


def _finite(score: float | None) -> bool:
    return score is not None and math.isfinite(score)


def greedy_forward(candidates: Sequence[str],
                   evaluate: Callable[[AuxSet], float | None]) -> GreedySelection:
    """Run the selection for one problem, scoring each set with `evaluate`."""
    state = GreedySelection(candidates)
    while not state.done:
        state.update([evaluate(s) for s in state.pending()])
    return state


BatchEvaluate = Callable[[Sequence[tuple[Hashable, AuxSet]]], Sequence[float | None]]
"""Scores of a batch of (problem, auxiliary set) pairs, in order; None for a failed run."""


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
