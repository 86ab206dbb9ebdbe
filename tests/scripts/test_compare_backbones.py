"""scripts/compare_backbones.py: its data set carries a label that follows a bag and a
sequence's recent items, is the same for the same seed, and the script runs end to end."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

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


def test_a_users_conversion_follows_the_bag_and_the_recent_items(script):
    table = day(script)
    user = table["user"].to_numpy()
    converted = table["linear"].to_numpy() > 0
    interests = table["interests"].to_pylist()
    history = table["history"].to_pylist()
    tag, item = table["tag"].to_numpy(), table["item"].to_numpy()
    in_bag = np.array([t in i[:script.KEPT_INTERESTS] for t, i in zip(tag, interests)])
    in_recent = np.array([t in h[:script.RECENT] for t, h in zip(item, history)])
    # with one click, the user's conversion is that click's own draw: σ(-3.2 + 1.6 · ...)
    alone = np.bincount(user)[user] == 1
    rate = {(b, r): converted[alone & (in_bag == b) & (in_recent == r)].mean()
            for b in (False, True) for r in (False, True)}
    assert rate[(False, False)] < 0.08
    assert rate[(True, False)] > 2 * rate[(False, False)]
    assert rate[(False, True)] > 2 * rate[(False, False)]
    # an item beyond the three latest does not count
    assert in_recent.mean() < np.mean([i in h[:10] for i, h in zip(item, history)])


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
    assert len(rows) == 4 + 3 + len(script.ABLATIONS)
    # the ablations were trained on their own data: their runs are not the full data's
    assert len(list((tmp_path / "out").glob("runs-*/*"))) == len(script.ABLATIONS)
