"""Per-table embedding widths (`embed_dims` in the schema): declared and checked, honoured by
every table and encoder, projected by target attention, shared by a sequence and its field."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from malt.data.schema import Bag, CategoricalField, IdSequence, Schema
from malt.data.vocab import VocabInfo
from malt.errors import ConfigError
from malt.layers import DCNv2Encoder, DINEncoder, DNNEncoder, FeatureEncoder, FieldInputs

SCHEMA = Schema(name="t", user_column="u", labels=("a",),
                fields=(CategoricalField("city", "user"), CategoricalField("item", "ad"),
                        CategoricalField("hour", "context")),
                id_sequences=(IdSequence("items", "item", 3),),
                bags=(Bag("tags", "ad", "sum", 2),),
                embed_dims=(("city", 3), ("item", 8), ("tags", 5)))
VOCAB = VocabInfo({"city": 5, "item": 10, "hour": 4, "tags": 6}, {"items": 0})
D = 4
"""The encoder's embed_dim: the width of `hour`, the one table without its own."""


def _batch(rows: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return {"sparse": torch.stack([torch.randint(0, 5, (rows,), generator=g),
                                   torch.randint(1, 10, (rows,), generator=g),
                                   torch.randint(0, 4, (rows,), generator=g)], dim=1),
            "seq": torch.randint(0, 10, (rows, 1, 3), generator=g),
            "bags": torch.randint(0, 6, (rows, 1, 2), generator=g),
            "bag_lengths": torch.tensor([[2], [0], [1]])[:rows]}


@pytest.mark.parametrize("widths, message", [
    ({"items": 8}, "the id sequence 'items'.*table of 'item'"),
    ({"price": 8}, "'price', which is not a categorical field nor a bag"),
    ({"city": 0}, r"embed_dims = {'city': 0}: expected a table of integers >= 1"),
])
def test_a_bad_width_is_refused_naming_it(widths, message):
    raw = dict(SCHEMA.to_dict(), embed_dims=widths)
    with pytest.raises(ConfigError, match=message):
        Schema.from_dict(raw)


def test_widths_round_trip_and_leave_the_cache_fingerprint_alone():
    assert Schema.from_dict(SCHEMA.to_dict()) == SCHEMA
    assert SCHEMA.fingerprint() == dataclasses.replace(SCHEMA, embed_dims=()).fingerprint()


def test_every_table_has_its_declared_width_and_a_sequence_that_of_its_field():
    inputs = FieldInputs(SCHEMA, VOCAB, D)
    tables = inputs.embeddings
    assert [t.weight.shape for t in tables.tables] == [(5, 3), (10, 8), (4, D)]
    assert tables.bag_tables[0].weight.shape == (6, 5)
    assert tables.sequence_widths == [8]
    parts = inputs(_batch())
    assert [f.shape[1] for f in parts.fields] == [3, 8, D, 5]
    assert parts.sequences[0].shape == (3, 3, 8)
    assert inputs.flat_dim == 3 + 8 + D + 5 + 8 == inputs.flat(_batch()).shape[1]


def test_target_attention_projects_the_ad_side_to_the_sequences_width():
    encoder = FeatureEncoder(SCHEMA, VOCAB, dim=D, heads=2)
    attention = encoder.attention[0]
    assert attention.query.in_features == 8 + D + 5  # item, hour, tags: the query
    assert attention.query.out_features == 8  # the table the sequence shares
    assert encoder.block_widths == {"user": 3, "ad": 8 + D + 5, "attention": 8, "simtier": 0,
                                    "numeric": 0}
    assert encoder(_batch()).shape == (3, encoder.out_dim) == (3, 3 + 17 + 8)
    with pytest.raises(ConfigError, match="'items' is 8 wide.*3 heads"):
        FeatureEncoder(SCHEMA, VOCAB, dim=D, heads=3)


@pytest.mark.parametrize("build", [
    lambda: DNNEncoder(SCHEMA, VOCAB, dim=D, hidden=(6,)),
    lambda: DCNv2Encoder(SCHEMA, VOCAB, dim=D, deep=(6,)),
    lambda: DINEncoder(SCHEMA, VOCAB, dim=D, attention=(6,)),
])
def test_the_flat_encoders_concatenate_the_widths_and_train_every_table(build):
    torch.manual_seed(0)
    encoder = build()
    x = encoder(_batch())
    assert x.shape == (3, encoder.out_dim)
    x.square().sum().backward()
    for table in [*encoder.features.embeddings.tables, *encoder.features.embeddings.bag_tables]:
        assert table.weight.grad is not None and table.weight.grad.abs().sum() > 0


def test_din_pools_a_sequence_at_its_tables_width():
    encoder = DINEncoder(SCHEMA, VOCAB, dim=D, attention=(6,))
    assert encoder.pooling[0].mlp.layers[0].in_features == 4 * 8
    assert encoder.out_dim == 3 + 8 + D + 5 + 8
