"""lr × λ grid search with fake evaluators (no training)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from malt.experiments.presets import paper_lrs
from malt.experiments.search import Setting, grid, search, select


def test_grid_is_every_pair_in_order_and_collapses_lambda_without_aux():
    settings = grid([1e-3, 3e-3], [0.1, None])
    assert settings == [Setting(1e-3, 0.1), Setting(1e-3, None), Setting(3e-3, 0.1),
                        Setting(3e-3, None)]
    assert grid([1e-3, 3e-3, 1e-3], [0.1, 0.2], uses_aux=False) == [Setting(1e-3),
                                                                   Setting(3e-3)]
    with pytest.raises(ValueError):
        grid([], [0.1])


def test_paper_learning_rates():
    assert paper_lrs() == (3e-4, 3.5e-4, 4e-4, 3e-3, 3.5e-3, 4e-3, 3e-2, 3.5e-2, 4e-2)


def test_select_takes_the_best_finite_score_first_on_ties():
    a, b, c, d = (Setting(x) for x in (1, 2, 3, 4))
    assert select({a: 0.5, b: 0.7, c: 0.7, d: 0.6}) == b
    assert select({a: None, b: math.nan, c: 0.1}) == c
    assert select({a: None, b: math.nan}) is None


def fake_score(problem, setting: Setting) -> float:
    """Best lr 3e-3 for every problem; λ 0.2 best for problem 'x', 0.4 for 'y'."""
    target = {"x": 0.2, "y": 0.4}[problem]
    weight = 0.0 if setting.aux_weight is None else setting.aux_weight
    return 0.8 - abs(math.log10(setting.lr / 3e-3)) - abs(weight - target)


def test_search_selects_per_problem_in_one_batch():
    space = grid([3e-4, 3e-3, 3e-2], [0.1, 0.2, 0.3, 0.4])
    calls = []

    def evaluate(batch):
        calls.append(list(batch))
        return [fake_score(key, s) for key, s in batch]

    results = search({"x": space, "y": space, "z": [Setting(1e-2, None)]}, evaluate)
    assert len(calls) == 1 and len(calls[0]) == 2 * len(space)
    assert results["x"].setting == Setting(3e-3, 0.2)
    assert results["y"].setting == Setting(3e-3, 0.4)
    assert results["x"].scores[Setting(3e-3, 0.2)] == pytest.approx(0.8)
    # a grid of one setting is selected without any run
    assert results["z"].setting == Setting(1e-2, None) and results["z"].scores == {}


def test_search_with_failed_runs():
    space = grid([1e-3, 3e-3], [0.1])
    results = search({"ok": space, "broken": space},
                     lambda batch: [None if key == "broken" or s.lr == 3e-3 else 0.5
                                    for key, s in batch])
    assert results["ok"].setting == Setting(1e-3, 0.1)
    assert results["broken"].setting is None
    assert results["broken"].scores == {s: None for s in space}
    with pytest.raises(ValueError, match="scores"):
        search({"ok": space}, lambda batch: [0.5])


@given(st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=2, max_size=12))
def test_search_picks_an_argmax(scores):
    space = [Setting(1e-3 * (i + 1)) for i in range(len(scores))]
    result = search({"p": space}, lambda batch: scores)["p"]
    finite = [s for s in scores if s is not None]
    if not finite:
        assert result.setting is None
    else:
        best = space.index(result.setting)
        assert scores[best] == max(finite) and scores.index(max(finite)) == best
