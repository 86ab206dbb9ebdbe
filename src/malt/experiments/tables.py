"""Result tables: mean ± std over seeds, best **bold** and second best <u>underlined</u>.

A `Table` holds, for each (row, column), the values of every seed. It summarises them as mean,
sample standard deviation and count, writes a wide CSV (`<col>`, `<col>_std`, `<col>_n`) and a
Markdown table formatted as in the MAC paper. A cell may also hold a paired difference with its
bootstrap interval (`add_interval`): it then prints as `+0.52 [+0.31, +0.74]`, marked † where
the interval excludes 0, and the CSV gains `<col>_low`, `<col>_high` and `<col>_p_value`.

Best and second best are decided per column among the rows of each ranking group, on the values
as displayed (two rows that print the same number tie), so the marks always agree with what the
reader sees.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from malt.bootstrap import PairedDelta
from malt.outputs import OutputDir, atomic_write_text

KINDS = ("metric", "delta", "percent", "count", "text")
"""metric: 4 decimals; delta: signed points (× 100) with 2 decimals; percent: × 100 with 2
decimals and %; count: thousands separators; text: printed as given, never summarised or
ranked."""


@dataclass(frozen=True)
class Column:
    """One column: `key` in the data, `title` in the header, how it is printed and ranked."""

    key: str
    title: str
    kind: str = "metric"
    rank: bool = True
    """Mark best and second best (higher is better) in this column."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column kind '{self.kind}' is not one of {KINDS}")


@dataclass
class Table:
    """A results table built from per-seed values.

    `values[(row, column key)]` is the list of per-seed numbers (or one string for text columns);
    a missing entry prints as "–". `rank_groups` lists the groups of rows among which best and
    second best are marked (default: every row in one group); rows outside every group are
    never marked. `row_kinds` prints a row's numbers in another kind than its columns' (e.g.
    a row of differences under metric columns).
    """

    title: str
    row_header: str
    rows: list[str]
    columns: list[Column]
    values: dict[tuple[str, str], list[float] | str] = field(default_factory=dict)
    rank_groups: list[list[str]] | None = None
    row_kinds: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    intervals: dict[tuple[str, str], PairedDelta] = field(default_factory=dict)
    """(row, column key) -> the cell's paired difference with its interval."""

    def kind(self, row: str, col: Column) -> str:
        """How the cell (row, col) is printed."""
        return col.kind if col.kind == "text" else self.row_kinds.get(row, col.kind)

    # --- building ------------------------------------------------------------------------
    def add(self, row: str, key: str, value: float | str) -> None:
        """Append one seed's value (or set the text of a text column)."""
        if isinstance(value, str):
            self.values[(row, key)] = value
        else:
            self.values.setdefault((row, key), []).append(float(value))  # type: ignore[union-attr]

    def add_interval(self, row: str, key: str, delta: PairedDelta) -> None:
        """Show the cell (row, key) as `delta` with its interval."""
        self.intervals[(row, key)] = delta

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, title: str, row_header: str,
                   columns: Sequence[Column], rows: Sequence[str] | None = None,
                   rank_groups: list[list[str]] | None = None) -> Table:
        """A table from a long frame with columns `row`, `column`, `value` (one line per seed)."""
        order = list(rows) if rows is not None else list(dict.fromkeys(frame["row"]))
        table = cls(title, row_header, order, list(columns), rank_groups=rank_groups)
        for row, key, value in frame[["row", "column", "value"]].itertuples(index=False):
            table.add(row, key, value)
        return table

    # --- summaries -----------------------------------------------------------------------
    def stats(self, row: str, key: str) -> tuple[float, float, int]:
        """(mean, sample std, n) of one cell; NaN mean when empty, NaN std when n < 2."""
        raw = self.values.get((row, key))
        if raw is None or isinstance(raw, str):
            return math.nan, math.nan, 0
        values = np.asarray([v for v in raw if math.isfinite(v)], dtype=np.float64)
        if len(values) == 0:
            return math.nan, math.nan, 0
        std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        return float(values.mean()), std, len(values)

    def summary(self) -> pd.DataFrame:
        """Wide frame: one line per row; per column `<key>`, `<key>_std`, `<key>_n` (text
        columns: just `<key>`)."""
        records = []
        for row in self.rows:
            record: dict[str, object] = {self.row_header: row}
            for col in self.columns:
                if col.kind == "text":
                    record[col.key] = self.values.get((row, col.key), "")
                    continue
                mean, std, n = self.stats(row, col.key)
                record[col.key], record[f"{col.key}_std"], record[f"{col.key}_n"] = mean, std, n
                if col.key in self._interval_keys():
                    delta = self.intervals.get((row, col.key))
                    record[col.key] = mean if delta is None else delta.estimate
                    for end in ("low", "high", "p_value"):
                        record[f"{col.key}_{end}"] = math.nan if delta is None else \
                            getattr(delta, end)
            records.append(record)
        return pd.DataFrame.from_records(records, columns=self._csv_header())

    def _interval_keys(self) -> set[str]:
        return {key for _, key in self.intervals}

    def _csv_header(self) -> list[str]:
        header = [self.row_header]
        for col in self.columns:
            header += [col.key] if col.kind == "text" else [col.key, f"{col.key}_std",
                                                             f"{col.key}_n"]
            if col.key in self._interval_keys():
                header += [f"{col.key}_low", f"{col.key}_high", f"{col.key}_p_value"]
        return header

    # --- marking -------------------------------------------------------------------------
    def marks(self) -> dict[tuple[str, str], str]:
        """(row, key) -> "best" or "second" for the marked cells."""
        groups = self.rank_groups if self.rank_groups is not None else [self.rows]
        out: dict[tuple[str, str], str] = {}
        for col in self.columns:
            if not col.rank or col.kind == "text":
                continue
            for group in groups:
                shown = {row: _display_value(self.stats(row, col.key)[0],
                                             self.kind(row, col)) for row in group}
                distinct = sorted({v for v in shown.values() if math.isfinite(v)}, reverse=True)
                for label, target in zip(("best", "second"), distinct[:2]):
                    for row, v in shown.items():
                        if v == target:
                            out[(row, col.key)] = label
        return out

    # --- output --------------------------------------------------------------------------
    def cell_text(self, row: str, col: Column) -> str:
        """The printed cell: mean, "± std" when several seeds, "–" when missing; a paired
        difference with its interval, † where it excludes 0."""
        if col.kind == "text":
            value = self.values.get((row, col.key), "–")
            return value if isinstance(value, str) else "–"
        delta = self.intervals.get((row, col.key))
        if delta is not None and math.isfinite(delta.estimate):
            return delta.points() + ("†" if delta.excludes_zero else "")
        mean, std, n = self.stats(row, col.key)
        if n == 0:
            return "–"
        return format_value(mean, std if n > 1 else None, self.kind(row, col))

    def markdown(self) -> str:
        marks = self.marks()
        header = [self.row_header, *(c.title for c in self.columns)]
        align = [":--", *(":-:" if c.kind == "text" else "--:" for c in self.columns)]
        lines = [f"**{self.title}**", "", _md_row(header), _md_row(align)]
        for row in self.rows:
            cells = [row]
            for col in self.columns:
                text = self.cell_text(row, col)
                mark = marks.get((row, col.key))
                cells.append(f"**{text}**" if mark == "best" else
                             f"<u>{text}</u>" if mark == "second" else text)
            lines.append(_md_row(cells))
        if self.notes:
            lines += ["", *self.notes]
        return "\n".join(lines)

    def csv(self) -> str:
        buffer = io.StringIO()
        self.summary().to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL)
        return buffer.getvalue()


