"""Readers of raw logs into Spark DataFrames: the layouts of `logs`, read the way it reads them.

The clicks and conversions come out under the engine's column names with the types the
in-memory readers give (ids as long or string, times as double seconds, integer columns with
missing values as float extras), plus `_row`, an id increasing with the file's row order (for
the Criteo layout the data row itself, the header excluded, which is its click id); errors name
the data row, as the in-memory readers do. Paths are
handed to Spark as they are, so anything it reads (hdfs://, s3a://, a directory of parquet
files) works; a path without a parquet, CSV or TSV suffix is read as parquet.

The files are cached as read: they are read once however many passes the engine makes.
Every check runs as one aggregation per table; a failed check is a `DataError` naming the file,
the column and the first offending row, as the in-memory readers do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from malt.errors import DataError
from malt.sources.attribution.logs import (
    CLICK_COLUMNS,
    CONVERSION_COLUMNS,
    CRITEO_COLUMNS,
    IMPRESSION_CLICK_COLUMNS,
    IMPRESSION_COLUMNS,
    IMPRESSION_RESERVED,
    ClickedImpressions,
    check_reserved,
)

ROW = "_row"
_CRITEO_FEATURE = re.compile(r"cat\d+")
_PARTITION_BITS = 33
"""`monotonically_increasing_id` puts the partition number above the low 33 bits."""


@dataclass
class SparkLog:
    """Clicks and conversions as Spark DataFrames (the columns of `logs.ClickLog`, plus `_row`).

    Clicks are ordered by `click_time`, then `click_id` (the in-memory `click_order`).
    """

    clicks: object
    conversions: object
    features: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    journey: bool = False
    names: dict[str, str] = field(default_factory=dict)
    n_clicks: int = 0
    n_conversions: int = 0

    @property
    def click_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.clicks.columns if c != ROW)

    def output_name(self, column: str) -> str:
        return self.names.get(column, column)


@dataclass
class SparkImpressionLog(ClickedImpressions):
    """Impressions and the click log of their clicked ones (the columns of
    `logs.ImpressionLog`, plus `_row`): `clicks` is the `SparkLog` of the clicks, each with
    its impression's user, item, shop and features, and `impression_id`."""

    clicks: SparkLog
    impressions: object
    n_impressions: int = 0

    @property
    def click_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.impressions.columns if c != ROW)


class Cache:
    """The DataFrames an attribution caches, released together when it ends."""

    def __init__(self):
        self.frames: list = []

    def __call__(self, frame):
        frame = frame.persist()
        self.frames.append(frame)
        return frame

    def release(self) -> None:
        for frame in self.frames:
            frame.unpersist()
        self.frames.clear()


