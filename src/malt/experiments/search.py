"""Learning-rate × λ grid search on the validation protocol (MAC paper §6.1), made to pick
signal rather than noise.

With T training days, each setting is trained on the days before the held-out ones and scored
on them; the selected setting is then trained on all T days and tested on the test day (that
last step belongs to the study). A problem whose grid has a single setting needs no validation
run. The search:

1. scores every setting on the first validation seed;
2. flags the runs that cannot be selected: failed, diverged (non-finite logloss or score), or
   worse than a constant predictor (validation logloss above the entropy of the validation
   labels' base rate);
3. re-runs the leading candidates (the `LEADING` best unflagged settings under each of AUC,
   GAUC and logloss) on the other validation seeds;
4. selects by the one-standard-error rule on the mean over seeds (`one_se_choice`): among the
   leaders whose mean is within one standard error of the best mean, the most conservative
   (smaller λ, then smaller lr). With one validation seed the standard error is unknown and the
   rule falls back to the best score (exact ties still go to the conservative setting).

Every criterion (AUC, GAUC, logloss) is chosen the same way, so the study can say where they
disagree; the study's `--select-metric` decides which one selects.

The search is written against an `evaluate` function so that many problems (models × targets)
share one batch of runs, and so that tests can score settings without training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import get_args

import numpy as np

from malt.experiments.options import SelectMetric
from malt.runs.config import LabelMode

SELECT_METRICS: tuple[SelectMetric, ...] = get_args(SelectMetric)
METRIC_NAMES = {"gauc": "GAUC", "auc": "AUC", "logloss": "logloss"}
LEADING = 3
"""Settings re-run on every validation seed: the best this many under each criterion."""


@dataclass(frozen=True)
class Setting:
    """One grid point; `aux_weight` None means the reference λ of the target, `label_mode`
    None the preset's label mode."""

    lr: float
    aux_weight: float | None = None
    label_mode: LabelMode | None = None

    @property
    def label(self) -> str:
        weight = "ref" if self.aux_weight is None else f"{self.aux_weight:g}"
        mode = "" if self.label_mode is None else f", {self.label_mode} labels"
        return f"lr {self.lr:g}, λ {weight}{mode}"


def grid(lrs: Iterable[float], aux_weights: Iterable[float | None], *,
         uses_aux: bool = True,
         label_modes: Iterable[LabelMode | None] = (None,)) -> list[Setting]:
    """Every (lr, λ, label mode) in the given orders; λ and the label mode collapse to None
    for a run without auxiliary views (they change nothing there)."""
    weights = list(dict.fromkeys(aux_weights)) if uses_aux else [None]
    modes = list(dict.fromkeys(label_modes)) if uses_aux else [None]
    settings = [Setting(float(lr), w, mode) for lr in dict.fromkeys(lrs) for w in weights
                for mode in modes]
    if not settings:
        raise ValueError("the search grid is empty")
    return settings


def constant_logloss(base_rate: float) -> float:
    """The logloss of a constant predictor of `base_rate` (the entropy of the labels, nats);
    NaN unless 0 < rate < 1."""
    p = base_rate
    if not 0.0 < p < 1.0:  # no positive (or no negative): nothing to compare against
        return math.nan
    return -(p * math.log(p) + (1.0 - p) * math.log(1.0 - p))


@dataclass(frozen=True)
class ValidationRun:
    """The main view's validation metrics of one run, and the logloss of a constant predictor
    on the same rows (NaN when unknown: that check is then skipped)."""

    auc: float
    gauc: float
    logloss: float
    constant_logloss: float = math.nan

    def score(self, metric: SelectMetric) -> float:
        """The criterion as a score to maximise (logloss negated)."""
        value = getattr(self, metric)
        return -value if metric == "logloss" else value

    @property
    def flag(self) -> str:
        """Why the run may not be selected ("" when it may)."""
        if not math.isfinite(self.logloss):
            return "diverged"
        if math.isfinite(self.constant_logloss) and self.logloss > self.constant_logloss:
            return "worse than constant"
        return ""


