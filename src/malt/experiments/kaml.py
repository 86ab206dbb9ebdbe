"""The KAML paper's studies on incomplete, skewed multi-label data (`malt study kaml`).

One study writes four tables into `<out>/kaml.md` (and one CSV each):
* Table 1 (`kaml-coverage.csv`): share of training rows each mask trains per action — base,
  ADM and, when the data says which actions campaigns report, the reported set;
* Table 2 (`kaml.csv`): every model per action, each test row scored once on its target
  action (AUC and LogLoss per action and pooled "All"), RelaImpr of KAML against the best
  baseline of a configurable set per column (default: the multi-task baselines, which is how
  the paper's figures come out), and KAML's AUC difference with the baseline of the best
  pooled AUC, per action, with its paired interval over the test users and the seeds;
* Table 3 (`kaml-oracle.csv`): Vanilla (MMoE, base mask) / KAML / Oracle (MMoE on the true
  labels), plus the paper's simulated KAML setting (reported mask + RLU, no HKE) when the data
  has reported flags;
* Table 4 (`kaml-ablation.csv`): MMoE, +ADM, +ADM+HKE, +RLU, KAML.

Every action is a task of every run (the first label is the main view, λ = 1). Baselines train
under the base mask, as in the paper (§4.1.3); KAML under ADM. All runs are scheduled at once
and shared between the tables; tables show mean ± std over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from malt.data.masks import OTHER, coverage_report
from malt.eval.options import DEFAULT_RESAMPLES
from malt.eval.target import ALL, rela_impr_columns, target_comparison
from malt.experiments.intervals import interval_note, paired_predictions
from malt.experiments.output import StudyOutput
from malt.experiments.study import Study, Variant
from malt.experiments.tables import Column, Table
from malt.models import model_spec
from malt.runs.record import RunMetrics
from malt.training.builder import adm_options

MULTI_TASK = ("shared_bottom", "star", "mmoe", "ple", "taml")
"""Table 2's multi-task baselines: the default RelaImpr baseline set."""


@dataclass(frozen=True)
class Row:
    """One row of a table: its label, the model, the mask it trains under, its options."""

    label: str
    model: str
    mask: str
    options: tuple[tuple[str, Any], ...] = ()


def model_row(model: str) -> Row:
    """A Table-2 row: KAML under ADM, every baseline under the base mask."""
    return Row(model_spec(model).traits.display_name, model, "adm" if model == "kaml" else "base")


ORACLE_ROWS = (Row("Vanilla", "mmoe", "base"), Row("KAML", "kaml", "adm"),
               Row("KAML (reported + RLU)", "kaml", "reported", (("hke", False),)),
               Row("Oracle", "mmoe", "oracle"))
ABLATION_ROWS = (Row("MMoE", "mmoe", "base"), Row("MMoE+ADM", "mmoe", "adm"),
                 Row("MMoE+ADM+HKE", "kaml", "adm", (("rlu", False),)),
                 Row("MMoE+RLU", "kaml", "base", (("hke", False),)),
                 Row("KAML", "kaml", "adm"))


def variant(study: Study, row: Row) -> Variant:
    """The run of `row`: every action a task, λ = 1."""
    labels = study.labels
    return Variant(row.model, labels[0], labels[1:], study.fixed_setting(1.0), mask=row.mask,
                   options=row.options)


def has_reported(study: Study) -> bool:
    return bool(study.prepared().schema.reported_labels)


def all_rows(study: Study) -> list[Row]:
    """Every row of Tables 2-4."""
    return [*(model_row(m) for m in study.pick_models(study.setup.models)),
            *(r for r in ORACLE_ROWS if r.mask != "reported" or has_reported(study)),
            *ABLATION_ROWS]


def results(study: Study, rows: Sequence[Row]) -> dict[str, list[RunMetrics | None]]:
    """Row label -> the metrics of every seed."""
    return dict(zip((r.label for r in rows), study.test([variant(study, r) for r in rows])))


