"""A MAC-shaped click simulator: every column of the MAC release, with journeys, purchases and
attribution labels that behave like MAC's (see `malt.data.simulate.journeys` for the story).

    from malt.data.simulate import simulate, size_config
    stats = simulate(size_config("small", seed=1), "data/sim")
    print(stats.format())
"""

from malt.data.simulate.config import SIZES, Params, SimConfig, size_config
from malt.data.simulate.dataset import simulate
from malt.data.simulate.stats import MAC_RATIOS, SimStats

__all__ = ["MAC_RATIOS", "SIZES", "Params", "SimConfig", "SimStats", "simulate", "size_config"]
