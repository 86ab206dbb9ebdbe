"""Data: schema, MAC-layout reading and caching, vocabs, batches, the task and its label masks.

What writes data sets (attribution, simulators, converters) is `malt.sources`.

`MAC`, `Schema`, `schema_for`, `Dataset`, `Day` and `prepare` are loaded on first use, so that
importing one light module of the package (`malt.data.task`, `malt.data.schema`) does not load
the cache and its readers (pyarrow, pandas).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["MAC", "Dataset", "Day", "Schema", "prepare", "schema_for"]
_HOME = {"MAC": "schema", "Schema": "schema", "schema_for": "schema",
         "Dataset": "cache", "Day": "cache", "prepare": "cache"}

if TYPE_CHECKING:
    from malt.data.cache import Dataset, Day, prepare
    from malt.data.schema import MAC, Schema, schema_for


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"malt.data.{_HOME[name]}"), name)
    raise AttributeError(f"module 'malt.data' has no attribute '{name}'")
