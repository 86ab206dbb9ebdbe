"""The attribution engine: a click log in, one label per click and rule out.

Steps: match every conversion with its journey (`journeys`), weight the journey's clicks under
each rule (`rules`, and the learned `dda`), and sum the weights of every click over the journeys
it belongs to. A click in no journey gets 0 under every rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from malt.errors import ConfigError, DataError
from malt.sources.attribution.config import AttributionConfig
from malt.sources.attribution.dda import NoisyOrModel, Paths, dda_credit
from malt.sources.attribution.journeys import (
    Journeys,
    build_journeys,
    key_codes,
    split_paths,
)
from malt.sources.attribution.logs import ClickLog
from malt.sources.attribution.rules import credit


@dataclass
class Attribution:
    """Labels of every click: label -> float64 [N] (sum of its weights over its journeys), one
    per view of the config (`AttributionConfig.views`)."""

    labels: dict[str, np.ndarray]
    journeys: Journeys
    """The journeys under the config's window."""
    known_at: dict[str, np.ndarray] = field(default_factory=dict)
    """label -> float64 [N] time its credit became known: the first conversion that gives the
    click a positive weight under the view (NaN where the label is 0)."""
    pair_weights: dict[str, np.ndarray] = field(default_factory=dict)
    """rule -> float64 [P] weight of every (conversion, click) pair of `journeys`."""
    dda_model: NoisyOrModel | None = None

    @property
    def attributed_conversions(self) -> int:
        return int(np.count_nonzero(self.journeys.sizes))


def journey_keys(log: ClickLog, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Matching keys of clicks [N] and conversions [M] (see `journeys` for the modes)."""
    clicks, conversions = log.clicks, log.conversions
    if log.journey:
        return key_codes([clicks["journey"].to_numpy()], [conversions["journey"].to_numpy()])
    if mode == "direct":
        columns = ["user", "item"]
    elif mode == "indirect-any":
        columns = ["user"]
    else:
        columns = ["user", "shop"]
        if "shop" not in clicks:
            raise DataError("--mode indirect-shop needs a 'shop' column in the clicks",
                            column="shop")
        if "shop" not in conversions:
            conversions = conversions.assign(shop=_shop_of(clicks, conversions["item"]))
    return key_codes([clicks[c].to_numpy() for c in columns],
                     [conversions[c].to_numpy() for c in columns])


def _shop_of(clicks: pd.DataFrame, items: pd.Series) -> np.ndarray:
    """Shop of every item [M] as seen in the clicks (None for items never clicked)."""
    pairs = clicks[["item", "shop"]].drop_duplicates()
    twice = pairs["item"].duplicated()
    if twice.any():
        item = pairs["item"][twice].iloc[0]
        raise DataError(f"item {item!r} is sold by more than one shop", column="shop")
    shop = pd.Series(pairs["shop"].to_numpy(), index=pairs["item"].to_numpy())
    return shop.reindex(items.to_numpy()).to_numpy()


def _path_key(log: ClickLog, click_key: np.ndarray) -> np.ndarray:
    """Key that groups clicks into non-converting paths for the dda fit."""
    if not log.journey:
        return click_key
    key, _ = key_codes([log.clicks["user"].to_numpy(), log.clicks["item"].to_numpy()],
                       [np.zeros(0), np.zeros(0)])
    return key


def _feature_codes(log: ClickLog, columns: tuple[str, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """int64 [N, G] codes of the dda feature columns and their cardinalities."""
    missing = [c for c in columns if c not in log.clicks]
    if missing:
        raise ConfigError(f"dda features {missing} are not click columns; the clicks have "
                          f"{list(log.clicks.columns)}")
    codes, sizes = [], []
    for column in columns:
        code, uniques = pd.factorize(log.clicks[column], use_na_sentinel=False)
        codes.append(code.astype(np.int64))
        sizes.append(len(uniques))
    n = len(log.clicks)
    return (np.stack(codes, axis=1) if codes else np.zeros((n, 0), np.int64)), tuple(sizes)


def attribute(log: ClickLog, config: AttributionConfig = AttributionConfig()) -> Attribution:
    """Label every click of `log` under every view of `config` (each rule under the window,
    then the view windows), with the time each label became known. Journeys are matched once,
    under the widest window; a narrower view keeps the pairs inside its own window, by the
    comparison `build_journeys` makes, so it equals a run under that window alone."""
    click_time = log.clicks["click_time"].to_numpy(dtype=np.float64)
    conversion_time = log.conversions["conversion_time"].to_numpy(dtype=np.float64)
    click_key, conversion_key = journey_keys(log, config.mode)
    widest = build_journeys(click_key, click_time, log.click_order, conversion_key,
                            conversion_time, config.widest_window)
    within = {window: widest.within(window, click_time, conversion_time)
              for window in {window for _, _, window in config.views}}
    labels: dict[str, np.ndarray] = {}
    known_at: dict[str, np.ndarray] = {}
    weights: dict[str, np.ndarray] = {}
    model = None
    for name, rule, window in config.views:
        journeys = within[window]
        if rule == "dda":
            weight, fitted = _dda(log, config, journeys, click_key, window)
            model = fitted if name == rule else model
        else:
            weight = credit(rule, journeys.conversion, click_time[journeys.click],
                            log.click_order[journeys.click], journeys.age,
                            half_life=config.half_life, position_shares=config.position_shares)
        labels[name] = journeys.click_totals(weight)
        known_at[name] = journeys.first_credit(weight, conversion_time)
        if name == rule:  # a rule under the config's window
            weights[rule] = weight
    return Attribution(labels=labels, journeys=within[config.window], known_at=known_at,
                       pair_weights=weights, dda_model=model)


def _dda(log: ClickLog, config: AttributionConfig, journeys: Journeys, click_key: np.ndarray,
         window: float) -> tuple[np.ndarray, NoisyOrModel]:
    """dda weights [P]: fit on the journeys (matched under `window`) and on the clicks outside
    any journey."""
    features, cardinalities = _feature_codes(log, config.dda_features)
    click_time = log.clicks["click_time"].to_numpy(dtype=np.float64)
    converted = Paths(path=journeys.conversion, time=click_time[journeys.click],
                      click_id=log.click_order[journeys.click], features=features[journeys.click])
    # Clicks outside every journey form the non-converting paths: same key, gaps <= window.
    # Taking them in matching-key order spares `split_paths` a sort when paths use that key.
    outside = np.bincount(journeys.click, minlength=journeys.n_clicks) == 0
    loose = journeys.key_order[outside[journeys.key_order]]
    key = _path_key(log, click_key)[loose]
    order, path = split_paths(key, click_time[loose], log.click_order[loose], window)
    rows = loose[order]
    other = Paths(path=path, time=click_time[rows], click_id=log.click_order[rows],
                  features=features[rows])
    return dda_credit(converted, other, cardinalities, l2=config.dda_l2)
