"""What `malt simulate` is asked: the scenario, its preset size and what overrides it. Loads
neither pandas nor the simulators, so that the command's flags come from it alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from malt.runs.config import DEFAULT_SEED
from malt.typed_fields import Between, PositiveInt, Seed, validate

SizeName = Literal["tiny", "small", "medium", "mac"]
"""A preset size of the simulators (the app-promotion scenario has no `mac` size)."""
SimulatedDays = Annotated[int, Between(2, 100)]
"""Days of a simulated data set: at least one training day and the test day (the last), at
most 100 (the `train-NN` file names)."""

PurchaseDelay = Literal["session", "long-tail"]
"""How long after its deciding click a simulated purchase happens: `session`, minutes (an
exponential of mean 40 minutes); `long-tail`, a mixture after Chapelle (2014) in which 56% of
purchases are deferred by an exponential of mean 7 days (see `journeys.purchase_delays`)."""

Scenario = Literal["mac", "app-promotion"]
"""mac: MAC-shaped clicks with attribution labels; app-promotion: campaigns with target actions
and incomplete, skewed conversion labels (the KAML setting)."""


@dataclass(frozen=True, kw_only=True)
class SimulateOptions:
    """A simulated data set to write."""

    size: SizeName = "small"
    """Preset: tiny ~50k clicks (CI), small ~1M (the demo), medium ~10M, mac ~79M over 21
    days."""
    out: str
    """Directory to write (train/, test/, vocabs/)."""
    seed: Seed = DEFAULT_SEED
    """Random seed of the simulation."""
    users: PositiveInt | None = None
    """Override the preset's users."""
    days: SimulatedDays | None = None
    """Override the preset's days (the last one is the test day; 2 to 100)."""
    overwrite: bool = False
    """Replace a data set already in --out."""
    scenario: Scenario = "mac"
    """mac: MAC-shaped clicks with attribution labels; app-promotion: campaigns with target
    actions and incomplete, skewed conversion labels (KAML setting; writes schema.toml)."""

    delays: PurchaseDelay = "session"
    """session: a purchase follows its deciding click within minutes (the default, calibrated
    to MAC's positive rates); long-tail: over half of the purchases are deferred by days
    (exponential, mean 7 days), after the delays Chapelle (2014) reports: about a third of
    conversions within an hour, half within a day (mac scenario only)."""

    impressions: bool = False
    """Write impression logs: every click becomes an impression, clicked or not, by a chance
    that rises with its true conversion probability (a known selection bias), with a `click`
    column and a schema.toml naming it (mac scenario only; see docs/data.md)."""

    def __post_init__(self) -> None:
        validate(self, "")
