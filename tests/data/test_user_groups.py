"""GAUC's user groups: every distinct user of an evaluated day is a group of its own, also the
users the user column's vocab (built from the training days) does not hold, who would otherwise
all share its OOV row and be scored as one user."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from malt.api import prepare
from malt.data.layout import write_day
from malt.data.reader import user_groups
from malt.data.vocab import VocabLookup
from malt.metrics import gauc

SCHEMA = """\
user_column = "buyer"
labels = ["last"]

[fields]
ad = ["item"]
"""


def reference_gauc(scores: np.ndarray, labels: np.ndarray, raw_user: np.ndarray) -> float:
    """Σ_u clicks_u · AUC_u / Σ_u clicks_u over the raw users with both classes, one
    scikit-learn AUC per user."""
    total = weight = 0.0
    for u in np.unique(raw_user):
        rows = raw_user == u
        if 0 < labels[rows].sum() < rows.sum():
            total += rows.sum() * roc_auc_score(labels[rows], scores[rows])
            weight += rows.sum()
    return total / weight


def day(rng: np.random.Generator, users: np.ndarray) -> pa.Table:
    """Each of `users` clicks 4 to 9 times; labels random."""
    clicks = rng.integers(4, 10, len(users))
    buyer = np.repeat(users, clicks)
    return pa.table({"buyer": buyer, "item": rng.integers(0, 5, len(buyer)),
                     "last": (rng.random(len(buyer)) < 0.4).astype(np.float32)})


def test_gauc_on_a_prepared_day_counts_each_unseen_user_on_its_own(tmp_path):
    rng = np.random.default_rng(0)
    write_day(tmp_path / "train" / "day0.parquet", day(rng, np.arange(10)))
    # half the test users were never seen in training
    test = day(rng, np.arange(5, 25))
    write_day(tmp_path / "test" / "day1.parquet", test)
    (tmp_path / "schema.toml").write_text(SCHEMA)
    cached = prepare(tmp_path, build_vocabs=True).test[0]
    user = np.asarray(cached.arrays()["user"])
    raw = test["buyer"].to_numpy()
    labels = test["last"].to_numpy()
    scores = rng.random(len(raw))
    assert len(np.unique(user)) == len(np.unique(raw)) == cached.stats.users == 20
    assert gauc(scores, labels, user).value == pytest.approx(
        reference_gauc(scores, labels, raw), abs=1e-12)


def test_known_users_keep_their_vocab_row_and_nulls_the_oov_row():
    lookup = VocabLookup({"3": 0, "8": 1}, source="buyer.json")
    column = pa.array([8, 3, None, 41, 41, 7])
    groups = user_groups(column, lookup.map(column), lookup.oov_index)
    assert groups[:3].tolist() == [1, 0, lookup.oov_index]
    assert groups[3] == groups[4] and len(set(groups[3:].tolist())) == 2
    assert (groups[3:] > lookup.oov_index).all()


def test_groups_are_int64_and_stable_across_versions():
    # The groups are stored in the cache: the same unknown id must keep its group from one
    # malt version to the next (the documented oov_index + 1 + 62-bit hash), also when the
    # column comes in chunks of dictionary codes.
    lookup = VocabLookup({"3": 0}, source="buyer.json")
    column = pa.chunked_array([pa.array(["3", "x"]).dictionary_encode(),
                               pa.array(["y", None]).dictionary_encode()])
    groups = user_groups(column, lookup.map(column), lookup.oov_index)
    assert groups.dtype == np.int64
    hashes = pd.util.hash_array(np.array(["x", "y"], dtype=object)) >> np.uint64(2)
    assert groups.tolist() == [0, *(lookup.oov_index + 1 + hashes.astype(np.int64)).tolist(),
                               lookup.oov_index]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(max_size=6) | st.integers(-10**12, 10**12).map(str), min_size=1,
                max_size=60), st.integers(0, 59), st.booleans())
def test_an_unknown_id_has_one_group_wherever_it_is_read(ids, cut, dictionary):
    """The same id gets the same group in every chunk (and as dictionary codes); distinct ids
    get distinct groups."""
    lookup = VocabLookup({"known": 0}, source="buyer.json")
    column = pa.array(ids, type=pa.string())
    if dictionary:
        column = column.dictionary_encode()
    cut = min(cut, len(ids))
    parts = [column.slice(0, cut), column.slice(cut)]
    groups = np.concatenate([user_groups(p, lookup.map(p), lookup.oov_index) for p in parts])
    whole = user_groups(column, lookup.map(column), lookup.oov_index)
    np.testing.assert_array_equal(groups, whole)
    # one group per id and one id per group
    assert len(set(ids)) == len(set(whole.tolist())) == len(set(zip(ids, whole.tolist())))


def test_an_integer_id_and_its_text_are_one_user():
    lookup = VocabLookup({"1": 0}, source="buyer.json")
    numbers, text = pa.array([12, 1]), pa.array(["12", "1"])
    assert user_groups(numbers, lookup.map(numbers), lookup.oov_index).tolist() == \
        user_groups(text, lookup.map(text), lookup.oov_index).tolist()
