"""The hidden world of the app-promotion simulator: users, apps, campaigns, reporting.

Five conversion actions of an app-promotion funnel (`ACTIONS`): activation (install and first
open) -> registration -> payment, retention (opened again the next day) after activation, and
re-engagement (an existing user comes back). Every campaign promotes one app and bids for one
target action (or for an action outside the five, "other"); it always reports its target and
reports each other action with an action-specific probability, sometimes only partly (a share
of the conversions reaches the platform).

The target shares and reporting probabilities are set so that the share of samples per target
and the share a KAML-style ADM mask opens per action resemble the KAML paper's Table 1 (its
anonymous actions A..E read as activation, re-engagement, payment, registration, retention).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from malt.typed_fields import FiniteFloat, NonNegativeFloat, ProbabilityFloat, validate

ACTIONS = ("activation", "registration", "payment", "retention", "reengagement")
OTHER = "other"
LATENT = 4
APP_CATEGORIES = ("game", "finance", "shopping", "social", "tools", "video", "education",
                  "travel", "health", "news")
DEVICE_MODELS = 60
INTERESTS = 12
CREATIVES_PER_CAMPAIGN = 3


def _vec(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


@dataclass(frozen=True)
class AppParams:
    """True parameters of the simulated world (never written to the output)."""

    target_shares: np.ndarray = field(default_factory=lambda: _vec(
        0.69, 0.115, 0.099, 0.006, 0.053, 0.037))
    """Share of campaigns' traffic per target: the five actions, then "other"."""
    report_probability: np.ndarray = field(default_factory=lambda: _vec(
        0.97, 0.25, 0.14, 0.5, 0.03))
    """Chance that a campaign reports an action that is not its target."""
    full_report_share: ProbabilityFloat = 0.7
    """Share of reported non-target actions reported completely; the others report a random
    40-90 % of their conversions (a target is always reported completely)."""
    late_start_share: ProbabilityFloat = 0.3
    """Share of campaigns that start after the first day (they have no reporting history)."""
    traffic_sigma: NonNegativeFloat = 1.0
    """Log-normal spread of the campaigns' click volumes."""
    base_logit: np.ndarray = field(default_factory=lambda: _vec(-2.8, -0.2, -1.2, -1.0, -3.6))
    """Intercepts: activation, then each step given its parent (registration and retention given
    activation, payment given registration), and re-engagement."""
    affinity_effect: np.ndarray = field(default_factory=lambda: _vec(1.0, 0.6, 0.5, 0.7, 0.6))
    wealth_effect: np.ndarray = field(default_factory=lambda: _vec(0.1, 0.3, 0.9, 0.0, 0.1))
    activity_effect: np.ndarray = field(default_factory=lambda: _vec(0.3, 0.1, 0.1, 0.7, 0.8))
    monetisation_effect: FiniteFloat = 0.6
    """Effect of the app's monetisation on payment."""
    app_quality_sigma: NonNegativeFloat = 0.4
    intent_sigma: NonNegativeFloat = 0.5
    """Click-level intent shared by all actions of a click."""
    noise_sigma: NonNegativeFloat = 0.4
    target_shift: FiniteFloat = 0.4
    """Logit shift of the target action on a campaign's clicks (delivery is optimised for it)."""
    audience_tilt: FiniteFloat = 0.6
    """How strongly a campaign's audience leans towards users prone to its target action."""
    slot_effect: FiniteFloat = -0.08

    def __post_init__(self) -> None:
        validate(self, "params")


@dataclass
class Users:
    latent: np.ndarray      # [U, LATENT]
    activity: np.ndarray    # [U]
    wealth: np.ndarray      # [U]
    features: dict[str, np.ndarray]


@dataclass
class Apps:
    latent: np.ndarray        # [A, LATENT]
    category: np.ndarray      # [A]
    quality: np.ndarray       # [A, 5]
    monetisation: np.ndarray  # [A]


@dataclass
class Campaigns:
    app: np.ndarray           # [C]
    target: np.ndarray        # [C] action index, -1 = other
    traffic: np.ndarray       # [C] relative click volume
    start_day: np.ndarray     # [C]
    reported: np.ndarray      # bool [C, 5]
    completeness: np.ndarray  # [C, 5] share of conversions reported (0 where not reported)


