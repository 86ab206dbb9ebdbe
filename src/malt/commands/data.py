"""`malt data`: build and inspect incomplete multi-label data sets (KAML setting).

    malt data kuairand-sim --raw KuaiRand-Pure/ --out data/kuairand   # the paper's recipe
    malt data coverage --data data/app --schema data/app/schema.toml  # its Table 1
    malt data truth --data data/sim      # attribution rules against the simulated truth
"""

from __future__ import annotations

import argparse

from malt.commands._options import add_options, add_run_options, read_options
from malt.data.options import CoverageOptions
from malt.eval.truth_options import TruthOptions
from malt.sources.kuairand_options import KuaiRandOptions, KuaiRandSimOptions

HELP = ("incomplete multi-label data: KuaiRand-Pure recipe (kuairand-sim), mask coverage; "
        "attribution labels against the simulated truth")

COVERAGE_FIELDS = [("data", "path"), ("data", "schema"), ("data", "train_days"),
                   ("task", "adm_window"), ("task", "adm_window_days"), ("task", "adm_alpha"),
                   ("task", "adm_alpha_per_action")]
"""The run settings `malt data coverage` reads: the data and ADM's options."""


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    k = sub.add_parser("kuairand-sim", help="turn the KuaiRand-Pure files into KAML-style data "
                                            "(KAML paper §4.2.2); nothing is downloaded")
    add_options(k, KuaiRandSimOptions)
    add_options(k, KuaiRandOptions)

    c = sub.add_parser("coverage", help="share of training rows each mask trains per action "
                                        "(KAML paper Table 1)")
    add_run_options(c, COVERAGE_FIELDS, model=False)
    add_options(c, CoverageOptions)

    t = sub.add_parser("truth", help="how far each attribution label lies from the clicks' "
                                     "true credit (simulated data)")
    add_options(t, TruthOptions)


def run(args: argparse.Namespace) -> int:
    if args.action == "kuairand-sim":
        return _kuairand(args)
    if args.action == "truth":
        return _truth(args)
    return _coverage(args)


def _kuairand(args: argparse.Namespace) -> int:
    from malt.sources.kuairand import build_kuairand

    where = read_options(args, KuaiRandSimOptions)
    report = build_kuairand(where.raw, where.out, read_options(args, KuaiRandOptions),
                            overwrite=where.overwrite,
                            progress=lambda line: print(line, flush=True))
    print(report.format())
    print(f"schema: {where.out}/schema.toml")
    return 0


def _coverage(args: argparse.Namespace) -> int:
    from malt.commands._options import resolve_config
    from malt.data.masks import coverage_report, format_coverage
    from malt.training.builder import adm_options, open_dataset, training_days

    config = resolve_config(args)
    masks = read_options(args, CoverageOptions).masks
    dataset = open_dataset(config.data)
    days = training_days(dataset, config.data)
    adm = adm_options(config.task)
    print(format_coverage(coverage_report(dataset.schema, days, adm, masks)))
    print(f"{sum(d.rows for d in days):,} training rows over {len(days)} day(s); "
          f"ADM: {adm.describe()}")
    return 0


def _truth(args: argparse.Namespace) -> int:
    from malt.data.layout import find_layout
    from malt.data.schema import schema_for
    from malt.eval.truth import format_attribution, score_rules

    options = read_options(args, TruthOptions)
    layout = find_layout(options.data, vocabs=False)
    files = {"all": layout.days, "train": layout.train, "test": layout.test}[options.split]
    print(format_attribution(score_rules(schema_for(options.data, options.schema), files)))
    print(f"{len(files)} day file(s) of {options.data} ({options.split})")
    return 0
