"""A MAC-shaped click simulator: every column of the MAC release, with journeys, purchases and
attribution labels that behave like MAC's (see `malt.sources.simulate.journeys` for the story).

    from malt.sources.simulate import simulate, size_config
    stats = simulate(size_config("small", seed=1), "data/sim")
    print(stats.format())

The names below load their module when first used, so that `options` (the command's flags)
loads without pandas.
"""

from importlib import import_module
from typing import Any

_HOME = {"SIZES": "config", "Params": "config", "SimConfig": "config", "size_config": "config",
         "simulate": "dataset", "MAC_RATIOS": "stats", "SimStats": "stats"}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