def metric_table(study: Study, title: str, rows: dict[str, list[RunMetrics | None]],
                 *extra: str) -> Table:
    actions = (*study.labels, ALL)
    columns = []
    for action in actions:
        head = "All" if action == ALL else action
        columns += [Column(f"{action}_auc", f"{head} AUC"),
                    Column(f"{action}_logloss", f"{head} LogLoss", rank=False)]
    # Rows added later (the paired Δ rows) are differences, never ranked against AUCs.
    table = Table(title, "Model", list(rows), columns, rank_groups=[list(rows)])
    for row, runs in rows.items():
        for metrics in (m for m in runs if m is not None):
            for action in actions:
                m = metrics.target.get(action)
                for key in ("auc", "logloss"):
                    if m is not None and math.isfinite(getattr(m, key)):
                        table.add(row, f"{action}_{key}", getattr(m, key))
    table.notes = study.notes(
        "Each test row is scored once, on its campaign's target action (KAML protocol). "
        "Best AUC per column in **bold**, second <u>underlined</u>; LogLoss (lower is "
        "better) is not marked.", *extra, ranked=False)
    return table


def coverage_table(study: Study) -> Table:
    """Table 1 from the training days (no training needed)."""
    dataset = study.prepared()
    options = adm_options(study.config(variant(study, model_row("kaml")), seed=0).task)
    report = coverage_report(dataset.schema, dataset.train, options)
    names = {"base": "Base", "adm": "With ADM", "reported": "Reported set"}
    columns = [Column(a, a, kind="percent", rank=False) for a in (*study.labels, OTHER)]
    table = Table("Table 1: share of training rows used for each action", "Mask strategy",
                  [names[k] for k in report], columns)
    for key, shares in report.items():
        for action, share in shares.items():
            table.add(names[key], action, share)
    window = (f"the {options.window_days} training days before each day" if
              options.window == "trailing" else "every training day")
    data = study.data_note or f"`{study.data}`"
    table.notes = [f"Data: {data}, {sum(d.rows for d in dataset.train):,} training rows. ADM: a "
                   f"campaign's reported conversions of an action over {window}, threshold "
                   f"α = {options.alpha:g}; rows whose target is another action (\"other\") "
                   "train nothing under the base mask."]
    return table


def models_table(study: Study) -> Table:
    """Table 2: every model per action, and RelaImpr of KAML."""
    models = study.pick_models(study.setup.models)
    rows = [model_row(m) for m in models]
    table = metric_table(study, "Table 2: every model per action", results(study, rows),
                         "Baselines train under the base mask, KAML under ADM. SingleTask's "
                         "\"All\" pools its per-action networks (the paper leaves it out).")
    table.rank_groups = [[r.label for r in rows if r.model != "single_task"]]
    baselines = study.baselines if study.baselines is not None else \
        tuple(m for m in models if m in MULTI_TASK)
    if "kaml" in models and baselines:
        names = [model_spec(m).traits.display_name for m in baselines]
        table.notes.append(_add_rela_impr(table, study, names))
        best = _best_baseline(table, [m for m in baselines if m in models])
        if best is not None:
            table.notes.append(_add_paired_rows(
                table, study, [(model_row("kaml"), model_row(best))],
                "AUC in points against the baseline of the best pooled AUC"))
    return table


def _best_baseline(table: Table, baselines: Sequence[str]) -> str | None:
    """The baseline with the highest mean pooled AUC (None when none has one)."""
    scored = [(table.stats(model_row(m).label, f"{ALL}_auc")[0], m) for m in baselines]
    scored = [(auc, m) for auc, m in scored if math.isfinite(auc)]
    return max(scored)[1] if scored else None


