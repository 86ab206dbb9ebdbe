"""Impression logs: the schema's click column, checked and cached by `prepare`, carried by the
batches, and the task checks that keep entire-space and click-space training apart."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from malt.data import MAC, prepare
from malt.data.batches import DayBatches
from malt.data.layout import day_path, write_day
from malt.data.masks import MaskPolicy
from malt.data.schema import Schema
from malt.data.task import Task
from malt.errors import ConfigError, DataError
from support.mac_data import write_random_dataset

IMPRESSIONS = dataclasses.replace(MAC, name="mac-impressions", click_column="click")


@pytest.fixture
def impressions(tmp_path):
    return write_random_dataset(tmp_path / "d", IMPRESSIONS, rows=150, days=3)


def rewrite_click(root, edit):
    path = day_path(root, "train", 1)
    table = pq.read_table(path)
    index = table.schema.get_field_index("click")
    write_day(path, table.set_column(index, "click", edit(table["click"].to_numpy().copy(),
                                                          table)))


def test_the_click_column_is_a_label_column_of_the_schema():
    assert IMPRESSIONS.columns[-1] == "click" and "click" not in MAC.columns
    # Schemas without it keep their fingerprint (and so their caches).
    assert MAC.fingerprint() == dataclasses.replace(MAC, click_column=None).fingerprint()
    assert IMPRESSIONS.fingerprint() != MAC.fingerprint()
    raw = {"user_column": "u", "fields": {"ad": ["item"]}, "labels": ["buy"],
           "click_column": "clicked"}
    assert Schema.from_dict(raw).click_column == "clicked"
    assert Schema.from_dict(Schema.from_dict(raw).to_dict()).click_column == "clicked"
    with pytest.raises(ConfigError, match="declared twice"):
        Schema.from_dict({**raw, "click_column": "buy"})


@pytest.mark.parametrize("shuffle", [False, True])
def test_clicks_are_cached_and_batched_as_the_file_holds_them(impressions, shuffle):
    day = prepare(impressions, IMPRESSIONS).train[0]
    clicks = pq.read_table(day_path(impressions, "train", 0))["click"].to_numpy()
    np.testing.assert_array_equal(day.arrays()["click"], clicks)
    assert 0 < clicks.mean() < 1
    seen = np.full(day.rows, -1.0, np.float32)
    for batch in DayBatches(day, 32, shuffle=shuffle, seed=3):
        assert batch["click"].dtype == torch.float32
        seen[batch["index"].numpy()] = batch["click"].numpy()
        # An unclicked impression carries no credit.
        assert not (batch["labels"][batch["click"] == 0] > 0).any()
    np.testing.assert_array_equal(seen, clicks)


def test_a_click_that_is_not_0_or_1_is_refused(impressions):
    def two(clicks, _):
        clicks[5] = 2
        return pa.array(clicks)

    rewrite_click(impressions, two)
    with pytest.raises(DataError, match="click is 2.0; an impression is clicked") as info:
        prepare(impressions, IMPRESSIONS)
    assert info.value.row == 5 and info.value.column == "click"


def test_an_unclicked_impression_with_credit_is_refused(impressions):
    def unclick_a_credited_row(clicks, table):
        row = int(np.flatnonzero(table["first"].to_numpy() > 0)[0])
        clicks[row] = 0
        unclick_a_credited_row.row = row
        return pa.array(clicks)

    rewrite_click(impressions, unclick_a_credited_row)
    with pytest.raises(DataError, match="not clicked but its label") as info:
        prepare(impressions, IMPRESSIONS)
    assert info.value.row == unclick_a_credited_row.row


def test_a_null_click_is_refused(impressions):
    rewrite_click(impressions, lambda clicks, _: pa.array(clicks, mask=np.arange(len(clicks))
                                                          == 7))
    with pytest.raises(DataError, match="null value") as info:
        prepare(impressions, IMPRESSIONS)
    assert info.value.row == 7


def test_entire_space_needs_impression_logs():
    Task("last", ("first",), entire_space=True).validate(IMPRESSIONS)
    with pytest.raises(ConfigError, match="needs impression logs: the schema 'mac' declares no "
                                          "click_column"):
        Task("last", entire_space=True).validate(MAC)


@pytest.mark.parametrize("changes, message", [
    ({"aux": ("cat",)}, "the Cartesian view 'cat' has no such product"),
    ({"mask": "base"}, "it takes no training mask"),
    ({"delay_correction": "fnw"}, "takes no delay correction"),
])
def test_entire_space_refuses_what_it_does_not_combine_with(changes, message):
    with pytest.raises(ConfigError, match=message):
        Task("last", entire_space=True, **changes)


def test_a_click_space_run_on_impressions_masks_out_the_unclicked_rows():
    task = Task("last", ("first",))
    assert task.click_space_mask(IMPRESSIONS) and not task.click_space_mask(MAC)
    assert not Task("last", entire_space=True).click_space_mask(IMPRESSIONS)
    with pytest.raises(ConfigError, match="takes no mask: leave it out, or train with "
                                          "--entire-space"):
        Task("last", ("cat",)).validate(IMPRESSIONS)
    batch = {"click": torch.tensor([1.0, 0.0, 1.0]), "labels": torch.zeros(3, 4),
             "target_action": torch.tensor([0, 0, 1])}
    none = MaskPolicy("none", IMPRESSIONS, clicks_only=True).apply(batch, 0)["mask"]
    np.testing.assert_array_equal(none.numpy(), np.repeat([[1.0], [0.0], [1.0]], 4, axis=1))
    assert "mask" not in MaskPolicy("none", IMPRESSIONS).apply(batch, 0)