def format_value(mean: float, std: float | None, kind: str) -> str:
    """`0.7636`, `0.7636 ± 0.0012`, `+2.12pt`, `+2.12 ± 0.10pt`, `1.68%`, `858,194`."""
    if not math.isfinite(mean):
        return "–"
    if kind == "delta":
        body = f"{100 * mean:+.2f}"
        return f"{body} ± {100 * std:.2f}pt" if std is not None else f"{body}pt"
    if kind == "percent":
        body = f"{100 * mean:.2f}"
        return f"{body} ± {100 * std:.2f}%" if std is not None else f"{body}%"
    if kind == "count":
        body = f"{mean:,.0f}"
        return f"{body} ± {std:,.0f}" if std is not None else body
    body = f"{mean:.4f}"
    return f"{body} ± {std:.4f}" if std is not None else body


def _display_value(mean: float, kind: str) -> float:
    """The mean rounded as it is printed (NaN stays NaN)."""
    if not math.isfinite(mean):
        return math.nan
    if kind in ("delta", "percent"):
        return round(100 * mean, 2)
    if kind == "count":
        return round(mean)
    return round(mean, 4)


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def write_tables(out: OutputDir, name: str, tables: Sequence[tuple[str, Table]],
                 figures: Sequence[str] = ()) -> list[Path]:
    """Write `<out>/<name>.md` (every table, then every figure file of `figures`, by name) and
    one CSV per table: `<name>.csv` for the table with an empty suffix, `<name>-<suffix>.csv`
    for the others. Returns the paths written."""
    written = []
    for suffix, table in tables:
        path = out.writable(f"{name}-{suffix}.csv" if suffix else f"{name}.csv")
        atomic_write_text(path, table.csv())
        written.append(path)
    md = out.writable(f"{name}.md")
    images = [f"![{Path(figure).stem}]({figure})" for figure in figures]
    atomic_write_text(md, "\n\n".join([*(t.markdown() for _, t in tables), *images]) + "\n")
    return [md, *written]