def _add_paired_rows(table: Table, study: Study, pairs: Sequence[tuple[Row, Row]],
                     what: str) -> str:
    """Add a row "Δ <candidate> vs <baseline>" per pair: the AUC differences per action with
    their paired intervals; return the note that explains them (`what` says against what)."""
    added, missing = [], []
    for candidate, baseline in pairs:
        paired = paired_predictions(study, variant(study, candidate), variant(study, baseline))
        if paired is None:
            missing.append(f"{candidate.label} vs {baseline.label}")
            continue
        row = f"Δ {candidate.label} vs {baseline.label}"
        table.rows.append(row)
        table.row_kinds[row] = "delta"
        for action, delta in target_comparison(*paired, resamples=DEFAULT_RESAMPLES).items():
            table.add(row, f"{action}_auc", delta.estimate)
            table.add_interval(row, f"{action}_auc", delta)
        added.append(row)
    notes = []
    if added:
        rows = ", ".join(added) if len(added) > 1 else added[0]
        notes.append(f"{rows}: {what}. {interval_note(len(study.seeds))}")
    if missing:
        notes.append(f"No paired comparison of {', '.join(missing)}: no seed where both runs "
                     "finished with their predictions.")
    return " ".join(notes)


def _add_rela_impr(table: Table, study: Study, baselines: list[str]) -> str:
    """Add the RelaImpr row (mean AUCs) and return the note naming each column's baseline."""
    keys = [f"{a}_auc" for a in (*study.labels, ALL)]
    mean = {row: {k: table.stats(row, k)[0] for k in keys} for row in table.rows}
    kaml = model_spec("kaml").traits.display_name
    values = rela_impr_columns(mean[kaml], {b: mean[b] for b in baselines if b in mean})
    row = "RelaImpr"
    table.rows.append(row)
    table.row_kinds[row] = "percent"
    used = []
    for key, (value, baseline) in values.items():
        if math.isfinite(value):
            table.add(row, key, value)
            used.append(f"{key.removesuffix('_auc').replace(ALL, 'All')}: {baseline}")
    return (f"RelaImpr = (AUC_KAML − 0.5) / (AUC_best − 0.5) − 1 on mean AUCs, best among "
            f"{', '.join(baselines)}; baseline used per column — {'; '.join(used)}.")


def oracle_table(study: Study) -> Table:
    """Table 3: Vanilla / KAML / Oracle."""
    rows = [r for r in ORACLE_ROWS if r.mask != "reported" or has_reported(study)]
    table = metric_table(
        study, "Table 3: Vanilla (target labels only) / KAML / Oracle (every true label)",
        results(study, rows),
        "Vanilla and Oracle are MMoE under the base mask and on the true labels; KAML "
        "(reported + RLU) is the paper's simulated-data setting: every reported action, "
        "ranking loss, no HKE.")
    vanilla, kaml, oracle = ORACLE_ROWS[0], ORACLE_ROWS[1], ORACLE_ROWS[3]
    table.notes.append(_add_paired_rows(table, study, [(kaml, vanilla), (oracle, kaml)],
                                        "AUC in points, each row against the one it names"))
    return table


def ablation_table(study: Study) -> Table:
    """Table 4: MMoE, +ADM, +ADM+HKE, +RLU, KAML."""
    table = metric_table(study, "Table 4: ablations on the MMoE base",
                         results(study, ABLATION_ROWS),
                         "+RLU trains under the base mask (HKE needs ADM's extended rows).")
    plain = ABLATION_ROWS[0]
    table.notes.append(_add_paired_rows(table, study, [(r, plain) for r in ABLATION_ROWS[1:]],
                                        f"AUC in points against {plain.label}"))
    return table


def study_kaml(study: Study) -> StudyOutput:
    """Every table of the study; all runs are scheduled at once, then read back per table."""
    study.test([variant(study, r) for r in dict.fromkeys(all_rows(study))])
    return StudyOutput([("coverage", coverage_table(study)), ("", models_table(study)),
                        ("oracle", oracle_table(study)), ("ablation", ablation_table(study))])
