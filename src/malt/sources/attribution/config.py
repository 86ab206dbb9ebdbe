"""What `malt attribute` is asked: the attribution settings (`AttributionConfig`, in seconds),
and the command's options (`AttributeOptions`, in days), which make one.

The module loads neither pandas nor numpy, so that the command's flags and choices come from
it without loading the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal, get_args

from malt.errors import ConfigError
from malt.typed_fields import Above, NonNegativeFloat, PositiveFloat, validate

PositiveFiniteFloat = Annotated[float, Above(0)]
"""A span in seconds: > 0 and finite."""

Rule = Literal["last", "first", "linear", "position", "time_decay", "dda"]
"""An attribution rule, also the name of its label column."""
ALL_RULES: tuple[Rule, ...] = get_args(Rule)
Mode = Literal["direct", "indirect-shop", "indirect-any"]
"""Which clicks a conversion credits: same item, same shop, or any item of the user (see
`journeys`)."""
LogFormat = Literal["generic", "criteo"]
"""The layout of the raw logs (see `logs`)."""
EngineName = Literal["memory", "spark"]
"""Where the attribution runs: pandas and numpy in this process, or PySpark DataFrames."""
DAY = 86400.0
"""Seconds per day: windows and half-lives are given in days, times are in seconds."""
DEFAULT_WINDOW_DAYS = 7.0
"""Default attribution window of raw logs; MAC keeps its own window confidential, a week is the
most common window of the ad platforms that publish theirs."""
CRITEO_WINDOW_DAYS = 30.0
"""Criteo's log spans 30 days: a window as long keeps every journey it names."""
Days = Annotated[float, Above(0, infinite=True)]
"""A span in days: > 0, `inf` for none."""
PositiveFiniteDays = Annotated[float, Above(0)]
"""A span in days: > 0 and finite."""
Shares = tuple[NonNegativeFloat, NonNegativeFloat, NonNegativeFloat]


@dataclass(frozen=True)
class AttributionConfig:
    """How credit is assigned. Times in seconds."""

    rules: tuple[Rule, ...] = ALL_RULES
    """Label columns to compute."""
    window: Annotated[float, Above(0, infinite=True)] = DEFAULT_WINDOW_DAYS * DAY
    """Attribution window in seconds (`inf`: none)."""
    mode: Mode = "direct"
    """Journey matching (ignored by logs that name the journeys)."""
    half_life: PositiveFloat = 7 * DAY
    """Half-life of the `time_decay` rule in seconds."""
    position_shares: Shares = (0.4, 0.2, 0.4)
    """(first, middle, last) shares of the `position` rule."""
    dda_features: tuple[str, ...] = ()
    """Click columns whose values enter the `dda` model besides the positions."""
    dda_l2: NonNegativeFloat = 1.0
    """Prior precision of the `dda` model."""
    view_windows: tuple[PositiveFiniteFloat, ...] = ()
    """Further attribution windows in seconds: every rule of `view_rules` is also labelled
    under each of them, as the view `<rule>_<days>d` (`view_name`), in the same pass."""
    view_rules: tuple[Rule, ...] | None = None
    """The rules labelled under `view_windows` (None: every rule of `rules`)."""

    def __post_init__(self) -> None:
        validate(self, "attribution")
        if not self.rules:
            raise ConfigError(f"attribution.rules is empty; choose from {ALL_RULES}")
        if len(set(self.rules)) != len(self.rules):
            raise ConfigError(f"attribution rules listed twice: {list(self.rules)}")
        if len(set(self.view_windows)) != len(self.view_windows):
            raise ConfigError(f"attribution view windows listed twice: "
                              f"{[w / DAY for w in self.view_windows]} days")
        stray = [r for r in self.view_rules or () if r not in self.rules]
        if stray:
            raise ConfigError(f"attribution view rules {stray} are not among the rules "
                              f"{list(self.rules)}")
        shares = self.position_shares
        if shares[0] + shares[2] <= 0:
            raise ConfigError(f"attribution.position_shares needs a positive first + last "
                              f"share, got {shares}")


    @property
    def views(self) -> tuple[tuple[str, Rule, float], ...]:
        """(label name, rule, window in seconds) of every label: each rule under `window`,
        named after the rule, then each of `view_rules` under each of `view_windows`."""
        rules = self.rules if self.view_rules is None else self.view_rules
        return ((*((rule, rule, self.window) for rule in self.rules),
                 *((view_name(rule, w), rule, w) for w in self.view_windows for rule in rules)))

    @property
    def labels(self) -> tuple[str, ...]:
        """The label columns written, in order (see `views`)."""
        return tuple(name for name, _, _ in self.views)

    @property
    def widest_window(self) -> float:
        """The widest window of any view: journeys are matched once under it."""
        return max((self.window, *self.view_windows))


