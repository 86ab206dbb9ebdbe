"""Small MAC-schema batches built directly as tensors."""

from __future__ import annotations

import pytest
import torch

from malt.data.schema import MAC, Schema
from malt.data.vocab import VocabInfo

VOCAB_ROWS = 50
PAD_ROW = 0


def small_vocab(schema: Schema = MAC, rows: int = VOCAB_ROWS) -> VocabInfo:
    return VocabInfo({f: rows for f in schema.field_names},
                     {s.name: PAD_ROW for s in schema.id_sequences})


def random_batch(rows: int = 64, seed: int = 0, schema: Schema = MAC,
                 vocab_rows: int = VOCAB_ROWS) -> dict[str, torch.Tensor]:
    """Random ids and scores, sequences padded at their tail, labels ~20% positive."""
    g = torch.Generator().manual_seed(seed)
    length = schema.sequence_length or 1
    seq = torch.randint(1, vocab_rows, (rows, len(schema.id_sequences), length), generator=g)
    lengths = torch.randint(0, length + 1, (rows,), generator=g)
    pad = torch.arange(length).expand(rows, length) >= lengths[:, None]
    seq = seq.masked_fill(pad.unsqueeze(1), PAD_ROW)
    weights = torch.rand(rows, len(schema.labels), generator=g)
    weights = weights * (torch.rand(rows, len(schema.labels), generator=g) < 0.2)
    return {"sparse": torch.randint(0, vocab_rows, (rows, len(schema.fields)), generator=g),
            "seq": seq,
            "dense_seq": torch.rand(rows, len(schema.float_sequences),
                                    schema.float_sequence_length or 1, generator=g) * 2 - 1,
            "weights": weights, "labels": (weights > 0).float()}


@pytest.fixture
def vocab() -> VocabInfo:
    return small_vocab()


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    return random_batch()


@pytest.fixture
def make_batch():
    """The batch builder `random_batch(rows, seed, schema, vocab_rows)`."""
    return random_batch


def loss_values(model, outputs, batch) -> dict[str, torch.Tensor]:
    """name -> w · value of each of the model's loss terms (λ not applied)."""
    return {t.name: t.weighted for t in model.loss_terms(outputs, batch)}
