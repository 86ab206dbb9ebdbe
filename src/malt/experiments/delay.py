"""The delayed-feedback study: each way of training on labels that are still arriving, judged
on the next day against the matured labels and, on simulated data, against the true
probability.

"Now" is T, the time of the last training click. Every method's runs train as of T (`data.as_of`)
and are scored on the test day, the day after:

    wait   the training days whose newest click is at least the attribution window before T
           (their labels are matured at T), no correction
    naive  every training day, the labels known at T, no correction
    fnw, fnc, dfm   every training day, the labels known at T, with that delay correction

Each method is compared with `wait` and each correction with `naive`, seed by seed, with the
paired user bootstrap of `malt.bootstrap.paired_target_bootstrap` (AUC, GAUC, logloss, PCOC),
against the matured labels of the test day and against the true conversion probability when the
data hold it. The freshness of a method is how many hours before T its newest training click
was made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from malt.bootstrap import (
    TARGET_METRICS,
    PairedDelta,
    paired_target_bootstrap,
    target_metrics,
)
from malt.data.as_of import check_days_delay_correction, known_positives
from malt.data.cache import Dataset
from malt.data.task import CAT
from malt.errors import ConfigError
from malt.eval.options import DEFAULT_RESAMPLES
from malt.eval.predictions import Predictions
from malt.eval.truth import truth_of_predictions
from malt.experiments.cells import Cell
from malt.experiments.output import StudyOutput
from malt.experiments.study import Study, Variant
from malt.experiments.tables import Column, Table
from malt.runs.config import RunConfig

METHODS = ("wait", "naive", "fnw", "fnc", "dfm")
CORRECTIONS = {"wait": "none", "naive": "none", "fnw": "fnw", "fnc": "fnc", "dfm": "dfm"}
"""Each method's `task.delay_correction`."""
MODELS = ("base", "moae")
TARGETS = ("linear",)
"""The default target: the binarised linear label records the event whose chance the simulator
writes (the click's journey ends in a purchase within the window), so the truth columns score
its probability; a last- or first-click label credits one click of the journey."""
RANKED = ("auc", "gauc")
"""The columns marked best (higher is better): logloss is better lower and PCOC nearer 1."""
HOUR = 3600.0
DAY = 86400.0
AGAINST = (("", "matured labels"), ("truth", "true probability"))
"""(key suffix, what the test day is scored against)."""


@dataclass(frozen=True)
class DelayPlan:
    """T and the training days of every method: `days` training days in all, the first
    `matured` of which `wait` trains on."""

    as_of: float
    """T: the time of the last training click, on the data's clock (seconds)."""
    days: int
    matured: int

    def train_days(self, method: str) -> int:
        return self.matured if method == "wait" else self.days


def plan_delay(dataset: Dataset, window_days: float) -> DelayPlan:
    """T and the matured days of `dataset`'s training days: those whose newest click is at least
    `window_days` (> 0) before T. Refused (exit 3) without known-at and click-time columns, and
    when no day is matured (wait would train on nothing)."""
    days = dataset.train
    if not days:
        raise ConfigError("the delay study needs training days")
    check_days_delay_correction(days, "fnw")  # the labels' known-at columns
    newest = [_newest_click(day) for day in days]
    as_of = max(newest)
    # The last day holds T itself, so a positive window leaves it (at least) still arriving.
    matured = sum(1 for t in newest if t <= as_of - window_days * DAY)
    if matured == 0:
        raise ConfigError(f"with a {window_days:g}-day attribution window, none of the "
                          f"{len(days)} training days is matured at the last click, and `wait` "
                          "trains on those: give more days, or a shorter --delay-window-days")
    return DelayPlan(as_of, len(days), matured)


def _newest_click(day) -> float:
    arrays = day.arrays()
    if "click_time" not in arrays:
        raise ConfigError(f"the delay study reads each click's time, which the day {day.name} "
                          "does not hold (the schema's click_time column; `malt simulate` "
                          "writes it)")
    return float(np.max(arrays["click_time"]))


