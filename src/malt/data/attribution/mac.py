"""Write attributed clicks in the MAC layout, with vocabs and a schema file.

Days are cut by click time: day d holds the clicks with floor((t - t0) / 86400) = d, t0 being
the first click. Every day but the last becomes `train/train-NN.parquet` (days without clicks
are skipped, the numbering stays consecutive), the last one `test/test.parquet`. Rows of a day
are in click order. Columns: the user, the categorical fields (item, shop, features), one label
column per rule (float32 weights), and `click_time`, `click_id` and any float click columns,
which the schema lists under `ignore_columns`. `vocabs/<column>.json` maps the sorted distinct
raw ids of every categorical column to 0, 1, ...; `schema.toml` describes the columns so that
`malt prepare --data OUT --schema OUT/schema.toml` reads the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from malt.data.attribution.journeys import DAY
from malt.data.attribution.logs import ClickLog
from malt.data.layout import day_path, write_day, write_vocab
from malt.data.schema import CategoricalField, Schema
from malt.errors import ConfigError, DataError
from malt.outputs import atomic_write_text


@dataclass(frozen=True)
class WrittenDay:
    split: str
    path: Path
    rows: int


def build_schema(log: ClickLog, rules: tuple[str, ...], *, name: str,
                 user_fields: tuple[str, ...] = (), ad_fields: tuple[str, ...] = ()) -> Schema:
    """Schema of the written data: item (and shop) and `ad_fields` in the ad group,
    `user_fields` in the user group, every other click feature in the context group."""
    unknown = [c for c in (*user_fields, *ad_fields) if c not in log.features]
    if unknown:
        raise ConfigError(f"{unknown} are not categorical click features; the features are "
                          f"{list(log.features)}")
    both = set(user_fields) & set(ad_fields)
    if both:
        raise ConfigError(f"features {sorted(both)} are given both the user and the ad group")
    out = log.output_name
    fields = [CategoricalField(out(c), "user") for c in log.features if c in user_fields]
    fields += [CategoricalField(out(c), "ad") for c in ("item", "shop") if c in log.clicks]
    fields += [CategoricalField(out(c), "ad") for c in log.features if c in ad_fields]
    fields += [CategoricalField(out(c), "context") for c in log.features
               if c not in user_fields and c not in ad_fields]
    ignore = tuple(out(c) for c in ("click_time", "click_id", *log.extras))
    columns = [out("user"), *(f.name for f in fields), *rules, *ignore]
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise DataError(f"click columns clash with other output columns (labels are named "
                        f"after the rules): {dupes}", column=dupes[0])
    return Schema(name=name, user_column=out("user"), fields=tuple(fields), labels=rules,
                  ignore_columns=ignore)


def schema_toml(schema: Schema) -> str:
    """The schema as a TOML file that `Schema.load` reads back."""
    def strings(values) -> str:
        return "[" + ", ".join(json.dumps(v) for v in values) + "]"

    lines = [f"name = {json.dumps(schema.name)}",
             f"user_column = {json.dumps(schema.user_column)}",
             f"labels = {strings(schema.labels)}",
             f"ignore_columns = {strings(schema.ignore_columns)}",
             "", "[fields]"]
    for group in ("user", "ad", "context"):
        lines.append(f"{group} = {strings(f.name for f in schema.fields if f.group == group)}")
    return "\n".join(lines) + "\n"


def write_mac(out: str | Path, log: ClickLog, labels: dict[str, np.ndarray], schema: Schema
              ) -> list[WrittenDay]:
    """Write the clicks of `log` with `labels` (rule -> [N] weights) under `out`."""
    out = Path(out)
    clicks = log.clicks
    time = clicks["click_time"].to_numpy(dtype=np.float64)
    if len(time) == 0:
        raise DataError("the log holds no clicks")
    t0 = float(time.min())
    day = np.floor((time - t0) / DAY).astype(np.int64)
    days = np.unique(day)
    if len(days) < 2:
        raise DataError("all clicks fall on one day; at least two days are needed to write "
                        "training days and a test day", column="click_time")

    name = log.output_name
    frame = pd.DataFrame({name("user"): clicks["user"].to_numpy()})
    for f in schema.fields:
        source = next(c for c in (*log.features, "item", "shop") if name(c) == f.name)
        frame[f.name] = clicks[source].to_numpy()
    for rule in schema.labels:
        frame[rule] = labels[rule].astype(np.float32)
    for column in ("click_time", "click_id", *log.extras):
        frame[name(column)] = clicks[column].to_numpy()

    order = np.lexsort((log.click_order, time))
    bounds = np.searchsorted(day[order], days)
    ends = np.r_[bounds[1:], len(order)]
    written = []
    for i, (lo, hi) in enumerate(zip(bounds, ends)):
        split = "test" if i == len(days) - 1 else "train"
        path = day_path(out, split, i)
        rows = order[lo:hi]
        write_day(path, pa.Table.from_pandas(frame.iloc[rows], preserve_index=False))
        written.append(WrittenDay(split, path, len(rows)))
    for column in schema.vocab_columns:
        # Hash-based distinct values, then one sort of those: faster than np.unique on ids.
        raw_ids = np.sort(pd.unique(frame[column].to_numpy()))
        write_vocab(out / "vocabs", column, raw_ids.astype(str).tolist())
    atomic_write_text(out / "schema.toml", schema_toml(schema))
    return written
