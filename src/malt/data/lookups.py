"""The id lookups of a data set: one per categorical column, from its vocab file or its hash
buckets, and what the models need to know about them (`VocabInfo`)."""

from __future__ import annotations

from pathlib import Path

from malt.data.hashing import HashLookup
from malt.data.layout import vocab_file
from malt.data.schema import Schema
from malt.data.vocab import VocabInfo, VocabLookup
from malt.errors import DataError

Lookup = VocabLookup | HashLookup


def vocab_columns(schema: Schema, vocab_dir: Path) -> list[str]:
    """The columns looked up through `vocab_dir/<column>.json`: the schema's, and the campaign
    column when it has a vocab file."""
    columns = list(schema.vocab_columns)
    campaign = schema.campaign_column
    if campaign and vocab_file(vocab_dir, campaign).is_file():
        columns.append(campaign)
    return columns


def check_vocab_files(schema: Schema, vocab_dir: Path) -> list[Path]:
    """The vocab files the schema needs, in column order; raises naming the first missing."""
    files = [vocab_file(vocab_dir, c) for c in vocab_columns(schema, vocab_dir)]
    for path in files:
        if not path.is_file():
            raise DataError("vocab file is missing (`malt prepare --build-vocabs` writes "
                            "the missing ones from the training days)", file=str(path))
    return files


def load_lookups(schema: Schema, vocab_dir: Path) -> dict[str, Lookup]:
    """Column -> lookup of every id column of `schema`."""
    check_vocab_files(schema, vocab_dir)
    lookups: dict[str, Lookup] = {c: VocabLookup.load(vocab_file(vocab_dir, c))
                                  for c in vocab_columns(schema, vocab_dir)}
    return lookups | {c: HashLookup(n) for c, n in schema.hash_buckets}


def vocab_info(schema: Schema, lookups: dict[str, Lookup]) -> VocabInfo:
    """Table sizes and sequence padding rows of `lookups` (numeric moments are not known here).
    With ragged sequences a table that sequences share has one row more, after its OOV row:
    the row that pads them, which no id maps to."""
    padded = {s.shares for s in schema.id_sequences} if schema.ragged_sequences else set()
    return VocabInfo(
        sizes={f: lookups[f].size + (f in padded) for f in schema.table_names},
        sequence_pad={s.name: lookups[s.shares].size if schema.ragged_sequences
                      else lookups[s.shares].index_of(schema.sequence_pad)
                      for s in schema.id_sequences})
