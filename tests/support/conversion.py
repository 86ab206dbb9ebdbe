"""Rows converted as a scoring request is: no labels, the vocabs of a data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from malt.data.lookups import load_lookups
from malt.data.reader import DayConverter, array_shapes
from malt.data.schema import Schema


def convert_unlabelled(schema: Schema, vocab_dir: Path, rows: pa.Table
                       ) -> tuple[DayConverter, dict[str, np.ndarray]]:
    """(the converter, the arrays it wrote) for `rows`, read without labels."""
    converter = DayConverter(schema, load_lookups(schema, vocab_dir), labels=False)
    out = {name: np.empty(shape, dtype) for name, (shape, dtype)
           in array_shapes(schema, rows.num_rows, labels=False).items()}
    converter.convert(rows, 0, "request", out)
    return converter, out
