"""An app-promotion click simulator with incomplete, skewed multi-label data (KAML setting).

Every row is a click on a campaign's ad. Its columns: `user_id`; user fields (age band,
gender, city tier, device model, OS, interest, most installed app category, activity level);
ad fields (campaign, app, app category, creative); context fields (hour band, slot, network,
media); `target_action` (the campaign's bid goal: an action name or "other"); the observed
labels (one per action of `ACTIONS`: 1 where the conversion happened *and* the campaign
reported it); the true labels `true_<action>` (what happened, for the oracle); and
`reported_<action>` (whether the campaign reports the action at all). A `schema.toml`
describing these columns is written next to the data, which every command reads by default.

The story (see `malt.sources.simulate.app_world` for the parameters): a click's conversion
propensity per action is a logit of user-app affinity, the user's wealth and activity, the
app's quality and monetisation, a click-level intent shared by every action and the ad slot;
delivery is optimised for the campaign's target, so its audience leans towards users prone to
that action and the target's logit is shifted up (original and ADM-extended samples of an
action differ, the discrepancy HKE models). Conversions follow the funnel: registration and
retention need activation, payment needs registration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from malt.data.layout import day_path, write_day, write_vocab
from malt.data.schema import SCHEMA_FILE
from malt.errors import ConfigError
from malt.outputs import DATA_KIND, atomic_write_text, staged_output
from malt.sources.simulate.app_world import (
    ACTIONS,
    APP_CATEGORIES,
    CREATIVES_PER_CAMPAIGN,
    DEVICE_MODELS,
    INTERESTS,
    OTHER,
    AppParams,
    Apps,
    Campaigns,
    Users,
    action_scores,
    build_apps,
    build_campaigns,
    build_users,
    category_centres,
)
from malt.sources.simulate.options import SimulatedDays
from malt.typed_fields import PositiveInt, Seed, validate

USER_FIELDS = ("age_band", "gender", "city_tier", "device_model", "os", "interest",
               "installed_category", "activity_level")
AD_FIELDS = ("campaign", "app", "app_category", "creative")
CONTEXT_FIELDS = ("hour_band", "slot", "network", "media")
CARDINALITY = {"age_band": 7, "gender": 3, "city_tier": 5, "device_model": DEVICE_MODELS,
               "os": 3, "interest": INTERESTS, "activity_level": 5,
               "installed_category": len(APP_CATEGORIES),
               "app_category": len(APP_CATEGORIES), "hour_band": 6, "slot": 5, "network": 3,
               "media": 8}


@dataclass(frozen=True)
class AppSimConfig:
    """How much to simulate. The last day is the test day."""

    users: PositiveInt
    campaigns: PositiveInt
    days: SimulatedDays
    clicks_per_day: PositiveInt
    seed: Seed = 0
    params: AppParams = field(default_factory=AppParams)

    def __post_init__(self) -> None:
        validate(self, "")

    @property
    def apps(self) -> int:
        return max(10, self.campaigns // 2)

    @property
    def expected_clicks(self) -> int:
        return self.days * self.clicks_per_day

    def with_overrides(self, **changes) -> AppSimConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


SIZES: dict[str, AppSimConfig] = {
    "tiny": AppSimConfig(users=4_000, campaigns=120, days=6, clicks_per_day=8_000),
    "small": AppSimConfig(users=40_000, campaigns=600, days=11, clicks_per_day=50_000),
    "medium": AppSimConfig(users=400_000, campaigns=3_000, days=29, clicks_per_day=400_000),
}
"""tiny (CI, ~48k clicks), small (~550k, the committed study), medium (~12M over four weeks
and a test day, the paper's protocol)."""


def size_config(size: str, **overrides) -> AppSimConfig:
    if size not in SIZES:
        raise ConfigError(f"unknown size '{size}' for the app-promotion scenario, expected one "
                          f"of {list(SIZES)}")
    return SIZES[size].with_overrides(**overrides)


def schema_dict() -> dict:
    """The schema of the written data (what `schema.toml` holds)."""
    return {
        "name": "app-promotion",
        "user_column": "user_id",
        "fields": {"user": list(USER_FIELDS), "ad": list(AD_FIELDS),
                   "context": list(CONTEXT_FIELDS)},
        "labels": list(ACTIONS),
        "campaign_column": "campaign",
        "target_action_column": "target_action",
        "true_labels": [f"true_{a}" for a in ACTIONS],
        "reported_labels": [f"reported_{a}" for a in ACTIONS],
    }


def _schema_toml() -> str:
    s = schema_dict()

    def strings(values) -> str:
        return "[" + ", ".join(f'"{v}"' for v in values) + "]"

    lines = ["# Written by `malt simulate --scenario app-promotion`.",
             f'name = "{s["name"]}"', f'user_column = "{s["user_column"]}"',
             f"labels = {strings(s['labels'])}",
             f'campaign_column = "{s["campaign_column"]}"',
             f'target_action_column = "{s["target_action_column"]}"',
             f"true_labels = {strings(s['true_labels'])}",
             f"reported_labels = {strings(s['reported_labels'])}", "", "[fields]"]
    lines += [f"{group} = {strings(names)}" for group, names in s["fields"].items()]
    return "\n".join(lines) + "\n"


@dataclass
class World:
    users: Users
    apps: Apps
    campaigns: Campaigns
    audience: np.ndarray
    """[6, U] cumulative click distribution over users per target group (5 actions, other)."""


def build_world(config: AppSimConfig) -> World:
    p = config.params
    user_rng, app_rng, campaign_rng = (np.random.default_rng(s) for s in
                                       np.random.SeedSequence([config.seed, 11]).spawn(3))
    centres = category_centres(app_rng)
    users = build_users(config.users, centres, user_rng)
    apps = build_apps(config.apps, centres, p, app_rng)
    campaigns = build_campaigns(config.campaigns, config.apps, config.days, p, campaign_rng)
    activity = np.exp(0.5 * users.activity)
    tilts = np.vstack([action_scores(users, p).T * p.audience_tilt,
                       np.zeros((1, config.users))])
    weights = activity * np.exp(tilts)
    audience = np.cumsum(weights, axis=1)
    return World(users, apps, campaigns, audience / audience[:, -1:])


def _draw(cdf: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


@dataclass
class DayClicks:
    user: np.ndarray
    campaign: np.ndarray
    context: dict[str, np.ndarray]
    truth: np.ndarray       # bool [N, 5]
    observed: np.ndarray    # bool [N, 5]


def simulate_day(world: World, day: int, n: int, params: AppParams,
                 rng: np.random.Generator) -> DayClicks:
    """`n` clicks of day `day` on the campaigns running that day."""
    c = world.campaigns
    live = np.flatnonzero(c.start_day <= day)
    cdf = np.cumsum(c.traffic[live])
    campaign = live[_draw(cdf / cdf[-1], n, rng)]
    group = np.where(c.target[campaign] < 0, len(ACTIONS), c.target[campaign])
    user = np.empty(n, dtype=np.int64)
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        user[rows] = _draw(world.audience[g], len(rows), rng)
    slot = np.minimum(rng.geometric(0.45, n) - 1, CARDINALITY["slot"] - 1)
    context = {"hour_band": rng.choice(6, n, p=[0.05, 0.1, 0.2, 0.2, 0.25, 0.2]),
               "slot": slot, "network": rng.choice(3, n, p=[0.55, 0.35, 0.1]),
               "media": rng.integers(0, CARDINALITY["media"], n)}
    truth = _conversions(world, user, campaign, slot, params, rng)
    completeness = c.completeness[campaign]
    observed = truth & (rng.random(truth.shape) < completeness)
    return DayClicks(user, campaign, context, truth, observed)


def _conversions(world: World, user: np.ndarray, campaign: np.ndarray, slot: np.ndarray,
                 params: AppParams, rng: np.random.Generator) -> np.ndarray:
    """True conversions bool [N, 5] in `ACTIONS` order, following the funnel."""
    u, a, c, p = world.users, world.apps, world.campaigns, params
    app = c.app[campaign]
    affinity = np.einsum("nd,nd->n", u.latent[user], a.latent[app]) / np.sqrt(u.latent.shape[1])
    intent = rng.normal(0.0, p.intent_sigma, len(user))
    logits = (p.base_logit + np.outer(affinity, p.affinity_effect)
              + np.outer(u.wealth[user], p.wealth_effect)
              + np.outer(u.activity[user], p.activity_effect) + a.quality[app]
              + (intent + p.slot_effect * slot)[:, None]
              + rng.normal(0.0, p.noise_sigma, (len(user), len(ACTIONS))))
    logits[:, ACTIONS.index("payment")] += p.monetisation_effect * a.monetisation[app]
    logits += p.target_shift * (c.target[campaign][:, None] == np.arange(len(ACTIONS)))
    draw = rng.random(logits.shape) < 1.0 / (1.0 + np.exp(-logits))
    act, reg, pay, ret, reeng = (ACTIONS.index(x) for x in ACTIONS)
    out = np.zeros_like(draw)
    out[:, act] = draw[:, act]
    out[:, reg] = out[:, act] & draw[:, reg]
    out[:, pay] = out[:, reg] & draw[:, pay]
    out[:, ret] = out[:, act] & draw[:, ret]
    out[:, reeng] = draw[:, reeng] & ~out[:, act]
    return out


def day_table(world: World, clicks: DayClicks) -> pa.Table:
    c, users = world.campaigns, world.users
    campaign = clicks.campaign
    target = np.array([*ACTIONS, OTHER])[np.where(c.target[campaign] < 0, len(ACTIONS),
                                                  c.target[campaign])]
    columns: dict[str, pa.Array] = {"user_id": pa.array(clicks.user)}
    for name in USER_FIELDS:
        columns[name] = pa.array(users.features[name][clicks.user])
    creative = campaign * CREATIVES_PER_CAMPAIGN + (clicks.user % CREATIVES_PER_CAMPAIGN)
    columns |= {"campaign": pa.array(campaign), "app": pa.array(c.app[campaign]),
                "app_category": pa.array(world.apps.category[c.app[campaign]]),
                "creative": pa.array(creative)}
    columns |= {k: pa.array(v.astype(np.int64)) for k, v in clicks.context.items()}
    columns["target_action"] = pa.array(target)
    for j, action in enumerate(ACTIONS):
        columns[action] = pa.array(clicks.observed[:, j].astype(np.float32))
    for j, action in enumerate(ACTIONS):
        columns[f"true_{action}"] = pa.array(clicks.truth[:, j].astype(np.float32))
    for j, action in enumerate(ACTIONS):
        columns[f"reported_{action}"] = pa.array(c.reported[campaign, j].astype(np.float32))
    return pa.table(columns)


@dataclass
class AppSimStats:
    """Shares of rows per target, positive ratios (observed and true), reporting."""

    rows: int = 0
    per_target: np.ndarray = field(default_factory=lambda: np.zeros(len(ACTIONS) + 1))
    observed: np.ndarray = field(default_factory=lambda: np.zeros(len(ACTIONS)))
    truth: np.ndarray = field(default_factory=lambda: np.zeros(len(ACTIONS)))
    target_positives: np.ndarray = field(default_factory=lambda: np.zeros(len(ACTIONS)))
    reported: np.ndarray = field(default_factory=lambda: np.zeros(len(ACTIONS)))
    rows_per_day: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, world: World, clicks: DayClicks) -> None:
        target = world.campaigns.target[clicks.campaign]
        self.rows += len(target)
        self.per_target += np.bincount(np.where(target < 0, len(ACTIONS), target),
                                       minlength=len(ACTIONS) + 1)
        self.observed += clicks.observed.sum(0)
        self.truth += clicks.truth.sum(0)
        own = target[:, None] == np.arange(len(ACTIONS))
        self.target_positives += (clicks.observed & own).sum(0)
        self.reported += world.campaigns.reported[clicks.campaign].sum(0)
        self.rows_per_day.append(len(target))

    def format(self) -> str:
        rows = max(self.rows, 1)
        share = 100 * self.per_target / rows
        target_rows = np.maximum(self.per_target[:-1], 1)
        width = max(len(a) for a in (*ACTIONS, OTHER)) + 2
        head = f"{'':<22}" + "".join(f"{a:>{width}}" for a in (*ACTIONS, OTHER))

        def line(name: str, values, fmt: str = "{:.2f}%") -> str:
            cells = [fmt.format(v) for v in values]
            return f"{name:<22}" + "".join(f"{c:>{width}}" for c in cells)

        return "\n".join([
            f"clicks {self.rows:,}; rows per day {min(self.rows_per_day, default=0):,} to "
            f"{max(self.rows_per_day, default=0):,}; took {self.seconds:.1f} s",
            head,
            line("rows by target", share),
            line("reported by campaign", 100 * self.reported / rows),
            line("positive (observed)", 100 * self.observed / rows),
            line("positive (true)", 100 * self.truth / rows),
            line("positive on target", 100 * self.target_positives / target_rows),
        ])


def simulate_app_promotion(config: AppSimConfig, out: str | Path, *, overwrite: bool = False,
                           progress: Callable[[str], None] | None = None) -> AppSimStats:
    """Simulate `config` into `out` (MAC layout + `schema.toml`); the same config writes the
    same files. Staged like the MAC simulator's output (`malt.outputs.staged_output`)."""
    with staged_output(out, DATA_KIND, overwrite=overwrite) as stage:
        return _simulate_into(config, stage, progress or (lambda _: None))


def _simulate_into(config: AppSimConfig, out: Path, say: Callable[[str], None]) -> AppSimStats:
    started = time.perf_counter()
    world = build_world(config)
    stats = AppSimStats()
    day_seeds = np.random.SeedSequence([config.seed, 12]).spawn(config.days)
    for d in range(config.days):
        rng = np.random.default_rng(day_seeds[d])
        clicks = simulate_day(world, d, config.clicks_per_day, config.params, rng)
        stats.add(world, clicks)
        split, index = ("test", 0) if d == config.days - 1 else ("train", d)
        path = day_path(out, split, index)
        write_day(path, day_table(world, clicks))
        say(f"  wrote {path.relative_to(out)}: {len(clicks.user):,} rows")
    _write_vocabs(out / "vocabs", config, world)
    atomic_write_text(out / SCHEMA_FILE, _schema_toml())
    stats.seconds = time.perf_counter() - started
    return stats


def _write_vocabs(vocab_dir: Path, config: AppSimConfig, world: World) -> None:
    sizes = dict(CARDINALITY, user_id=config.users, app=config.apps,
                 campaign=len(world.campaigns.target),
                 creative=len(world.campaigns.target) * CREATIVES_PER_CAMPAIGN)
    for column, size in sizes.items():
        write_vocab(vocab_dir, column, [str(i) for i in range(size)])