def delay_config(study: Study, plan: DelayPlan, model: str, target: str, method: str,
                 seed: int) -> RunConfig:
    """The run of `method` for (`model`, `target`): the study's fixed setting, as of T, on
    the method's days. The auxiliary views are the reference set without `cat` (a joint
    softmax, which takes no delay correction)."""
    aux = tuple(v for v in study.reference_aux(model, target) if v != CAT)
    config = study.config(Variant(model, target, aux, study.fixed_setting()), seed=seed)
    data = replace(config.data, train_from=None, train_days=plan.train_days(method),
                   as_of=f"{plan.as_of:.17g}")
    return replace(config, data=data,
                   task=replace(config.task, delay_correction=CORRECTIONS[method]))


@dataclass(frozen=True)
class Scored:
    """One method's test predictions of the target, seed by seed, and their targets."""

    scores: list[np.ndarray]
    labels: np.ndarray
    truth: np.ndarray | None
    user: np.ndarray


def _scored(study: Study, configs: Sequence[RunConfig], target: str) -> Scored | None:
    """The seeds' predictions (None unless every seed finished with its predictions)."""
    runs = [Cell(c).run_dir(study.runs) for c in configs]
    if not all(r.is_complete() and r.predictions_file.is_file() for r in runs):
        return None
    predictions = [Predictions.load(r.predictions_file) for r in runs]
    first = predictions[0]
    if not all(p.same_rows(first, target) for p in predictions):
        raise ConfigError(f"the runs under {study.runs} scored other rows; remove the stale "
                          "ones and run the study again")
    truth = truth_of_predictions(study.prepared().schema,
                                 [d.source for d in study.prepared().test], first)
    return Scored([p.view(target).astype(np.float64) for p in predictions],
                  (first.label_weights(target) > 0).astype(np.float64),
                  None if truth is None or truth.probability is None else
                  np.clip(truth.probability, 0.0, 1.0), first.user)


def _versus(a: Scored, b: Scored, against: str) -> dict[str, PairedDelta] | None:
    target = a.labels if against == "" else a.truth
    if target is None:
        return None
    return paired_target_bootstrap(a.scores, b.scores, target, a.user,
                                   resamples=DEFAULT_RESAMPLES, seed=0)


def _metric_columns(kind: str) -> list[Column]:
    columns = []
    for suffix, _ in AGAINST:
        mark = "*" if suffix else ""
        columns += [Column(_key(m, suffix), f"{'Δ' if kind == 'delta' else ''}"
                           f"{m.upper() if m != 'logloss' else m}{mark}", kind,
                           rank=m in RANKED and kind == "metric")
                    for m in TARGET_METRICS]
    return columns


def _key(metric: str, suffix: str) -> str:
    return f"{metric}_{suffix}" if suffix else metric


