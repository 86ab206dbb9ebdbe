"""Readers of raw click and conversion logs.

Generic layout (parquet, or CSV / TSV, optionally gzipped): two tables.

    clicks       user, item, click_time, click_id   required
                 shop                               optional (needed by --mode indirect-shop)
                 any other column                   a click feature: integer, string or boolean
                                                    columns become categorical fields, float
                                                    columns are carried through unused (the
                                                    written schema offers them as numeric)
    conversions  user, item, conversion_time        required
                 shop                               optional (else taken from the clicks)
                 conversion_id, value, ...          optional, not used

Times are unix seconds (integer or fractional) or ISO-8601 date-times. Ids may be integers or
strings; `click_id` must be unique and breaks ties between clicks of the same second (integers
numerically, strings in sorted order).

Impressions (generic layout with `--impressions`): three tables, for impression-level output.

    impressions  impression_id, user, item,             required
                 impression_time
                 shop                               optional
                 any other column                   an impression feature, as the click
                                                    features above
    clicks       click_id, impression_id, click_time  required: each click names the impression
                                                    it came from; its user, item, shop and
                                                    features are that impression's, and any
                                                    other click column is not read
    conversions  as above

`impression_id` is unique among the impressions; every click names one of them (an impression
may have several clicks), no earlier than the impression's time.

Criteo "Attribution Modeling for Bidding" layout: one TSV/CSV row per impression with at least
`uid, campaign, timestamp, click, conversion_id, conversion_timestamp` and, as features, any
`cat1..cat9`. Rows with `click == 1` are the clicks; a click's `conversion_id` names the
conversion whose journey it belongs to (-1: none), and `conversion_timestamp` is that
conversion's time. `campaign` plays the item. Other columns (`conversion`, `attribution`, `cost`,
`cpo`, `time_since_last_click`, ...) are ignored; so are `click_pos` and `click_nb`, which are
computed from the conversions and would leak the label into the features. Click ids are the
0-based row numbers of the file. Read as impressions (`read_criteo(path, impressions=True)`,
`malt attribute --format criteo --impressions FILE`), every row is an impression: its
`impression_id` is its row number, `user`, `item` and `impression_time` are its `uid`,
`campaign` and `timestamp`, and the clicked rows are its clicks.

Every problem is a `DataError` naming the file, the column and the first offending row (0-based
data rows, the header excluded).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from malt.errors import DataError

CLICK_COLUMNS = ("user", "item", "click_time", "click_id")
CONVERSION_COLUMNS = ("user", "item", "conversion_time")
IMPRESSION_COLUMNS = ("user", "item", "impression_time", "impression_id")
IMPRESSION_CLICK_COLUMNS = ("click_id", "impression_id", "click_time")
IMPRESSION_RESERVED = ("journey", "click", "click_time", "click_id")
"""Columns an impression table may not have: the output's own."""
CRITEO_COLUMNS = ("uid", "campaign", "timestamp", "click", "conversion_id",
                  "conversion_timestamp")
_CRITEO_FEATURE = re.compile(r"cat\d+")


@dataclass
class ClickLog:
    """Clicks and conversions under the engine's column names.

    clicks: DataFrame [N] with `user`, `item`, `click_time` (float64 seconds), `click_id`,
        optionally `shop` and `journey`, plus the feature and extra columns.
    conversions: DataFrame [M] with `user`, `item`, `conversion_time` (float64 seconds),
        optionally `shop` and `journey`.
    click_order: int64 [N] tie-breaking rank of every click id.
    journey: True when the log names each click's conversion (column `journey` in both tables).
    names: output column name of engine columns that the source calls differently.
    """

    clicks: pd.DataFrame
    conversions: pd.DataFrame
    click_order: np.ndarray
    features: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    journey: bool = False
    names: dict[str, str] = field(default_factory=dict)

    @property
    def click_columns(self) -> tuple[str, ...]:
        return tuple(self.clicks.columns)

    def output_name(self, column: str) -> str:
        return self.names.get(column, column)


