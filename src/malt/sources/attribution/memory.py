"""The in-memory engine of `pipeline.attribute_logs`: pandas and numpy in this process
(`logs`, `engine`, `mac`)."""

from __future__ import annotations

import numpy as np

from malt.sources.attribution.engine import Attribution, AttributionConfig, attribute
from malt.sources.attribution.logs import (
    ClickLog,
    ImpressionLog,
    read_criteo,
    read_generic,
    read_impressions,
)
from malt.sources.attribution.mac import write_impressions_mac, write_mac
from malt.sources.attribution.protocol import LabelStats


class MemoryEngine:
    """Reads the logs into a `ClickLog` (an `ImpressionLog` with impressions), labels its
    clicks with `engine.attribute`, writes the days with `mac.write_mac` (or
    `mac.write_impressions_mac`)."""

    def read(self, clicks, conversions, log_format, impressions=None):
        if impressions is not None:
            if log_format == "criteo":
                return read_criteo(impressions, impressions=True)
            return read_impressions(impressions, clicks, conversions)
        return read_criteo(clicks) if log_format == "criteo" else read_generic(clicks, conversions)

    def attribute(self, log: ClickLog | ImpressionLog, config: AttributionConfig
                  ) -> Attribution:
        return attribute(_clicks(log), config)

    def write(self, stage, log, labelled: Attribution, schema):
        writer = write_impressions_mac if isinstance(log, ImpressionLog) else write_mac
        return writer(stage, log, labelled.labels, schema, labelled.known_at)

    def statistics(self, log: ClickLog | ImpressionLog, labelled: Attribution) -> LabelStats:
        clicks = _clicks(log)
        return LabelStats(
            n_clicks=len(clicks.clicks), n_conversions=len(clicks.conversions),
            attributed_conversions=labelled.attributed_conversions, pairs=len(labelled.journeys),
            positive_ratio={r: float(np.mean(w > 0)) for r, w in labelled.labels.items()},
            weight_sum={r: float(w.sum()) for r, w in labelled.labels.items()},
            n_impressions=len(log.impressions) if isinstance(log, ImpressionLog) else None)


def _clicks(log: ClickLog | ImpressionLog) -> ClickLog:
    return log.clicks if isinstance(log, ImpressionLog) else log
