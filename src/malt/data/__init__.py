"""Data: schema, MAC-layout reading and caching, attribution, simulation and batches."""

from malt.data.cache import Dataset, Day, prepare
from malt.data.schema import MAC, Schema, resolve_schema

__all__ = ["MAC", "Dataset", "Day", "Schema", "prepare", "resolve_schema"]
