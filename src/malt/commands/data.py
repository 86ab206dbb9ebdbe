"""`malt data`: build and inspect incomplete multi-label data sets (KAML setting).

    malt data kuairand-sim --raw KuaiRand-Pure/ --out data/kuairand   # the paper's recipe
    malt data coverage --data data/app --schema data/app/schema.toml  # its Table 1
"""

from __future__ import annotations

import argparse

HELP = "incomplete multi-label data: KuaiRand-Pure recipe (kuairand-sim), mask coverage"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    k = sub.add_parser("kuairand-sim", help="turn the KuaiRand-Pure files into KAML-style data "
                                            "(KAML paper §4.2.2); nothing is downloaded")
    k.add_argument("--raw", required=True,
                   help="directory holding the KuaiRand-Pure CSV files (or their data/ folder)")
    k.add_argument("--out", required=True, help="directory to write (MAC layout + schema.toml)")
    k.add_argument("--seed", type=int, default=0,
                   help="drives negative sampling, targets and reported actions (default 0)")
    k.add_argument("--neg-keep-rate", default="auto",
                   help="keep-probability of all-zero rows, or auto (about --target-rows rows)")
    k.add_argument("--target-rows", type=int, default=900_000,
                   help="rows left by --neg-keep-rate auto (default 900,000, the paper's size)")
    k.add_argument("--no-sample-test", action="store_true",
                   help="keep every all-zero row of the test period")
    k.add_argument("--reported-per", choices=["video", "row"], default="video",
                   help="draw the two extra reported actions per video (default) or per row")
    k.add_argument("--random-log", action="store_true",
                   help="also read log_random_4_22_to_5_08_pure.csv")
    k.add_argument("--overwrite", action="store_true", help="replace a data set in --out")

    c = sub.add_parser("coverage", help="share of training rows each mask trains per action "
                                        "(KAML paper Table 1)")
    c.add_argument("--data", required=True, help="data directory in the MAC layout")
    c.add_argument("--schema", help="schema file (default DATA/schema.toml when present)")
    c.add_argument("--masks", nargs="+", default=None,
                   choices=["base", "adm", "reported"],
                   help="masks to report (default: adm, and reported when the data has it)")
    c.add_argument("--train-days", type=int, help="use only the first N training days")
    c.add_argument("--adm-window", choices=["trailing", "static"], default="trailing")
    c.add_argument("--adm-window-days", type=int, default=7)
    c.add_argument("--adm-alpha", type=float, default=10.0)
    c.add_argument("--adm-alpha-for", action="append", default=[], metavar="ACTION=ALPHA")
    c.add_argument("--seed", type=int, default=0, help="unused (no randomness); accepted for "
                                                       "uniformity")


def run(args: argparse.Namespace) -> int:
    if args.action == "kuairand-sim":
        return _kuairand(args)
    return _coverage(args)


def _kuairand(args: argparse.Namespace) -> int:
    from malt.data.kuairand import KuaiRandOptions, build_kuairand
    from malt.errors import ConfigError

    if args.neg_keep_rate == "auto":
        rate = None
    else:
        try:
            rate = float(args.neg_keep_rate)
        except ValueError:
            raise ConfigError(f"--neg-keep-rate must be a number or auto, got "
                              f"{args.neg_keep_rate!r}") from None
    options = KuaiRandOptions(seed=args.seed, neg_keep_rate=rate, target_rows=args.target_rows,
                              sample_test=not args.no_sample_test,
                              reported_per=args.reported_per, random_log=args.random_log)
    report = build_kuairand(args.raw, args.out, options, overwrite=args.overwrite,
                            progress=lambda line: print(line, flush=True))
    print(report.format())
    print(f"schema: {args.out}/schema.toml")
    return 0


def _coverage(args: argparse.Namespace) -> int:

    from malt.commands._options import given_overrides
    from malt.data import prepare, schema_for
    from malt.data.masks import AdmOptions, MaskPolicy, coverage, format_coverage

    dataset = prepare(args.data, schema_for(args.data, args.schema))
    schema = dataset.schema
    days = dataset.train[:args.train_days] if args.train_days else dataset.train
    per_action = given_overrides(args).get("task", {}).get("adm_alpha_per_action", {})
    adm = AdmOptions(window=args.adm_window, window_days=args.adm_window_days,
                     alpha=args.adm_alpha, alpha_per_action=per_action)
    masks = args.masks or ["adm", *(["reported"] if schema.reported_labels else [])]
    report: dict[str, dict[str, float]] = {}
    for name in masks:
        policy = MaskPolicy(name, schema, days, adm)
        report |= coverage(policy, days, schema.labels)
    print(format_coverage(report))
    print(f"{sum(d.rows for d in days):,} training rows over {len(days)} day(s); ADM: "
          f"{adm.window} window" + (f" of {adm.window_days} days" if adm.window == "trailing"
                                   else "") + f", α = {adm.alpha:g}"
          + "".join(f", α[{a}] = {v:g}" for a, v in per_action.items()))
    return 0
