"""Vocabularies built from the data: `vocabs/<column>.json` for the fields that have none.

Ids are counted over the training days only (never the test days, nor the last `held_out` training
days a validation protocol will score), in every column that reads the field's table: the
field itself and the id sequences that share it (their padding id left out). Ids seen fewer
than `min_count` times get no row: they map to the field's out-of-vocabulary row, as unseen
ids do. Indices follow the ids' sorted order, so the same days give the same files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from malt.data.layout import Layout, find_layout, write_vocab
from malt.data.reader import RowGroup, check_columns, equal_to_token, open_parquet
from malt.data.schema import Schema
from malt.errors import ConfigError


@dataclass(frozen=True)
class BuiltVocab:
    """What was written for one field."""

    column: str
    ids: int
    """Ids given a row."""
    rare: int
    """Distinct ids seen fewer than `min_count` times (mapped to the OOV row)."""


def missing_vocabs(layout: Layout, schema: Schema) -> list[str]:
    """The schema's vocab columns without a `vocabs/<column>.json`."""
    return [c for c in schema.vocab_columns if not layout.vocab_file(c).is_file()]


def build_vocabs(root: str | Path, schema: Schema, *, min_count: int = 1, held_out: int = 0
                 ) -> list[BuiltVocab]:
    """Write the vocab of every field that has none, from the training days but the last
    `held_out`; fields that have one are left alone."""
    if min_count < 1:
        raise ConfigError(f"--min-count must be at least 1, got {min_count}")
    layout = find_layout(root, vocabs=False)
    days = layout.train[:len(layout.train) - held_out] if held_out else layout.train
    if not days:
        raise ConfigError(f"{layout.root}: no training day left to build vocabs from "
                          f"({len(layout.train)} training days, {held_out} held out)")
    columns = missing_vocabs(layout, schema)
    readers = {c: [c, *(s.name for s in schema.id_sequences if s.shares == c)] for c in columns}
    counts: dict[str, list[pa.Table]] = {c: [] for c in columns}
    for path in days:
        pf = open_parquet(path)
        check_columns(schema, pf, str(path))
        start = 0
        for group in range(pf.num_row_groups):  # one column of a row group in memory at a time
            rows = RowGroup(pf, path, group, start)
            start += rows.num_rows
            for column, sources in readers.items():
                for source in sources:
                    values = rows.column(source)
                    if source != column:
                        values = pc.list_flatten(values)
                        pad = equal_to_token(values, schema.sequence_pad)
                        if pad is not None:
                            values = values.filter(pc.invert(pad))
                    counts[column].append(_value_counts(values))
    layout.vocab_dir.mkdir(exist_ok=True)
    built = []
    for column in columns:
        total = _concat(counts[column]).group_by("id").aggregate([("n", "sum")])
        keep = total.filter(pc.greater_equal(total["n_sum"], min_count))["id"]
        ids = pc.array_sort_indices(keep)
        write_vocab(layout.vocab_dir, column, [str(v) for v in keep.take(ids).to_pylist()])
        built.append(BuiltVocab(column, len(keep), total.num_rows - len(keep)))
    return built


def _value_counts(values: pa.Array) -> pa.Table:
    """(id, n) of the distinct non-null ids of `values`: int64 ids, or strings."""
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    values = values.cast(pa.int64() if pa.types.is_integer(values.type) else pa.string())
    counted = pc.value_counts(values.drop_null())
    return pa.table({"id": counted.field("values"),
                     "n": counted.field("counts").cast(pa.int64())})


def _concat(tables: list[pa.Table]) -> pa.Table:
    """The counts of every file together; ids as text when the files disagree on the type."""
    if not tables:
        return pa.table({"id": pa.array([], pa.string()), "n": pa.array([], pa.int64())})
    if len({t.schema.field("id").type for t in tables}) > 1:
        tables = [t.set_column(0, "id", t["id"].cast(pa.string())) for t in tables]
    return pa.concat_tables(tables)
