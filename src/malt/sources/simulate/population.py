"""Users: six profile features, a latent interest vector, activity and a purchase threshold.

The profile features come from two latent traits (wealth and age) with noise. The interest vector
is a sum of one learned-looking vector per profile value (plus an age x gender cross) and a
personal part, so the profile predicts part of what a user likes and the purchase history the
rest. Activity is log-normal: a few users click a lot, as in MAC's sampling of active users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from malt.sources.simulate.config import DEVICES, LATENT_DIM, Params

PROFILE_SIZES = (7, 3, 6, 5, 4, DEVICES)
"""Values of each user profile feature: age band, gender, city tier, spending power,
membership, device."""
SPENDING, MEMBERSHIP, DEVICE = 3, 4, 5


@dataclass
class Population:
    """All users [U]; feature values are 0-based, `raw_id` is what the files hold."""

    profile: np.ndarray      # int8 [U, 6]
    interest: np.ndarray     # float32 [U, K]
    activity: np.ndarray     # float64 [U] mean clicks per day
    threshold: np.ndarray    # float64 [U] intent needed to buy
    raw_id: np.ndarray       # int64 [U]

    @property
    def users(self) -> int:
        return len(self.activity)


def _band(x: np.ndarray, n: int) -> np.ndarray:
    return np.clip(np.round(x), 0, n - 1).astype(np.int8)


def build_population(n_users: int, params: Params, rng: np.random.Generator) -> Population:
    """Draw `n_users` users."""
    p = params
    wealth = rng.normal(size=n_users)
    age = rng.normal(size=n_users)
    mu = np.log(p.clicks_per_user_day) - p.activity_sigma ** 2 / 2
    log_activity = mu + p.activity_sigma * rng.normal(size=n_users)
    noise = rng.normal(size=(n_users, 6))
    gender = rng.choice(3, size=n_users, p=[0.55, 0.40, 0.05])
    device = np.where(rng.random(n_users) < 1 / (1 + np.exp(-wealth)), 0,
                      rng.choice(np.arange(1, DEVICES), size=n_users, p=[0.75, 0.15, 0.10]))
    profile = np.stack([
        _band(3 + 1.4 * age + 0.5 * noise[:, 0], 7),
        gender,
        _band(2.5 - wealth + noise[:, 2], 6),
        _band(2 + wealth + 0.5 * noise[:, 3], 5),
        _band(0.8 + 0.5 * wealth + 0.5 * (log_activity - mu) + 0.6 * noise[:, 4], 4),
        device,
    ], axis=1).astype(np.int8)

    interest = np.zeros((n_users, LATENT_DIM), dtype=np.float32)
    for j, size in enumerate(PROFILE_SIZES):
        table = rng.normal(0, 0.5, (size, LATENT_DIM)).astype(np.float32)
        interest += table[profile[:, j]]
    cross = rng.normal(0, 0.6, (7 * 3, LATENT_DIM)).astype(np.float32)
    interest += cross[profile[:, 0] * 3 + profile[:, 1]]
    interest += rng.standard_normal((n_users, LATENT_DIM), dtype=np.float32)
    interest /= interest.std(axis=0, keepdims=True)

    threshold = np.exp(p.threshold_sigma * rng.normal(size=n_users)
                       - p.membership_effect * profile[:, MEMBERSHIP])
    raw_id = rng.permutation(n_users).astype(np.int64) + 1
    return Population(profile=profile, interest=interest,
                      activity=np.minimum(np.exp(log_activity), 200.0), threshold=threshold,
                      raw_id=raw_id)
