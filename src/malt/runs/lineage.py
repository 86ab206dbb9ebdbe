"""A warm-started run's parent: what `parent.json` in its directory records, and the config a
warm start inherits from its parent.

A chain of daily runs is a linked list: each run names the finished run it started from, so
`lineage` walks back to the run trained from scratch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from malt.runs.config import InitNumeric
from malt.typed_fields import NonNegativeInt, build


@dataclass(frozen=True)
class Parent:
    """The run a warm-started run started from, and how."""

    path: str
    """The parent run's directory (absolute)."""
    steps: NonNegativeInt
    """Optimiser steps of the parent's own pass."""
    optimiser: bool
    """Whether the run took the parent's optimiser state, schedule and random states."""
    numeric: InitNumeric
    """Whose statistics standardise the numeric columns: the parent's or this run's days'."""
    new_ids: dict[str, NonNegativeInt] = field(default_factory=dict)
    """Vocab column -> ids this run's days added to the parent's vocab."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str) -> Parent:
        return build(cls, raw, source)

    def describe(self) -> str:
        """One line: the parent, and what was taken from it."""
        grown = ", ".join(f"{c} +{n}" for c, n in self.new_ids.items() if n) or "none"
        return (f"warm-started from {self.path} ({self.steps} steps; "
                f"optimiser state {'taken' if self.optimiser else 'fresh'}; numeric "
                f"statistics: {self.numeric}; new ids: {grown})")


def inherited_config(parent_config: dict[str, Any]) -> dict[str, Any]:
    """The config tree a warm start begins from, before its file and flags: its parent's,
    without the parent's choice of days and its own warm start."""
    tree = {**parent_config, "data": dict(parent_config.get("data", {}))}
    for key in ("train_from", "train_days"):
        tree["data"].pop(key, None)
    tree.pop("init", None)
    return tree
