"""`malt prepare`: validate a data set in the MAC layout, cache it, and summarise it."""

from __future__ import annotations

import argparse

from malt.commands._options import add_options, read_options
from malt.data.options import PrepareOptions

HELP = "validate and cache a data set (MAC layout) and print its summary"


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, PrepareOptions)


def run(args: argparse.Namespace) -> int:
    from malt.data import prepare, schema_for
    from malt.data.summary import format_summary

    def report(day) -> None:
        how = "converted" if day.built else "cached"
        print(f"  {day.split}/{day.name}: {day.rows:,} rows ({how})", flush=True)

    options = read_options(args, PrepareOptions)
    schema = schema_for(options.data, options.schema)
    built = []
    if options.build_vocabs:
        from malt.data.vocab_build import build_vocabs

        built = build_vocabs(options.data, schema, min_count=options.min_count,
                             held_out=options.vocab_held_out_days)
        for vocab in built:
            print(f"  vocabs/{vocab.column}.json: {vocab.ids:,} ids ({vocab.rare:,} seen fewer "
                  f"than {options.min_count} times go to the OOV row)", flush=True)
        if not built:
            print("  every field has its vocab already", flush=True)
    dataset = prepare(options.data, schema, options.cache, rebuild=options.rebuild,
                      workers=options.workers, progress=report)
    print(format_summary(dataset))
    if options.as_of is not None:
        from malt.data.as_of import parse_as_of
        from malt.data.summary import format_as_of

        print(format_as_of(dataset, parse_as_of(options.as_of)))
    if built and dataset.test:
        rows = sum(d.rows for d in dataset.test)
        columns = [v.column for v in built]
        # A sequence's items go through the vocab of the field it shares.
        columns += [q.name for q in schema.id_sequences if q.shares in columns]
        hits = {c: sum(d.stats.oov.get(c, 0) for d in dataset.test) for c in columns}
        print("test rows with an out-of-vocabulary id: " + ", ".join(
            f"{c} {n:,} ({100 * n / rows:.1f}%)" for c, n in hits.items()))
    return 0
