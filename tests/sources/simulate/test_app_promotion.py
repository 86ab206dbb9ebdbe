"""The app-promotion simulator (KAML setting): layout and schema, label invariants, shares,
determinism, the command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from malt.cli import main
from malt.data.cache import prepare
from malt.data.schema import Schema
from malt.sources.simulate.app_promotion import AppSimConfig, simulate_app_promotion
from malt.sources.simulate.app_world import ACTIONS, AppParams, build_campaigns

CONFIG = AppSimConfig(users=1500, campaigns=60, days=4, clicks_per_day=3000, seed=5)


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("app") / "data"
    return out, simulate_app_promotion(CONFIG, out)


def _rows(out: Path) -> pd.DataFrame:
    return pd.concat([pq.read_table(p).to_pandas().assign(day=k) for k, p in
                      enumerate([*sorted(out.glob("train/*.parquet")), out / "test" /
                                 "test.parquet"])], ignore_index=True)


def test_layout_schema_and_prepare(sim):
    out, stats = sim
    schema = Schema.load(out / "schema.toml")
    assert schema.labels == ACTIONS and schema.campaign_column == "campaign"
    dataset = prepare(out, schema)
    assert len(dataset.train) == 3 and len(dataset.test) == 1
    arrays = dataset.train[0].arrays()
    assert arrays["target_action"].min() == -1 and arrays["target_action"].max() == 4
    assert stats.rows == 12_000 and "rows by target" in stats.format()


def test_labels_follow_the_funnel_and_the_reporting(sim):
    frame = _rows(sim[0])
    truth = frame[[f"true_{a}" for a in ACTIONS]].to_numpy() > 0
    observed = frame[list(ACTIONS)].to_numpy() > 0
    reported = frame[[f"reported_{a}" for a in ACTIONS]].to_numpy() > 0
    assert not (observed & ~truth).any() and not (observed & ~reported).any()
    act, reg, pay, ret, reeng = range(5)
    assert not (truth[:, reg] & ~truth[:, act]).any()
    assert not (truth[:, pay] & ~truth[:, reg]).any()
    assert not (truth[:, ret] & ~truth[:, act]).any()
    assert not (truth[:, reeng] & truth[:, act]).any()
    target = frame["target_action"].to_numpy()
    own = np.array([[t == a for a in ACTIONS] for t in target])
    assert reported[own].all()
    # The target is reported completely: observed equals true on it.
    np.testing.assert_array_equal(observed[own], truth[own])
    # A campaign keeps its target and reported set over the days.
    per_campaign = frame.groupby("campaign")
    assert (per_campaign["target_action"].nunique() == 1).all()
    assert (per_campaign[[f"reported_{a}" for a in ACTIONS]].nunique() == 1).all().all()
    assert observed.sum() < truth.sum()


def test_campaign_shares_follow_the_configured_targets():
    rng = np.random.default_rng(0)
    params = AppParams()
    campaigns = build_campaigns(2000, 500, 10, params, rng)
    group = np.where(campaigns.target < 0, 5, campaigns.target)
    share = np.bincount(group, campaigns.traffic) / campaigns.traffic.sum()
    np.testing.assert_allclose(share, params.target_shares / params.target_shares.sum())
    assert np.bincount(group).min() >= 2
    late = campaigns.start_day > 0
    assert 0.2 < late.mean() < 0.4


def test_no_campaign_clicks_before_it_starts(sim):
    from malt.sources.simulate.app_promotion import build_world

    frame = _rows(sim[0])
    start = build_world(CONFIG).campaigns.start_day
    assert (frame["day"].to_numpy() >= start[frame["campaign"].to_numpy()]).all()


def test_same_seed_same_files(sim, tmp_path):
    out, _ = sim
    simulate_app_promotion(CONFIG, tmp_path / "again")
    for path in sorted(out.glob("*/*.parquet")):
        again = tmp_path / "again" / path.relative_to(out)
        assert pq.read_table(path).equals(pq.read_table(again))
    assert (out / "schema.toml").read_text() == (tmp_path / "again" / "schema.toml").read_text()


def test_simulate_command_scenario(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", "--scenario", "app-promotion", "--size", "tiny", "--days", "3",
                 "--users", "500", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "positive on target" in printed and (out / "schema.toml").is_file()
    assert main(["simulate", "--scenario", "app-promotion", "--size", "mac",
                 "--out", str(tmp_path / "x")]) == 3
    assert "unknown size" in capsys.readouterr().err
