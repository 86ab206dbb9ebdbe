"""Bags pooled into one field embedding: by hand, empty bags, padding, gradients, and under
every built-in encoder (target attention, dnn, dcnv2, din)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from malt.data.schema import MAC, Bag, CategoricalField, IdSequence, Schema
from malt.data.vocab import VocabInfo
from malt.layers import DCNv2Encoder, DINEncoder, DNNEncoder, FeatureEncoder, FieldInputs
from malt.layers.embedding import pooled_bag

SCHEMA = Schema(name="t", user_column="u", labels=("a",),
                fields=(CategoricalField("city", "user"), CategoricalField("item", "ad")),
                id_sequences=(IdSequence("items", "item", 3),),
                bags=(Bag("likes", "user", "sum", 4), Bag("tags", "ad", "mean", 4)))
VOCAB = VocabInfo({"city": 5, "item": 10, "likes": 7, "tags": 6}, {"items": 0})


def _table(rows: int, dim: int = 2) -> nn.Embedding:
    table = nn.Embedding(rows, dim)
    with torch.no_grad():
        table.weight.copy_(torch.arange(rows * dim, dtype=torch.float32).view(rows, dim))
    return table


@pytest.mark.parametrize("mean", [False, True])
def test_a_bag_pools_its_first_length_ids_by_hand(mean):
    table = _table(5)  # row r = [2r, 2r + 1]
    ids = torch.tensor([[1, 3, 4], [2, 0, 0], [4, 4, 4]])
    lengths = torch.tensor([2, 1, 0])
    total = torch.tensor([[2.0 + 6.0, 3.0 + 7.0], [4.0, 5.0], [0.0, 0.0]])
    expected = total / torch.tensor([[2.0], [1.0], [1.0]]) if mean else total
    assert pooled_bag(table, ids, lengths, mean).tolist() == expected.tolist()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 6), max_size=5), min_size=1, max_size=8),
       st.booleans())
def test_pooling_matches_torchs_embedding_bag(rows, mean):
    torch.manual_seed(0)
    table = nn.Embedding(7, 3)
    width = max(1, max(len(r) for r in rows))
    ids = torch.tensor([r + [6] * (width - len(r)) for r in rows])  # 6: any padding row
    lengths = torch.tensor([len(r) for r in rows])
    reference = nn.EmbeddingBag(7, 3, mode="mean" if mean else "sum")
    reference.weight = table.weight
    offsets = torch.tensor([0, *torch.cumsum(lengths, 0)[:-1].tolist()])
    flat = torch.tensor([v for r in rows for v in r], dtype=torch.int64)
    torch.testing.assert_close(pooled_bag(table, ids, lengths, mean), reference(flat, offsets))


def test_padding_past_a_bags_length_changes_nothing():
    table = _table(6)
    ids = torch.tensor([[1, 2], [3, 0]])
    lengths = torch.tensor([2, 1])
    wider = torch.cat([ids, torch.full((2, 3), 5)], dim=1)
    for mean in (False, True):
        assert torch.equal(pooled_bag(table, ids, lengths, mean),
                           pooled_bag(table, wider, lengths, mean))


class _Pool(nn.Module):
    def __init__(self, table: nn.Embedding, mean: bool):
        super().__init__()
        self.table, self.mean = table, mean

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return pooled_bag(self.table, ids, lengths, self.mean)


@pytest.mark.parametrize("mean", [False, True])
def test_the_exported_form_pools_and_backpropagates_as_the_eager_one(mean):
    ids = torch.tensor([[1, 3, 4, 6], [2, 0, 0, 6], [4, 5, 4, 6]])
    lengths = torch.tensor([3, 1, 0])
    eager, exported = _table(7, 3), _table(7, 3)
    traced = torch.jit.trace(_Pool(exported, mean), (ids, lengths))
    graph = str(traced.graph)
    assert "embedding_bag" not in graph and "bmm" in graph  # plain operators in the file
    eager_out = pooled_bag(eager, ids, lengths, mean)
    traced_out = traced(ids, lengths)
    torch.testing.assert_close(traced_out, eager_out)
    (eager_out * torch.arange(9.0).view(3, 3)).sum().backward()
    (traced_out * torch.arange(9.0).view(3, 3)).sum().backward()
    torch.testing.assert_close(exported.weight.grad, eager.weight.grad)


def test_a_sparse_table_gets_the_same_gradient_as_a_dense_one():
    ids, lengths = torch.tensor([[1, 2, 5], [3, 3, 0]]), torch.tensor([2, 2])
    dense, sparse = _table(6), nn.Embedding(6, 2, sparse=True)
    with torch.no_grad():
        sparse.weight.copy_(dense.weight)
    for table in (dense, sparse):
        pooled_bag(table, ids, lengths, True).sum().backward()
    assert sparse.weight.grad.is_sparse
    torch.testing.assert_close(sparse.weight.grad.to_dense(), dense.weight.grad)


def test_a_bags_gradient_reaches_only_the_rows_of_its_ids():
    table = _table(6)
    pooled_bag(table, torch.tensor([[1, 2, 5], [3, 3, 0]]), torch.tensor([2, 2]),
               True).sum().backward()
    # mean of two ids: each id's row gets 1/2 per occurrence; padded rows 5 and 0 get nothing
    assert table.weight.grad[:, 0].tolist() == [0.0, 0.5, 0.5, 1.0, 0.0, 0.0]


def _batch(rows: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"sparse": torch.stack([torch.randint(0, 5, (rows,), generator=g),
                                   torch.randint(1, 10, (rows,), generator=g)], dim=1),
            "seq": torch.randint(1, 10, (rows, 1, 3), generator=g),
            "bags": torch.randint(0, 6, (rows, 2, 4), generator=g),
            "bag_lengths": torch.tensor([[4, 2], [0, 0], [1, 3]])[:rows]}


ENCODERS = {"target_attention": lambda: FeatureEncoder(SCHEMA, VOCAB, dim=4, heads=2),
            "dnn": lambda: DNNEncoder(SCHEMA, VOCAB, dim=4, hidden=(8,)),
            "dcnv2": lambda: DCNv2Encoder(SCHEMA, VOCAB, dim=4, deep=(8,)),
            "din": lambda: DINEncoder(SCHEMA, VOCAB, dim=4, attention=(8,))}


@pytest.mark.parametrize("name", list(ENCODERS))
def test_every_encoder_reads_the_bags_and_trains_their_tables(name):
    torch.manual_seed(0)
    encoder = ENCODERS[name]()
    assert encoder.inputs[:3] == ("sparse", "bags", "bag_lengths")
    batch = _batch()
    x = encoder(batch)
    changed = dict(batch, bags=batch["bags"].clone())
    changed["bags"][0, 1, 0] = (batch["bags"][0, 1, 0] + 1) % 6  # row 0's first tag
    moved = (encoder(changed) - x).abs().sum(1)
    assert moved[0] > 0 and moved[1:].abs().max() == 0
    x.square().sum().backward()
    tables = encoder.embeddings if name == "target_attention" else encoder.features.embeddings
    for table in tables.bag_tables:
        assert table.weight.grad is not None and table.weight.grad.abs().sum() > 0
    assert tables.bag_tables[1].weight.shape == (6, 4)


def test_a_bag_joins_the_fields_of_its_group():
    encoder = FeatureEncoder(SCHEMA, VOCAB, dim=4, heads=2)
    assert encoder.user_order == [0, 2] and encoder.ad_order == [1, 3]
    # the attention query holds the ad field and the ad bag: 2 · d
    assert encoder.attention[0].query.in_features == 8
    assert encoder.out_dim == (2 + 2 + 1) * 4
    inputs = FieldInputs(SCHEMA, VOCAB, 4)
    assert inputs.flat_dim == (2 + 2 + 1) * 4
    parts = inputs(_batch())
    expected = pooled_bag(inputs.embeddings.bag_tables[1], _batch()["bags"][:, 1],
                          _batch()["bag_lengths"][:, 1], True)
    assert torch.equal(parts.fields[3], expected)
    assert parts.fields[2][1].abs().sum() == parts.fields[3][1].abs().sum() == 0  # empty bags


def test_a_schema_without_bags_reads_no_bag_input():
    vocab = VocabInfo({f: 30 for f in MAC.field_names}, {s.name: 0 for s in MAC.id_sequences})
    assert "bags" not in FeatureEncoder(MAC, vocab, dim=4).inputs
    assert "bags" not in FieldInputs(dataclasses.replace(MAC), vocab, 4).inputs
