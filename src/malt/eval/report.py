"""The evaluation report of a run's predictions.

Metrics come in two flavours (see `malt.metrics`): binarised labels, as the MAC paper reports
them, and attribution-weighted positives (the paper's §3.3 definition). Data with a
target-action column (incomplete multi-label data, KAML) are also scored as the KAML paper does:
each row once, on its target action (see `malt.eval.target`). On impression logs the views are
scored on the clicked rows.
"""

from __future__ import annotations

import numpy as np

from malt.errors import ConfigError
from malt.eval.predictions import Predictions
from malt.metrics import (
    CALIBRATION_BINS,
    DEFAULT_COMPLEXITY_EDGES,
    ComplexityBreakdown,
    ViewMetrics,
    gauc,
    gauc_gain_by_complexity,
    path_complexity,
    view_metrics,
)

MIN_GAUC_USERS = 500
"""Below this many users in a GAUC, differences between models or settings are mostly noise."""


def evaluate(predictions: Predictions) -> dict[str, ViewMetrics]:
    """View -> metrics (see `malt.metrics.view_metrics`), on the clicked rows of impression
    logs (the conversion rate on clicks; `malt.eval.impressions` scores the entire space)."""
    predictions = predictions.clicked()
    return {v: view_metrics(predictions.view(v), predictions.label_weights(v), predictions.user)
            for v in predictions.views}


def evaluate_by_day(predictions: Predictions) -> dict[str, dict[str, ViewMetrics]]:
    """Day -> view -> metrics when the predictions span several days (else empty: the pooled
    metrics are that day's)."""
    if len(predictions.days) < 2:
        return {}
    return {day: evaluate(part) for day, part in predictions.by_day()}


def few_users_warning(pooled: dict[str, ViewMetrics],
                      per_day: dict[str, dict[str, ViewMetrics]], main: str, *,
                      split: str = "test") -> str | None:
    """A warning when the main view's GAUC counts fewer than `MIN_GAUC_USERS` users, on the
    evaluated days pooled or (test days) on any one of them; None when each counts enough.
    `split`: `test`, `validation`, or `day` (a day chosen to score on)."""
    if split == "validation":  # the settings are chosen on the pooled validation days
        users = pooled[main].gauc_users
        return None if users >= MIN_GAUC_USERS else (
            f"the validation GAUC counts only {users} users (fewer than {MIN_GAUC_USERS}): "
            "choices made on it are mostly noise; hold out more days (--validation-days) or "
            "use more data")
    if not per_day:
        users = pooled[main].gauc_users
        counted = None if users >= MIN_GAUC_USERS else \
            f"counts only {users} users (fewer than {MIN_GAUC_USERS})"
    else:
        thin = [f"{name} ({m[main].gauc_users})" for name, m in
                [*per_day.items(), ("pooled", pooled)] if m[main].gauc_users < MIN_GAUC_USERS]
        counted = None if not thin else \
            f"counts fewer than {MIN_GAUC_USERS} users on {', '.join(thin)}"
    scored = "test GAUC" if split == "test" else "GAUC"
    return None if counted is None else (
        f"the {scored} of '{main}' {counted}: a difference between models or settings on it "
        "is mostly noise; evaluate on more test days or more data")


def complexity_breakdown(run: Predictions, baseline: Predictions, view: str,
                         edges=DEFAULT_COMPLEXITY_EDGES) -> ComplexityBreakdown:
    """GAUC gain of `run` over `baseline` on `view` by user path complexity (linear/last
    positives per user, MAC paper Fig. 5); both must score the same rows."""
    for needed in ("linear", "last"):
        if needed not in run.labels:
            raise ConfigError(f"the path-complexity breakdown needs a '{needed}' label; the "
                              f"data has {list(run.labels)}")
    if not run.same_rows(baseline):
        raise ConfigError("the baseline run was evaluated on other rows; evaluate both on the "
                          "same data")
    labels = (run.label_weights(view) > 0).astype(np.float64)
    model_gauc = gauc(run.view(view), labels, run.user)
    base_gauc = gauc(baseline.view(view), labels, run.user)
    complexity = path_complexity(model_gauc.user_ids, run.user, run.label_weights("linear"),
                                 run.label_weights("last"))
    return gauc_gain_by_complexity(model_gauc, base_gauc, complexity, edges)


def format_metrics(metrics: dict[str, ViewMetrics], main: str) -> str:
    """A fixed-width table: one row per view, main view first; under it, why metrics shown as
    nan are undefined."""
    header = f"{'view':<10}{'AUC':>9}{'GAUC':>9}{'AUC(w)':>9}{'GAUC(w)':>9}{'logloss':>10}" \
             f"{'PCOC':>8}{'ECE':>9}{'users':>9}"
    lines = [header]
    for view in sorted(metrics, key=lambda v: v != main):
        m = metrics[view]
        name = f"{view}*" if view == main else view
        lines.append(f"{name:<10}{m.auc:>9.4f}{m.gauc:>9.4f}{m.auc_weighted:>9.4f}"
                     f"{m.gauc_weighted:>9.4f}{m.logloss:>10.4f}{m.pcoc:>8.3f}{m.ece:>9.5f}"
                     f"{m.gauc_users:>9,}")
    lines += [f"{view}: {metrics[view].note}" for view in metrics if metrics[view].note]
    lines.append("* main view; (w): positives weighted by their attribution weight")
    lines.append(f"PCOC: predicted / observed positives (1 = calibrated); ECE: calibration "
                 f"error over {CALIBRATION_BINS} equal-count bins")
    return "\n".join(lines)


def format_days(per_day: dict[str, dict[str, ViewMetrics]], pooled: dict[str, ViewMetrics],
                main: str) -> str:
    """The main view's metrics on each evaluation day and pooled over them."""
    lines = [f"main view '{main}' by day:",
             f"{'day':<14}{'AUC':>9}{'GAUC':>9}{'logloss':>10}{'PCOC':>8}{'users':>9}"]
    for day, metrics in [*per_day.items(), ("pooled", pooled)]:
        m = metrics[main]
        lines.append(f"{day:<14}{m.auc:>9.4f}{m.gauc:>9.4f}{m.logloss:>10.4f}{m.pcoc:>8.3f}"
                     f"{m.gauc_users:>9,}")
    return "\n".join(lines)


def format_breakdown(breakdown: ComplexityBreakdown) -> str:
    lines = [f"{'linear/last':<14}{'users':>8}{'clicks':>10}{'GAUC run':>10}{'GAUC base':>11}"
             f"{'gain (pt)':>11}"]
    for g in breakdown.groups:
        span = f"[{g.lo:g}, {g.hi:g})"
        lines.append(f"{span:<14}{g.users:>8,}{g.clicks:>10,}{g.gauc_model:>10.4f}"
                     f"{g.gauc_baseline:>11.4f}{100 * g.gain:>+11.2f}")
    lines.append(f"users outside the groups (no last-click positive): {breakdown.excluded_users:,}")
    return "\n".join(lines)
