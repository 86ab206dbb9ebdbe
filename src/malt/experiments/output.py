"""What a study returns, and how it is written into the study's directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from malt.experiments.plots import save_figure
from malt.experiments.tables import Table, write_tables
from malt.outputs import OutputDir


@dataclass
class StudyOutput:
    """Tables as (file suffix, table), "" being the main one, and figures as (suffix, figure)."""

    tables: list[tuple[str, Table]]
    figures: list[tuple[str, Any]] = field(default_factory=list)


def write_output(out: OutputDir, name: str, output: StudyOutput) -> list[Path]:
    """`<out>/<name>[-suffix].png`, `<out>/<name>[-suffix].csv` and `<out>/<name>.md`, which
    shows the figures under the tables."""
    figures = [save_figure(fig, out.writable(f"{name}-{suffix}.png" if suffix else
                                             f"{name}.png"))
               for suffix, fig in output.figures]
    return [*write_tables(out, name, output.tables, figures=[f.name for f in figures]),
            *figures]
