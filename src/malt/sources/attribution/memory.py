"""The in-memory engine of `pipeline.attribute_logs`: pandas and numpy in this process
(`logs`, `engine`, `mac`)."""

from __future__ import annotations

import numpy as np

from malt.sources.attribution.engine import Attribution, AttributionConfig, attribute
from malt.sources.attribution.logs import ClickLog, read_criteo, read_generic
from malt.sources.attribution.mac import write_mac
from malt.sources.attribution.protocol import LabelStats


class MemoryEngine:
    """Reads the logs into a `ClickLog`, labels it with `engine.attribute`, writes the days
    with `mac.write_mac`."""

    def read(self, clicks, conversions, log_format):
        return read_criteo(clicks) if log_format == "criteo" else read_generic(clicks, conversions)

    def attribute(self, log: ClickLog, config: AttributionConfig) -> Attribution:
        return attribute(log, config)

    def write(self, stage, log, labelled: Attribution, schema):
        return write_mac(stage, log, labelled.labels, schema, labelled.known_at)

    def statistics(self, log: ClickLog, labelled: Attribution) -> LabelStats:
        return LabelStats(
            n_clicks=len(log.clicks), n_conversions=len(log.conversions),
            attributed_conversions=labelled.attributed_conversions, pairs=len(labelled.journeys),
            positive_ratio={r: float(np.mean(w > 0)) for r, w in labelled.labels.items()},
            weight_sum={r: float(w.sum()) for r, w in labelled.labels.items()})
