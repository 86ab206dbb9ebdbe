"""Padding masks of the id sequences: each sequence's own, read off its table's padding row."""

from __future__ import annotations

import torch

from malt.data.schema import Schema
from malt.data.vocab import VocabInfo
from malt.errors import ConfigError


class SequencePadding:
    """Where each id sequence, and the float sequences aligned with the first, are padded.

    Id sequences have their own lengths: `seq` [B, S, L] holds each one padded past its own
    length (and past a short row's items) with `vocab.sequence_pad[that sequence]`, so a
    sequence's mask is where it holds that row. The float sequences [B, C, L_c] are aligned
    with the first id sequence (L_c its length) and share the first L_c positions of its mask.
    """

    def __init__(self, schema: Schema, vocab: VocabInfo):
        missing = [s.name for s in schema.id_sequences if s.name not in vocab.sequence_pad]
        if missing:
            raise ConfigError(f"the vocab has no padding row for the sequences {missing}")
        self.rows = [vocab.sequence_pad[s.name] for s in schema.id_sequences]
        self.float_length = schema.float_sequence_length

    def __call__(self, seq: torch.Tensor) -> torch.Tensor:
        """seq int64 [B, S, L] -> bool [B, S, L], True where sequence s is padded."""
        return torch.stack([seq[:, s] == row for s, row in enumerate(self.rows)], dim=1)

    def of_floats(self, masks: torch.Tensor | None) -> torch.Tensor | None:
        """The masks [B, S, L] -> the float sequences' [B, L_c] (the first id sequence's);
        None without id sequences (no float position is padded then)."""
        return None if masks is None else masks[:, 0, :self.float_length]
