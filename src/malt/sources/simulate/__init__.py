"""A MAC-shaped click simulator: every column of the MAC release, with journeys, purchases and
attribution labels that behave like MAC's (see `malt.sources.simulate.journeys` for the story).

    from malt.sources.simulate import simulate, size_config
    stats = simulate(size_config("small", seed=1), "data/sim")
    print(stats.format())
"""

from malt.sources.simulate.config import SIZES, Params, SimConfig, size_config
from malt.sources.simulate.dataset import simulate
from malt.sources.simulate.stats import MAC_RATIOS, SimStats

__all__ = ["MAC_RATIOS", "SIZES", "Params", "SimConfig", "SimStats", "simulate", "size_config"]
