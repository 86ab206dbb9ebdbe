"""Sizes of the simulated data sets and the generator's true parameters.

`SimConfig` says how much to simulate (users, days, seed) and `Params` holds the hidden world the
clicks come from. The defaults of `Params` are calibrated so that the positive ratios land near
MAC's (last 1.6%, first 1.8%, DDA 4.3%, linear 5.3%) with about 4.7 clicks per user and day
(MAC: 79M clicks / 0.8M users / 21 days).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from malt.errors import ConfigError
from malt.sources.simulate.options import PurchaseDelay, SimulatedDays, SizeName
from malt.typed_fields import (
    FiniteFloat,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ProbabilityFloat,
    Seed,
    validate,
)

DAY = 86_400
"""Seconds per day: every simulated time is an integer number of seconds from day 0, 00:00."""

SEQUENCE_LENGTH = 20
LATENT_DIM = 8
VISUAL_DIM = 8

SCENARIOS = ("home feed", "search", "similar items", "cart", "favourites", "shop page",
             "live stream", "short video", "push message", "post-purchase", "mini program",
             "other")
SLOTS = 6
"""Ad position bands, 0 = top of the page."""
HOUR_BANDS = 6
"""Four-hour bands of the day."""
DEVICES = 4


def _vec(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


@dataclass(frozen=True)
class Params:
    """The true parameters of the simulated world (never written to the output)."""

    # --- activity and click mix
    clicks_per_user_day: PositiveFloat = 4.7
    activity_sigma: NonNegativeFloat = 1.0
    """Log-normal spread of the users' activity: a few users click a lot."""
    journey_share: ProbabilityFloat = 0.42
    """Share of a user's clicks that belong to interest journeys (the rest are one-off)."""
    clicks_per_journey: PositiveFloat = 2.9
    """Expected clicks per journey, used to turn `journey_share` into a journey start rate."""

    # --- catalogue
    items_per_user: PositiveFloat = 12.0
    category_zipf: NonNegativeFloat = 0.9
    item_zipf: NonNegativeFloat = 0.75
    item_spread: NonNegativeFloat = 0.6
    """How far an item's latent vector sits from its category centre."""
    shops_per_item: PositiveFloat = 1 / 20
    brands_per_item: PositiveFloat = 1 / 30
    items_per_adgroup: PositiveInt = 4
    price_bands: PositiveInt = 10

    # --- journeys
    length_base: FiniteFloat = 1.1
    length_price: FiniteFloat = 0.45
    """Mean planned clicks of a journey: exp(length_base + length_price * category price)."""
    session_share: ProbabilityFloat = 0.45
    """Share of follow-up clicks in the same session (minutes later), the rest days later."""
    session_gap_s: PositiveFloat = 600.0
    day_gap_days: PositiveFloat = 2.0
    candidates: PositiveInt = 32
    """Popular items a user weighs when developing an interest (the pick rises with u.v)."""
    interest_temperature: PositiveFloat = 0.5
    oneoff_candidates: PositiveInt = 4
    oneoff_temperature: PositiveFloat = 1.0

    # --- intent: log contribution of a click and the threshold it accumulates to
    intent_base: FiniteFloat = -3.2
    affinity_effect: FiniteFloat = 0.55
    quality_effect: FiniteFloat = 1.0
    stage_effect: FiniteFloat = 0.5
    loyalty_effect: FiniteFloat = 0.4
    visual_effect: FiniteFloat = 0.6
    price_mismatch_effect: FiniteFloat = 0.35
    contribution_sigma: NonNegativeFloat = 0.5
    threshold_sigma: NonNegativeFloat = 0.45
    threshold_price: FiniteFloat = 0.3
    threshold_event_sigma: NonNegativeFloat = 0.3
    buy_share: ProbabilityFloat = 0.5
    """Share of journeys that can end in a purchase; the others are comparison browsing."""
    """Spread of the threshold between journeys of one user (how set they are on buying)."""
    membership_effect: FiniteFloat = 0.12
    slot_effect: FiniteFloat = 0.08
    slot_null: NonNegativeFloat = 0.15
    """Relative increase of a null (accidental) click's chance per position band."""
    hour_effect: np.ndarray = field(default_factory=lambda: _vec(-0.2, -0.1, 0.0, 0.05, 0.1,
                                                                 0.25))
    hour_profile: np.ndarray = field(default_factory=lambda: _vec(
        2, 1, 0.5, 0.3, 0.3, 0.5, 1, 2, 3, 4, 4.5, 5, 5.5, 5, 4.5, 4.5, 5, 5, 5.5, 6.5, 8, 8.5,
        7, 4))
    """Relative click volume per hour of the day."""

    # --- scenarios (see SCENARIOS): journey logits at the first click and their change to the
    # last planned click, one-off click logits, effect on the contribution, chance of a null click
    scenario_start: np.ndarray = field(default_factory=lambda: _vec(
        2.0, 1.2, 0.8, -1.5, -1.0, 0.0, 0.3, 0.8, -0.5, -1.0, -0.5, -0.5))
    scenario_slope: np.ndarray = field(default_factory=lambda: _vec(
        -2.0, 1.0, 0.0, 3.0, 2.0, 0.5, -0.5, -1.5, 1.0, 0.0, 0.0, 0.0))
    scenario_oneoff: np.ndarray = field(default_factory=lambda: _vec(
        2.5, 0.5, 1.0, -3.0, -2.5, -0.5, 1.0, 1.5, 0.0, 0.0, 0.0, 0.0))
    scenario_effect: np.ndarray = field(default_factory=lambda: _vec(
        -0.3, 0.4, 0.0, 0.8, 0.5, 0.2, 0.1, -0.3, 0.2, 0.0, 0.0, 0.0))
    scenario_null: np.ndarray = field(default_factory=lambda: _vec(
        0.30, 0.10, 0.18, 0.04, 0.08, 0.12, 0.25, 0.35, 0.18, 0.18, 0.18, 0.22))
    scenario_slot_decay: np.ndarray = field(default_factory=lambda: _vec(
        0.3, 0.8, 0.4, 0.1, 0.1, 0.3, 0.2, 0.3, 0.1, 0.2, 0.2, 0.2))
    """How fast the chance of a position band falls with the band, per scenario."""
    device_loyalty: ProbabilityFloat = 0.85

    # --- purchases and labels
    history_mean: NonNegativeFloat = 7.0
    conversion_delay_s: NonNegativeFloat = 2400.0
    """Mean of the in-session purchase delay after the deciding click (exponential)."""
    purchase_delay: PurchaseDelay = "session"
    """`session`: every purchase follows its deciding click by the in-session delay.
    `long-tail`: a share `deferred_share` of purchases is deferred by an exponential delay of
    mean `deferred_delay_days` instead (see `journeys.purchase_delays`)."""
    deferred_share: ProbabilityFloat = 0.56
    """`long-tail` delays: the share of deferred purchases."""
    deferred_delay_days: PositiveFloat = 7.0
    """`long-tail` delays: the mean delay of a deferred purchase, in days."""
    repeat_base: FiniteFloat = 1.0
    repeat_price: FiniteFloat = -0.1
    """Mean number of repeat purchases (no new click), one after another:
    repeat_base + repeat_price * category price."""
    repeat_delay_days: NonNegativeFloat = 3.0
    window_days: PositiveFloat = 7.0
    """Attribution window: clicks older than this before a conversion get no credit."""
    dda_noise: NonNegativeFloat = 0.3
    """Multiplicative log-normal noise on the true contributions that make the DDA label."""

    def __post_init__(self) -> None:
        validate(self, "params")


