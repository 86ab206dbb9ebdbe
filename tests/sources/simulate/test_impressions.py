"""`malt simulate --impressions`: the same rows as the click-only data, a click drawn per row
by the known rule, the labels of unclicked impressions 0, and a schema naming the column."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from malt.cli import main
from malt.data import MAC, prepare
from malt.data.schema import schema_for
from malt.sources.simulate import simulate, size_config
from malt.sources.simulate.impressions import click_probability, impression_schema

CONFIG = size_config("tiny", users=300, days=3, seed=5)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    root = tmp_path_factory.mktemp("impressions")
    simulate(CONFIG, root / "clicks")
    stats = simulate(CONFIG, root / "impressions", impressions=True)
    clicked = sum(int(pq.read_table(f, columns=["click"])["click"].to_numpy().sum())
                  for f in (root / "impressions").glob("*/*.parquet"))
    assert stats.clicked == clicked
    assert f"{clicked:,} (" in stats.format().splitlines()[1]
    return root / "clicks", root / "impressions"


def _day(root):
    return pq.read_table(root / "train" / "train-00.parquet").to_pandas()


def test_impressions_keep_the_rows_and_features_of_the_click_data(both):
    clicks, impressions = map(_day, both)
    assert len(clicks) == len(impressions) > 500
    features = [*MAC.vocab_columns, "true_cvr", "click_time"]
    assert clicks[features].equals(impressions[features])
    clicked = impressions["click"].to_numpy() == 1
    assert 0.05 < clicked.mean() < 0.5
    for label in MAC.labels:
        # A clicked impression keeps its credit, an unclicked one has none.
        np.testing.assert_array_equal(impressions[label][clicked], clicks[label][clicked])
        assert (impressions[label][~clicked] == 0).all()
        assert impressions[f"{label}_known_at"][~clicked].isna().all()
    assert (impressions["true_credit"][~clicked] == 0).all()


def test_the_clicks_follow_the_written_rule_and_select_likely_buyers(both):
    day = _day(both[1])
    slot = day["context_feat2"].astype(np.int64).to_numpy() - 1   # ids are the band + 1
    np.testing.assert_allclose(day["true_ctr"], click_probability(day["true_cvr"], slot))
    assert abs(day["click"].mean() - day["true_ctr"].mean()) < 0.03
    # The selection bias the study relies on: clicked rows are likelier to convert.
    by_click = day.groupby("click")["true_cvr"].mean()
    assert by_click[1] > 1.5 * by_click[0]


def test_the_data_set_names_its_click_column_and_prepares(both):
    root = both[1]
    schema = schema_for(root)
    assert schema == impression_schema() and schema.click_column == "click"
    dataset = prepare(root, schema)
    day = dataset.train[0]
    clicks = pq.read_table(root / "train" / "train-00.parquet")["click"].to_numpy()
    np.testing.assert_array_equal(day.arrays()["click"], clicks)
    assert not (schema_for(both[0]).click_column)


@given(st.floats(0, 1), st.floats(0, 1), st.integers(0, 5))
def test_click_probability_rises_with_interest_and_falls_with_slot(a, b, slot):
    low, high = sorted((a, b))
    p = click_probability(np.array([low, high, high]), np.array([slot, slot, slot + 1]))
    assert 0 < p[0] <= p[1] < 1 and p[2] < p[1]


def test_impressions_are_refused_for_the_app_promotion_scenario(tmp_path, capsys):
    code = main(["simulate", "--scenario", "app-promotion", "--impressions", "--size", "tiny",
                 "--out", str(tmp_path / "x")])
    assert code == 3 and "--impressions applies to the mac scenario only" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
