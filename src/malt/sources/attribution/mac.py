"""Write attributed clicks in the MAC layout, with vocabs and a schema file.

Days are cut by click time: day d holds the clicks with floor((t - t0) / 86400) = d, t0 being
the first click. Every day but the last becomes `train/train-NN.parquet` (days without clicks
are skipped, the numbering stays consecutive), the last one `test/test.parquet`. Rows of a day
are in click order. Columns: the user, the categorical fields (item, shop, features), one label
column per view (float32 weights: each rule, then each rule under each view window), one
`<label>_known_at` column per label (float64 unix seconds at which the label's credit became
known, the first conversion crediting the click; null where the label is 0), and
`click_time`, `click_id` and any float click columns, which the schema lists under
`ignore_columns`. `vocabs/<column>.json` maps the sorted distinct raw ids of every categorical
column to 0, 1, ...; `schema.toml` describes the columns so that
`malt prepare --data OUT --schema OUT/schema.toml` reads the result, and offers the float
click columns as numeric features in a commented line (a float column may as well be an
integer category with missing values, or describe the conversion: the user decides).

Impression-level output (`write_impressions_mac`, from an `ImpressionLog`) has one row per
impression instead, clicked or not, cut into days by impression time and in impression order:
the same columns but `click` (int8, 1 for a clicked impression; the schema's `click_column`),
the labels and known-at times of the impression's clicks (0 and null where none), and
`impression_time`, `impression_id` and `click_time` (the first click's time, the impression's
where it was not clicked) under `ignore_columns`: the layout `malt simulate --impressions`
writes. An impression clicked more than once (a double click, a second visit) holds the sum
of its clicks' credits, known when the first of the crediting conversions happened.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from malt.data.layout import day_path, write_day, write_vocab
from malt.data.schema import DEFAULT_CLICK_TIME, KNOWN_AT_SUFFIX, CategoricalField, Schema
from malt.errors import ConfigError, DataError
from malt.outputs import atomic_write_text
from malt.sources.attribution.config import DAY
from malt.sources.attribution.logs import ClickLog, ImpressionLog

CLICK_COLUMN = "click"
"""The click column of impression-level output (0 or 1), as `malt simulate --impressions`
names it."""


class LogColumns(Protocol):
    """The columns of a read log, as the writer names them: a `logs.ClickLog` or a
    `spark.logs.SparkLog`."""

    features: tuple[str, ...]
    extras: tuple[str, ...]

    @property
    def click_columns(self) -> tuple[str, ...]: ...

    def output_name(self, column: str) -> str: ...


@dataclass(frozen=True)
class WrittenDay:
    split: str
    path: Path
    rows: int


def build_schema(log: LogColumns, rules: tuple[str, ...], *, name: str,
                 user_fields: tuple[str, ...] = (), ad_fields: tuple[str, ...] = (),
                 impressions: bool = False) -> Schema:
    """Schema of the written data: item (and shop) and `ad_fields` in the ad group,
    `user_fields` in the user group, every other click feature in the context group; the
    labels `rules` (every view's name), each with its `<label>_known_at` column. With
    `impressions` the rows are impressions: the click column `click` (0 or 1) is the schema's
    `click_column`."""
    unknown = [c for c in (*user_fields, *ad_fields) if c not in log.features]
    if unknown:
        raise ConfigError(f"{unknown} are not categorical click features; the features are "
                          f"{list(log.features)}")
    both = set(user_fields) & set(ad_fields)
    if both:
        raise ConfigError(f"features {sorted(both)} are given both the user and the ad group")
    out = log.output_name
    fields = [CategoricalField(out(c), "user") for c in log.features if c in user_fields]
    fields += [CategoricalField(out(c), "ad") for c in ("item", "shop") if c in log.click_columns]
    fields += [CategoricalField(out(c), "ad") for c in log.features if c in ad_fields]
    fields += [CategoricalField(out(c), "context") for c in log.features
               if c not in user_fields and c not in ad_fields]
    ignore = tuple(out(c) for c in trailing_columns(log, impressions))
    known_at = [f"{label}{KNOWN_AT_SUFFIX}" for label in rules]
    click = [CLICK_COLUMN] if impressions else []
    columns = [out("user"), *(f.name for f in fields), *rules, *known_at, *click, *ignore]
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise DataError(f"click columns clash with other output columns (labels are named "
                        f"after the rules): {dupes}", column=dupes[0])
    return Schema(name=name, user_column=out("user"), fields=tuple(fields), labels=rules,
                  ignore_columns=ignore, click_time=out("click_time"),
                  click_column=CLICK_COLUMN if impressions else None)


def trailing_columns(log: LogColumns, impressions: bool) -> tuple[str, ...]:
    """The engine columns written after the labels and not read as features: the times and
    ids of a row, and the float columns."""
    ids = ("impression_time", "impression_id", "click_time") if impressions else \
        ("click_time", "click_id")
    return (*ids, *log.extras)


def float_columns(log: LogColumns) -> tuple[str, ...]:
    """The written names of the float click columns (carried through, not features)."""
    return tuple(log.output_name(c) for c in log.extras)


def numeric_line(columns: tuple[str, ...]) -> str:
    """The schema line that makes `columns` numeric features."""
    return f"numeric = {_strings(columns)}"


def _strings(values) -> str:
    return "[" + ", ".join(json.dumps(v, allow_nan=False) for v in values) + "]"


def schema_toml(schema: Schema, floats: tuple[str, ...] = ()) -> str:
    """The schema as a TOML file that `Schema.load` reads back; the float click columns
    `floats` (under ignore_columns) are offered as numeric features in a commented line."""
    lines = [f"name = {json.dumps(schema.name, allow_nan=False)}",
             f"user_column = {json.dumps(schema.user_column, allow_nan=False)}",
             f"labels = {_strings(schema.labels)}",
             f"ignore_columns = {_strings(schema.ignore_columns)}"]
    if schema.click_time != DEFAULT_CLICK_TIME:
        lines.append(f"click_time = {json.dumps(schema.click_time, allow_nan=False)}")
    if schema.click_column is not None:
        lines.append(f"click_column = {json.dumps(schema.click_column, allow_nan=False)}")
    if floats:
        lines += ["# Float click columns, not read. To train on them as numeric features, take",
                  "# them out of ignore_columns and uncomment the next line (add numeric_fill =",
                  "# 0.0 when they hold missing values; an integer category with missing values",
                  "# reads as float too: it belongs under [fields]).",
                  f"# {numeric_line(floats)}"]
    lines += ["", "[fields]"]
    for group in ("user", "ad", "context"):
        lines.append(f"{group} = {_strings(f.name for f in schema.fields if f.group == group)}")
    return "\n".join(lines) + "\n"


def output_columns(log: LogColumns, schema: Schema) -> list[tuple[str, str]]:
    """(written column, engine column, label or known-at column) of every column of a day
    file, in order (impression-level when the schema names a click column)."""
    name = log.output_name
    columns = [(name("user"), "user")]
    columns += [(f.name, next(c for c in (*log.features, "item", "shop") if name(c) == f.name))
                for f in schema.fields]
    columns += [(rule, rule) for rule in schema.labels]
    columns += [(known, known) for known in schema.known_at_columns]
    columns += [(CLICK_COLUMN, CLICK_COLUMN)] if schema.click_column else []
    columns += [(name(c), c) for c in trailing_columns(log, schema.click_column is not None)]
    return columns


def day_files(out: Path, n_days: int, impressions: bool = False) -> list[tuple[str, Path]]:
    """(split, path) of the i-th of `n_days` days with rows (clicks, or impressions): the
    last one is the test day."""
    if n_days < 2:
        rows, column = ("impressions", "impression_time") if impressions else \
            ("clicks", "click_time")
        raise DataError(f"all {rows} fall on one day; at least two days are needed to write "
                        "training days and a test day", column=column)
    splits = ["train"] * (n_days - 1) + ["test"]
    return [(split, day_path(out, split, i)) for i, split in enumerate(splits)]


def write_vocabs_and_schema(out: Path, schema: Schema, distinct: Callable[[str], np.ndarray],
                            floats: tuple[str, ...] = ()) -> None:
    """`vocabs/<column>.json` of every vocab column (`distinct`: its distinct raw ids, in any
    order) and `schema.toml` (offering the float click columns `floats`)."""
    for column in schema.vocab_columns:
        raw_ids = np.sort(distinct(column))
        write_vocab(out / "vocabs", column, raw_ids.astype(str).tolist())
    atomic_write_text(out / "schema.toml", schema_toml(schema, floats))


def write_mac(out: str | Path, log: ClickLog, labels: dict[str, np.ndarray], schema: Schema,
              known_at: dict[str, np.ndarray]) -> list[WrittenDay]:
    """Write the clicks of `log` with `labels` (label -> [N] weights) and the times they
    became known (`known_at`: label -> float64 [N], NaN where none) under `out`."""
    clicks = log.clicks
    if len(clicks) == 0:
        raise DataError("the log holds no clicks")
    values = {source: labels[source].astype(np.float32) for source in schema.labels}
    # A weight too small for float32 is written as 0, and a label of 0 has no known-at time.
    values |= {column: np.where(values[label] > 0, known_at[label], np.nan)
               for label, column in zip(schema.labels, schema.known_at_columns, strict=True)}
    frame = pd.DataFrame({column: values[source] if source in values
                          else clicks[source].to_numpy()
                          for column, source in output_columns(log, schema)})
    return _write_days(Path(out), frame, clicks["click_time"].to_numpy(dtype=np.float64),
                       log.click_order, log, schema)


def write_impressions_mac(out: str | Path, log: ImpressionLog, labels: dict[str, np.ndarray],
                          schema: Schema, known_at: dict[str, np.ndarray]) -> list[WrittenDay]:
    """Write every impression of `log`, the labels of its clicks (`labels`: label -> [N] over
    the clicks, summed over an impression's clicks) and their known-at times (`known_at`,
    likewise; the earliest of the crediting clicks'), 0 and null where it was not clicked,
    under `out`; days are cut by impression time, rows in impression order. `click_time` is
    the first click's time, the impression's where none."""
    impressions, clicked = log.impressions, log.clicked
    n = len(impressions)
    if n == 0:
        raise DataError("the log holds no impressions")
    time = impressions["impression_time"].to_numpy(dtype=np.float64)
    values: dict[str, np.ndarray] = {}
    for label, column in zip(schema.labels, schema.known_at_columns, strict=True):
        credit = labels[label]
        values[label] = impression_sums(clicked, credit, n).astype(np.float32)
        values[column] = _impression_min(clicked, np.where(credit > 0, known_at[label], np.inf),
                                         n)
        values[column][values[label] <= 0] = np.nan
    values[CLICK_COLUMN] = np.zeros(n, np.int8)
    values[CLICK_COLUMN][clicked] = 1
    first_click = _impression_min(clicked, log.clicks.clicks["click_time"].to_numpy(
        dtype=np.float64), n)
    values["click_time"] = np.where(values[CLICK_COLUMN] == 1, first_click, time)
    frame = pd.DataFrame({column: values[source] if source in values
                          else impressions[source].to_numpy()
                          for column, source in output_columns(log, schema)})
    return _write_days(Path(out), frame, time, log.impression_order, log, schema)


def impression_sums(clicked: np.ndarray, credit: np.ndarray, impressions: int) -> np.ndarray:
    """float64 [impressions]: the sum of `credit` [C] over each impression's clicks (`clicked`
    [C]: the impression row of each click), 0 where none. The credits of one impression are
    added in ascending order starting from 0, as the Spark engine adds them, so both give the
    same bits."""
    order = np.lexsort((credit, clicked))
    rows, values = clicked[order], credit[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if len(rows) else rows
    # The rank of every click among its impression's: one vectorised addition per rank.
    rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    total = np.zeros(impressions)
    for k in range(int(rank.max()) + 1 if len(rank) else 0):
        at = rank == k
        total[rows[at]] += values[at]
    return total


def _impression_min(clicked: np.ndarray, values: np.ndarray, impressions: int) -> np.ndarray:
    """float64 [impressions]: the least of `values` [C] over each impression's clicks, inf
    where none."""
    least = np.full(impressions, np.inf)
    np.minimum.at(least, clicked, values)
    return least


def _write_days(out: Path, frame: pd.DataFrame, time: np.ndarray, tie_order: np.ndarray,
                log: LogColumns, schema: Schema) -> list[WrittenDay]:
    """Write the rows of `frame` [R] cut into days by `time` [R], each day in order of time,
    then `tie_order` [R]; then the vocabs and the schema."""
    t0 = float(time.min())
    day = np.floor((time - t0) / DAY).astype(np.int64)
    days = np.unique(day)
    files = day_files(out, len(days), schema.click_column is not None)
    order = np.lexsort((tie_order, time))
    bounds = np.searchsorted(day[order], days)
    ends = np.r_[bounds[1:], len(order)]
    written = []
    for (split, path), lo, hi in zip(files, bounds, ends):
        rows = order[lo:hi]
        write_day(path, pa.Table.from_pandas(frame.iloc[rows], preserve_index=False))
        written.append(WrittenDay(split, path, len(rows)))
    # Hash-based distinct values, then one sort of those: faster than np.unique on ids.
    write_vocabs_and_schema(out, schema, lambda column: pd.unique(frame[column].to_numpy()),
                            float_columns(log))
    return written