class ClickedImpressions:
    """What an impression log answers from the click log of its clicked impressions (the
    in-memory and the Spark form share it): the same features and extras, output columns
    under their own names."""

    clicks: ClickLog  # or its Spark form, which has the same features and extras

    @property
    def features(self) -> tuple[str, ...]:
        return self.clicks.features

    @property
    def extras(self) -> tuple[str, ...]:
        return self.clicks.extras

    @property
    def journey(self) -> bool:
        return self.clicks.journey

    def output_name(self, column: str) -> str:
        return column


@dataclass
class ImpressionLog(ClickedImpressions):
    """Impressions, and the click log of their clicked ones (see the module docstring).

    clicks: the `ClickLog` of the clicks, each with its impression's user, item, shop and
        features, and `impression_id`.
    impressions: DataFrame [I] with `user`, `item`, `impression_time` (float64 seconds),
        `impression_id`, optionally `shop`, plus the feature and extra columns.
    clicked: int64 [N] the impression row of every click.
    impression_order: int64 [I] tie-breaking rank of every impression id.
    """

    clicks: ClickLog
    impressions: pd.DataFrame
    clicked: np.ndarray
    impression_order: np.ndarray
    names: dict[str, str] = field(default_factory=dict)

    @property
    def click_columns(self) -> tuple[str, ...]:
        return tuple(self.impressions.columns)