@dataclass(frozen=True)
class SimConfig:
    """How much to simulate. The last day is the test day; the others are training days."""

    users: PositiveInt
    days: SimulatedDays
    seed: Seed = 0
    chunk_users: PositiveInt = 25_000
    """Users simulated at once (bounds memory); part of what the seed reproduces."""
    params: Params = field(default_factory=Params)

    def __post_init__(self) -> None:
        validate(self, "")

    @property
    def items(self) -> int:
        return max(1_000, int(round(self.users * self.params.items_per_user)))

    @property
    def expected_clicks(self) -> int:
        return int(self.users * self.days * self.params.clicks_per_user_day)

    def with_overrides(self, **changes) -> SimConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


SIZES: dict[SizeName, SimConfig] = {
    "tiny": SimConfig(users=1_800, days=6),
    "small": SimConfig(users=20_000, days=11),
    "medium": SimConfig(users=100_000, days=21),
    "mac": SimConfig(users=800_000, days=21),
}
"""Presets: tiny (CI, ~50k clicks), small (~1M, the demo), medium (~10M), mac (~79M, 21 days)."""


def size_config(size: SizeName, *, purchase_delay: PurchaseDelay | None = None,
                **overrides) -> SimConfig:
    """The preset `size` with `users`, `days`, `seed` ... replaced where given (not None), and
    its purchase delays (`Params.purchase_delay`) when given."""
    if size not in SIZES:
        raise ConfigError(f"unknown size '{size}', expected one of {list(SIZES)}")
    config = SIZES[size].with_overrides(**overrides)
    if purchase_delay is not None:
        config = replace(config, params=replace(config.params, purchase_delay=purchase_delay))
    return config