def _bands(values: np.ndarray, bands: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Quantile bands 0..bands-1 of `values` seen through noise."""
    noisy = values + rng.normal(0.0, noise, len(values))
    edges = np.quantile(noisy, np.linspace(0, 1, bands + 1)[1:-1])
    return np.searchsorted(edges, noisy).astype(np.int64)


def build_users(n: int, centres: np.ndarray, rng: np.random.Generator) -> Users:
    """Users with latent tastes, activity and wealth, and the categorical features that show
    them through noise: age band, gender, city tier, device model, OS, interest, the category of
    the apps they installed most, activity level. `centres` [categories, LATENT] are the app
    categories' latent centres."""
    latent = rng.normal(size=(n, LATENT))
    activity = rng.normal(size=n)
    wealth = rng.normal(size=n)
    age = rng.normal(size=n)
    device_tier = _bands(wealth, 5, 0.6, rng)
    device = device_tier * (DEVICE_MODELS // 5) + rng.integers(0, DEVICE_MODELS // 5, n)
    projection = rng.normal(size=(LATENT, INTERESTS))
    interest = np.argmax(latent @ projection + rng.gumbel(size=(n, INTERESTS)), axis=1)
    installed = np.argmax(latent @ centres.T + 0.5 * rng.gumbel(size=(n, len(centres))), axis=1)
    features = {
        "age_band": _bands(age, 7, 0.2, rng),
        "gender": rng.integers(0, 3, n),
        "city_tier": _bands(wealth, 5, 0.8, rng),
        "device_model": device,
        "os": np.where(device_tier >= 3, rng.integers(0, 2, n), rng.integers(1, 3, n)),
        "interest": interest.astype(np.int64),
        "installed_category": installed.astype(np.int64),
        "activity_level": _bands(activity, 5, 0.3, rng),
    }
    return Users(latent, activity, wealth, features)


def category_centres(rng: np.random.Generator) -> np.ndarray:
    """Latent centre of each app category [categories, LATENT]."""
    return rng.normal(size=(len(APP_CATEGORIES), LATENT))


def build_apps(n: int, centres: np.ndarray, params: AppParams, rng: np.random.Generator
               ) -> Apps:
    category = rng.integers(0, len(APP_CATEGORIES), n)
    latent = centres[category] + 0.6 * rng.normal(size=(n, LATENT))
    monetising = np.isin(category, [APP_CATEGORIES.index(c) for c in ("game", "finance",
                                                                       "shopping")])
    monetisation = rng.normal(size=n) + np.where(monetising, 1.0, -0.5)
    quality = rng.normal(0.0, params.app_quality_sigma, (n, len(ACTIONS)))
    return Apps(latent, category, quality, monetisation)


def build_campaigns(n: int, apps: int, days: int, params: AppParams,
                    rng: np.random.Generator) -> Campaigns:
    """`n` campaigns; every target (and "other") gets at least two, the rest follow
    `target_shares` in expectation of traffic."""
    shares = params.target_shares / params.target_shares.sum()
    count = np.maximum(2, np.round(shares * n).astype(np.int64))
    target = rng.permutation(np.repeat(np.r_[np.arange(len(ACTIONS)), -1], count))
    m = len(target)
    traffic = rng.lognormal(0.0, params.traffic_sigma, m)
    # Scale each target group so that its traffic share is the configured one.
    group = np.where(target < 0, len(ACTIONS), target)
    traffic *= shares[group] / np.bincount(group, traffic)[group]
    late = rng.random(m) < params.late_start_share
    start = np.where(late, rng.integers(1, max(days - 1, 2), m), 0)
    reported = rng.random((m, len(ACTIONS))) < params.report_probability
    partial = rng.uniform(0.4, 0.9, (m, len(ACTIONS)))
    completeness = np.where(rng.random((m, len(ACTIONS))) < params.full_report_share, 1.0,
                            partial)
    own = target[:, None] == np.arange(len(ACTIONS))
    reported |= own
    completeness = np.where(own, 1.0, np.where(reported, completeness, 0.0))
    return Campaigns(app=rng.integers(0, apps, m), target=target, traffic=traffic,
                     start_day=start, reported=reported, completeness=completeness)


def action_scores(users: Users, params: AppParams) -> np.ndarray:
    """Each user's standardised propensity per action from the user-side terms [U, 5]."""
    scores = (np.outer(users.wealth, params.wealth_effect)
              + np.outer(users.activity, params.activity_effect))
    return (scores - scores.mean(0)) / scores.std(0).clip(min=1e-9)