def read_table(path: str | Path, keep: Callable[[str], bool] | None = None) -> pd.DataFrame:
    """A parquet, CSV or TSV file (optionally compressed) as a DataFrame of the columns that
    `keep` accepts (all by default)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file does not exist", file=str(path))
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zst"):
        suffixes = suffixes[:-1]
    kind = suffixes[-1] if suffixes else ""
    try:
        if kind == ".parquet":
            names = pq.read_schema(path).names
            table = pq.read_table(path, columns=[c for c in names if keep is None or keep(c)])
        elif kind in (".csv", ".tsv", ".txt"):
            parse = pacsv.ParseOptions(delimiter="," if kind == ".csv" else "\t")
            names = pacsv.open_csv(path, parse_options=parse).schema.names
            # An empty field is a missing value, for string columns too.
            table = pacsv.read_csv(path, parse_options=parse, convert_options=pacsv.ConvertOptions(
                include_columns=[c for c in names if keep is None or keep(c)],
                strings_can_be_null=True))
        else:
            raise DataError("unknown file type: use .parquet, .csv or .tsv (optionally .gz)",
                            file=str(path))
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise DataError(f"cannot read the file: {exc}", file=str(path)) from exc
    return table.to_pandas()


def _require(frame: pd.DataFrame, columns: tuple[str, ...], file: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"missing required columns {missing}; found {list(frame.columns)}",
                        file=file, column=missing[0])


def _first(mask: np.ndarray, rows: np.ndarray | None = None) -> int:
    """File row of the first True of `mask` (`rows` maps positions to file rows)."""
    i = int(np.flatnonzero(mask)[0])
    return i if rows is None else int(rows[i])


def seconds(values: pd.Series, file: str, column: str, rows: np.ndarray | None = None
            ) -> np.ndarray:
    """float64 [N] unix seconds from numbers, date-times, or strings holding either.

    `rows` [N] are the file rows of the values, for error messages (default 0..N-1).
    """
    values = values.reset_index(drop=True)
    null = values.isna().to_numpy()
    if null.any():
        raise DataError("missing time", file=file, column=column, row=_first(null, rows))
    if pd.api.types.is_datetime64_any_dtype(values):
        return _datetime_seconds(values)
    if pd.api.types.is_bool_dtype(values):
        raise DataError("times must be numbers or date-times, not booleans", file=file,
                        column=column, row=_first(np.ones(len(values), bool), rows))
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers)
    if bad.any():
        dates = pd.to_datetime(values.astype(str), errors="coerce", utc=True, format="ISO8601")
        unparsed = dates.isna().to_numpy()
        if not unparsed.any():
            return _datetime_seconds(dates)
        first = bad & unparsed if (bad & unparsed).any() else unparsed
        raise DataError(f"cannot parse time {values.iloc[_first(first)]!r}: expected unix "
                        "seconds or ISO-8601 date-times (one kind per column)", file=file,
                        column=column, row=_first(first, rows))
    return numbers


def _datetime_seconds(values: pd.Series) -> np.ndarray:
    if values.dt.tz is None:
        values = values.dt.tz_localize("UTC")
    return (values - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)


def ids(values: pd.Series, file: str, column: str, rows: np.ndarray | None = None
        ) -> pd.Series:
    """An id column without nulls, as int64 when every value is an integer, else as str."""
    values = values.reset_index(drop=True)
    null = values.isna().to_numpy()
    if null.any():
        raise DataError("missing id", file=file, column=column, row=_first(null, rows))
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_integer_dtype(values):
        return values.astype(np.int64)
    if pd.api.types.is_float_dtype(values):
        as_int = values.astype(np.int64)
        if (as_int == values).all():
            return as_int
    return values.astype(str)


def _features(frame: pd.DataFrame, columns: list[str], file: str
              ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split extra click columns into categorical features and unused float columns."""
    features, extras = [], []
    for column in columns:
        dtype = frame[column].dtype
        if pd.api.types.is_float_dtype(dtype):
            extras.append(column)
        elif (pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
              or pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
            frame[column] = ids(frame[column], file, column)
            features.append(column)
        else:
            raise DataError(f"feature of type {dtype} is not supported: use integer or string "
                            "categories (float columns are carried through unused)", file=file,
                            column=column)
    return tuple(features), tuple(extras)


def read_generic(clicks_path: str | Path, conversions_path: str | Path) -> ClickLog:
    """Read the generic two-table layout (see the module docstring)."""
    click_file = str(clicks_path)
    clicks = read_table(clicks_path)
    conversions = read_table(conversions_path)
    _require(clicks, CLICK_COLUMNS, click_file)
    _require(conversions, CONVERSION_COLUMNS, str(conversions_path))
    if "journey" in clicks.columns:
        raise DataError("'journey' is a reserved column name", file=click_file,
                        column="journey")
    for column in ("user", "item", "click_id", *(("shop",) if "shop" in clicks else ())):
        clicks[column] = ids(clicks[column], click_file, column)
    clicks["click_time"] = seconds(clicks["click_time"], click_file, "click_time")
    conversions = _conversions(conversions, str(conversions_path))
    features, extras = _features(clicks, [c for c in clicks.columns
                                          if c not in (*CLICK_COLUMNS, "shop")], click_file)
    click_order = _unique_order(clicks["click_id"], click_file, "click id", "click_id")
    return ClickLog(clicks=clicks, conversions=conversions, click_order=click_order,
                    features=features, extras=extras)


def _conversions(conversions: pd.DataFrame, file: str) -> pd.DataFrame:
    """The conversion table of the generic layout, its ids and times converted."""
    _require(conversions, CONVERSION_COLUMNS, file)
    for column in ("user", "item", *(("shop",) if "shop" in conversions else ())):
        conversions[column] = ids(conversions[column], file, column)
    conversions["conversion_time"] = seconds(conversions["conversion_time"], file,
                                             "conversion_time")
    keep = [c for c in (*CONVERSION_COLUMNS, "shop") if c in conversions.columns]
    return conversions[keep]


def check_reserved(frame, file: str, names: tuple[str, ...]) -> None:
    """Refuse a table (a pandas or Spark DataFrame) that has a column of `names`."""
    for name in names:
        if name in frame.columns:
            raise DataError(f"'{name}' is a reserved column name", file=file, column=name)


def read_impressions(impressions_path: str | Path, clicks_path: str | Path,
                     conversions_path: str | Path) -> ImpressionLog:
    """Read impressions, their clicks and the conversions (see the module docstring)."""
    imp_file, click_file = str(impressions_path), str(clicks_path)
    impressions = read_table(impressions_path)
    clicks = read_table(clicks_path, keep=lambda c: c in IMPRESSION_CLICK_COLUMNS)
    conversions = read_table(conversions_path)
    _require(impressions, IMPRESSION_COLUMNS, imp_file)
    _require(clicks, IMPRESSION_CLICK_COLUMNS, click_file)
    _require(conversions, CONVERSION_COLUMNS, str(conversions_path))
    check_reserved(impressions, imp_file, IMPRESSION_RESERVED)
    has_shop = "shop" in impressions
    for column in ("impression_id", "user", "item", *(("shop",) if has_shop else ())):
        impressions[column] = ids(impressions[column], imp_file, column)
    impressions["impression_time"] = seconds(impressions["impression_time"], imp_file,
                                             "impression_time")
    features, extras = _features(impressions, [c for c in impressions.columns
                                               if c not in (*IMPRESSION_COLUMNS, "shop")],
                                 imp_file)
    impression_order = _unique_order(impressions["impression_id"], imp_file, "impression id",
                                      "impression_id")
    for column in ("click_id", "impression_id"):
        clicks[column] = ids(clicks[column], click_file, column)
    clicks["click_time"] = seconds(clicks["click_time"], click_file, "click_time")
    click_order = _unique_order(clicks["click_id"], click_file, "click id", "click_id")
    if len(clicks) == 0:
        raise DataError("the log holds no clicks", file=click_file)
    clicked = _clicked_rows(impressions, clicks, click_file)

    at = impressions.iloc[clicked].reset_index(drop=True)
    frame = pd.DataFrame({"user": at["user"], "item": at["item"],
                          **({"shop": at["shop"]} if has_shop else {}),
                          "click_time": clicks["click_time"].to_numpy(),
                          "click_id": clicks["click_id"].to_numpy(),
                          **{c: at[c] for c in (*features, *extras)},
                          "impression_id": clicks["impression_id"].to_numpy()})
    conversions = _conversions(conversions, str(conversions_path))
    log = ClickLog(clicks=frame, conversions=conversions, click_order=click_order,
                   features=features, extras=extras)
    keep = [*IMPRESSION_COLUMNS, *(("shop",) if has_shop else ()), *features, *extras]
    return ImpressionLog(clicks=log, impressions=impressions[keep], clicked=clicked,
                         impression_order=impression_order)


def _unique_order(values: pd.Series, file: str, what: str, column: str) -> np.ndarray:
    """int64 [N] rank of every id of a column whose ids must be unique (integers numerically,
    strings in sorted order)."""
    duplicated = values.duplicated().to_numpy()
    if duplicated.any():
        row = _first(duplicated)
        # tolist() gives Python values: the id reads as 2, not np.int64(2).
        raise DataError(f"{what} {values.iloc[row:row + 1].tolist()[0]!r} appears twice",
                        file=file, column=column, row=row)
    if pd.api.types.is_integer_dtype(values):
        return values.to_numpy(dtype=np.int64)
    codes, _ = pd.factorize(values, sort=True)
    return codes.astype(np.int64)


def _clicked_rows(impressions: pd.DataFrame, clicks: pd.DataFrame, file: str) -> np.ndarray:
    """int64 [N] the impression row of every click (an impression may have several); raises
    at the first click that names no impression (ids of another type match none) or comes
    before its impression."""
    ids_ = impressions["impression_id"]
    wanted = clicks["impression_id"]
    if ids_.dtype != wanted.dtype:
        row = np.full(len(wanted), -1, np.int64)
    else:
        row = pd.Index(ids_).get_indexer(wanted.to_numpy()).astype(np.int64)
    missing = row < 0
    if missing.any():
        first = _first(missing)
        raise DataError(f"the click names impression {wanted.iloc[first:first + 1].tolist()[0]!r}"
                        ", which is not in the impressions", file=file, column="impression_id",
                        row=first)
    shown = impressions["impression_time"].to_numpy()[row]
    early = clicks["click_time"].to_numpy() < shown
    if early.any():
        first = _first(early)
        raise DataError(f"the click at {clicks['click_time'].iloc[first]} comes before its "
                        f"impression at {shown[first]}", file=file, column="click_time",
                        row=first)
    return row


def read_criteo(path: str | Path, impressions: bool = False) -> ClickLog | ImpressionLog:
    """Read the Criteo attribution layout (see the module docstring): its clicks, or with
    `impressions` every row as an impression and the clicked ones as its clicks."""
    file = str(path)
    frame = read_table(path, keep=lambda c: c in CRITEO_COLUMNS
                       or _CRITEO_FEATURE.fullmatch(c) is not None)
    _require(frame, CRITEO_COLUMNS, file)
    click = pd.to_numeric(frame["click"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isin(click, (0.0, 1.0))
    if bad.any():
        raise DataError(f"click must be 0 or 1, got {frame['click'].iloc[_first(bad)]!r}",
                        file=file, column="click", row=_first(bad))
    conversion_id = pd.to_numeric(frame["conversion_id"], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(conversion_id) | (conversion_id < -1) | (conversion_id % 1 != 0)
    if bad.any():
        raise DataError(f"conversion id must be an integer (-1: no conversion), got "
                        f"{frame['conversion_id'].iloc[_first(bad)]!r}", file=file,
                        column="conversion_id", row=_first(bad))
    conversion_id = conversion_id.astype(np.int64)
    features = tuple(sorted((c for c in frame.columns if _CRITEO_FEATURE.fullmatch(c)),
                            key=lambda c: int(c[3:])))

    click_rows = np.flatnonzero(click == 1.0)
    # Impressions need every row's values, clicks only the clicked rows' (checked alike).
    rows = np.arange(len(frame)) if impressions else click_rows
    at_rows = frame.iloc[rows]
    described = pd.DataFrame({
        "user": ids(at_rows["uid"], file, "uid", rows),
        "item": ids(at_rows["campaign"], file, "campaign", rows),
        "time": seconds(at_rows["timestamp"], file, "timestamp", rows)})
    for column in features:
        described[column] = ids(at_rows[column], file, column, rows)
    at_clicks = described.iloc[click_rows] if impressions else described
    clicks = pd.DataFrame({
        "user": at_clicks["user"].to_numpy(), "item": at_clicks["item"].to_numpy(),
        "click_time": at_clicks["time"].to_numpy(), "click_id": click_rows,
        "journey": conversion_id[click_rows],
        **{column: at_clicks[column].to_numpy() for column in features}})

    # One conversion per id, described by its first row (impression or click); every row of
    # it is checked, as the Spark engine checks them.
    converted = np.flatnonzero(conversion_id >= 0)
    at_converted = frame.iloc[converted]
    user = ids(at_converted["uid"], file, "uid", converted)
    item = ids(at_converted["campaign"], file, "campaign", converted)
    conversion_time = seconds(at_converted["conversion_timestamp"], file,
                              "conversion_timestamp", converted)
    _check_conversion_times(conversion_id[converted], conversion_time, converted, file)
    first = np.unique(conversion_id[converted], return_index=True)[1]
    conversions = pd.DataFrame({
        "user": user.to_numpy()[first], "item": item.to_numpy()[first],
        "conversion_time": conversion_time[first],
        "journey": conversion_id[converted[first]],
    })
    if not impressions:
        return ClickLog(clicks=clicks, conversions=conversions,
                        click_order=click_rows.astype(np.int64), features=features, journey=True,
                        names={"user": "uid", "item": "campaign", "click_time": "timestamp"})
    clicks["impression_id"] = click_rows
    shown = described.rename(columns={"time": "impression_time"}).assign(impression_id=rows)
    log = ClickLog(clicks=clicks, conversions=conversions, click_order=click_rows.astype(np.int64),
                   features=features, journey=True)
    return ImpressionLog(clicks=log, impressions=shown[[*IMPRESSION_COLUMNS, *features]],
                         clicked=click_rows.astype(np.int64), impression_order=rows)


def _check_conversion_times(conversion_id: np.ndarray, conversion_time: np.ndarray,
                            rows: np.ndarray, file: str) -> None:
    """Every row of one conversion must carry the same conversion time ([K] arrays)."""
    order = np.lexsort((rows, conversion_id))
    same = conversion_id[order][1:] == conversion_id[order][:-1]
    differs = same & (conversion_time[order][1:] != conversion_time[order][:-1])
    if differs.any():
        row = int(rows[order[1:][differs]].min())
        raise DataError(f"conversion {conversion_id[rows == row][0]} has different conversion "
                        "timestamps on different rows", file=file, column="conversion_timestamp",
                        row=row)
