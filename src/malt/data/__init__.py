"""Data: schema, MAC-layout reading and caching, vocabs, batches, the task and its label masks.

What writes data sets (attribution, simulators, converters) is `malt.sources`."""

from malt.data.cache import Dataset, Day, prepare
from malt.data.schema import MAC, Schema, schema_for

__all__ = ["MAC", "Dataset", "Day", "Schema", "prepare", "schema_for"]
