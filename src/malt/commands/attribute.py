"""`malt attribute`: label raw clicks under several attribution rules, in the MAC layout."""

from __future__ import annotations

import argparse

from malt.commands._options import add_options, read_options

HELP = "attribute conversions to clicks (raw logs -> MAC-layout data set with one label per rule)"


def configure(parser: argparse.ArgumentParser) -> None:
    from malt.sources.attribution.config import AttributeOptions

    add_options(parser, AttributeOptions)


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from malt.sources.attribution.config import AttributeOptions
    from malt.sources.attribution.pipeline import attribute_logs

    options = read_options(args, AttributeOptions)
    started = time.perf_counter()
    report = attribute_logs(options.clicks, options.conversions, options.out,
                            options.attribution(), log_format=options.format,
                            name=options.name, user_fields=options.user_fields,
                            ad_fields=options.ad_fields, overwrite=options.overwrite,
                            engine=options.engine, master=options.master,
                            impressions=options.impressions)
    elapsed = time.perf_counter() - started
    out = Path(options.out)
    journeys = "given" if report.journeys_given else report.mode
    if report.n_impressions is not None:
        print(f"{report.n_impressions:,} impressions, {report.n_clicks:,} of them clicked")
    print(f"{report.n_clicks:,} clicks, {report.n_conversions:,} conversions, "
          f"{report.attributed_conversions:,} with at least one click in the "
          f"{options.window:g}-day window ({journeys} journeys); mean journey "
          f"{report.mean_journey:.2f} clicks")
    width = max(len(r) for r in report.rules)
    print(f"{'rule'.ljust(width)}  positive%  weight sum")
    for rule in report.rules:
        print(f"{rule.ljust(width)}  {100 * report.positive_ratio[rule]:9.3f}  "
              f"{report.weight_sum[rule]:10.2f}")
    train = sum(d["split"] == "train" for d in report.days)
    rows = "impressions" if report.n_impressions is not None else "rows"
    print(f"wrote {train} train day(s) and 1 test day ({sum(d['rows'] for d in report.days):,} "
          f"{rows}) to {out} in {elapsed:.1f}s; read it with: malt prepare --data {out}")
    return 0
