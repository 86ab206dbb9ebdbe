"""`malt prepare`: validate a data set in the MAC layout, cache it, and summarise it."""

from __future__ import annotations

import argparse

HELP = "validate and cache a data set (MAC layout) and print its summary"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="data directory (train/, test/, vocabs/)")
    parser.add_argument("--schema", default=None, help="schema file (.toml/.yaml); default MAC")
    parser.add_argument("--cache", default=None, help="cache directory (default DATA/.malt_cache)")
    parser.add_argument("--rebuild", action="store_true", help="ignore and rebuild the cache")
    parser.add_argument("--workers", type=int, default=None,
                        help="conversion threads (default: CPU cores, at most 4)")


def run(args: argparse.Namespace) -> int:
    from malt.data import prepare, schema_for
    from malt.data.summary import format_summary

    def report(day) -> None:
        how = "converted" if day.built else "cached"
        print(f"  {day.split}/{day.name}: {day.rows:,} rows ({how})", flush=True)

    dataset = prepare(args.data, schema_for(args.data, args.schema), args.cache,
                      rebuild=args.rebuild, workers=args.workers, progress=report)
    print(format_summary(dataset))
    return 0