def study_delay(study: Study) -> StudyOutput:
    """Every delay method for every model and target, seeds paired: the next-day metrics and
    freshness, each method against `wait`, each correction against `naive`, and the share of
    the naive-to-wait gap each correction recovers."""
    dataset = study.prepared()
    plan = plan_delay(dataset, study.delay_window_days)
    models = study.pick_models(MODELS)
    targets = study.pick_targets(TARGETS)
    runs = {(m, t, method): [delay_config(study, plan, m, t, method, s) for s in study.seeds]
            for m in models for t in targets for method in METHODS}
    study.run([c for configs in runs.values() for c in configs])
    freshness = _freshness(dataset, plan)

    def row(model: str, target: str, text: str) -> str:
        return f"{model} · {target} · {text}" if len(targets) > 1 else f"{model} · {text}"

    metrics = Table("Next-day metrics of each delay method", "model · method", [],
                    [Column("newest", "newest click (h before T)", "text", rank=False),
                     Column("days", "days trained", "count", rank=False),
                     *_metric_columns("metric")])
    versus_wait = Table("Each method − wait (paired)", "model · method", [],
                        _metric_columns("delta"))
    versus_naive = Table("Each correction − naive (paired)", "model · method", [],
                         _metric_columns("delta"))
    recovered = Table("Share of the wait − naive gap each correction recovers",
                      "model · method", [], [replace(c, rank=False) for c in
                                             _metric_columns("percent")
                                             if not c.key.startswith("pcoc")])
    for model in models:
        for target in targets:
            scored = {method: _scored(study, runs[model, target, method], target)
                      for method in METHODS}
            group = []
            for method in METHODS:
                name = row(model, target, method)
                metrics.rows.append(name)
                group.append(name)
                metrics.add(name, "newest", f"{freshness[method]:.0f}")
                metrics.add(name, "days", plan.train_days(method))
                if scored[method] is not None:
                    _add_metrics(metrics, name, scored[method])
            metrics.rank_groups = [*(metrics.rank_groups or []), group]
            deltas = {}
            for reference, table in (("wait", versus_wait), ("naive", versus_naive)):
                for method in METHODS[METHODS.index(reference) + 1:]:
                    name = row(model, target, f"{method} − {reference}")
                    table.rows.append(name)
                    a, b = scored[method], scored[reference]
                    if a is None or b is None:
                        continue
                    for suffix, _ in AGAINST:
                        found = _versus(a, b, suffix)
                        for metric, delta in (found or {}).items():
                            table.add_interval(name, _key(metric, suffix), delta)
                            deltas[method, reference, _key(metric, suffix)] = delta.estimate
            for method in METHODS[2:]:
                name = row(model, target, method)
                recovered.rows.append(name)
                for column in recovered.columns:
                    gap = deltas.get(("naive", "wait", column.key))
                    gain = deltas.get((method, "naive", column.key))
                    if gap is not None and gain is not None and gap != 0:
                        recovered.add(name, column.key, -gain / gap)
    notes = _notes(study, plan, targets)
    metrics.notes = [*study.notes(), *notes]
    for table in (versus_wait, versus_naive):
        table.notes = [*study.notes(ranked=False), _interval_note(len(study.seeds)),
                       "PCOC's best is 1: read its Δ against each side's PCOC."]
    recovered.notes = [*study.notes(ranked=False),
                       "(method − naive) / (wait − naive) of the mean differences above: 100 % "
                       "recovers the whole gap, 0 % nothing, below 0 widens it, above 100 % "
                       "passes wait. Read it with the gap's interval: where that holds 0 "
                       "the share is noise. PCOC has no share (its best is 1, not wait's)."]
    return StudyOutput([("", metrics), ("vs-wait", versus_wait), ("vs-naive", versus_naive),
                        ("recovered", recovered)])


def _add_metrics(table: Table, row: str, scored: Scored) -> None:
    """Each seed's metrics against the matured labels and against the truth."""
    for s in scored.scores:
        for suffix, _ in AGAINST:
            target = scored.labels if suffix == "" else scored.truth
            if target is None:
                continue
            for metric, value in target_metrics(s, target, scored.user).items():
                table.add(row, _key(metric, suffix), value)


def _freshness(dataset: Dataset, plan: DelayPlan) -> dict[str, float]:
    """Hours between each method's newest training click and T."""
    newest = [_newest_click(day) for day in dataset.train]
    return {method: (plan.as_of - max(newest[:plan.train_days(method)])) / HOUR
            for method in METHODS}


def _notes(study: Study, plan: DelayPlan, targets: Sequence[str]) -> list[str]:
    dataset = study.prepared()
    labels = dataset.schema.labels
    known, total = known_positives(dataset.train, plan.as_of)
    wait_known, wait_total = known_positives(dataset.train[:plan.matured], plan.as_of)
    shares = ", ".join(
        f"{t} {known[labels.index(t)] / max(total[labels.index(t)], 1):.1%} of all days "
        f"({wait_known[labels.index(t)] / max(wait_total[labels.index(t)], 1):.1%} of wait's)"
        for t in targets)
    return [f"T = the last training click ({plan.as_of / DAY:.2f} days on the data's clock); "
            f"every run trains as of T and is scored on the test day. wait: the first "
            f"{plan.matured} of the {plan.days} training days (newest click at least "
            f"{study.delay_window_days:g} days before T); the others: all {plan.days}.",
            f"Positives known at T: {shares}.",
            "Metrics without a mark: against the test day's matured labels; marked *: against "
            "the true conversion probability (a row is a positive of mass p and a negative of "
            "mass 1 − p; AUC over pairs of distinct rows; PCOC* = predicted / expected "
            "conversions).",
            "The auxiliary views are the reference set without cat (no delay correction "
            "applies to the joint view)."]


def _interval_note(seeds: int) -> str:
    over = "the test users and the seeds" if seeds > 1 else "the test users (one seed)"
    return (f"Δ cells: the mean difference over seeds in points (× 100) and its 95 % interval "
            f"from a paired bootstrap over {over}; † where the interval excludes 0.")

