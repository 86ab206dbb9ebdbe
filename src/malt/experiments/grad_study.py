"""`malt study grad-methods`: every auxiliary-task learning method (`--grad-method`) against the
plain λ-weighted sum, per model and target, over several seeds.

Each (model, target) is tuned as the MAC studies tune it (`Study.tune`: the reference auxiliary
set and the selected lr × λ setting, trained with the plain sum); every method then trains with
that same setting, so a difference is the method's alone. The study writes three tables:

- `grad-methods.csv`: test AUC and GAUC of every method, and its Δ against the plain sum, per
  seed and as a paired bootstrap interval over the test users and the seeds, with its verdict;
- `grad-methods-weights.csv`: the weight each view had in the update (the run's
  `task_weights.csv`, λ included), averaged over the logged steps of training;
- `grad-methods-weights-end.csv`: the same weights at the last step.

The runs log their weights about `WEIGHT_POINTS` times over the pass (the logging interval is
not part of a run's id, so the plain runs are those of the other studies).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, get_args

from malt.data.task import CAT
from malt.errors import ConfigError
from malt.experiments.intervals import interval_note, paired_test, verdict_line
from malt.experiments.mac import METRICS, model_name, view_name
from malt.experiments.output import StudyOutput
from malt.experiments.study import Study, Variant
from malt.experiments.tables import Column, Table
from malt.models import model_spec
from malt.runs.config import GradMethod, RunConfig
from malt.runs.directory import RunDir
from malt.runs.record import RunMetrics
from malt.training import aggregation
from malt.training.builder import split_days
from malt.training.steps import pass_steps
from malt.training.weights_table import STEP, TaskWeightsTable

PLAIN = "none"
METHOD_NAMES = {"none": "plain sum", "gcs": "GCS", "pcgrad": "PCGrad",
                "uncertainty": "Uncertainty", "dwa": "DWA", "gcs-ema": "GCS-EMA",
                "upgrad": "UPGrad", "mgda": "MGDA", "cagrad": "CAGrad"}
WEIGHT_POINTS = 50
"""About how many steps of each run log their task weights."""
DWA_PERIODS = 10
"""DWA's default period in the study is a run's steps over this (at least 1): its weights move
once two periods have finished, about a fifth into the pass, then after every period, about
eight times. The study's runs are short (one pass: 47 steps on the 6,000-user simulation, 70 on
the small preset's), under two of the trainer's 100-step periods, with which DWA trains the
plain sum."""
Entry = tuple[str, str, str, Variant | None]
"""One row of the study: model, target, method, and the variant it trains (None: its tuning
failed)."""
DEFAULT_TARGETS = ("last", "first")
"""The MAC paper's Table 7 target, and first-click, where it found the auxiliary choice to
matter most."""


def missing_packages(method: str) -> list[str]:
    """The packages `method` needs that are not installed (none for malt's own methods)."""
    return aggregation.missing_packages(method) if method in aggregation.AGGREGATORS else []


def pick_methods(chosen: Sequence[str] | None, say: Callable[[str], None]) -> tuple[str, ...]:
    """The methods compared with the plain sum: `chosen` (refused when one cannot run here),
    else every method whose packages are installed (those left out are said)."""
    if chosen is not None:
        for method in chosen:
            if missing_packages(method):
                raise ConfigError(f"--grad-methods {method} needs "
                                  f"{', '.join(missing_packages(method))}, which is not "
                                  "installed: pip install 'malt[aux]'")
        return tuple(dict.fromkeys(m for m in chosen if m != PLAIN))
    every = [m for m in get_args(GradMethod) if m != PLAIN]
    left_out = [m for m in every if missing_packages(m)]
    if left_out:
        say(f"left out {', '.join(left_out)} (needs torchjd and its solvers: "
            "pip install 'malt[aux]')")
    return tuple(m for m in every if m not in left_out)


def study_grad_methods(study: Study) -> StudyOutput:
    """Every grad method against the plain sum, per model (MoAE by default) and target."""
    models = study.pick_models(("moae",))
    unfit = [m for m in models if not (model_spec(m).traits.uses_aux and
                                       model_spec(m).traits.shares_parameters)]
    if unfit:
        raise ConfigError(f"the grad-methods study needs models whose views share parameters; "
                          f"{', '.join(unfit)} {'has' if len(unfit) == 1 else 'have'} none to "
                          "share (see `malt models`)")
    targets = study.pick_targets(DEFAULT_TARGETS)
    methods = pick_methods(study.grad_methods, study.say)
    tuned = {k: v for k, (v, _) in study.tune([(m, t) for m in models for t in targets]).items()}
    entries: list[Entry] = []
    for (m, t), variant in tuned.items():
        if variant is not None and not variant.aux:
            study.say(f"{model_name(m)} · {view_name(t)}: no auxiliary view, nothing to compare")
            continue
        if variant is not None and study.config(variant, seed=study.seeds[0]).aux_weight() == 0:
            study.say(f"{model_name(m)} · {view_name(t)}: λ = 0 trains no auxiliary loss, "
                      "nothing to compare")
            continue
        for method in (PLAIN, *methods):
            entries.append((m, t, method, None if variant is None else
                            Variant(m, t, variant.aux, variant.setting, method,
                                    train=method_options(study, variant, method))))
    results = _test_logged(study, [v for *_, v in entries], WEIGHT_POINTS)
    rows = [_row(models, targets, m, t, method) for m, t, method, _ in entries]
    plain = {(m, t): (v, runs) for (m, t, method, v), runs in zip(entries, results)
             if method == PLAIN}
    table = _delta_table(study, entries, rows, results, plain)
    short = dwa_note(study, entries)
    if short is not None:
        study.say(f"note: {short}")
        table.notes.append(short)
    weights = _weight_tables(study, entries, rows)
    return StudyOutput([("", table), *weights])


def _row(models: Sequence[str], targets: Sequence[str], model: str, target: str,
         method: str) -> str:
    """`MoAE · Last-Click · GCS`, without the parts every row shares."""
    parts = [*([model_name(model)] if len(models) > 1 else []),
             *([view_name(target)] if len(targets) > 1 else []), METHOD_NAMES[method]]
    return " · ".join(parts)


def _delta_table(study: Study, entries: list[Entry], rows: list[str],
                 results: list[list[RunMetrics | None]],
                 plain: dict[tuple[str, str], tuple[Variant | None, list[RunMetrics | None]]]
                 ) -> Table:
    """Every method's test metrics, and its Δ to the plain sum of its model and target."""
    columns = [*(Column(k, title) for k, title in METRICS),
               *(Column(f"d{k}", f"Δ{title} vs plain", kind="delta", rank=False)
                 for k, title in METRICS),
               Column("verdict", "verdict", kind="text")]
    groups: dict[tuple[str, str], list[str]] = {}
    for row, (m, t, _, _) in zip(rows, entries):
        groups.setdefault((m, t), []).append(row)
    table = Table("Auxiliary-task learning methods against the plain sum", "Method", rows,
                  columns, rank_groups=list(groups.values()))
    for row, (m, t, method, variant), runs in zip(rows, entries, results):
        for k, _ in METRICS:
            for run in runs:
                if run is not None and t in run.views:
                    table.add(row, k, getattr(run.views[t], k))
        if method == PLAIN:
            continue
        plain_variant, plain_runs = plain[(m, t)]
        for k, _ in METRICS:
            for a, b in zip(runs, plain_runs):
                if a is not None and b is not None:
                    table.add(row, f"d{k}", getattr(a.views[t], k) - getattr(b.views[t], k))
        paired = paired_test(study, variant, plain_variant, t)
        if paired is None:
            continue
        for k, _ in METRICS:
            table.add_interval(row, f"d{k}", paired.deltas[k])
        table.add(row, "verdict", paired.verdict)
        study.say(verdict_line(f"{model_name(m)} + {METHOD_NAMES[method]}", "the plain sum",
                               view_name(t), paired))
    table.notes = study.notes(
        "Test day. Every method trains with the setting selected for the plain sum (the "
        "λ-weighted sum of the losses, `--grad-method none`); Δ in points vs the plain sum, "
        "paired by seed.", interval_note(len(study.seeds)),
        "Ranked within each model and target.")
    return table


def _weight_tables(study: Study, entries: list[Entry], rows: list[str]
                   ) -> list[tuple[str, Table]]:
    """The mean weight of each view over training, and its weight at the last step, per run
    that records weights (not the plain sum, not PCGrad)."""
    views = [*study.display_labels, CAT]
    columns = [Column("main", "target", rank=False),
               *(Column(v, f"aux {view_name(v)}", rank=False) for v in views)]
    over = Table("Weight of each view in the update, mean over training", "Method", [],
                 list(columns))
    end = Table("Weight of each view in the update at the last step", "Method", [],
                list(columns))
    for row, (m, t, method, variant) in zip(rows, entries):
        if variant is None or method in (PLAIN, "pcgrad"):
            continue
        over.rows.append(row)
        end.rows.append(row)
        for seed in study.seeds:
            run = RunDir(study.run_dir(variant, seed))
            if not (run.is_complete() and run.task_weights_file.is_file()):
                continue
            logged = TaskWeightsTable.read(run.task_weights_file).rows
            for view in logged[0] if logged else ():
                if view == STEP:
                    continue
                key = "main" if view == t else view
                values = [r[view] for r in logged if view in r and math.isfinite(r[view])]
                if values:
                    over.add(row, key, sum(values) / len(values))
                    end.add(row, key, values[-1])
    note = ("The factor of each view's loss or gradient in the update, λ included (see "
            "docs/training.md, *Which auxiliary view helped*): `target` is the main view's, "
            "`aux` the auxiliary views'; – where the view is not in the run's auxiliary set. "
            "The plain sum weighs the main view 1 and each auxiliary view λ; PCGrad records no "
            "weights.")
    over.notes = study.notes(f"{note} Mean over the steps each run logged (the first, the "
                             f"last and about {WEIGHT_POINTS} between), then over the seeds.",
                             ranked=False)
    end.notes = study.notes(f"{note} At the last step of each run, then over the seeds.",
                            ranked=False)
    return [("weights", over), ("weights-end", end)]


def _test_logged(study: Study, variants: Sequence[Variant | None], points: int
                 ) -> list[list[RunMetrics | None]]:
    """`Study.test`, each run logging about `points` steps (see `log_every_for`)."""
    todo = [(i, seed) for i, v in enumerate(variants) if v is not None for seed in study.seeds]
    configs = [study.config(variants[i], seed=seed) for i, seed in todo]
    logged = [replace(c, train=replace(c.train, log_every=log_every_for(study, c, points)))
              for c in configs]
    out: list[list[RunMetrics | None]] = [[None] * len(study.seeds) for _ in variants]
    for (i, seed), metrics in zip(todo, study.run(logged)):
        out[i][study.seeds.index(seed)] = metrics
    return out


def run_steps(study: Study, config: RunConfig) -> int | None:
    """Optimiser steps of `config`'s pass (None when the study did not read the data set)."""
    if study.dataset is None:
        return None
    batch = config.train.batch_size
    return pass_steps([d.rows for d in split_days(study.dataset, config.data)[0]],
                      batch if isinstance(batch, int) else study.auto_batch_size)


def log_every_for(study: Study, config: RunConfig, points: int) -> int:
    """The logging interval that logs about `points` steps over `config`'s pass (its own when
    the study did not read the data set)."""
    steps = run_steps(study, config)
    return config.train.log_every if steps is None else max(1, math.ceil(steps / points))


def method_options(study: Study, plain: Variant, method: str) -> tuple[tuple[str, Any], ...]:
    """The `[train]` options of `method`'s runs beside the `plain` variant: DWA's period
    (--dwa-period, else the runs' steps over `DWA_PERIODS`; the trainer's default when the
    study did not read the data set)."""
    if method != "dwa":
        return ()
    if study.dwa_period is not None:
        return (("dwa_period", study.dwa_period),)
    steps = run_steps(study, study.config(plain, seed=study.seeds[0]))
    return () if steps is None else (("dwa_period", max(1, steps // DWA_PERIODS)),)


def dwa_note(study: Study, entries: list[Entry]) -> str | None:
    """A note when DWA's runs end before its weights can move (two finished periods), which
    makes them the plain sum."""
    for _, _, method, variant in entries:
        if method != "dwa" or variant is None:
            continue
        config = study.config(variant, seed=study.seeds[0])
        steps, period = run_steps(study, config), config.train.dwa_period
        if steps is not None and steps <= 2 * period:
            return (f"DWA weighs every task 1 until two periods of {period} steps "
                    f"(`dwa_period`) have finished, and these runs take {steps} steps: DWA "
                    "trained the plain sum here.")
    return None

