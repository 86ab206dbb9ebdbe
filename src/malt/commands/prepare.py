"""`malt prepare`: validate a data set in the MAC layout, cache it, and summarise it."""

from __future__ import annotations

import argparse

from malt.commands._options import typed
from malt.typed_fields import NonNegativeInt, PositiveInt

HELP = "validate and cache a data set (MAC layout) and print its summary"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="data directory (train/, test/, vocabs/)")
    parser.add_argument("--schema", default=None, help="schema file (.toml/.yaml); default MAC")
    parser.add_argument("--cache", default=None, help="cache directory (default DATA/.malt_cache)")
    parser.add_argument("--rebuild", action="store_true", help="ignore and rebuild the cache")
    parser.add_argument("--workers", type=typed("--workers", PositiveInt), default=None,
                        help="conversion threads (default: CPU cores, at most 4)")
    vocabs = parser.add_argument_group("vocabularies from the data")
    vocabs.add_argument("--build-vocabs", action="store_true",
                        help="write vocabs/<field>.json for every field that has none, from the "
                             "training days only")
    vocabs.add_argument("--min-count", type=typed("--min-count", PositiveInt), default=1,
                        help="ids seen fewer times get no row of their own (the OOV row) "
                             "(default 1)")
    vocabs.add_argument("--vocab-held-out-days", default=0, metavar="K",
                        type=typed("--vocab-held-out-days", NonNegativeInt),
                        help="leave the last K training days out of the counts, the days a "
                             "validation protocol (--validation-days K) scores (default 0)")


def run(args: argparse.Namespace) -> int:
    from malt.data import prepare, schema_for
    from malt.data.summary import format_summary

    def report(day) -> None:
        how = "converted" if day.built else "cached"
        print(f"  {day.split}/{day.name}: {day.rows:,} rows ({how})", flush=True)

    schema = schema_for(args.data, args.schema)
    built = []
    if args.build_vocabs:
        from malt.data.vocab_build import build_vocabs

        built = build_vocabs(args.data, schema, min_count=args.min_count,
                             held_out=args.vocab_held_out_days)
        for vocab in built:
            print(f"  vocabs/{vocab.column}.json: {vocab.ids:,} ids ({vocab.rare:,} seen fewer "
                  f"than {args.min_count} times go to the OOV row)", flush=True)
        if not built:
            print("  every field has its vocab already", flush=True)
    dataset = prepare(args.data, schema, args.cache, rebuild=args.rebuild,
                      workers=args.workers, progress=report)
    print(format_summary(dataset))
    if built and dataset.test:
        rows = sum(d.rows for d in dataset.test)
        hits = {v.column: sum(d.stats.oov.get(v.column, 0) for d in dataset.test) for v in built}
        print("test rows with an out-of-vocabulary id: " + ", ".join(
            f"{c} {n:,} ({100 * n / rows:.1f}%)" for c, n in hits.items()))
    return 0
