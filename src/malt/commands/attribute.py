"""`malt attribute`: label raw clicks under several attribution rules, in the MAC layout."""

from __future__ import annotations

import argparse

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
                        help="input layout (see malt.data.attribution.logs); default generic")
    parser.add_argument("--rules", type=_names, default="last,first,linear,position,time_decay,dda",
                        help="comma-separated rules, also the label column names: last, first, "
                             "linear, position, time_decay, dda (default all)")
    parser.add_argument("--window-days", type=float, default=None,
                        help="attribution window in days (default 7; 30 for criteo, whose "
                             "log spans 30 days, so that every journey it names is kept)")
    parser.add_argument("--mode", choices=["direct", "indirect-shop", "indirect-any"],
                        default="direct",
                        help="which clicks a conversion credits: same item (direct, default), "
                             "same shop, or any item of the user (generic only)")
    parser.add_argument("--half-life-days", type=float, default=7.0,
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
    parser.add_argument("--name", default=None, help="schema name (default: the output folder)")
    parser.add_argument("--out", required=True, help="output directory (MAC layout)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the day and vocab files of an earlier output in --out")


def run(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    from malt.data.attribution.engine import AttributionConfig, attribute
    from malt.data.attribution.journeys import DAY
    from malt.data.attribution.logs import read_criteo, read_generic
    from malt.data.attribution.mac import build_schema, write_mac
    from malt.errors import ConfigError
    from malt.outputs import DATA_KIND, OutputDir, atomic_write_text, staged_output

    out = Path(args.out)
    if args.format == "generic" and args.conversions is None:
        raise ConfigError("--conversions is required with --format generic")
    if args.format == "criteo" and args.conversions is not None:
        raise ConfigError("--format criteo reads clicks and conversions from the --clicks file; "
                          "drop --conversions")
    if args.format == "criteo" and args.mode != "direct":
        raise ConfigError("the Criteo layout names each click's conversion; --mode does not apply")
    OutputDir(out, DATA_KIND).check_writable(overwrite=args.overwrite)
    window_days = args.window_days if args.window_days is not None else \
        (30.0 if args.format == "criteo" else 7.0)
    config = AttributionConfig(rules=args.rules, window=window_days * DAY, mode=args.mode,
                               half_life=args.half_life_days * DAY,
                               position_shares=args.position_shares,
                               dda_features=args.dda_features)

    started = time.perf_counter()
    log = read_criteo(args.clicks) if args.format == "criteo" else \
        read_generic(args.clicks, args.conversions)
    schema = build_schema(log, config.rules, name=args.name or out.resolve().name,
                          user_fields=args.user_fields, ad_fields=args.ad_fields)
    result = attribute(log, config)
    with staged_output(out, DATA_KIND, overwrite=args.overwrite) as stage:
        days = write_mac(stage, log, result.labels, schema)
        summary = _summary(args, config, window_days, log, result, stage, days)
        atomic_write_text(stage / "attribution.json", json.dumps(summary, indent=1))
    elapsed = time.perf_counter() - started

    n_clicks, n_conv = len(log.clicks), len(log.conversions)
    sizes = result.journeys.sizes
    attributed = result.attributed_conversions
    print(f"{n_clicks:,} clicks, {n_conv:,} conversions, {attributed:,} with at least one click "
          f"in the {window_days:g}-day window ({config.mode if not log.journey else 'given'} "
          f"journeys); mean journey {sizes[sizes > 0].mean() if attributed else 0:.2f} clicks")
    width = max(len(r) for r in config.rules)
    print(f"{'rule'.ljust(width)}  positive%  weight sum")
    for rule in config.rules:
        print(f"{rule.ljust(width)}  {100 * summary['positive_ratio'][rule]:9.3f}  "
              f"{summary['weight_sum'][rule]:10.2f}")
    train = sum(d.split == "train" for d in days)
    print(f"wrote {train} train day(s) and 1 test day ({sum(d.rows for d in days):,} rows) to "
          f"{out} in {elapsed:.1f}s; read it with: malt prepare --data {out} "
          f"--schema {out / 'schema.toml'}")
    return 0


def _summary(args: argparse.Namespace, config, window_days: float, log, result, out, days
             ) -> dict:
    """What `attribution.json` records: the inputs, the settings and the label statistics."""
    import numpy as np

    return {
        "format": args.format, "clicks": args.clicks, "conversions": args.conversions,
        "rules": list(config.rules), "window_days": window_days, "mode": config.mode,
        "half_life_days": args.half_life_days, "position_shares": list(config.position_shares),
        "dda_features": list(config.dda_features),
        "n_clicks": len(log.clicks), "n_conversions": len(log.conversions),
        "attributed_conversions": result.attributed_conversions,
        "positive_ratio": {r: float(np.mean(w > 0)) for r, w in result.labels.items()},
        "weight_sum": {r: float(w.sum()) for r, w in result.labels.items()},
        "days": [{"split": d.split, "file": str(d.path.relative_to(out)), "rows": d.rows}
                 for d in days],
    }
