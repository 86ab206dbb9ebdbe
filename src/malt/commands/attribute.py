"""`malt attribute`: label raw clicks under several attribution rules, in the MAC layout."""

from __future__ import annotations

import argparse
from typing import Annotated

from malt.commands._options import typed
from malt.typed_fields import Above, PositiveFloat

WindowDays = Annotated[float, Above(0, infinite=True)]
"""The attribution window in days: > 0, `inf` for none."""

HELP = "attribute conversions to clicks (raw logs -> MAC-layout data set with one label per rule)"


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _shares(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.4,0.2,0.4, got {text!r}")
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.4,0.2,0.4, got {text!r}")
    return values


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clicks", required=True,
                        help="click table (generic) or impression file (criteo): parquet, csv "
                             "or tsv, optionally gzipped")
    parser.add_argument("--conversions", default=None, help="conversion table (generic only)")
    parser.add_argument("--format", choices=["generic", "criteo"], default="generic",
                        help="input layout (see malt.sources.attribution.logs); default generic")
    parser.add_argument("--rules", type=_names, default="last,first,linear,position,time_decay,dda",
                        help="comma-separated rules, also the label column names: last, first, "
                             "linear, position, time_decay, dda (default all)")
    parser.add_argument("--window-days", default=None,
                        type=typed("--window-days", WindowDays),
                        help="attribution window in days (default 7; 30 for criteo, whose "
                             "log spans 30 days, so that every journey it names is kept)")
    parser.add_argument("--mode", choices=["direct", "indirect-shop", "indirect-any"],
                        default="direct",
                        help="which clicks a conversion credits: same item (direct, default), "
                             "same shop, or any item of the user (generic only)")
    parser.add_argument("--half-life-days", type=typed("--half-life-days", PositiveFloat),
                        default=7.0,
                        help="half-life of the time_decay rule in days (default 7)")
    parser.add_argument("--position-shares", type=_shares, default=(0.4, 0.2, 0.4),
                        help="first,middle,last shares of the position rule (default 0.4,0.2,0.4)")
    parser.add_argument("--dda-features", type=_names, default=(),
                        help="comma-separated click columns the dda model uses besides "
                             "path length and the gap since the previous click (default none)")
    parser.add_argument("--user-fields", type=_names, default=(),
                        help="click feature columns to put in the user group of the schema")
    parser.add_argument("--ad-fields", type=_names, default=(),
                        help="click feature columns to put in the ad group (item and shop "
                             "always are); the other features form the context group")
    parser.add_argument("--engine", choices=["memory", "spark"], default="memory",
                        help="memory: pandas and numpy in this process (default); spark: PySpark "
                             "DataFrames (pip install 'malt[spark]'), same output, for logs "
                             "beyond one machine's memory or on hdfs:// / s3a:// paths")
    parser.add_argument("--master", default=None,
                        help="Spark master URL of --engine spark (default: spark-submit's "
                             "master when run under it, else local[*])")
    parser.add_argument("--name", default=None, help="schema name (default: the output folder)")
    parser.add_argument("--out", required=True, help="output directory (MAC layout)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the day and vocab files of an earlier output in --out")


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from malt.sources.attribution.engine import AttributionConfig
    from malt.sources.attribution.journeys import DAY
    from malt.sources.attribution.pipeline import attribute_logs, default_window_days

    window_days = args.window_days if args.window_days is not None else \
        default_window_days(args.format)
    config = AttributionConfig(rules=args.rules, window=window_days * DAY, mode=args.mode,
                               half_life=args.half_life_days * DAY,
                               position_shares=args.position_shares,
                               dda_features=args.dda_features)
    started = time.perf_counter()
    report = attribute_logs(args.clicks, args.conversions, args.out, config,
                            log_format=args.format, name=args.name,
                            user_fields=args.user_fields, ad_fields=args.ad_fields,
                            overwrite=args.overwrite, engine=args.engine, master=args.master)
    elapsed = time.perf_counter() - started
    out = Path(args.out)
    journeys = "given" if report.journeys_given else report.mode
    print(f"{report.n_clicks:,} clicks, {report.n_conversions:,} conversions, "
          f"{report.attributed_conversions:,} with at least one click in the "
          f"{window_days:g}-day window ({journeys} journeys); mean journey "
          f"{report.mean_journey:.2f} clicks")
    width = max(len(r) for r in report.rules)
    print(f"{'rule'.ljust(width)}  positive%  weight sum")
    for rule in report.rules:
        print(f"{rule.ljust(width)}  {100 * report.positive_ratio[rule]:9.3f}  "
              f"{report.weight_sum[rule]:10.2f}")
    train = sum(d["split"] == "train" for d in report.days)
    print(f"wrote {train} train day(s) and 1 test day ({sum(d['rows'] for d in report.days):,} "
          f"rows) to {out} in {elapsed:.1f}s; read it with: malt prepare --data {out}")
    return 0
