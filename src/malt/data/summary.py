"""Text summary of a prepared data set: rows, users, positive ratios and OOV counts per day."""

from __future__ import annotations

import numpy as np

from malt.data.as_of import known_positives
from malt.data.cache import Dataset


def distinct_users(dataset: Dataset) -> int:
    """Distinct users over all days (user groups: vocab rows, and one per unknown user)."""
    seen = np.zeros(0, dtype=np.int64)
    for day in dataset.days:
        seen = np.union1d(seen, day.arrays()["user"])
    return len(seen)


def format_summary(dataset: Dataset) -> str:
    labels = dataset.schema.labels
    header = ["day", "rows", "users", *[f"pos% {c}" for c in labels], "oov"]
    rows = []
    total_pos = dict.fromkeys(labels, 0)
    total_rows = total_oov = 0
    for day in dataset.days:
        s = day.stats
        oov = sum(s.oov.values())
        rows.append([f"{day.split}/{day.name}", f"{s.rows:,}", f"{s.users:,}",
                     *[f"{100 * s.positives[c] / s.rows:.2f}" for c in labels], f"{oov:,}"])
        total_rows += s.rows
        total_oov += oov
        for c in labels:
            total_pos[c] += s.positives[c]
    rows.append(["all", f"{total_rows:,}", f"{distinct_users(dataset):,}",
                 *[f"{100 * total_pos[c] / total_rows:.2f}" for c in labels], f"{total_oov:,}"])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    oov_columns = {}
    for day in dataset.days:
        for column, n in day.stats.oov.items():
            oov_columns[column] = oov_columns.get(column, 0) + n
    nonzero = {c: n for c, n in oov_columns.items() if n}
    lines.append(f"schema {dataset.schema.name}: {len(dataset.train)} train day(s), "
                 f"{len(dataset.test)} test day(s); out-of-vocabulary ids: "
                 + (", ".join(f"{c} {n:,}" for c, n in nonzero.items()) if nonzero else "none"))
    schema = dataset.schema

    def truncated(column: str) -> int:
        return sum(d.stats.truncated.get(column, 0) for d in dataset.days)

    if schema.bags:
        lines.append("rows truncated to their bag's max_length: " + ", ".join(
            f"{b} {truncated(b):,}" for b in schema.bag_names))
    # Float sequences are cut with the first id sequence; alone, with the first of them.
    cut = schema.id_sequences or schema.float_sequences[:1]
    if schema.ragged_sequences and cut:
        lines.append("rows cut to their sequence's length: " + ", ".join(
            f"{s.name} {truncated(s.name):,} (length {s.length})" for s in cut))
    return "\n".join(lines)


def format_as_of(dataset: Dataset, as_of: float) -> str:
    """One line: per label, the training positives known at `as_of` (unix seconds) out of all
    of them, the labels a run with `--as-of` trains on."""
    known, total = known_positives(dataset.train, as_of)
    return f"known at {as_of:g} (training days): " + ", ".join(
        f"{label} {k:,} of {t:,} positives ({100 * k / max(t, 1):.1f}%)"
        for label, k, t in zip(dataset.schema.labels, known.tolist(), total.tolist(),
                               strict=True))
