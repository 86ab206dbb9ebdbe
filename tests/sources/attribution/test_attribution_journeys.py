"""The vectorised journey builder against a slow double loop, and its edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.sources.attribution.journeys import build_journeys, key_codes, split_paths
from malt.sources.attribution.rules import sort_order


@st.composite
def click_logs(draw):
    """Small random logs with integer times, so window comparisons are exact."""
    n = draw(st.integers(0, 25))
    m = draw(st.integers(0, 8))
    def ints(lo, hi, size):
        return np.array(draw(st.lists(st.integers(lo, hi), min_size=size,
                                                          max_size=size)), dtype=np.int64)
    clicks = {"user": ints(0, 2, n), "item": ints(0, 3, n), "time": ints(0, 60, n).astype(float),
              "id": np.array(draw(st.permutations(range(n))), dtype=np.int64)}
    conversions = {"user": ints(0, 2, m), "item": ints(0, 3, m),
                   "time": ints(0, 80, m).astype(float)}
    window = float(draw(st.integers(0, 40)))
    return clicks, conversions, window


def reference_journeys(clicks, conversions, window, columns):
    """Every (conversion, click) pair by brute force, in (conversion, time, id) order."""
    pairs = []
    for m in range(len(conversions["time"])):
        found = []
        for n in range(len(clicks["time"])):
            same = all(clicks[c][n] == conversions[c][m] for c in columns)
            age = conversions["time"][m] - clicks["time"][n]
            if same and 0 <= age <= window:
                found.append((clicks["time"][n], clicks["id"][n], n))
        pairs += [(m, n) for _, _, n in sorted(found)]
    return pairs


def build(clicks, conversions, window, columns):
    click_key, conv_key = key_codes([clicks[c] for c in columns],
                                    [conversions[c] for c in columns])
    return build_journeys(click_key, clicks["time"], clicks["id"], conv_key, conversions["time"],
                          window)


@settings(max_examples=200, deadline=None)
@given(click_logs(), st.sampled_from([("user", "item"), ("user",)]))
def test_builder_matches_the_double_loop(log, columns):
    clicks, conversions, window = log
    journeys = build(clicks, conversions, window, columns)
    expected = reference_journeys(clicks, conversions, window, columns)
    assert list(zip(journeys.conversion.tolist(), journeys.click.tolist())) == expected
    np.testing.assert_array_equal(journeys.age, conversions["time"][journeys.conversion]
                                  - clicks["time"][journeys.click])
    assert journeys.sizes.sum() == len(expected)
    assert len(journeys.sizes) == len(conversions["time"])


def test_window_ends_are_inclusive_and_later_clicks_never_count():
    clicks = {"user": np.zeros(4, np.int64), "time": np.array([0.0, 10.0, 20.0, 20.5]),
              "id": np.arange(4)}
    conversions = {"user": np.zeros(1, np.int64), "time": np.array([20.0])}
    journeys = build(clicks, conversions, 20.0, ["user"])
    assert journeys.click.tolist() == [0, 1, 2]      # t=0 is exactly 20 s old; t=20.5 is after
    journeys = build(clicks, conversions, 19.5, ["user"])
    assert journeys.click.tolist() == [1, 2]


def test_ties_in_time_break_by_click_id_and_window_can_be_infinite():
    clicks = {"user": np.zeros(3, np.int64), "time": np.array([5.0, 5.0, 1.0]),
              "id": np.array([9, 3, 7])}
    conversions = {"user": np.zeros(1, np.int64), "time": np.array([1e9])}
    journeys = build(clicks, conversions, np.inf, ["user"])
    assert journeys.click.tolist() == [2, 1, 0]


def test_key_codes_match_composite_keys_and_never_match_missing_values():
    click_key, conv_key = key_codes(
        [np.array([1, 1, 2, None], dtype=object), np.array(["a", "b", "a", "a"], dtype=object)],
        [np.array([1, 2, None], dtype=object), np.array(["b", "a", "a"], dtype=object)])
    assert conv_key[0] == click_key[1] and conv_key[1] == click_key[2]
    assert conv_key[2] not in click_key and click_key[3] not in conv_key
    assert len(set(click_key.tolist())) == 4


def test_a_click_in_several_journeys_sums_its_weights():
    clicks = {"user": np.zeros(2, np.int64), "time": np.array([0.0, 5.0]), "id": np.arange(2)}
    conversions = {"user": np.zeros(2, np.int64), "time": np.array([6.0, 7.0])}
    journeys = build(clicks, conversions, 10.0, ["user"])
    totals = journeys.click_totals(np.array([0.25, 0.75, 0.5, 0.5]))
    np.testing.assert_allclose(totals, [0.75, 1.25])


def test_negative_window_is_rejected():
    with pytest.raises(ValueError, match="window"):
        build_journeys(np.zeros(1, np.int64), np.zeros(1), np.zeros(1, np.int64),
                       np.zeros(1, np.int64), np.zeros(1), -1.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 30)), max_size=30),
       st.integers(0, 10))
def test_split_paths_cuts_at_key_changes_and_long_gaps(rows, gap):
    frame = pd.DataFrame(rows, columns=["key", "time"], dtype=np.int64)
    key, time = frame["key"].to_numpy(), frame["time"].to_numpy().astype(float)
    order, path = split_paths(key, time, np.arange(len(key)), float(gap))
    assert sorted(order.tolist()) == list(range(len(key)))
    for a, b, pa_, pb in zip(order[:-1], order[1:], path[:-1], path[1:]):
        same = key[a] == key[b] and time[b] - time[a] <= gap
        assert (pb == pa_) == same and pb - pa_ in (0, 1)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(0, 5)), max_size=20),
       st.booleans())
def test_sort_order_equals_lexsort_and_skips_sorted_input(rows, presort):
    rows = sorted(rows) if presort else rows
    key, time, ids = (np.array([r[i] for r in rows], dtype=np.int64) for i in range(3))
    order = sort_order(key, time.astype(float), ids)
    expected = np.lexsort((ids, time, key))
    assert [rows[i] for i in order] == [rows[i] for i in expected]
    if presort:
        assert order.tolist() == list(range(len(rows)))
