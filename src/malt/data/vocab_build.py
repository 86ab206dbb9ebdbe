"""Vocabularies built from the data: `vocabs/<column>.json` for the fields that have none, and
the vocabs of a warm-started run, grown from its parent's (`grow_vocabs`).

Ids are counted over the training days only (never the test days, nor the last `held_out` training
days a validation protocol will score), in every column that reads the field's table: the
field itself and the id sequences that share it (their padding id left out; with a length
column, each row's first n items only); a bag's ids are counted in its own list column, every
id of every row (those past `max_length` too). Ids seen fewer than `min_count` times get no
row: they map to the field's out-of-vocabulary row, as unseen ids do. Indices follow the ids'
sorted order, so the same days give the same files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from malt.data.layout import Layout, find_layout, vocab_file, write_vocab, write_vocab_mapping
from malt.data.reader import (
    RowGroup,
    check_columns,
    equal_to_token,
    item_counts,
    leading_items,
    open_parquet,
)
from malt.data.schema import Schema
from malt.data.vocab import VocabLookup
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
    counts = count_ids(days, schema, columns)
    layout.vocab_dir.mkdir(exist_ok=True)
    built = []
    for column in columns:
        total = counts[column]
        keep = total.filter(pc.greater_equal(total["n"], min_count))["id"]
        ids = pc.array_sort_indices(keep)
        write_vocab(layout.vocab_dir, column, [str(v) for v in keep.take(ids).to_pylist()])
        built.append(BuiltVocab(column, len(keep), total.num_rows - len(keep)))
    return built


def count_ids(days: Sequence[Path], schema: Schema, columns: list[str]) -> dict[str, pa.Table]:
    """Column -> (id, n): the distinct ids of every column of `columns` in the day files
    `days`, counted over the column and the id sequences that share its table (their padding
    id left out, and the items past a length column's count)."""
    readers = {c: [c, *(s.name for s in schema.id_sequences if s.shares == c)] for c in columns}
    sequences = {s.name: s for s in schema.id_sequences}
    counts: dict[str, list[pa.Table]] = {c: [] for c in columns}
    for path in days:
        pf = open_parquet(path)
        check_columns(schema, pf, str(path))
        start = 0
        for group in range(pf.num_row_groups):  # one column of a row group in memory at a time
            rows = RowGroup(pf, path, group, start)
            for column, sources in readers.items():
                for source in sources:
                    values = rows.column(source)
                    sequence = sequences[source] if source != column else None
                    if source in schema.bag_names:
                        values = pc.list_flatten(values)
                    elif sequence is not None and sequence.length_column:
                        # Only a row's first n items are ids; the rest of its list is filler.
                        counted_by = sequence.length_column
                        n = item_counts(rows.column(counted_by), counted_by, str(path), start)
                        values = leading_items(values, n, source, counted_by, str(path), start,
                                               blame=counted_by)
                    elif sequence is not None:
                        values = pc.list_flatten(values)
                        # Ragged sequences are padded after reading: every item is an id.
                        pad = None if schema.ragged_sequences else \
                            equal_to_token(values, schema.sequence_pad)
                        if pad is not None:
                            values = values.filter(pc.invert(pad))
                    counts[column].append(_value_counts(values))
            start += rows.num_rows
    return {c: _concat(counts[c]).group_by("id").aggregate([("n", "sum")])
            .rename_columns(["id", "n"]) for c in columns}


@dataclass(frozen=True)
class GrownVocabs:
    """The vocabs of a warm-started run: its parent's, each id at its parent's index, then the
    ids the parent did not know, in sorted order, at the next indices (the table's
    out-of-vocabulary row moves to the end)."""

    mappings: dict[str, dict[str, int]]
    """Column -> `{raw id: index}`."""
    new_ids: dict[str, int]
    """Column -> how many ids were added."""

    def write(self, directory: Path, writable: Callable[[Path], Path] = lambda p: p) -> None:
        """Write `<column>.json` of every vocab into `directory`; `writable` receives each
        path first (a run records it as its own)."""
        directory.mkdir(parents=True, exist_ok=True)
        for column, mapping in self.mappings.items():
            write_vocab_mapping(writable(vocab_file(directory, column)), mapping)


def grow_vocabs(parent: dict[str, VocabLookup], days: Sequence[Path], schema: Schema,
                min_count: int) -> GrownVocabs:
    """The vocabs `parent` (column -> lookup) grown by every id of the day files `days` they
    do not hold and that the days hold at least `min_count` times; ids the parent knows keep
    their index."""
    counts = count_ids(days, schema, list(parent))
    mappings, added = {}, {}
    for column, lookup in parent.items():
        total = counts[column]
        ids = total.filter(pc.greater_equal(total["n"], min_count))["id"].combine_chunks()
        unknown = ids.filter(pa.array(lookup.map(ids) == lookup.oov_index))
        unknown = unknown.take(pc.array_sort_indices(unknown))
        mapping = lookup.mapping()
        first = lookup.oov_index
        mapping.update((str(v), first + i) for i, v in enumerate(unknown.to_pylist()))
        mappings[column], added[column] = mapping, len(unknown)
    return GrownVocabs(mappings, added)


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
