"""Small incomplete multi-label (KAML-style) data sets and batches for the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from malt.data.layout import day_path, write_day, write_vocab
from malt.data.schema import Schema
from malt.data.vocab import VocabInfo

LABELS = ("act", "reg", "pay")
VOCAB = 20


def kaml_schema(labels=LABELS, *, reported: bool = True) -> Schema:
    """Two user, two ad (one is the campaign) and one context field; campaign, target action,
    true labels and (optionally) reported flags."""
    return Schema.from_dict({
        "name": "kaml-test", "user_column": "uid",
        "fields": {"user": ["u0", "u1"], "ad": ["camp", "a1"], "context": ["c0"]},
        "labels": list(labels), "campaign_column": "camp", "target_action_column": "target",
        "true_labels": [f"true_{x}" for x in labels],
        "reported_labels": [f"rep_{x}" for x in labels] if reported else [],
    })


def kaml_vocab(schema: Schema) -> VocabInfo:
    return VocabInfo({f: VOCAB for f in schema.field_names}, {})


def random_campaigns(rng: np.random.Generator, campaigns: int, n_labels: int):
    """Per campaign: target (-1 = other for campaign 0) and reported actions (target always)."""
    target = rng.integers(0, n_labels, campaigns)
    target[0] = -1
    reported = rng.random((campaigns, n_labels)) < 0.5
    reported[np.arange(campaigns), np.maximum(target, 0)] |= target >= 0
    return target, reported


def kaml_day_table(schema: Schema, rows: int, rng: np.random.Generator, target: np.ndarray,
                   reported: np.ndarray, rate: float = 0.25) -> pa.Table:
    n_labels = len(schema.labels)
    camp = rng.integers(0, len(target), rows)
    truth = (rng.random((rows, n_labels)) < rate).astype(np.float32)
    observed = truth * reported[camp]
    columns = {"uid": pa.array(rng.integers(0, VOCAB, rows))}
    for f in schema.fields:
        columns[f.name] = pa.array(camp if f.name == "camp" else rng.integers(0, VOCAB, rows))
    columns["target"] = pa.array(target[camp])
    for j, label in enumerate(schema.labels):
        columns[label] = pa.array(observed[:, j])
    for j, label in enumerate(schema.true_labels):
        columns[label] = pa.array(truth[:, j])
    for j, label in enumerate(schema.reported_labels):
        columns[label] = pa.array(reported[camp, j].astype(np.float32))
    return pa.table(columns)


def write_kaml_dataset(root: Path, schema: Schema | None = None, *, days: int = 4,
                       rows: int = 200, campaigns: int = 6, seed: int = 0) -> Path:
    """`days - 1` training days and a test day; campaigns < VOCAB so ids equal vocab rows."""
    schema = schema or kaml_schema()
    rng = np.random.default_rng(seed)
    target, reported = random_campaigns(rng, campaigns, len(schema.labels))
    for d in range(days):
        split, index = ("test", 0) if d == days - 1 else ("train", d)
        write_day(day_path(root, split, index),
                  kaml_day_table(schema, rows, rng, target, reported))
    for column in schema.vocab_columns:
        write_vocab(root / "vocabs", column, [str(i) for i in range(VOCAB)])
    return root


def kaml_batch(rows: int = 64, seed: int = 0, schema: Schema | None = None,
               campaigns: int = 6) -> dict[str, torch.Tensor]:
    """A batch as `DayBatches` gives it for `kaml_schema()`, built directly as tensors."""
    schema = schema or kaml_schema()
    rng = np.random.default_rng(seed)
    target, reported = random_campaigns(rng, campaigns, len(schema.labels))
    table = kaml_day_table(schema, rows, rng, target, reported)
    def col(name: str) -> np.ndarray:
        return np.array(table[name].to_numpy())

    sparse = np.stack([col(f) for f in schema.field_names], 1)
    weights = np.stack([col(c) for c in schema.labels], 1)
    batch = {"sparse": torch.as_tensor(sparse, dtype=torch.int64),
             "weights": torch.as_tensor(weights), "labels": torch.as_tensor(weights > 0).float(),
             "campaign": torch.as_tensor(col("camp"), dtype=torch.int64),
             "target_action": torch.as_tensor(col("target"), dtype=torch.int64),
             "true_weights": torch.as_tensor(np.stack([col(c) for c in schema.true_labels], 1))}
    if schema.reported_labels:
        batch["reported"] = torch.as_tensor(np.stack([col(c) for c in schema.reported_labels],
                                                     1))
    return batch