def read_frame(spark, path: str, cache: Cache, keep=None):
    """A parquet, CSV or TSV file (or directory) as a cached DataFrame of the columns `keep`
    accepts, with `_row`."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    suffixes = [s.lower() for s in PurePosixPath(path.rstrip("/")).suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2"):
        suffixes = suffixes[:-1]
    kind = suffixes[-1] if suffixes else ".parquet"
    try:
        if kind == ".parquet":
            frame = spark.read.parquet(path)
        elif kind in (".csv", ".tsv", ".txt"):
            # An empty field is a missing value, as for the in-memory reader.
            frame = spark.read.csv(path, header=True, inferSchema=True, mode="FAILFAST",
                                   sep="," if kind == ".csv" else "\t")
        else:
            raise DataError("unknown file type: use .parquet, .csv or .tsv (optionally .gz)",
                            file=path)
    except AnalysisException as exc:
        message = "file does not exist" if "PATH_NOT_FOUND" in str(exc) else \
            f"cannot read the file: {exc}"
        raise DataError(message, file=path) from exc
    if ROW in frame.columns:
        raise DataError(f"'{ROW}' is a reserved column name", file=path, column=ROW)
    if keep is not None:
        frame = frame.select([c for c in frame.columns if keep(c)])
    return cache(frame.withColumn(ROW, F.monotonically_increasing_id()))


def dense_rows(frame):
    """`frame` with `_row` turned from its ordering id into the data row of the file (one pass
    counting the rows of every partition)."""
    from pyspark.sql import functions as F

    partition = F.shiftright(F.col(ROW), _PARTITION_BITS)
    offsets = _partition_offsets(frame)
    if not offsets:
        return frame
    local = F.col(ROW).bitwiseAND((1 << _PARTITION_BITS) - 1)
    offset = F.element_at(F.array(*[F.lit(o) for o in offsets]), (partition + 1).cast("int"))
    return frame.withColumn(ROW, offset + local)


def _partition_offsets(frame) -> list[int]:
    from pyspark.sql import functions as F

    partition = F.shiftright(F.col(ROW), _PARTITION_BITS)
    sizes = dict(frame.groupBy(partition.alias("p")).count().collect())
    offsets, total = [], 0
    for p in range(max(sizes, default=-1) + 1):
        offsets.append(total)
        total += sizes.get(p, 0)
    return offsets


def file_row(frame, ordering_id: int) -> int:
    """The data row of the file of the row whose `_row` (ordering id) is `ordering_id`."""
    partition = ordering_id >> _PARTITION_BITS
    return _partition_offsets(frame)[partition] + (ordering_id & ((1 << _PARTITION_BITS) - 1))


def _first_rows(frame, conditions: dict, aggregates: dict | None = None) -> dict:
    """name -> first `_row` where the condition holds (None if nowhere), and the values of
    `aggregates` (name -> aggregate column), in one pass."""
    from pyspark.sql import functions as F

    aggregates = aggregates or {}
    columns = [F.min(F.when(c, F.col(ROW))).alias(f"c{i}")
               for i, c in enumerate(conditions.values())]
    columns += [a.alias(f"a{i}") for i, a in enumerate(aggregates.values())]
    if not columns:
        return {}
    found = frame.agg(*columns).first()
    return {**{name: found[f"c{i}"] for i, name in enumerate(conditions)},
            **{name: found[f"a{i}"] for i, name in enumerate(aggregates)}}


def _value_at(frame, column: str, row: int):
    from pyspark.sql import functions as F

    return frame.filter(F.col(ROW) == row).select(column).first()[0]


def named(column: str):
    """The column called `column`, read as a name even when it holds a dot."""
    from pyspark.sql import functions as F

    return F.col(f"`{column}`")


def _try_cast(column: str, to: str):
    from pyspark.sql import functions as F

    return F.expr(f"try_cast(`{column}` as {to})")


class _Checks:
    """Column conversions of one table whose checks run together in one pass.

    `row_of` turns a `_row` into the file's data row for messages."""

    def __init__(self, frame, file: str, row_of):
        self.frame, self.file, self.row_of = frame, file, row_of
        self.conditions: dict = {}
        self.converters: list = []
        self.messages: dict[str, tuple[str, str]] = {}
        self.time_columns: list[tuple[str, str]] = []
        self.extra_aggregates: dict = {}

    def ids(self, column: str, source: str | None = None, within=None) -> None:
        """`source` (default `column`) as an id: long when every value is an integer, else
        string (the rule of `logs.ids`); `within` restricts the checked rows."""
        from pyspark.sql import functions as F
        from pyspark.sql import types as T

        source = source or column
        value = named(source)
        dtype = self.frame.schema[source].dataType
        missing = value.isNull()
        if isinstance(dtype, T.FractionalType):
            missing = missing | F.isnan(value)
        self._check(f"null {column}", missing, within, "missing id", source)
        if isinstance(dtype, (T.BooleanType, T.IntegralType)):
            self.converters.append(lambda _: value.cast("long").alias(column))
        elif isinstance(dtype, T.FractionalType):
            self.conditions[f"fraction {column}"] = _restricted(value != F.floor(value), within)
            self.converters.append(lambda found: value.cast(
                "string" if found[f"fraction {column}"] is not None else "long").alias(column))
        else:
            self.converters.append(lambda _: value.cast("string").alias(column))

    def seconds(self, column: str, source: str | None = None, within=None) -> None:
        """`source` as float64 unix seconds from numbers or date-times (`logs.seconds`)."""
        from pyspark.sql import functions as F
        from pyspark.sql import types as T

        source = source or column
        value = named(source)
        dtype = self.frame.schema[source].dataType
        self._check(f"null {column}", value.isNull(), within, "missing time", source)
        if isinstance(dtype, (T.TimestampType, T.TimestampNTZType, T.DateType)):
            self.converters.append(lambda _: _timestamp_seconds(value).alias(column))
            return
        if isinstance(dtype, T.BooleanType):
            self._check(f"bool {column}", F.lit(True), within,
                        "times must be numbers or date-times, not booleans", source)
            return
        number = _try_cast(source, "double")
        bad = number.isNull() | F.isnan(number) | (F.abs(number) == float("inf"))
        date = _try_cast(source, "timestamp")
        self.conditions[f"bad {column}"] = _restricted(bad, within)
        self.conditions[f"unparsed {column}"] = _restricted(date.isNull(), within)
        self.conditions[f"bad unparsed {column}"] = _restricted(bad & date.isNull(), within)
        self.converters.append(lambda found: (number if found[f"bad {column}"] is None
                                              else _timestamp_seconds(date)).alias(column))
        self.time_columns.append((column, source))

    def categories(self, columns: list[str]) -> None:
        """Extra click columns: integer, boolean and string ones are categorical features,
        float ones are carried through; an integer column with missing values is a float one,
        as pandas reads it (`logs` reads the features so)."""
        from pyspark.sql import types as T

        self.features, self.extras = [], []
        for column in columns:
            dtype = self.frame.schema[column].dataType
            if isinstance(dtype, T.IntegralType):
                self.conditions[f"has null {column}"] = named(column).isNull()
                self.converters.append(lambda found, c=column: (
                    named(c).cast("double") if found[f"has null {c}"] is not None
                    else named(c).cast("long")).alias(c))
            elif isinstance(dtype, T.FractionalType):
                self.keep(column)
            elif isinstance(dtype, (T.BooleanType, T.StringType)):
                self.ids(column)
            else:
                raise DataError(f"feature of type {dtype.simpleString()} is not supported: use "
                                "integer or string categories (float columns are carried "
                                "through unused)", file=self.file, column=column)
        self.category_columns = columns

    def keep(self, column: str) -> None:
        self.converters.append(lambda _: named(column))

    def _check(self, name: str, condition, within, message: str, column: str) -> None:
        self.conditions[name] = _restricted(condition, within)
        self.messages[name] = (message, column)

    def run(self) -> tuple[dict, list]:
        """Run every check (raising the first failure) and return the findings (with `rows`,
        the row count, and the `extra_aggregates`) and the converted columns."""
        from pyspark.sql import functions as F
        from pyspark.sql import types as T

        found = _first_rows(self.frame, self.conditions, {
            "rows": F.count(F.lit(1)), **self.extra_aggregates})
        for name, (message, column) in self.messages.items():
            if found[name] is not None:
                raise DataError(message, file=self.file, column=column,
                                row=self.row_of(found[name]))
        for column, source in self.time_columns:
            if found[f"bad {column}"] is not None and found[f"unparsed {column}"] is not None:
                row = found[f"bad unparsed {column}"]
                row = row if row is not None else found[f"unparsed {column}"]
                value = _value_at(self.frame, source, row)
                raise DataError(f"cannot parse time {value!r}: expected unix seconds or "
                                "ISO-8601 date-times (one kind per column)", file=self.file,
                                column=source, row=self.row_of(row))
        for column in getattr(self, "category_columns", []):
            dtype = self.frame.schema[column].dataType
            float_like = isinstance(dtype, T.FractionalType) or (
                isinstance(dtype, T.IntegralType) and found[f"has null {column}"] is not None)
            (self.extras if float_like else self.features).append(column)
        return found, [convert(found) for convert in self.converters]


