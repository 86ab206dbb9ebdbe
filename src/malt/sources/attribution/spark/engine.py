"""The attribution engine on Spark DataFrames: journeys, every rule and the data-driven rule.

The same definitions as the in-memory engine (`journeys`, `rules`, `dda`), in built-in Spark SQL
functions only (no Python UDF):

- journeys: an equi-join of clicks and conversions on the matching key, restricted to
  `conversion_time - window <= click_time <= conversion_time` (the comparisons `build_journeys`
  makes);
- rules: window functions over each journey, its clicks ordered by click time, then click id;
- dda: the paths' design rows are built on Spark and reduced to their sufficient statistics
  (distinct converting patterns with counts, distinct non-converting design rows with counts),
  which are all the driver collects; the driver runs the one noisy-OR fit of `dda` on them and
  computes the Shapley shares of every distinct pattern, which go back to Spark as a broadcast
  lookup table keyed by (pattern, click rank).

Labels equal the in-memory engine's up to the order of float64 sums (a click's label sums its
weights over its journeys; the time-decay rule sums over a journey), about 1e-16 relative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from malt.data.schema import KNOWN_AT_SUFFIX
from malt.errors import ConfigError, DataError
from malt.sources.attribution.config import AttributionConfig
from malt.sources.attribution.dda import (
    BIAS,
    GAP_EDGES,
    POSITIONS,
    REFERENCE,
    NoisyOrModel,
    PathCounts,
    cell_term,
    feature_terms,
    fit_terms,
    pattern_shares,
    terms_from_counts,
)
from malt.sources.attribution.rules import scaled_shares
from malt.sources.attribution.spark.logs import ROW, Cache, SparkLog, named

CLICK_ORDER = ("click_time", "click_id")
"""Clicks of a journey or path are ordered by time, ties broken by click id."""


@dataclass
class SparkAttribution:
    """labelled: the clicks with one float64 column per label (the sum of the click's weights
    over its journeys under the label's view, 0 outside every journey) and its
    `<label>_known_at` (the first conversion time that credits the click; null if none)."""

    labelled: object
    labels: tuple[str, ...]
    pairs: int
    attributed_conversions: int
    dda_model: NoisyOrModel | None = None


def attribute_spark(log: SparkLog, config: AttributionConfig, cache: Cache) -> SparkAttribution:
    """Label every click of `log` under every view of `config` (`AttributionConfig.views`),
    with the time each label became known, on Spark. Pairs are joined once, under the widest
    window; each narrower window keeps its own pairs by the comparison `_pairs` makes."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    clicks, conversions = log.clicks, log.conversions
    key = _key_columns(log, config.mode)
    if config.mode == "indirect-shop" and not log.journey and "shop" not in conversions.columns:
        conversions = _with_shop_of_item(clicks, conversions)
    codes = []
    if any(rule == "dda" for _, rule, _ in config.views):
        clicks = _feature_codes(clicks, config.dda_features, cache)
        codes = [f"_code{g}" for g in range(len(config.dda_features))]

    widest = _pairs(clicks, conversions, key, config.widest_window, codes)
    windows = list(dict.fromkeys(window for _, _, window in config.views))
    if len(windows) > 1:
        widest = cache(widest)
    ordered = Window.partitionBy("conversion").orderBy(*CLICK_ORDER)
    whole = ordered.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    labelled, model, counted = log.clicks, None, None
    for window in windows:
        pairs = widest if window == config.widest_window else widest.filter(
            F.col("click_time") >= F.col("conversion_time") - F.lit(window))
        pairs = cache(pairs.withColumns({
            "_rank": F.row_number().over(ordered) - 1,
            "_size": F.count(F.lit(1)).over(whole),
            "_gap": F.col("click_time") - F.lag("click_time").over(ordered),
            "_youngest": F.min("age").over(whole)}))
        if window == config.window:
            counted = pairs.agg(F.count(F.lit(1)).alias("pairs"),
                                F.countDistinct("conversion").alias("attributed")).first()
        # The weight of view i is `_w<i>` (a view's name may hold a dot, which Spark reads as
        # a field access).
        views = [(i, name, rule) for i, (name, rule, w) in enumerate(config.views)
                 if w == window]
        pairs = pairs.withColumns({f"_w{i}": _rule_weight(rule, config, whole)
                                   for i, _, rule in views if rule != "dda"})
        for i, name, rule in views:
            if rule == "dda":
                pairs, fitted = _with_dda(pairs, clicks, key, log, config, codes, cache, window)
                pairs = pairs.withColumnRenamed("_w_dda", f"_w{i}")
                model = fitted if name == rule else model
        # A label's known-at time: the first conversion that gives the click a positive weight.
        labels = pairs.groupBy("click_id").agg(*[
            aggregate for i, name, _ in views for aggregate in (
                F.sum(f"_w{i}").alias(name),
                F.min(F.when(F.col(f"_w{i}") > 0, F.col("conversion_time")))
                .alias(f"{name}{KNOWN_AT_SUFFIX}"))])
        labelled = labelled.join(labels, "click_id", "left")
    labelled = labelled.withColumns({name: F.coalesce(named(name), F.lit(0.0))
                                     for name in config.labels})
    return SparkAttribution(labelled=labelled, labels=config.labels, pairs=counted["pairs"],
                            attributed_conversions=counted["attributed"], dda_model=model)


def _key_columns(log: SparkLog, mode: str) -> list[str]:
    """Matching key of clicks and conversions (see `engine.journey_keys`)."""
    if log.journey:
        return ["journey"]
    if mode == "direct":
        return ["user", "item"]
    if mode == "indirect-any":
        return ["user"]
    if "shop" not in log.clicks.columns:
        raise DataError("--mode indirect-shop needs a 'shop' column in the clicks",
                        column="shop")
    return ["user", "shop"]


def _with_shop_of_item(clicks, conversions):
    """The conversions with the shop of their item as seen in the clicks (null if never
    clicked)."""
    from pyspark.sql import functions as F

    pairs = clicks.select("item", "shop").distinct()
    twice = pairs.groupBy("item").count().filter(F.col("count") > 1)
    found = twice.join(clicks.select("item", ROW), "item").agg(
        F.min(F.struct(ROW, "item")).alias("first")).first()["first"]
    if found is not None:
        raise DataError(f"item {found['item']!r} is sold by more than one shop", column="shop")
    if dict(clicks.dtypes)["item"] != dict(conversions.dtypes)["item"]:
        return conversions.withColumn("shop", F.lit(None).cast(dict(clicks.dtypes)["shop"]))
    return conversions.join(pairs, "item", "left")


def _pairs(clicks, conversions, key: list[str], window: float, codes: list[str]):
    """(conversion, click) pairs: equal keys, `conversion_time - window <= click_time <=
    conversion_time` (as `build_journeys` compares)."""
    from pyspark.sql import functions as F

    c, v = clicks.alias("c"), conversions.alias("v")
    click_types, conversion_types = dict(clicks.dtypes), dict(conversions.dtypes)
    # Keys of different types (integer ids on one side, strings on the other) never match,
    # as in `journeys.key_codes`.
    same = [F.col(f"c.{k}") == F.col(f"v.{k}") if click_types[k] == conversion_types[k]
            else F.lit(False) for k in key]
    time, conversion_time = F.col("c.click_time"), F.col("v.conversion_time")
    condition = same[0]
    for s in same[1:]:
        condition = condition & s
    condition = condition & (time <= conversion_time) & (time >= conversion_time - window)
    return c.join(v, condition, "inner").select(
        F.col(f"v.{ROW}").alias("conversion"), F.col("c.click_id").alias("click_id"),
        time.alias("click_time"), conversion_time.alias("conversion_time"),
        (conversion_time - time).alias("age"),
        *[F.col(f"c.{code}") for code in codes])


def _rule_weight(rule: str, config: AttributionConfig, whole):
    """The weight column of a rule-based rule (the formulas of `rules.credit`)."""
    from pyspark.sql import functions as F

    rank, size = F.col("_rank"), F.col("_size")
    if rule == "last":
        return (rank == size - 1).cast("double")
    if rule == "first":
        return (rank == 0).cast("double")
    if rule == "linear":
        return F.lit(1.0) / size
    if rule == "position":
        first, middle, last = scaled_shares(config.position_shares)
        ends = F.when(rank == 0, F.lit(first)).otherwise(F.lit(last))
        return (F.when(size == 1, F.lit(1.0))
                .when(size == 2, ends / F.lit(first + last))
                .when((rank == 0) | (rank == size - 1), ends)
                .otherwise(F.lit(middle) / F.greatest(size - 2, F.lit(1))))
    # time_decay: ages from the youngest click of the journey, as `rules.credit` measures them.
    raw = F.pow(F.lit(2.0), -(F.col("age") - F.col("_youngest")) / F.lit(config.half_life))
    return raw / F.sum(raw).over(whole)


def _feature_codes(clicks, columns: tuple[str, ...], cache: Cache):
    """The clicks with `_code<g>` of every dda feature: codes in order of first appearance in
    the file (`pd.factorize`, as the in-memory engine codes them)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    missing = [c for c in columns if c not in clicks.columns or c == ROW]
    if missing:
        found = [c for c in clicks.columns if c != ROW]
        raise ConfigError(f"dda features {missing} are not click columns; the clicks have "
                          f"{found}")
    for g, column in enumerate(columns):
        first = clicks.groupBy(column).agg(F.min(ROW).alias("_first"))
        codes = cache(first.select(F.col(column).alias("_value"),
                                   (F.row_number().over(Window.orderBy("_first")) - 1)
                                   .alias(f"_code{g}")))
        clicks = clicks.join(codes, clicks[column].eqNullSafe(codes["_value"]), "left"
                             ).drop("_value")
    return clicks


def _design(rank, gap, codes: list[str]):
    """array<long> of a click: its theta index of `b` and of its cell (the first two columns of
    `dda.NoisyOrModel.design`), then its raw feature codes, which the driver turns into theta
    indices once it knows the cardinalities. `rank` is the click's 0-based position in its
    path, `gap` the time since the path's previous click."""
    from pyspark.sql import functions as F

    bucket = sum((gap > edge).cast("long") for edge in GAP_EDGES)
    cell = F.when(rank == 0, F.lit(REFERENCE)).otherwise(
        cell_term(F.least(rank, F.lit(POSITIONS - 1)), bucket))
    return F.array(*[c.cast("long") for c in (F.lit(BIAS), cell, *map(F.col, codes))])


def _with_dda(pairs, clicks, key: list[str], log: SparkLog, config: AttributionConfig,
              codes: list[str], cache: Cache, window: float):
    """The pairs (matched under `window`) with `_w_dda`, and the fitted model."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = pairs.sparkSession
    width = 2 + len(codes)
    design = pairs.withColumn("_design", _design(F.col("_rank"), F.col("_gap"), codes))
    journeys = design.groupBy("conversion").agg(F.sort_array(F.collect_list(
        F.struct("_rank", "_design"))).alias("_clicks"))
    journeys = journeys.select("conversion", F.flatten(F.transform(
        "_clicks", lambda click: click["_design"])).alias("_pattern"))
    # A pattern is named by the first conversion that has it.
    journeys = cache(journeys.withColumn("_pid", F.min("conversion").over(
        Window.partitionBy("_pattern"))))
    patterns = journeys.groupBy("_pid").agg(F.first("_pattern").alias("_pattern"),
                                            F.count(F.lit(1)).alias("n")).toPandas()
    other = _other_paths(clicks, pairs, ["user", "item"] if log.journey else key,
                         window, codes)
    # One pass: clicks per design row, and the lengths of the paths that end at them.
    other_rows = other.groupBy("_design", F.when(F.col("_end"), F.col("_rank") + 1)
                               .alias("_length")).agg(F.count(F.lit(1)).alias("n")).toPandas()
    other_design = np.stack([np.asarray(r, dtype=np.int64) for r in other_rows["_design"]]) \
        if len(other_rows) else np.zeros((0, width), np.int64)
    # Distinct patterns and design rows: the loops below run over aggregates, not clicks.
    flat = [np.asarray(p, dtype=np.int64) for p in patterns["_pattern"]]
    sizes = np.array([len(p) // width for p in flat], dtype=np.int64)
    ends = other_rows["_length"].dropna().to_numpy(dtype=np.int64)
    conv_design = (np.concatenate(flat) if flat else np.zeros(0, np.int64)).reshape(-1, width)
    # Every click is in a journey or in a non-converting path, so the codes seen are all of
    # them: 0..cardinality-1.
    seen = np.concatenate([conv_design[:, 2:], other_design[:, 2:]])
    cardinalities = tuple(int(c) + 1 for c in seen.max(axis=0)) if len(seen) else \
        (0,) * len(codes)
    for design in (conv_design, other_design):
        design[:, 2:] = feature_terms(design[:, 2:], cardinalities)
    counts = PathCounts(
        conv_design=conv_design, conv_pattern=np.repeat(np.arange(len(flat)), sizes),
        conv_count=patterns["n"].to_numpy(dtype=np.float64),
        other_design=other_design, other_count=other_rows["n"].to_numpy(dtype=np.float64),
        # A path's first click, and only it, has the reference cell.
        n_other=int(other_rows["n"][other_design[:, 1] == REFERENCE].sum()),
        lengths=np.unique(np.r_[sizes, ends]))
    terms, pattern_of = terms_from_counts(counts, cardinalities, l2=config.dda_l2)
    model = fit_terms(terms, cardinalities)
    shares = pattern_shares(terms, model)
    pattern_start = np.searchsorted(terms.conv_path, np.arange(terms.n_conv))
    rank = np.arange(len(counts.conv_pattern)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    lookup = spark.createDataFrame(pd.DataFrame({
        "_pid": np.repeat(patterns["_pid"].to_numpy(np.int64), sizes), "_rank": rank,
        "_w_dda": shares[pattern_start[pattern_of[counts.conv_pattern]] + rank]}),
        "_pid long, _rank long, _w_dda double")
    pairs = pairs.join(journeys.select("conversion", "_pid"), "conversion").join(
        F.broadcast(lookup), ["_pid", "_rank"])
    return pairs, model


def _other_paths(clicks, pairs, key: list[str], window: float, codes: list[str]):
    """Clicks outside every journey, split into paths as `journeys.split_paths` splits them
    (same key, consecutive clicks at most `window` apart), with their design rows; `_new`
    marks a path's first click and `_end` its last."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    outside = clicks.join(pairs.select("click_id").distinct(), "click_id", "left_anti")
    ordered = Window.partitionBy(*key).orderBy(*CLICK_ORDER)
    so_far = ordered.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    previous = F.lag("click_time").over(ordered)
    paths = outside.withColumns({
        "_gap": F.col("click_time") - previous,
        "_new": previous.isNull() | (F.col("click_time") - previous > window),
        "_n": F.row_number().over(ordered)})
    paths = paths.withColumns({
        "_rank": F.col("_n") - F.max(F.when(F.col("_new"), F.col("_n"))).over(so_far),
        "_end": F.coalesce(F.lead("_new").over(ordered), F.lit(True))})
    return paths.withColumn("_design", _design(F.col("_rank"), F.col("_gap"), codes))
