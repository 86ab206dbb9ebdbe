"""Attribution engine: turn clicks and conversions into per-click weights under several rules.

    config    the attribution settings and the command's options (light: the command's flags)
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

The names below load their module when first used, so that `config` loads without pandas.
"""

from importlib import import_module
from typing import Any

_HOME = {"ALL_RULES": "config", "AttributionConfig": "config", "Attribution": "engine",
         "attribute": "engine", "Journeys": "journeys", "build_journeys": "journeys",
         "ClickLog": "logs", "read_criteo": "logs", "read_generic": "logs", "RULES": "rules",
         "credit": "rules"}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
