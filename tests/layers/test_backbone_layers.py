"""The parts of the flat encoders against hand-computed values: DCN-V2's cross layers, DIN's
attention weights, mean pooling over unpadded positions, the padding rule, numeric columns."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from malt.data.schema import MAC, CategoricalField, IdSequence, NumericField, Schema
from malt.data.vocab import VocabInfo
from malt.layers import CrossNetwork, DCNv2Encoder, DINEncoder, FieldInputs, InterestPooling
from malt.layers.fields import mean_pooled


def _set(linear: nn.Linear, weight, bias=None) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        if bias is not None:
            linear.bias.copy_(torch.tensor(bias, dtype=torch.float32))


def test_two_cross_layers_by_hand():
    cross = CrossNetwork(2, layers=2)
    for layer in cross.weights:
        _set(layer, [[1.0, 0.0], [0.0, 2.0]], [0.5, -1.0])
    x0 = torch.tensor([[1.0, 2.0]])
    # x1 = x0 * (W x0 + b) + x0 = [1, 2] * [1.5, 3] + [1, 2] = [2.5, 8]
    # x2 = x0 * (W x1 + b) + x1 = [1, 2] * [3, 15] + [2.5, 8] = [5.5, 38]
    assert cross(x0).tolist() == [[5.5, 38.0]]


def test_a_low_rank_cross_layer_is_the_full_one_of_w_equal_u_v_transposed():
    torch.manual_seed(0)
    low = CrossNetwork(5, layers=2, rank=2)
    full = CrossNetwork(5, layers=2)
    for lo, hi in zip(low.weights, full.weights):
        v, u = lo[0].weight, lo[1].weight                   # [r, d], [d, r]
        nn.init.normal_(lo[1].bias)
        _set(hi, (u @ v).tolist(), lo[1].bias.tolist())
    assert sum(p.numel() for p in low.weights[0].parameters()) == 2 * 5 * 2 + 5
    x0 = torch.randn(4, 5)
    torch.testing.assert_close(low(x0), full(x0))


def test_a_cross_layer_of_zero_weights_passes_its_input_through():
    cross = CrossNetwork(3, layers=1)
    nn.init.zeros_(cross.weights[0].weight)
    x0 = torch.randn(2, 3)
    assert torch.equal(cross(x0), x0)


def test_din_weights_by_hand_are_not_normalised_and_padding_weighs_nothing():
    pool = InterestPooling(1, hidden=(2,), activation_name="relu")
    # hidden units: relu(e), relu(e * t); score: h0 - h1 + 0.5
    _set(pool.mlp.layers[0], [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]], [0.0, 0.0])
    _set(pool.score, [[1.0, -1.0]], [0.5])
    items = torch.tensor([[[1.0], [-2.0], [3.0], [4.0]]])
    target = torch.tensor([[2.0]])
    pad = torch.tensor([[False, False, False, True]])
    # e = 1: 1 - 2 + 0.5; e = -2: 0 - 0 + 0.5; e = 3: 3 - 6 + 0.5; e = 4: padded
    assert pool.weights(items, target, pad).tolist() == [[-0.5, 0.5, -2.5, 0.0]]
    assert pool(items, target, pad).tolist() == [[-0.5 * 1 + 0.5 * -2 + -2.5 * 3]]


def test_din_input_is_item_target_difference_and_product():
    pool = InterestPooling(2, hidden=())
    weight = torch.arange(1.0, 9.0).view(1, 8)  # [e (2); t (2); e - t (2); e * t (2)]
    _set(pool.score, weight.tolist(), [0.0])
    e, t = torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0])
    expected = (weight[0] * torch.cat([e, t, e - t, e * t])).sum()
    assert pool.weights(e.view(1, 1, 2), t.view(1, 2)).item() == pytest.approx(expected.item())


def test_mean_pooling_skips_padding_and_gives_zero_without_any_item():
    items = torch.tensor([[[1.0], [3.0], [5.0]], [[7.0], [9.0], [11.0]]])
    pad = torch.tensor([[False, False, True], [True, True, True]])
    assert mean_pooled(items, pad).tolist() == [[2.0], [0.0]]


def test_each_sequence_is_padded_where_it_holds_its_own_pad_row():
    schema = Schema(name="t", user_column="u", labels=("a",),
                    fields=(CategoricalField("item", "ad"), CategoricalField("shop", "ad")),
                    id_sequences=(IdSequence("items", "item", 3), IdSequence("shops", "shop", 3)))
    vocab = VocabInfo({"item": 10, "shop": 10}, {"items": 9, "shops": 0})
    inputs = FieldInputs(schema, vocab, 4)
    batch = {"sparse": torch.tensor([[1, 2]]), "seq": torch.tensor([[[5, 0, 9], [5, 0, 9]]])}
    parts = inputs(batch)
    assert parts.padding.tolist() == [[[False, False, True], [False, True, False]]]
    assert inputs.inputs == ("sparse", "seq") and parts.extra is None
    flat = inputs.flat(batch)
    assert flat.shape == (1, (2 + 2) * 4)
    items, shops = (inputs.embeddings.tables[t].weight for t in (0, 1))
    torch.testing.assert_close(flat[0, 8:12], (items[5] + items[0]) / 2)
    torch.testing.assert_close(flat[0, 12:], (shops[5] + shops[9]) / 2)


def test_numeric_columns_come_last_standardised_and_logged_where_asked():
    schema = dataclasses.replace(MAC, numeric=(NumericField("price"),
                                               NumericField("clicks", "log1p")))
    vocab = dataclasses.replace(_mac_vocab(), numeric={"price": (500.0, 100.0),
                                                       "clicks": (1.0, 2.0)})
    inputs = FieldInputs(schema, vocab, 4)
    batch = dict(_mac_batch(2), numeric=torch.tensor([[600.0, math.e - 1], [300.0, 0.0]]))
    assert inputs.inputs == ("sparse", "seq", "dense_seq", "numeric")
    flat = inputs.flat(batch)
    assert flat.shape[1] == inputs.flat_dim == (16 + 3) * 4 + 32 + 2
    torch.testing.assert_close(flat[:, -2:], torch.tensor([[1.0, 0.0], [-2.0, -0.5]]))


def _mac_vocab(rows: int = 30) -> VocabInfo:
    return VocabInfo({f: rows for f in MAC.field_names}, {s.name: 0 for s in MAC.id_sequences})


def _mac_batch(rows: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    seq = torch.randint(1, 30, (rows, 3, 20), generator=g)
    seq[:, :, 12:] = 0
    return {"sparse": torch.randint(1, 30, (rows, len(MAC.fields)), generator=g), "seq": seq,
            "dense_seq": torch.rand(rows, 2, 20, generator=g) * 2 - 1}


def test_din_attends_from_the_field_each_sequence_shares():
    torch.manual_seed(0)
    encoder = DINEncoder(MAC, _mac_vocab(), dim=4)
    shared = [MAC.field_names.index(f"ad_feat{i}") for i in range(3)]
    assert encoder.features.targets == shared
    seen = []
    encoder.pooling[1].register_forward_hook(lambda module, args, out: seen.append(args))
    batch = _mac_batch()
    encoder(batch)
    items, target, pad = seen[0]
    table = encoder.features.embeddings.tables[shared[1]]
    assert torch.equal(target, table(batch["sparse"][:, shared[1]]))
    assert torch.equal(items, table(batch["seq"][:, 1]))
    assert torch.equal(pad, batch["seq"][:, 1] == 0)


def test_padded_positions_are_not_seen():
    """Row 0 pads every sequence (and no field of the batch holds it): moving its embedding
    must change no output."""
    torch.manual_seed(0)
    batch = _mac_batch()
    for encoder in (DINEncoder(MAC, _mac_vocab(), dim=4),
                    DCNv2Encoder(MAC, _mac_vocab(), dim=4, deep=(8,))):
        before = encoder(batch)
        with torch.no_grad():
            for table in encoder.features.embeddings.tables:
                table.weight[0].add_(1.0)
        assert torch.allclose(encoder(batch), before, atol=1e-6), type(encoder).__name__


@pytest.mark.parametrize("structure,deep,width", [
    ("parallel", (8,), 336 + 8), ("stacked", (8, 6), 6), ("parallel", (), 336),
    ("stacked", (), 336)])
def test_dcnv2_output_width(structure, deep, width):
    encoder = DCNv2Encoder(MAC, _mac_vocab(), dim=16, structure=structure, deep=deep)
    assert encoder.out_dim == width
    assert encoder(_mac_batch()).shape == (5, width)
