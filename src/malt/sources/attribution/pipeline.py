"""Raw logs to a MAC-layout data set: read the logs, attribute, write days, vocabs and schema.

`attribute_logs` is the whole of `malt attribute`, on either engine (`memory`, or on Spark:
`spark.pipeline`; what both provide is `protocol.Engine`): the output is checked before anything
is read, built in a hidden sibling of `out` and moved into place when complete (see
`malt.outputs.staged_output`), and `out/attribution.json` records the inputs, the settings
and the label statistics (what `AttributionReport` holds).
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import get_args

from malt.errors import ConfigError
from malt.outputs import DATA_KIND, OutputDir, atomic_write_text, staged_output
from malt.sources.attribution.config import DAY, AttributionConfig, EngineName, LogFormat
from malt.sources.attribution.mac import build_schema, float_columns, numeric_line
from malt.sources.attribution.memory import MemoryEngine

logger = logging.getLogger(__name__)

ENGINES = get_args(EngineName)
REPORT_FILE = "attribution.json"


@dataclass(frozen=True)
class AttributionReport:
    """What an attribution wrote, and the statistics of its labels."""

    engine: str
    format: str
    clicks: str
    conversions: str | None
    rules: list[str]
    window_days: float
    view_windows_days: list[float]
    """Further windows: each of `view_rules` is also the label `<rule>_<days>d` under each."""
    view_rules: list[str]
    labels: list[str]
    """Every label column written (each with its `<label>_known_at` column)."""
    mode: str
    journeys_given: bool
    """The log names each click's conversion (Criteo), so `mode` did not apply."""
    half_life_days: float
    position_shares: list[float]
    dda_features: list[str]
    n_clicks: int
    n_conversions: int
    attributed_conversions: int
    mean_journey: float
    """Clicks per conversion that has at least one."""
    positive_ratio: dict[str, float]
    weight_sum: dict[str, float]
    days: list[dict]
    """Split, file (relative to the output) and rows of every written day."""
    impressions: str | None = None
    """The impression table of impression-level output (None: one row per click)."""
    n_impressions: int | None = None
    """The impressions written, clicked or not (None: one row per click)."""


def attribute_logs(clicks: str | Path | None, conversions: str | Path | None, out: str | Path,
                   config: AttributionConfig, *, log_format: LogFormat = "generic",
                   name: str | None = None, user_fields: tuple[str, ...] = (),
                   ad_fields: tuple[str, ...] = (), overwrite: bool = False,
                   engine: EngineName = "memory", master: str | None = None,
                   impressions: str | Path | None = None) -> AttributionReport:
    """Attribute the logs under every rule of `config` and write the MAC layout to `out`.

    `engine`: "memory" (pandas and numpy) or "spark" (PySpark DataFrames, on the session of
    `spark.session.spark_session(master)`); both write the same output. `impressions`: the
    impression table, whose every row is written (see `logs`), clicked or not, with the
    labels of its clicks; for the Criteo layout, the Criteo file read as impressions, in place
    of `clicks`."""
    out = Path(out)
    if engine not in ENGINES:
        raise ConfigError(f"unknown attribution engine '{engine}', expected one of {ENGINES}")
    if log_format == "generic" and conversions is None:
        raise ConfigError("--conversions is required with --format generic")
    if log_format == "criteo" and conversions is not None:
        raise ConfigError("--format criteo reads clicks and conversions from the --clicks file; "
                          "drop --conversions")
    if log_format == "criteo" and config.mode != "direct":
        raise ConfigError("the Criteo layout names each click's conversion; --mode does not apply")
    if log_format == "criteo" and impressions is not None:
        if clicks is not None:
            raise ConfigError("--format criteo --impressions FILE reads the clicks from FILE "
                              "(its rows with click = 1): drop --clicks")
        clicks = impressions
    if clicks is None:
        raise ConfigError("--clicks is required (with --format criteo, or --impressions for "
                          "impression-level output)")
    if master is not None and engine != "spark":
        raise ConfigError("--master only applies to --engine spark")
    OutputDir(out, DATA_KIND).check_writable(overwrite=overwrite)
    if engine == "memory":
        runner = contextlib.nullcontext(MemoryEngine())
    else:
        from malt.sources.attribution.spark.pipeline import spark_engine

        runner = spark_engine(master)
    with runner as chosen:
        log = chosen.read(clicks, conversions, log_format, impressions)
        schema = build_schema(log, config.labels, name=name or out.resolve().name,
                              user_fields=user_fields, ad_fields=ad_fields,
                              impressions=impressions is not None)
        floats = float_columns(log)
        labelled = chosen.attribute(log, config)
        with staged_output(out, DATA_KIND, overwrite=overwrite) as stage:
            days = chosen.write(stage, log, labelled, schema)
            stats = chosen.statistics(log, labelled)
            report = AttributionReport(
                engine=engine, format=log_format, clicks=str(clicks),
                conversions=None if conversions is None else str(conversions),
                rules=list(config.rules), window_days=config.window / DAY,
                view_windows_days=[w / DAY for w in config.view_windows],
                view_rules=list(config.rules if config.view_rules is None
                                else config.view_rules),
                labels=list(config.labels), mode=config.mode,
                journeys_given=bool(log.journey), half_life_days=config.half_life / DAY,
                position_shares=list(config.position_shares),
                dda_features=list(config.dda_features), n_clicks=stats.n_clicks,
                n_conversions=stats.n_conversions,
                attributed_conversions=stats.attributed_conversions,
                mean_journey=stats.mean_journey, positive_ratio=stats.positive_ratio,
                weight_sum=stats.weight_sum,
                days=[{"split": d.split, "file": str(d.path.relative_to(stage)), "rows": d.rows}
                      for d in days],
                impressions=None if impressions is None else str(impressions),
                n_impressions=stats.n_impressions)
            atomic_write_text(stage / REPORT_FILE,
                              json.dumps(asdict(report), indent=1, allow_nan=False))
    if floats:
        logger.warning("float click columns are written but are not features (the schema lists "
                       "them under ignore_columns): %s. To train on them, take them out of "
                       "ignore_columns in %s and add the line `%s` (the schema holds it, "
                       "commented)", ", ".join(floats), out / "schema.toml", numeric_line(floats))
    return report
