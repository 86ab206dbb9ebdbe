"""`malt simulate`: write a MAC-shaped simulated data set and print its label statistics."""

from __future__ import annotations

import argparse

from malt.commands._options import add_seed_flag, typed
from malt.typed_fields import PositiveInt

HELP = "simulate a MAC-shaped data set (tiny, small, medium or mac size) in the MAC layout"


def configure(parser: argparse.ArgumentParser) -> None:
    # The simulator's package (pandas, pyarrow) loads when this command runs.
    from malt.sources.simulate.config import SimulatedDays

    parser.add_argument("--size", default="small", choices=["tiny", "small", "medium", "mac"],
                        help="preset: tiny ~50k clicks (CI), small ~1M (the demo), medium ~10M, "
                             "mac ~79M over 21 days (default small)")
    parser.add_argument("--out", required=True, help="directory to write (train/, test/, vocabs/)")
    add_seed_flag(parser, "the simulation")
    parser.add_argument("--users", type=typed("--users", PositiveInt), default=None,
                        help="override the preset's users")
    parser.add_argument("--days", type=typed("--days", SimulatedDays), default=None,
                        help="override the preset's days (the last one is the test day; 2 to "
                             "100)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a data set already in --out")
    parser.add_argument("--scenario", default="mac", choices=["mac", "app-promotion"],
                        help="mac: MAC-shaped clicks with attribution labels (default); "
                             "app-promotion: campaigns with target actions and incomplete, "
                             "skewed conversion labels (KAML setting; writes schema.toml)")


def run(args: argparse.Namespace) -> int:
    if args.scenario == "app-promotion":
        return _app_promotion(args)
    from malt.sources.simulate import simulate, size_config

    config = size_config(args.size, users=args.users, days=args.days, seed=args.seed)
    print(f"simulating {config.users:,} users over {config.days} days (seed {config.seed}, "
          f"~{config.expected_clicks:,} clicks) -> {args.out}", flush=True)
    stats = simulate(config, args.out, overwrite=args.overwrite,
                     progress=lambda line: print(line, flush=True))
    print(stats.format())
    return 0


def _app_promotion(args: argparse.Namespace) -> int:
    from pathlib import Path

    from malt.data.schema import SCHEMA_FILE
    from malt.sources.simulate.app_promotion import simulate_app_promotion, size_config

    config = size_config(args.size, users=args.users, days=args.days, seed=args.seed)
    print(f"simulating {config.campaigns:,} app-promotion campaigns, {config.users:,} users "
          f"over {config.days} days (seed {config.seed}, {config.expected_clicks:,} clicks) -> "
          f"{args.out}", flush=True)
    stats = simulate_app_promotion(config, args.out, overwrite=args.overwrite,
                                   progress=lambda line: print(line, flush=True))
    print(stats.format())
    print(f"schema: {Path(args.out) / SCHEMA_FILE}")
    return 0
