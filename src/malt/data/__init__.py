"""Data: schema, MAC-layout reading and caching, attribution, simulation and batches."""

from malt.data.cache import Dataset, Day, prepare
from malt.data.schema import MAC, Schema, schema_for

__all__ = ["MAC", "Dataset", "Day", "Schema", "prepare", "schema_for"]
