"""Greedy forward selection of auxiliary targets (App. A) with fake evaluators."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from malt.experiments.greedy import GreedySelection, greedy_forward, run_greedy

CANDIDATES = ("first", "linear", "mta", "cat")


def additive(gains: dict[str, float], base: float = 0.7):
    """Score on one seed = base + Σ gains of the set (deterministic, no training)."""
    return lambda aux: [base + sum(gains[v] for v in aux)]


def one_seed(score):
    """A scoring function of one seed from one of plain numbers (None: a failed run)."""
    return lambda aux: None if score(aux) is None else [score(aux)]


def test_adds_helpful_candidates_best_first_and_stops():
    state = greedy_forward(CANDIDATES, additive({"first": 0.01, "linear": 0.03, "mta": -0.02,
                                                 "cat": 0.02}))
    assert state.selected == ("linear", "cat", "first")
    assert state.score == pytest.approx(0.76)
    assert [r.chosen for r in state.rounds] == ["linear", "cat", "first", None]
    assert state.rounds[0].base == () and state.rounds[0].base_score == pytest.approx(0.7)
    assert state.rounds[1].tried == pytest.approx({"first": 0.74, "mta": 0.71, "cat": 0.75})
    assert state.done and not state.failed


def test_uses_every_candidate_when_all_help():
    state = greedy_forward(CANDIDATES, additive(dict.fromkeys(CANDIDATES, 0.01)))
    assert set(state.selected) == set(CANDIDATES)
    assert len(state.rounds) == len(CANDIDATES)
    # ties go to the candidate listed first
    assert state.selected == CANDIDATES


def test_nothing_helps_keeps_the_empty_set():
    state = greedy_forward(CANDIDATES, additive(dict.fromkeys(CANDIDATES, -0.01)))
    assert state.selected == () and state.score == pytest.approx(0.7)
    assert len(state.rounds) == 1 and state.rounds[0].chosen is None


def test_zero_gain_is_not_an_improvement():
    state = greedy_forward(("first",), additive({"first": 0.0}))
    assert state.selected == ()


def test_interactions_are_judged_on_the_grown_set():
    # "mta" only helps once "linear" is in the set
    def score(aux):
        s = 0.7 + (0.02 if "linear" in aux else 0.0)
        return s + (0.03 if {"linear", "mta"} <= set(aux) else -0.01 if "mta" in aux else 0.0)

    state = greedy_forward(("mta", "linear"), one_seed(score))
    assert state.selected == ("linear", "mta")


def test_failed_runs():
    def score(aux):
        return None if "cat" in aux else 0.7 + 0.01 * len(aux)

    state = greedy_forward(CANDIDATES, one_seed(score))
    assert "cat" not in state.selected and len(state.selected) == 3
    assert greedy_forward(CANDIDATES, lambda aux: None).failed


def test_update_checks_the_number_of_scores():
    state = GreedySelection(CANDIDATES)
    with pytest.raises(ValueError):
        state.update([[0.5], [0.6]])
    with pytest.raises(ValueError, match="repeat"):
        GreedySelection(("first", "first"))


def reference_greedy(candidates, score):
    """Straightforward transcription of App. A, for comparison."""
    selected, current = [], score(())
    remaining = list(candidates)
    while remaining:
        gains = {c: score(tuple(selected + [c])) - current for c in remaining}
        best = max(remaining, key=lambda c: gains[c])
        if gains[best] <= 0:
            break
        selected.append(best)
        remaining.remove(best)
        current = score(tuple(selected))
    return tuple(selected)


@given(st.dictionaries(st.frozensets(st.sampled_from(CANDIDATES)),
                       st.integers(0, 50), min_size=0, max_size=16))
def test_matches_a_direct_transcription(table):
    def score(aux):
        return table.get(frozenset(aux), 25) / 100

    assert greedy_forward(CANDIDATES, one_seed(score)).selected == \
        reference_greedy(CANDIDATES, score)


def test_run_greedy_batches_every_problem_per_round():
    problems = {"a": ("x", "y"), "b": ("x", "y", "z")}
    gains = {"a": {"x": 0.01, "y": -0.01}, "b": {"x": 0.01, "y": 0.02, "z": 0.03}}
    batches = []

    def evaluate(batch):
        batches.append(list(batch))
        return [additive(gains[key])(aux) for key, aux in batch]

    states = run_greedy(problems, evaluate)
    assert states["a"].selected == ("x",)
    assert states["b"].selected == ("z", "y", "x")
    assert batches[0] == [("a", ()), ("b", ())]
    assert batches[1] == [("a", ("x",)), ("a", ("y",)), ("b", ("x",)), ("b", ("y",)),
                          ("b", ("z",))]
    for key, candidates in problems.items():
        assert states[key].selected == greedy_forward(candidates, additive(gains[key])).selected


def seeded(gains: dict[str, tuple[float, ...]], base: tuple[float, ...]):
    """Per-seed scores: the base's plus each member's per-seed gains."""
    return lambda aux: [b + sum(gains[v][s] for v in aux) for s, b in enumerate(base)]


def test_over_seeds_a_gain_within_its_standard_error_is_not_kept():
    base = (0.70, 0.71, 0.69)
    # "first": mean +0.004, per-seed sd 0.0125, se 0.0072: noise. "linear": +0.02, se 0.0006.
    noisy = seeded({"first": (0.02, -0.008, 0.0), "linear": (0.02, 0.021, 0.019)}, base)
    state = greedy_forward(("first", "linear"), noisy)
    assert state.selected == ("linear",)
    assert state.rounds[-1].chosen is None  # "first" on top of "linear" is still noise
    assert state.score == pytest.approx(np.mean(base) + 0.02)
    assert state.rounds[0].gains["first"] == pytest.approx((0.02, -0.008, 0.0))
    # The same mean gain with no spread over seeds is kept.
    steady = seeded({"first": (0.004, 0.004, 0.004), "linear": (-0.01,) * 3}, base)
    assert greedy_forward(("first", "linear"), steady).selected == ("first",)


def test_a_set_that_fails_on_one_seed_is_not_kept():
    def score(aux):
        return [0.7, None] if "first" in aux else [0.6 + 0.01 * len(aux)] * 2

    state = greedy_forward(("first", "linear"), score)
    assert state.selected == ("linear",) and state.rounds[0].gains["first"] is None


def test_wrong_numbers_of_scores_are_refused_with_the_counts():
    with pytest.raises(ValueError, match="^expected 1 scores, got 2$"):
        GreedySelection(CANDIDATES).update([[0.5], [0.6]])
    with pytest.raises(ValueError, match="^a set scored on 2 seeds, its base on 3$"):
        greedy_forward(("first",), lambda aux: [0.7, 0.7] if aux else [0.6, 0.6, 0.6])
    with pytest.raises(ValueError, match="^evaluate returned 1 scores for 2 sets$"):
        run_greedy({"a": ("x",), "b": ("y",)}, lambda batch: [[0.5]])


def test_no_candidates_needs_only_the_empty_set_and_no_round():
    state = greedy_forward((), lambda aux: [0.7])
    assert state.done and state.rounds == [] and state.score == pytest.approx(0.7)


def test_an_empty_score_list_is_a_failed_run():
    assert greedy_forward(("first",), lambda aux: []).failed


def test_a_round_records_its_base_seed_scores():
    base = (0.70, 0.71, 0.69)
    state = greedy_forward(("first", "linear"),
                           seeded({"first": (0.02,) * 3, "linear": (-0.01,) * 3}, base))
    assert state.rounds[0].base_seeds == base
    assert state.rounds[1].base_seeds == pytest.approx(tuple(b + 0.02 for b in base))


def test_the_noise_bar_is_the_standard_error_of_the_mean_gain():
    base = (0.70, 0.70, 0.70)
    # mean +0.01, sample sd 0.01, se 0.0058 over 3 seeds: kept (it is below the sd)
    assert greedy_forward(("first",), seeded({"first": (0.0, 0.01, 0.02)}, base)).selected \
        == ("first",)
    # two seeds: mean +0.0145, se (sample sd / √2) 0.0155: not kept (the population sd's
    # se, 0.011, would keep it)
    assert greedy_forward(("first",), seeded({"first": (-0.001, 0.03)}, base[:2])).selected \
        == ()


def test_run_greedy_hands_each_problem_its_own_slice_of_the_batch():
    problems = {"a": ("x", "y"), "b": ("x", "y", "z"), "c": ("x", "y")}
    gains = {"a": {"x": 0.01, "y": -0.01}, "b": {"x": -0.01, "y": 0.02, "z": 0.03},
             "c": {"x": -0.02, "y": 0.01}}
    states = run_greedy(problems, lambda batch: [additive(gains[key])(aux)
                                                 for key, aux in batch])
    for key, candidates in problems.items():
        assert states[key].selected == greedy_forward(candidates, additive(gains[key])).selected
    assert states["c"].selected == ("y",)
