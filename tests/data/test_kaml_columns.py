"""The incomplete-label columns: reported flags and targets outside the labels ("other")."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from malt.data.batches import DayBatches
from malt.data.cache import prepare
from malt.data.layout import day_path, write_day
from malt.data.schema import Schema
from malt.errors import ConfigError, DataError
from support.kaml_data import kaml_schema, write_kaml_dataset


def test_reported_flags_and_other_targets_are_read(tmp_path):
    root = write_kaml_dataset(tmp_path / "d", days=2, rows=50)
    schema = kaml_schema()
    day = prepare(root, schema).train[0]
    table = pq.read_table(day_path(root, "train", 0))
    arrays = day.arrays()
    np.testing.assert_array_equal(arrays["reported"],
                                  np.stack([table[c].to_numpy() for c in schema.reported_labels],
                                           1))
    np.testing.assert_array_equal(arrays["target_action"], table["target"].to_numpy())
    assert (arrays["target_action"] == -1).any()
    batch = next(iter(DayBatches(day, 64)))
    assert batch["reported"].shape == (50, 3) and batch["target_action"].min() == -1


def test_other_may_be_named(tmp_path):
    root = write_kaml_dataset(tmp_path / "d", days=2, rows=20)
    path = day_path(root, "test", 0)
    table = pq.read_table(path)
    names = np.array(["other", "act", "reg", "pay"])[table["target"].to_numpy() + 1]
    write_day(path, table.set_column(table.schema.get_field_index("target"), "target",
                                     pa.array(names)))
    arrays = prepare(root, kaml_schema()).test[0].arrays()
    np.testing.assert_array_equal(arrays["target_action"], table["target"].to_numpy())


def test_bad_targets_and_reported_columns_are_refused(tmp_path):
    root = write_kaml_dataset(tmp_path / "d", days=2, rows=20)
    path = day_path(root, "test", 0)
    table = pq.read_table(path)
    bad = table.set_column(table.schema.get_field_index("target"), "target",
                           pa.array(np.full(20, -2)))
    write_day(path, bad)
    with pytest.raises(DataError, match="-1") as info:
        prepare(root, kaml_schema())
    assert info.value.column == "target"
    with pytest.raises(ConfigError, match="reported_labels"):
        Schema.from_dict({"user_column": "u", "fields": {"ad": ["a"]}, "labels": ["x", "y"],
                          "reported_labels": ["rx"]})
