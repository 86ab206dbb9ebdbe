"""`malt simulate`: write a MAC-shaped simulated data set and print its label statistics."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from malt.commands._options import add_options, read_options

if TYPE_CHECKING:
    from malt.sources.simulate.options import SimulateOptions

HELP = "simulate a MAC-shaped data set (tiny, small, medium or mac size) in the MAC layout"


def configure(parser: argparse.ArgumentParser) -> None:
    from malt.sources.simulate.options import SimulateOptions

    add_options(parser, SimulateOptions)


def run(args: argparse.Namespace) -> int:
    from malt.sources.simulate.options import SimulateOptions

    options = read_options(args, SimulateOptions)
    if options.scenario == "app-promotion":
        return _app_promotion(options)
    from malt.sources.simulate import simulate, size_config

    config = size_config(options.size, users=options.users, days=options.days,
                         seed=options.seed, purchase_delay=options.delays)
    print(f"simulating {config.users:,} users over {config.days} days (seed {config.seed}, "
          f"~{config.expected_clicks:,} clicks) -> {options.out}", flush=True)
    stats = simulate(config, options.out, overwrite=options.overwrite,
                     progress=lambda line: print(line, flush=True),
                     impressions=options.impressions)
    print(stats.format())
    return 0


def _app_promotion(options: SimulateOptions) -> int:
    from pathlib import Path

    from malt.data.schema import SCHEMA_FILE
    from malt.errors import ConfigError
    from malt.sources.simulate.app_promotion import simulate_app_promotion, size_config

    if options.delays != "session":
        raise ConfigError("--delays applies to the mac scenario only")
    if options.impressions:
        raise ConfigError("--impressions applies to the mac scenario only")
    config = size_config(options.size, users=options.users, days=options.days, seed=options.seed)
    print(f"simulating {config.campaigns:,} app-promotion campaigns, {config.users:,} users "
          f"over {config.days} days (seed {config.seed}, {config.expected_clicks:,} clicks) -> "
          f"{options.out}", flush=True)
    stats = simulate_app_promotion(config, options.out, overwrite=options.overwrite,
                                   progress=lambda line: print(line, flush=True))
    print(stats.format())
    print(f"schema: {Path(options.out) / SCHEMA_FILE}")
    return 0
