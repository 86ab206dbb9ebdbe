"""Attribution engine: turn clicks and conversions into per-click weights under several rules.

    logs      readers of raw logs (generic two-table layout, Criteo attribution layout)
    journeys  which clicks share the credit of which conversion (window, matching mode)
    rules     last, first, linear, position (U-shaped), time_decay
    dda       the data-driven rule (Shapley shares under a fitted noisy-OR model)
    engine    labels of every click under every rule
    mac       writer of the MAC layout with vocabs and a schema file
    protocol  what an engine provides to the pipeline, and the label statistics it reports
    memory    the in-memory engine (pandas and numpy in this process)
    pipeline  raw logs to a MAC-layout data set on either engine (what `malt attribute` does)

The same engine on PySpark DataFrames (`malt attribute --engine spark`), same output: the
`spark` subpackage.
"""

from malt.sources.attribution.engine import ALL_RULES, Attribution, AttributionConfig, attribute
from malt.sources.attribution.journeys import Journeys, build_journeys
from malt.sources.attribution.logs import ClickLog, read_criteo, read_generic
from malt.sources.attribution.rules import RULES, credit

__all__ = ["ALL_RULES", "RULES", "Attribution", "AttributionConfig", "ClickLog", "Journeys",
           "attribute", "build_journeys", "credit", "read_criteo", "read_generic"]
