"""The feature encoder adapts to the schema; shared tables; padding."""

from __future__ import annotations

import pytest
import torch

from malt.data.schema import MAC, CategoricalField, FloatSequence, IdSequence, Schema
from malt.data.vocab import VocabInfo
from malt.errors import ConfigError
from malt.layers import FeatureEncoder

PAD = 0


def _vocab(schema: Schema, rows: int = 30) -> VocabInfo:
    return VocabInfo({f: rows for f in schema.field_names},
                     {s.name: PAD for s in schema.id_sequences})


def _batch(schema: Schema, rows: int = 6, vocab: int = 30, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    s, c = len(schema.id_sequences), len(schema.float_sequences)
    length, floats = schema.sequence_length or 1, schema.float_sequence_length or 1
    seq = torch.randint(1, vocab, (rows, s, length), generator=g)
    seq[:, :, length - 5:] = PAD
    return {"sparse": torch.randint(0, vocab, (rows, len(schema.fields)), generator=g),
            "seq": seq, "dense_seq": torch.rand(rows, c, floats, generator=g) * 2 - 1}


def _schema(sequences: bool, floats: bool) -> Schema:
    return Schema(name="t", user_column="u", labels=("a", "b"),
                  fields=(CategoricalField("u1", "user"), CategoricalField("item", "ad"),
                          CategoricalField("hour", "context")),
                  id_sequences=(IdSequence("item_seq", "item", 8),) if sequences else (),
                  float_sequences=(FloatSequence("sim", 8),) if floats else ())


def test_mac_fused_width_and_block_order():
    enc = FeatureEncoder(MAC, _vocab(MAC))
    assert enc.out_dim == 336
    assert enc.block_widths == {"user": 96, "ad": 160, "attention": 48, "simtier": 32,
                                "numeric": 0}
    assert enc(_batch(MAC)).shape == (6, 336)
    dense = sum(p.numel() for n, p in enc.named_parameters() if not n.startswith("embeddings"))
    assert dense == 11_728                      # the reference backbone subtotal
    assert FeatureEncoder(MAC, _vocab(MAC), simtier_combine="concat").out_dim == 368


@pytest.mark.parametrize("sequences,floats,width", [(True, True, 3 * 16 + 16 + 32),
                                                     (True, False, 4 * 16), (False, True, 80),
                                                     (False, False, 48)])
def test_blocks_follow_the_schema(sequences, floats, width):
    schema = _schema(sequences, floats)
    enc = FeatureEncoder(schema, _vocab(schema))
    assert enc.out_dim == width
    assert (len(enc.attention) == 1) == sequences and (enc.simtier is not None) == floats
    assert enc(_batch(schema)).shape == (6, width)


def test_attention_needs_an_ad_side_field():
    schema = Schema(name="t", user_column="u", labels=("a",),
                    fields=(CategoricalField("item", "user"),),
                    id_sequences=(IdSequence("item_seq", "item", 4),))
    with pytest.raises(ConfigError, match="ad or context"):
        FeatureEncoder(schema, _vocab(schema))


def test_sequences_look_up_the_table_of_their_field():
    enc = FeatureEncoder(MAC, _vocab(MAC))
    batch = _batch(MAC)
    fields, seqs = enc.embeddings(batch["sparse"], batch["seq"])
    for s, spec in enumerate(MAC.id_sequences):
        table = enc.embeddings.tables[MAC.field_names.index(spec.shares)]
        torch.testing.assert_close(seqs[s], table(batch["seq"][:, s]))
    for f, table in enumerate(enc.embeddings.tables):
        torch.testing.assert_close(fields[f], table(batch["sparse"][:, f]))
    assert len(enc.embeddings.tables) == 16


def test_each_sequence_has_its_own_padding():
    enc = FeatureEncoder(MAC, _vocab(MAC))
    batch = _batch(MAC)
    batch["seq"][0, 1:, -5:] = 7                 # row 0: only the first sequence is padded
    pad = enc.padding(batch)
    assert pad.shape == batch["seq"].shape and not pad[:, :, :-5].any()
    assert pad[0, 0, -5:].all() and not pad[0, 1:].any() and pad[1:, :, -5:].all()


def test_mask_hides_padded_positions_and_count_rule():
    batch = _batch(MAC)
    changed = {k: v.clone() for k, v in batch.items()}
    changed["dense_seq"][:, :, -5:] = 0.9         # scores where the first sequence is padded
    torch.manual_seed(0)
    masked = FeatureEncoder(MAC, _vocab(MAC), padding_mask=True, count_padding=False)
    torch.testing.assert_close(masked(batch), masked(changed))
    torch.manual_seed(0)
    unmasked = FeatureEncoder(MAC, _vocab(MAC), padding_mask=False, count_padding=True)
    assert not torch.allclose(unmasked(batch), unmasked(changed))