def run_flag(run: ValidationRun | None, metric: SelectMetric) -> str:
    """Why a validation run may not be selected under `metric` ("" when it may)."""
    if run is None:
        return "failed"
    if run.flag:
        return run.flag
    return "" if math.isfinite(run.score(metric)) else f"no {METRIC_NAMES[metric]}"


@dataclass(frozen=True)
class Choice:
    """The one-standard-error rule's answer (see `one_se_choice`)."""

    setting: Setting | None
    """The selected setting (None: no setting had a score)."""
    best: Setting | None
    """The setting of the highest mean score."""
    means: dict[Setting, float]
    se: float | None
    """Standard error of the best mean over its seeds (None: one seed, unknown)."""
    tied: tuple[Setting, ...]
    """Settings within one standard error of the best, most conservative first."""

    @property
    def best_mean(self) -> float:
        return self.means[self.best] if self.best is not None else math.nan


def conservative_order(setting: Setting, reference_weight: float
                       ) -> tuple[float, float, bool]:
    """Sort key, most conservative first: smaller λ (None: `reference_weight`), smaller lr,
    then binarised labels (the papers' and the preset's default) before weighted ones."""
    weight = reference_weight if setting.aux_weight is None else setting.aux_weight
    return weight, setting.lr, setting.label_mode == "weighted"


def one_se_choice(scores: Mapping[Setting, Sequence[float]], *,
                  reference_weight: float = 0.0) -> Choice:
    """The one-standard-error rule on scores to maximise, per setting one score per seed:
    the best mean, its standard error over seeds (sample std / √seeds), and among the settings
    whose mean is at least best − se the most conservative (`conservative_order`). A setting
    without any finite score is left out; with one seed the se is unknown and only exact ties
    of the best are tied."""
    means = {s: float(np.mean(v)) for s, v in scores.items()
             if len(v) and all(math.isfinite(x) for x in v)}
    if not means:
        return Choice(None, None, {}, None, ())
    best = max(means, key=means.__getitem__)  # first of the grid on an exact tie
    seeds = np.asarray(scores[best], dtype=float)
    se = float(seeds.std(ddof=1) / math.sqrt(len(seeds))) if len(seeds) > 1 else None
    threshold = means[best] - (se or 0.0)
    tied = sorted((s for s, m in means.items() if m >= threshold),
                  key=lambda s: conservative_order(s, reference_weight))
    return Choice(tied[0], best, means, se, tuple(tied))


@dataclass
class SearchResult:
    """The selected setting (None when no validation run could be selected), every validation
    run and each criterion's choice."""

    setting: Setting | None
    runs: dict[Setting, list[ValidationRun | None]] = field(default_factory=dict)
    """Validation runs per setting, one per seed scored (the first seed for every setting, every
    validation seed for the leaders); empty when the grid had one setting (nothing to run)."""
    choices: dict[SelectMetric, Choice] = field(default_factory=dict)
    """The choice under each criterion (empty when nothing ran)."""
    metric: SelectMetric = "gauc"
    """The criterion that selected."""

    def flag(self, setting: Setting) -> str:
        """Why `setting` may not be selected ("" when it may): its first flagged run's reason."""
        return next((f for f in (run_flag(r, self.metric) for r in self.runs.get(setting, []))
                     if f), "")

    def disagreements(self) -> dict[SelectMetric, Setting | None]:
        """The other criteria whose choice differs from the selected one."""
        return {m: c.setting for m, c in self.choices.items()
                if m != self.metric and c.setting != self.setting}

    def uncertainty(self) -> str:
        """The selection's own uncertainty in words: the best mean ± its standard error, and
        how many settings were tied with it ("" when nothing was searched)."""
        if not self.runs:
            return ""
        choice = self.choices[self.metric]
        flagged = sum(bool(self.flag(s)) for s in self.runs)
        excluded = f"; {flagged} setting(s) flagged, never selected" if flagged else ""
        if choice.best is None:
            return f"no setting could be selected{excluded}"
        name, mean = METRIC_NAMES[self.metric], choice.best_mean
        value = -mean if self.metric == "logloss" else mean
        seeds = len(self.runs[choice.best])
        spread = (f" ± {choice.se:.4f} (se over {seeds} seeds)" if choice.se is not None
                  else " (one seed: no standard error, the best score selected)")
        tied = (f"; {len(choice.tied)} of {len(choice.means)} candidates within one se, the "
                "most conservative selected" if len(choice.tied) > 1 else
                f"; no other of {len(choice.means)} candidates within one se")
        return f"best {name} {value:.4f}{spread}{tied}{excluded}"

    def disagreement_text(self, label: Callable[[Setting], str] = lambda s: s.label) -> str:
        """What the other criteria would select where they differ ("" when they agree), each
        setting as `label` words it."""
        return "; ".join(f"{METRIC_NAMES[m]} would select "
                         f"{'nothing' if s is None else label(s)}"
                         for m, s in self.disagreements().items())


