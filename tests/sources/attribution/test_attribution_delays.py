"""Known-at times and view windows of the attribution engine: each label's known-at time is its
first crediting conversion, one pass under several windows equals a run per window, and the
labels known at T are those of the conversions up to T."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from malt.data import Schema, prepare
from malt.data.as_of import labels_as_of
from malt.errors import ConfigError
from malt.sources.attribution import ALL_RULES, AttributionConfig, ClickLog, attribute
from malt.sources.attribution.config import DAY, AttributeOptions, view_name
from malt.sources.attribution.pipeline import attribute_logs
from sources.attribution.test_attribution_rules import logs

NAN = np.nan


def hand_log() -> ClickLog:
    """User a clicks item 1 on days 0, 1 and 5 and buys it on days 2 and 6.5; user b clicks
    once and never buys."""
    clicks = pd.DataFrame({"user": ["a", "a", "a", "b"], "item": [1, 1, 1, 1],
                           "click_time": np.array([0.0, 1.0, 5.0, 1.0]) * DAY,
                           "click_id": [0, 1, 2, 3]})
    conversions = pd.DataFrame({"user": ["a", "a"], "item": [1, 1],
                                "conversion_time": np.array([2.0, 6.5]) * DAY})
    return ClickLog(clicks=clicks, conversions=conversions, click_order=np.arange(4))


def test_known_at_is_the_first_conversion_that_credits_the_click():
    config = AttributionConfig(rules=("last", "first", "linear"), window=7 * DAY,
                               view_windows=(1.5 * DAY, 3 * DAY), view_rules=("first",))
    got = attribute(hand_log(), config)
    assert list(got.labels) == ["last", "first", "linear", "first_36h", "first_3d"]
    # 7 days: the day-2 purchase credits clicks 0 and 1, the day-6.5 one clicks 0, 1 and 2.
    want = {"last": ([0, 1, 1, 0], [NAN, 2, 6.5, NAN]),
            "first": ([2, 0, 0, 0], [2, NAN, NAN, NAN]),
            "linear": ([1 / 2 + 1 / 3, 1 / 2 + 1 / 3, 1 / 3, 0], [2, 2, 6.5, NAN]),
            # 1.5 days: click 1 for the day-2 purchase, click 2 (1.5 days, inclusive) for the
            # other; 3 days: clicks 0 and 1, then click 2 alone.
            "first_36h": ([0, 1, 1, 0], [NAN, 2, 6.5, NAN]),
            "first_3d": ([1, 0, 1, 0], [2, NAN, 6.5, NAN])}
    for name, (label, known) in want.items():
        np.testing.assert_allclose(got.labels[name], label, err_msg=name)
        np.testing.assert_array_equal(got.known_at[name], np.array(known) * DAY, err_msg=name)


def test_malt_attribute_writes_views_and_known_at_columns_that_prepare_reads(tmp_path):
    log = hand_log()
    log.clicks.to_parquet(tmp_path / "clicks.parquet")
    log.conversions.to_parquet(tmp_path / "conversions.parquet")
    options = AttributeOptions(clicks=str(tmp_path / "clicks.parquet"),
                               conversions=str(tmp_path / "conversions.parquet"),
                               rules=("last", "first"), view_windows_days=(1.5, 3.0),
                               view_rules=("first",), out=str(tmp_path / "out"))
    report = attribute_logs(options.clicks, options.conversions, options.out,
                            options.attribution())
    assert report.labels == ["last", "first", "first_36h", "first_3d"]
    assert report.view_windows_days == [1.5, 3.0] and report.view_rules == ["first"]
    schema = Schema.load(tmp_path / "out" / "schema.toml")
    assert schema.labels == tuple(report.labels)
    days = [pq.read_table(p).to_pandas() for p in sorted((tmp_path / "out").glob("*/*.parquet"))]
    frame = pd.concat(days).set_index("click_id").sort_index()
    assert frame["first_3d_known_at"].isna().tolist() == [False, True, False, True]
    assert frame["last_known_at"].tolist()[1:3] == [2 * DAY, 6.5 * DAY]
    dataset = prepare(tmp_path / "out", schema)
    assert all(day.stats.known_at for day in dataset.days)


@settings(max_examples=40, deadline=None)
@given(logs(), st.lists(st.integers(1, 40), min_size=1, max_size=3, unique=True))
def test_one_pass_under_several_windows_equals_one_run_per_window(case, windows):
    log, window, mode = case
    windows = [float(w) for w in windows]
    together = attribute(log, AttributionConfig(rules=ALL_RULES, window=window, mode=mode,
                                                view_windows=tuple(windows)))
    for w in windows:
        alone = attribute(log, AttributionConfig(rules=ALL_RULES, window=w, mode=mode))
        for rule in ALL_RULES:
            name = view_name(rule, w)
            np.testing.assert_array_equal(together.labels[name], alone.labels[rule], name)
            np.testing.assert_array_equal(together.known_at[name], alone.known_at[rule], name)
    main = attribute(log, AttributionConfig(rules=ALL_RULES, window=window, mode=mode))
    for rule in ALL_RULES:
        np.testing.assert_array_equal(together.labels[rule], main.labels[rule], rule)


@settings(max_examples=40, deadline=None)
@given(logs(), st.integers(-1, 75))
def test_labels_known_at_t_are_those_of_the_conversions_up_to_t(case, as_of):
    """For every rule but dda (whose fit sees every path), a click is positive at T exactly
    when the log cut at T credits it: later conversions are not known yet."""
    log, window, mode = case
    rules = tuple(r for r in ALL_RULES if r != "dda")
    config = AttributionConfig(rules=rules, window=window, mode=mode)
    full = attribute(log, config)
    seen = log.conversions["conversion_time"] <= as_of
    cut = ClickLog(clicks=log.clicks, conversions=log.conversions[seen].reset_index(drop=True),
                   click_order=log.click_order, features=log.features, journey=log.journey)
    then = attribute(cut, config)
    for rule in rules:
        known = labels_as_of(full.labels[rule], full.known_at[rule], float(as_of))
        np.testing.assert_array_equal(known > 0, then.labels[rule] > 0, rule)
        assert np.isnan(full.known_at[rule]).tolist() == (full.labels[rule] == 0).tolist()


def test_view_windows_are_checked():
    with pytest.raises(ConfigError, match="listed twice"):
        AttributionConfig(view_windows=(DAY, DAY))
    with pytest.raises(ConfigError, match=r"view rules \['dda'\] are not among the rules"):
        AttributionConfig(rules=("last",), view_windows=(DAY,), view_rules=("dda",))
    with pytest.raises(ConfigError):
        AttributionConfig(view_windows=(np.inf,))
    assert view_name("last", 30 * DAY) == "last_30d" and view_name("dda", 0.5 * DAY) == \
        "dda_12h" and view_name("first", 0.1 * DAY) == "first_0.1d"