def view_name(rule: str, window: float) -> str:
    """The label of `rule` under a window of `window` seconds: `last_7d` for whole days,
    `last_12h` for whole hours, else days with decimals (`last_0.1d`)."""
    days, hours = window / DAY, window / 3600
    if days != round(days) and hours == round(hours):
        return f"{rule}_{hours:g}h"
    return f"{rule}_{days:g}d"


def default_window_days(log_format: LogFormat) -> float:
    """7 days; 30 for Criteo, whose log spans 30 days, so that every journey it names is kept."""
    return CRITEO_WINDOW_DAYS if log_format == "criteo" else DEFAULT_WINDOW_DAYS


_LIST = {"separator": ","}


@dataclass(frozen=True, kw_only=True)
class AttributeOptions:
    """What `malt attribute` reads, labels and writes; spans in days."""

    clicks: str | None = None
    """Click table (generic) or the Criteo file: parquet, csv or tsv, optionally gzipped
    (required but with --format criteo --impressions)."""
    conversions: str | None = None
    """Conversion table (generic only)."""
    impressions: str | None = None
    """Impression table (impression_id, user, item, impression_time, features): write one row
    per impression, clicked or not, with a click column (0/1) and its clicks' labels (0 where
    unclicked), the layout --entire-space trains on; the --clicks table then holds click_id,
    impression_id and click_time, each click naming its impression. With --format criteo:
    the Criteo file, given instead of --clicks, each of its rows written as an impression."""
    format: LogFormat = "generic"
    """Input layout (see malt.sources.attribution.logs)."""
    rules: tuple[Rule, ...] = field(default=AttributionConfig.rules, metadata=_LIST)
    """Comma-separated rules, also the label column names."""
    window_days: Days | None = None
    """Attribution window in days (default 7; 30 for criteo, whose log spans 30 days, so that
    every journey it names is kept)."""
    mode: Mode = AttributionConfig.mode
    """Which clicks a conversion credits: same item (direct), same shop, or any item of the
    user (generic only)."""
    half_life_days: PositiveFloat = AttributionConfig.half_life / DAY
    """Half-life of the time_decay rule in days."""
    position_shares: Shares = field(default=AttributionConfig.position_shares,
                                    metadata={**_LIST, "metavar": "FIRST,MIDDLE,LAST"})
    """First, middle and last shares of the position rule."""
    dda_features: tuple[str, ...] = field(default=AttributionConfig.dda_features,
                                          metadata=_LIST)
    """Comma-separated click columns the dda model uses besides path length and the gap since
    the previous click."""
    view_windows_days: tuple[PositiveFiniteDays, ...] = field(default=(), metadata=_LIST)
    """Comma-separated further windows in days (e.g. 1,7,30): each rule of --view-rules is also
    labelled under each, as the view <rule>_<days>d (last_1d, last_7d, ...), in one pass."""
    view_rules: tuple[Rule, ...] | None = field(default=None, metadata=_LIST)
    """Comma-separated rules labelled under --view-windows-days (default: every rule)."""
    user_fields: tuple[str, ...] = field(default=(), metadata=_LIST)
    """Comma-separated click feature columns to put in the user group of the schema."""
    ad_fields: tuple[str, ...] = field(default=(), metadata=_LIST)
    """Comma-separated click feature columns to put in the ad group (item and shop always
    are); the other features form the context group."""
    engine: EngineName = "memory"
    """memory: pandas and numpy in this process; spark: PySpark DataFrames (pip install
    'malt[spark]'), same output, for logs beyond one machine's memory or on hdfs:// / s3a://
    paths."""
    master: str | None = None
    """Spark master URL of --engine spark (default: spark-submit's master when run under it,
    else local[*])."""
    name: str | None = None
    """Schema name (default: the output folder)."""
    out: str
    """Output directory (MAC layout)."""
    overwrite: bool = False
    """Replace the day and vocab files of an earlier output in --out."""

    def __post_init__(self) -> None:
        validate(self, "")

    @property
    def window(self) -> float:
        """The attribution window in days: the one given, else the format's."""
        return self.window_days if self.window_days is not None else \
            default_window_days(self.format)

    def attribution(self) -> AttributionConfig:
        """The settings these options ask for, in seconds."""
        return AttributionConfig(rules=self.rules, window=self.window * DAY, mode=self.mode,
                                 half_life=self.half_life_days * DAY,
                                 position_shares=self.position_shares,
                                 dda_features=self.dda_features,
                                 view_windows=tuple(d * DAY for d in self.view_windows_days),
                                 view_rules=self.view_rules)