Job = tuple[Hashable, Setting, int]
"""A validation run to score: (problem, setting, seed index)."""
Evaluate = Callable[[Sequence[Job]], Sequence[ValidationRun | None]]
"""Validation runs of a batch of jobs, in order; None for a failed run."""


def _leaders(runs: Mapping[Setting, ValidationRun | None]) -> list[Setting]:
    """The `LEADING` best settings under each criterion among those that may be selected, in
    grid order."""
    chosen: set[Setting] = set()
    for metric in SELECT_METRICS:
        ok = [s for s, r in runs.items() if r is not None and not run_flag(r, metric)]
        chosen.update(sorted(ok, key=lambda s: -runs[s].score(metric))[:LEADING])
    return [s for s in runs if s in chosen]


def search(problems: Mapping[Hashable, Sequence[Setting]], evaluate: Evaluate, *,
           seeds: int = 1, metric: SelectMetric = "gauc",
           reference_weights: Mapping[Hashable, float] | None = None
           ) -> dict[Hashable, SearchResult]:
    """Select a setting for every problem (see the module docstring): the first seed of every
    setting in one batch, then the leaders on the other `seeds` − 1 seeds in a second batch.
    `reference_weights`: the λ that `None` stands for, per problem (for the conservative
    order; default 0)."""
    searched = {key: list(s) for key, s in problems.items() if len(s) > 1}
    first = [(key, s, 0) for key, settings in searched.items() for s in settings]
    runs: dict[Hashable, dict[Setting, list[ValidationRun | None]]] = {k: {} for k in searched}
    for (key, setting, _), run in zip(first, _evaluated(evaluate, first)):
        runs[key][setting] = [run]
    again = [(key, s, i) for key in searched
             for s in _leaders({s: r[0] for s, r in runs[key].items()}) for i in range(1, seeds)]
    for (key, setting, _), run in zip(again, _evaluated(evaluate, again)):
        runs[key][setting].append(run)
    results = {}
    for key, settings in problems.items():
        if key not in searched:
            results[key] = SearchResult(settings[0], metric=metric)
            continue
        weight = (reference_weights or {}).get(key, 0.0)
        choices = {m: _choose(runs[key], m, seeds, weight) for m in SELECT_METRICS}
        results[key] = SearchResult(choices[metric].setting, runs[key], choices, metric)
    return results


def _evaluated(evaluate: Evaluate, jobs: list[Job]) -> list[ValidationRun | None]:
    if not jobs:
        return []
    runs = list(evaluate(jobs))
    if len(runs) != len(jobs):
        raise ValueError(f"evaluate returned {len(runs)} runs for {len(jobs)} jobs")
    return runs


def _choose(runs: Mapping[Setting, list[ValidationRun | None]], metric: SelectMetric,
            seeds: int, reference_weight: float) -> Choice:
    """The one-se rule under `metric` among the settings scored on every validation seed and
    never flagged."""
    scores = {s: [r.score(metric) for r in rs] for s, rs in runs.items()
              if len(rs) == seeds and not any(run_flag(r, metric) for r in rs)}
    return one_se_choice(scores, reference_weight=reference_weight)