def _restricted(condition, within):
    return condition if within is None else condition & within


def _timestamp_seconds(value):
    """Seconds since the epoch as `logs.seconds` computes them: whole seconds plus the
    sub-second part in nanoseconds over 1e9 (the same float64 operations)."""
    from pyspark.sql import functions as F

    micros = F.unix_micros(value.cast("timestamp"))
    residual = F.pmod(micros, F.lit(1_000_000))
    whole = ((micros - residual) / F.lit(1_000_000)).cast("long")
    return whole.cast("double") + (residual * 1000).cast("double") / F.lit(1e9)


def _require(frame, columns: tuple[str, ...], file: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = [c for c in frame.columns if c != ROW]
        raise DataError(f"missing required columns {missing}; found {found}", file=file,
                        column=missing[0])


def read_generic_spark(spark, clicks_path: str, conversions_path: str, cache: Cache
                       ) -> SparkLog:
    """The generic two-table layout (see `logs`) on Spark."""
    from pyspark.sql import functions as F

    clicks = read_frame(spark, clicks_path, cache)
    conversions = read_frame(spark, conversions_path, cache)
    _require(clicks, CLICK_COLUMNS, clicks_path)
    _require(conversions, CONVERSION_COLUMNS, conversions_path)
    if "journey" in clicks.columns:
        raise DataError("'journey' is a reserved column name", file=clicks_path,
                        column="journey")
    checks = _Checks(clicks, clicks_path, lambda row: file_row(clicks, row))
    for column in ("user", "item", *(("shop",) if "shop" in clicks.columns else ())):
        checks.ids(column)
    checks.seconds("click_time")
    checks.ids("click_id")
    checks.categories([c for c in clicks.columns if c not in (*CLICK_COLUMNS, "shop", ROW)])
    checks.keep(ROW)
    checks.extra_aggregates["distinct ids"] = F.count_distinct("click_id")
    found, columns = checks.run()
    if found["distinct ids"] != found["rows"]:
        _raise_repeated_id(clicks, clicks_path, "click_id", "click id")
    converted, n_conversions = _conversions(conversions, conversions_path)
    return SparkLog(clicks=clicks.select(columns), conversions=converted,
                    features=tuple(checks.features), extras=tuple(checks.extras),
                    n_clicks=found["rows"], n_conversions=n_conversions)


def _conversions(conversions, file: str):
    """The conversion table of the generic layout, converted, and its row count."""
    checks = _Checks(conversions, file, lambda row: file_row(conversions, row))
    for column in ("user", "item", *(("shop",) if "shop" in conversions.columns else ())):
        checks.ids(column)
    checks.seconds("conversion_time")
    checks.keep(ROW)
    found, columns = checks.run()
    return conversions.select(columns), found["rows"]


def _raise_repeated_id(frame, file: str, column: str, what: str) -> None:
    """The first row whose id (in `column`) an earlier row already had, as `logs` reports
    it."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    twice = frame.groupBy(column).count().filter(F.col("count") > 1).select(column)
    order = Window.partitionBy(column).orderBy(ROW)
    repeated = frame.join(twice, column).withColumn("n", F.row_number().over(order))
    row = repeated.filter(F.col("n") == 2).orderBy(ROW).first()
    raise DataError(f"{what} {row[column]!r} appears twice", file=file, column=column,
                    row=file_row(frame, row[ROW]))


def read_impressions_spark(spark, impressions_path: str, clicks_path: str,
                           conversions_path: str, cache: Cache) -> SparkImpressionLog:
    """Impressions, their clicks and the conversions (the layout of `logs.read_impressions`)
    on Spark, with its checks and messages."""
    from pyspark.sql import functions as F

    impressions = read_frame(spark, impressions_path, cache)
    clicks = read_frame(spark, clicks_path, cache,
                        keep=lambda c: c in IMPRESSION_CLICK_COLUMNS)
    conversions = read_frame(spark, conversions_path, cache)
    _require(impressions, IMPRESSION_COLUMNS, impressions_path)
    _require(clicks, IMPRESSION_CLICK_COLUMNS, clicks_path)
    _require(conversions, CONVERSION_COLUMNS, conversions_path)
    check_reserved(impressions, impressions_path, IMPRESSION_RESERVED)
    has_shop = "shop" in impressions.columns
    checks = _Checks(impressions, impressions_path, lambda row: file_row(impressions, row))
    for column in ("impression_id", "user", "item", *(("shop",) if has_shop else ())):
        checks.ids(column)
    checks.seconds("impression_time")
    checks.categories([c for c in impressions.columns
                       if c not in (*IMPRESSION_COLUMNS, "shop", ROW)])
    checks.keep(ROW)
    checks.extra_aggregates["distinct ids"] = F.count_distinct("impression_id")
    found, columns = checks.run()
    if found["distinct ids"] != found["rows"]:
        _raise_repeated_id(impressions, impressions_path, "impression_id", "impression id")
    impressions = impressions.select(columns)
    features, extras = tuple(checks.features), tuple(checks.extras)

    click_checks = _Checks(clicks, clicks_path, lambda row: file_row(clicks, row))
    click_checks.ids("click_id")
    click_checks.ids("impression_id")
    click_checks.seconds("click_time")
    click_checks.keep(ROW)
    click_checks.extra_aggregates["distinct ids"] = F.count_distinct("click_id")
    click_found, click_columns = click_checks.run()
    if click_found["distinct ids"] != click_found["rows"]:
        _raise_repeated_id(clicks, clicks_path, "click_id", "click id")
    if click_found["rows"] == 0:
        raise DataError("the log holds no clicks", file=clicks_path)
    clicks = clicks.select(click_columns)

    c, i = clicks.alias("c"), impressions.alias("i")
    # Ids of different types (integers in one table, strings in the other) match none, as in
    # `logs.read_impressions`.
    same_type = dict(clicks.dtypes)["impression_id"] == dict(impressions.dtypes)["impression_id"]
    match = F.col("c.impression_id") == F.col("i.impression_id") if same_type else F.lit(False)
    joined = c.join(i, match, "left")
    click_row = F.struct(F.col(f"c.{ROW}").alias("row"), F.col("c.impression_id").alias("id"),
                         F.col("c.click_time").alias("time"),
                         F.col("i.impression_time").alias("shown"))
    bad = joined.agg(*[F.min(F.when(condition, click_row)).alias(name) for name, condition in (
        ("missing", F.col(f"i.{ROW}").isNull()),
        ("early", F.col("c.click_time") < F.col("i.impression_time")))]).first()
    messages = {
        "missing": lambda b: (f"the click names impression {b['id']!r}, which is not in the "
                              "impressions", "impression_id"),
        "early": lambda b: (f"the click at {b['time']} comes before its impression at "
                            f"{b['shown']}", "click_time")}
    for name, message in messages.items():
        if bad[name] is not None:
            text, column = message(bad[name])
            raise DataError(text, file=clicks_path, column=column,
                            row=file_row(clicks, bad[name]["row"]))
    at = [F.col(f"i.{col}") for col in ("user", "item", *(("shop",) if has_shop else ()))]
    clicked = joined.select(*at, F.col("c.click_time"), F.col("c.click_id"),
                            *[F.col(f"i.`{col}`") for col in (*features, *extras)],
                            F.col("c.impression_id"), F.col(f"c.{ROW}"))
    converted, n_conversions = _conversions(conversions, conversions_path)
    log = SparkLog(clicks=cache(clicked), conversions=converted, features=features,
                   extras=extras, n_clicks=click_found["rows"], n_conversions=n_conversions)
    return SparkImpressionLog(clicks=log, impressions=impressions, n_impressions=found["rows"])


def read_criteo_spark(spark, path: str, cache: Cache, impressions: bool = False
                      ) -> SparkLog | SparkImpressionLog:
    """The Criteo attribution layout (see `logs`) on Spark: click ids are file rows; with
    `impressions`, every row is an impression (its id the row) and the clicked ones its
    clicks."""
    from pyspark.sql import functions as F

    frame = read_frame(spark, path, cache, keep=lambda c: c in CRITEO_COLUMNS
                       or _CRITEO_FEATURE.fullmatch(c) is not None)
    _require(frame, CRITEO_COLUMNS, path)
    frame = dense_rows(frame)
    click = _try_cast("click", "double")
    conversion_id = _try_cast("conversion_id", "double")
    bad = _first_rows(frame, {
        "click": click.isNull() | ~click.isin(0.0, 1.0),
        "conversion_id": conversion_id.isNull() | F.isnan(conversion_id)
        | (conversion_id < -1) | (conversion_id != F.floor(conversion_id))})
    if bad["click"] is not None:
        raise DataError(f"click must be 0 or 1, got {_value_at(frame, 'click', bad['click'])!r}",
                        file=path, column="click", row=bad["click"])
    if bad["conversion_id"] is not None:
        value = _value_at(frame, "conversion_id", bad["conversion_id"])
        raise DataError(f"conversion id must be an integer (-1: no conversion), got {value!r}",
                        file=path, column="conversion_id", row=bad["conversion_id"])
    features = tuple(sorted((c for c in frame.columns if _CRITEO_FEATURE.fullmatch(c)),
                            key=lambda c: int(c[3:])))
    frame = frame.withColumn("journey", conversion_id.cast("long"))

    is_click = click == 1.0
    checked = None if impressions else is_click  # impressions need every row's values
    checks = _Checks(frame, path, int)
    checks.ids("user", "uid", within=checked)
    checks.ids("item", "campaign", within=checked)
    checks.seconds("click_time", "timestamp", within=checked)
    for column in features:
        checks.ids(column, within=checked)
    checks.extra_aggregates["clicks"] = F.count(F.when(is_click, 1))
    found, columns = checks.run()
    clicks = frame.filter(is_click).select(
        *columns[:3], F.col(ROW).alias("click_id"), "journey", *columns[3:], ROW)
    if impressions:
        clicks = clicks.withColumn("impression_id", F.col(ROW))

    converted = frame.filter(F.col("journey") >= 0)
    conv_checks = _Checks(converted, path, int)
    conv_checks.ids("user", "uid")
    conv_checks.ids("item", "campaign")
    conv_checks.seconds("conversion_time", "conversion_timestamp")
    _, conv_columns = conv_checks.run()
    rows = converted.select(*conv_columns, "journey", ROW)
    _check_conversion_times(rows, path)
    # One conversion per id, described by its first row (impression or click).
    first = rows.groupBy("journey").agg(F.min(F.struct(ROW, "user", "item", "conversion_time"))
                                        .alias("first"))
    conversions = first.select("first.user", "first.item", "first.conversion_time", "journey",
                               F.col(f"first.{ROW}").alias(ROW))
    conversions = cache(conversions)
    log = SparkLog(clicks=clicks, conversions=conversions, features=features, journey=True,
                   n_clicks=found["clicks"], n_conversions=conversions.count(),
                   names={} if impressions else {"user": "uid", "item": "campaign",
                                                 "click_time": "timestamp"})
    if not impressions:
        return log
    shown = frame.select(F.col(ROW).alias("impression_id"), columns[0], columns[1],
                         columns[2].alias("impression_time"), *columns[3:], ROW)
    return SparkImpressionLog(clicks=log, impressions=shown, n_impressions=found["rows"])


def _check_conversion_times(rows, file: str) -> None:
    """Every row of one conversion must carry the same conversion time."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first_time = F.first("conversion_time").over(Window.partitionBy("journey").orderBy(ROW))
    differs = rows.withColumn("first_time", first_time).filter(
        F.col("conversion_time") != F.col("first_time"))
    found = differs.agg(F.min(F.struct(ROW, "journey")).alias("row")).first()["row"]
    if found is not None:
        raise DataError(f"conversion {found['journey']} has different conversion timestamps "
                        "on different rows", file=file, column="conversion_timestamp",
                        row=found[ROW])
