"""Compare runs scored on the same rows: each metric's difference with its paired interval over
users (and seeds), and the verdict it supports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from malt.bootstrap import METRICS, PairedDelta, paired_bootstrap
from malt.errors import ConfigError
from malt.eval.options import DEFAULT_RESAMPLES
from malt.eval.predictions import Predictions
from malt.runs.directory import RunDir

TITLES = {"auc": "AUC", "gauc": "GAUC", "logloss": "logloss"}
NO_DIFFERENCE = "no detectable difference at this data size"


@dataclass(frozen=True)
class Comparison:
    """The candidate minus the baseline on one view, metric by metric."""

    view: str
    deltas: dict[str, PairedDelta]
    rows: int
    note: str = ""
    """How the runs were paired, when it needs saying (one seed; one baseline for all)."""

    @property
    def verdict(self) -> str:
        return verdict(self.deltas)


def compare(candidate: Sequence[Predictions], baseline: Sequence[Predictions], view: str, *,
            metrics: Sequence[str] = METRICS, resamples: int = DEFAULT_RESAMPLES,
            level: float = 0.95, seed: int = 0) -> Comparison:
    """The candidate's runs (one per training seed) against the baseline's on `view`.

    Run s of the candidate pairs with run s of the baseline; a single baseline run pairs with
    every candidate run. Every run must have scored the same rows (same users, same labels,
    same clicks); on impression logs the clicked ones are compared.
    """
    if not candidate or not baseline:
        raise ConfigError("compare needs at least one run on each side")
    if len(baseline) == 1 and len(candidate) > 1:
        baseline = [baseline[0]] * len(candidate)
        note = "one baseline run paired with every candidate run"
    elif len(baseline) != len(candidate):
        raise ConfigError(f"pair the runs seed by seed: {len(candidate)} candidate run(s) "
                          f"and {len(baseline)} baseline run(s)")
    else:
        note = "" if len(candidate) > 1 else \
            "one seed: the interval covers the test rows, not the training randomness"
    first = candidate[0]
    for predictions in [*candidate, *baseline]:
        if view not in predictions.views:
            raise ConfigError(f"a run has no '{view}' head; its views are "
                              f"{list(predictions.views)}")
        if not predictions.same_rows(first, view):
            raise ConfigError("the runs were evaluated on other rows; score them on the same "
                              "data (malt eval --data DIR) before comparing")
    # On impression logs the conversion rates are compared on the clicks, as they are scored.
    candidate, baseline = [p.clicked() for p in candidate], [p.clicked() for p in baseline]
    first = candidate[0]
    labels = (first.label_weights(view) > 0).astype(np.float64)
    deltas = paired_bootstrap([p.view(view) for p in candidate],
                              [p.view(view) for p in baseline], labels, first.user,
                              metrics=metrics, resamples=resamples, level=level, seed=seed)
    return Comparison(view, deltas, len(labels), note)


def compare_runs(runs: Sequence[str | Path], baseline: Sequence[str | Path], *,
                 view: str | None = None, metrics: Sequence[str] = METRICS,
                 resamples: int = DEFAULT_RESAMPLES, level: float = 0.95,
                 seed: int = 0) -> Comparison:
    """`compare` on the saved predictions of run directories; `view` defaults to the first
    run's main view."""
    if not runs:
        raise ConfigError("compare needs at least one run on each side")
    view = view or RunDir(runs[0]).load_config().task.main
    return compare([Predictions.load(RunDir(r).predictions_file) for r in runs],
                   [Predictions.load(RunDir(r).predictions_file) for r in baseline], view,
                   metrics=metrics, resamples=resamples, level=level, seed=seed)


def verdict(deltas: Mapping[str, PairedDelta]) -> str:
    """One line: "better", "worse" or `NO_DIFFERENCE`, per metric when the metrics disagree."""
    calls = {metric: {True: "better", False: "worse", None: "no detectable difference"}[
        delta.a_better] for metric, delta in deltas.items()}
    if len(set(calls.values())) == 1:
        call = next(iter(calls.values()))
        return NO_DIFFERENCE if call == "no detectable difference" else call
    grouped: dict[str, list[str]] = {}
    for metric, call in calls.items():
        grouped.setdefault(call, []).append(TITLES[metric])
    parts = [f"{call} on {' and '.join(titles)}" for call, titles in grouped.items()]
    return "; ".join(parts) + " (the metrics disagree)"


def format_comparison(comparison: Comparison, candidate: str = "run",
                      baseline: str = "baseline") -> str:
    """A table of the differences in points (× 100), their intervals and p-values, then the
    verdict."""
    first = next(iter(comparison.deltas.values()))
    level = f"{100 * first.level:g}%"
    lines = [f"{candidate} − {baseline} on '{comparison.view}' ({comparison.rows:,} rows, "
             f"{first.users:,} users, {first.seeds} seed(s), {first.resamples:,} resamples):",
             f"{'metric':<9}{'Δ (pt)':>9}  {level + ' interval':<20}{'p':>7}  call"]
    for metric, delta in comparison.deltas.items():
        call = {True: "better", False: "worse", None: "–"}[delta.a_better]
        lines.append(f"{TITLES[metric]:<9}{100 * delta.estimate:>+9.2f}  "
                     f"[{100 * delta.low:+.2f}, {100 * delta.high:+.2f}]".ljust(40) +
                     f"{delta.p_value:>7.3f}  {call}")
    lines.append(f"verdict: {comparison.verdict}")
    if comparison.note:
        lines.append(f"note: {comparison.note}")
    lines.append("Δ = run − baseline; lower logloss is better; intervals from a paired bootstrap "
                 "over users" + (" and seeds" if first.seeds > 1 else ""))
    return "\n".join(lines)
