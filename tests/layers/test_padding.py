"""`SequencePadding`: each id sequence's mask is where it holds its own table's padding row;
the float sequences take the first id sequence's mask, cut to their own length."""

from __future__ import annotations

import pytest
import torch

from malt.data import Schema
from malt.data.vocab import VocabInfo
from malt.errors import ConfigError
from malt.layers.padding import SequencePadding

SCHEMA = Schema.from_dict({
    "user_column": "buyer", "fields": {"ad": ["item", "shop"]}, "labels": ["last"],
    "ragged_sequences": True, "sequence_length": 3, "float_sequences": {"sim": 2},
    "id_sequences": {"shop_seq": {"shares": "shop", "length": 2}, "item_seq": "item"}})
"""The first id sequence (2 items) is shorter than the longest (3); `sim` follows the first."""
SIZES = {"buyer": 3, "item": 5, "shop": 4}


def test_each_sequence_is_masked_by_its_own_padding_row_and_floats_by_the_first():
    padding = SequencePadding(SCHEMA, VocabInfo(SIZES, {"shop_seq": 4, "item_seq": 5}))
    # shop_seq holds one shop, then its padding row 4; item_seq holds row 4 (an item) twice
    seq = torch.tensor([[[0, 4, 4], [4, 5, 4]],
                        [[1, 2, 4], [5, 5, 5]]])
    masks = padding(seq)
    assert masks.tolist() == [[[False, True, True], [False, True, False]],
                              [[False, False, True], [True, True, True]]]
    assert padding.of_floats(masks).tolist() == [[False, True], [False, False]]
    assert padding.of_floats(None) is None


def test_a_vocab_without_a_sequences_padding_row_is_refused():
    with pytest.raises(ConfigError, match=r"no padding row for the sequences \['item_seq'\]"):
        SequencePadding(SCHEMA, VocabInfo(SIZES, {"shop_seq": 4}))
