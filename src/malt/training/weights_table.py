"""The weight each task had in the update over training: `task_weights.csv` of a run.

One row per logged step (the first, the last and every `log_every`): the number of steps done
(TensorBoard's axis), then one column
per task (the main view first, then each auxiliary term), holding the factor of that task's
loss or gradient in the step's update (see docs/training.md, "Which auxiliary view helped").
The file is rewritten whole and atomically at every logged step; a resumed run keeps the rows
of the steps before its checkpoint.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from malt.outputs import atomic_write_text

STEP = "step"


class TaskWeightsTable:
    """The rows of `task_weights.csv` (see the module docstring)."""

    def __init__(self, path: Path, rows: list[dict[str, float]] | None = None):
        self.path = path
        self.rows: list[dict[str, float]] = rows or []

    @classmethod
    def read(cls, path: Path) -> TaskWeightsTable:
        """The table written at `path` (no rows when the file is missing)."""
        if not path.is_file():
            return cls(path)
        with path.open(newline="") as handle:
            return cls(path, [{key: float(value) for key, value in row.items() if value != ""}
                              for row in csv.DictReader(handle)])

    @classmethod
    def resumed(cls, path: Path, steps_done: int) -> TaskWeightsTable:
        """The table at `path` with its rows of the first `steps_done` steps, those a resumed
        run's checkpoint holds (none when the file is missing: a new run)."""
        return cls(path, [row for row in cls.read(path).rows if row[STEP] <= steps_done])

    def add(self, step: int, weights: dict[str, float]) -> None:
        """The weights of `step`, task name -> weight."""
        self.rows.append({STEP: step, **weights})

    def write(self) -> None:
        """The whole table, atomically; the columns are every task seen, in order of appearance."""
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({key: (int(value) if key == STEP else repr(value))
                             for key, value in row.items()})
        atomic_write_text(self.path, text.getvalue())
