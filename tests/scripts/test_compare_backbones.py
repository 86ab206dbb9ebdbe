"""scripts/compare_backbones.py: its data set carries a label that follows a bag and a
sequence's recent items, is the same for the same seed, and the script runs end to end."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from malt.metrics import auc

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare_backbones.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("compare_backbones", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["compare_backbones"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["compare_backbones"]


def day(script, seed: int = 0, users: int = 4000):
    rng = np.random.default_rng(seed)
    everyone = script.population(rng, 2 * users)
    tag_of_item = np.arange(script.ITEMS) % script.TAGS
    return script.day_table(rng, everyone, users, np.zeros(script.ITEMS),
                            np.zeros(script.SLOTS), tag_of_item, np.zeros(script.ITEMS, int))


def test_the_lists_are_ragged_and_some_are_longer_than_what_is_kept(script):
    table = day(script)
    for column, kept in (("interests", script.KEPT_INTERESTS), ("history", 10)):
        lengths = table[column].combine_chunks().value_lengths().to_numpy()
        assert lengths.min() == 0 and lengths.max() > kept and len(np.unique(lengths)) > 5


def click_matches(script, table) -> dict[str, np.ndarray]:
    """Per row, read off its lists one by one: the ad's tag is in the kept bag; the item is
    among the 10 latest; it is not, but shares a tag with one of them."""
    tag, item = table["tag"].to_numpy(), table["item"].to_numpy()
    interests, history = table["interests"].to_pylist(), table["history"].to_pylist()
    latest = [h[:10] for h in history]
    in_recent = np.array([i in h for i, h in zip(item, latest)])
    return {"bag": np.array([t in i[:script.KEPT_INTERESTS] for t, i in zip(tag, interests)]),
            "recent": in_recent,
            "same_tag": np.array([t in {x % script.TAGS for x in h} for t, h in zip(tag, latest)])
            & ~in_recent,
            "older": np.array([i in h[10:] for i, h in zip(item, history)]) & ~in_recent}


def test_a_clicks_last_label_follows_the_bag_and_the_latest_items(script):
    table = day(script)
    last = table["last"].to_numpy() > 0
    m = click_matches(script, table)
    # a path ends at its converting click, so `last` is each click's own draw: σ(-3.5 + ...)
    plain = ~m["bag"] & ~m["recent"] & ~m["same_tag"]
    base = last[plain].mean()
    assert base < 0.06
    assert last[m["bag"] & ~m["recent"] & ~m["same_tag"]].mean() > 2 * base
    assert last[~m["bag"] & m["recent"]].mean() > 4 * base
    assert last[~m["bag"] & m["same_tag"]].mean() > 1.5 * base
    # an item older than the 10 latest does not count
    assert last[plain & m["older"]].mean() < 2 * base
    # at most one converting click per user, and it ends the path
    user = table["user"].to_numpy()
    assert np.bincount(user, weights=last).max() == 1
    ends = np.append(user[1:] != user[:-1], True)
    assert last.any() and ends[last].all()


def test_the_generators_logit_loses_auc_without_the_sequence_or_without_the_bag(script):
    """The label is one the features can explain, and most of what they explain goes with the
    bag or with the sequence: drop either term from the generator's own z and its AUC on
    `last` falls by several points."""
    table = day(script, users=8000)
    last = table["last"].to_numpy() > 0
    m = click_matches(script, table)
    zero = np.zeros(len(last))

    def score(bag, recent, same_tag):
        return auc(script.click_logit(bag, recent, same_tag, zero, zero), last)

    full = score(m["bag"], m["recent"], m["same_tag"])
    assert full > 0.70
    assert full - score(m["bag"], zero, zero) > 0.08
    assert full - score(zero, m["recent"], m["same_tag"]) > 0.04


def test_the_same_seed_writes_the_same_bytes(script, tmp_path):
    for run in ("a", "b"):
        script.foreign_data(tmp_path / run, seed=7, users_per_day=50)
    for split, name in (("train", "day0.parquet"), ("test", "day5.parquet")):
        assert pq.read_table(tmp_path / "a" / split / name).equals(
            pq.read_table(tmp_path / "b" / split / name))


@pytest.mark.slow
def test_the_table_compares_moae_with_base_on_every_encoder(script, tmp_path):
    results = tmp_path / "results"
    script.main(["--out", str(tmp_path / "out"), "--results", str(results), "--runs", "1",
                 "--users-per-day", "60", "--seed", "3"])
    lines = (results / "backbones.md").read_text().splitlines()
    rows = [line.split(" | ")[:2] for line in lines if line.startswith("| moae/")
            or line.startswith("| base/")]
    assert [r[0] for r in rows[:4]] == [f"| moae/{e}" for e in script.ENCODERS]
    assert [r[1] for r in rows[:4]] == [f"base/{e}" for e in script.ENCODERS]
    assert len(rows) == 4 + 3 + 3 + len(script.ABLATIONS)
    # the ablations were trained on their own data: their runs are not the full data's
    assert len(list((tmp_path / "out").glob("runs-*/*"))) == len(script.ABLATIONS)


@pytest.mark.slow
def test_on_a_simulation_the_table_compares_every_encoder_without_ablations(script, tmp_path):
    results = tmp_path / "results"
    script.main(["--data", "simulation", "--users", "200", "--out", str(tmp_path / "out"),
                 "--results", str(results), "--runs", "1", "--seed", "3"])
    lines = (results / "backbones.md").read_text().splitlines()
    assert "(`true_cvr`) scores `last` at AUC 0." in lines[0]
    rows = [line.split(" | ")[:2] for line in lines if line.startswith("| ")][1:]
    assert rows == [[f"| moae/{e}", f"base/{e}"] for e in script.ENCODERS] + \
        [[f"| {m}/{e}", f"{m}/target_attention"] for m in ("base", "moae")
         for e in script.ENCODERS[1:]]
    # MoAE learns from every other view of the simulation, and CAT
    config = next((tmp_path / "out" / "runs").glob("moae-*")) / "config.json"
    assert json.loads(config.read_text())["task"]["aux"] == ["first", "linear", "mta", "cat"]
