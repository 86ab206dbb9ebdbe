"""The MAC paper's studies: each one builds its runs through a `Study` and returns its tables
(and figure).

Every study reuses the paper's protocol from `Study`: for each (model, target) the reference
auxiliary set (or the user's `--aux`) and the lr × λ setting selected on the validation day;
variants (other auxiliary sets, λ = 0, GCS / PCGrad) keep the selected setting. Runs are
content-addressed, so the tuned runs of `main` are the same runs `aux-metrics`, `params`, `atl`,
`aux-targets` and `groups` start from: running several studies into one output directory trains
each run once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from malt.data.task import CAT
from malt.errors import ConfigError
from malt.eval.compare import Comparison
from malt.eval.options import DEFAULT_RESAMPLES
from malt.eval.slices import complexity_slices, slice_gains_over_seeds
from malt.experiments.greedy import run_greedy
from malt.experiments.intervals import interval_note, paired_predictions, paired_test, verdict_line
from malt.experiments.label_stats import DDA_LABEL, LINEAR_LABEL, label_statistics
from malt.experiments.output import StudyOutput
from malt.experiments.plots import grouped_bars
from malt.experiments.search import METRIC_NAMES, Setting
from malt.experiments.study import Study, Variant, canonical_aux, main_gauc
from malt.experiments.tables import Column, Table
from malt.models import model_spec
from malt.runs.directory import RunDir
from malt.runs.record import RunMetrics

VIEW_NAMES = {"last": "Last-Click", "first": "First-Click", "mta": "DDA", "linear": "Linear",
              CAT: "CAT"}


def model_name(model: str) -> str:
    return model_spec(model).traits.display_name


def view_name(view: str) -> str:
    return VIEW_NAMES.get(view, view)


METRICS = (("auc", "AUC"), ("gauc", "GAUC"))

Metrics = RunMetrics | None


# --- helpers -------------------------------------------------------------------------------------
def _value(metrics: Metrics, view: str, metric: str) -> float | None:
    if metrics is None or view not in metrics.views:
        return None
    return getattr(metrics.views[view], metric)


def _add(table: Table, row: str, key: str, runs: Sequence[Metrics],
         get: Callable[[RunMetrics], float | None]) -> None:
    for m in runs:
        value = None if m is None else get(m)
        if value is not None:
            table.add(row, key, value)


def _add_delta(table: Table, row: str, key: str, runs: Sequence[Metrics],
               reference: Sequence[Metrics], get: Callable[[RunMetrics], float | None]
               ) -> None:
    """Per-seed differences run − reference (paired by seed)."""
    for a, b in zip(runs, reference):
        if a is not None and b is not None and get(a) is not None and get(b) is not None:
            table.add(row, key, get(a) - get(b))


def _metric(view: str, metric: str) -> Callable[[RunMetrics], float | None]:
    return lambda m: _value(m, view, metric)


def _prefix(items: Sequence[str], item: str, name: Callable[[str], str], sep: str) -> str:
    """`name(item) + sep` when several items share a table, else nothing."""
    return f"{name(item)}{sep}" if len(items) > 1 else ""


def _target_columns(targets: Sequence[str], target: str, delta_vs: str | None) -> list[Column]:
    """The metric columns of `target` (named after it when several targets share the table),
    then their Δ columns against the row `delta_vs` when given."""
    lead = _prefix(targets, target, view_name, " ")
    columns = [Column(f"{target}_{k}", f"{lead}{title}") for k, title in METRICS]
    if delta_vs is not None:
        columns += [Column(f"{target}_d{k}", f"{lead}Δ{title} vs {delta_vs}", kind="delta",
                           rank=False) for k, title in METRICS]
    return columns


def _add_target(table: Table, row: str, target: str, runs: list[Metrics],
                reference: list[Metrics] | None, paired: Comparison | None = None) -> None:
    """The metrics of `target` over the seeds `runs`, and their Δ to `reference` when given
    (with its interval when `paired` is given)."""
    for k, _ in METRICS:
        _add(table, row, f"{target}_{k}", runs, _metric(target, k))
        if reference is not None:
            _add_delta(table, row, f"{target}_d{k}", runs, reference, _metric(target, k))
        if paired is not None:
            table.add_interval(row, f"{target}_d{k}", paired.deltas[k])


def _tuned_tests(study: Study, pairs: list[tuple[str, str]]
                 ) -> tuple[dict[tuple[str, str], Variant | None],
                            dict[tuple[str, str], list[Metrics]]]:
    """The tuned variant of every (model, target) and its test metrics per seed."""
    tuned = {key: variant for key, (variant, _) in study.tune(pairs).items()}
    results = dict(zip(tuned, study.test(list(tuned.values()))))
    return tuned, results


def _setting_label(aux: Sequence[str], setting: Setting) -> str:
    """A setting as the tables show it: a run without auxiliary views has no λ."""
    return setting.label if aux else f"lr {setting.lr:g}, no aux"


def _validation_days(study: Study) -> int:
    """The training days the validation runs hold out (--validation-days)."""
    return study.overrides.get("data", {}).get("validation_days", 1)


def _validation_note(study: Study) -> str:
    """Which days the validation runs trained on and were scored on."""
    days = _validation_days(study)
    if days == 1:
        return "trained on the first T−1 training days, scored on day T"
    return f"trained on the first T−{days} training days, scored on the last {days} pooled"


def _settings_table(study: Study, models: Sequence[str], targets: Sequence[str],
                    tuned: dict[tuple[str, str], Variant | None]) -> Table:
    columns = [Column(t, view_name(t), kind="text") for t in targets]
    table = Table("Settings of the test runs", "Method", [model_name(m) for m in models],
                  columns, notes=study.notes(*_selection_notes(study), ranked=False))
    for m in models:
        for t in targets:
            v = tuned[(m, t)]
            table.add(model_name(m), t, "failed" if v is None else
                      _setting_label(v.aux, v.setting))
    return table


def _selection_notes(study: Study) -> list[str]:
    """How the tuned settings were selected, and per searched (model, target) the selection's
    uncertainty and the criteria that would select otherwise."""
    seeds = len(study.validation_seed_list)
    rule = (f"the leading settings on {seeds} validation seeds, the one-standard-error rule (the "
            "smallest λ, then lr, within one se of the best mean)" if seeds > 1 else
            "one validation seed, the best score (one seed gives no standard error for the "
            "one-standard-error rule: --validation-seeds)")
    lines = [f"Selected by validation {METRIC_NAMES[study.select_metric]} where the grid has "
             f"more than one setting: {rule}; runs that diverged or scored worse than a constant "
             "predictor are never selected. λ ref: the target's reference λ."]
    for (m, t), result in study.searches.items():
        if result.runs:
            other = result.disagreement_text(
                lambda setting: _setting_label(study.reference_aux(m, t), setting))
            lines.append(f"{model_name(m)} · {view_name(t)}: {result.uncertainty()}"
                         f"{f'. Disagreement: {other}' if other else ''}.")
    return lines


# --- Table 4 -------------------------------------------------------------------------------------
def study_main(study: Study) -> StudyOutput:
    """Table 4: every model × every target, AUC and GAUC, Δ of the proposed model vs BASE and
    vs NATAL."""
    models = study.pick_models(study.setup.models)
    targets = study.pick_targets(study.mac.targets)
    tuned, results = _tuned_tests(study, [(m, t) for m in models for t in targets])
    columns = [Column(f"{t}_{k}", f"{view_name(t)} {title}") for t in targets
               for k, title in METRICS]
    rows = [model_name(m) for m in models]
    table = Table("Table 4: CVR ranking performance under each target attribution", "Method",
                  list(rows), columns, rank_groups=[rows])
    for m in models:
        for t in targets:
            for k, _ in METRICS:
                _add(table, model_name(m), f"{t}_{k}", results[(m, t)], _metric(t, k))
    proposed = "moae" if "moae" in models else models[-1]
    for reference in ("base", "natal"):
        if reference in models and reference != proposed:
            row = f"Δ {model_name(proposed)} vs {model_name(reference)}"
            table.rows.append(row)
            table.row_kinds[row] = "delta"
            for t in targets:
                paired = paired_test(study, tuned[(proposed, t)], tuned[(reference, t)], t)
                for k, _ in METRICS:
                    _add_delta(table, row, f"{t}_{k}", results[(proposed, t)],
                               results[(reference, t)], _metric(t, k))
                    if paired is not None:
                        table.add_interval(row, f"{t}_{k}", paired.deltas[k])
    table.notes = study.notes("Test day; Δ rows in points (× 100), paired by seed.",
                              interval_note(len(study.seeds)))
    tables = [("", table), ("settings", _settings_table(study, models, targets, tuned))]
    if "base" in models and len(models) > 1:
        tables.append(("vs-base", _versus_base(study, models, targets, tuned)))
    return StudyOutput(tables)


def _versus_base(study: Study, models: Sequence[str], targets: Sequence[str],
                 tuned: dict[tuple[str, str], Variant | None]) -> Table:
    """Every multi-attribution model against BASE on every target, one row each: ΔAUC and
    ΔGAUC with their paired intervals, and the verdict they support."""
    columns = [Column("auc", "ΔAUC", kind="delta", rank=False),
               Column("gauc", "ΔGAUC", kind="delta", rank=False),
               Column("verdict", "verdict", kind="text")]
    table = Table("Each model against BASE", "Method", [], columns)
    for t in targets:
        for m in models:
            paired = None if m == "base" else paired_test(study, tuned[(m, t)],
                                                          tuned[("base", t)], t)
            if paired is None:
                continue
            row = f"{model_name(m)}{_suffix(targets, t)}"
            table.rows.append(row)
            for k, _ in METRICS:
                table.add(row, k, paired.deltas[k].estimate)
                table.add_interval(row, k, paired.deltas[k])
            table.add(row, "verdict", paired.verdict)
            study.say(verdict_line(model_name(m), "BASE", view_name(t), paired))
    table.notes = study.notes("Test day, each model with its selected setting against BASE "
                              "with its own.", interval_note(len(study.seeds)), ranked=False)
    return table


def _suffix(targets: Sequence[str], target: str) -> str:
    """` · <target>` when several targets share a table, else nothing."""
    return f" · {view_name(target)}" if len(targets) > 1 else ""


# --- Table 3 -------------------------------------------------------------------------------------
def study_aux_metrics(study: Study) -> StudyOutput:
    """Table 3: GAUC of the primary and of every auxiliary view, last-click as target."""
    models = study.pick_models(study.setup.models)
    targets = study.pick_targets(("last",))
    _, results = _tuned_tests(study, [(m, t) for m in models for t in targets])
    columns = [Column("moe", "MoE", kind="text"), Column("kt", "KT", kind="text")]
    for t in targets:
        lead = _prefix(targets, t, view_name, " target: ")
        columns.append(Column(f"{t}:{t}", f"{lead}Primary {view_name(t)}"))
        columns += [Column(f"{t}:{v}", f"{lead}Aux {view_name(v)}")
                    for v in study.display_labels if v != t]
    rows = [model_name(m) for m in models]
    table = Table("Table 3: GAUC of the primary and the auxiliary views", "Model", rows, columns,
                  notes=study.notes("MoE: mixture-of-experts backbone; KT: main-task-"
                                    "prioritised knowledge transfer. –: the model has no head "
                                    "for that view."))
    for m in models:
        traits = model_spec(m).traits
        table.add(model_name(m), "moe", "✓" if traits.gated_experts else "✗")
        table.add(model_name(m), "kt", "✓" if traits.family == "knowledge-transfer" else "✗")
        for t in targets:
            for v in study.labels:
                _add(table, model_name(m), f"{t}:{v}", results[(m, t)], _metric(v, "gauc"))
    return StudyOutput([("", table)])


# --- Table 5 -------------------------------------------------------------------------------------
def _aux_sets(study: Study, target: str) -> list[tuple[str, ...]]:
    """None, each other label, all of them, all of them and CAT (in the tables' order)."""
    others = tuple(v for v in study.display_labels if v != target)
    sets = [(), *((v,) for v in others), others, (*others, CAT)]
    distinct: dict[tuple[str, ...], tuple[str, ...]] = {}
    for aux in sets:
        distinct.setdefault(canonical_aux(aux, study.labels), aux)
    return list(distinct.values())


def study_aux_targets(study: Study) -> StudyOutput:
    """Table 5: MoAE with growing auxiliary sets (none, each label, all, all + CAT)."""
    models = study.pick_models(("moae",))
    without_aux = [m for m in models if not model_spec(m).traits.uses_aux]
    if without_aux:
        raise ConfigError(f"aux-targets trains each model with auxiliary views, and {without_aux} "
                          "take none: name models that use them (--models moae natal ...)")
    targets = study.pick_targets(study.mac.targets)
    tuned = {k: v for k, (v, _) in study.tune([(m, t) for m in models for t in targets]).items()}
    entries, groups = [], []
    for m in models:
        for t in targets:
            group = []
            for aux in _aux_sets(study, t):
                label = " & ".join(view_name(v) for v in aux) or "None"
                row = f"{_prefix(models, m, model_name, ' · ')}{view_name(t)} target: {label}"
                variant = tuned[(m, t)]
                entries.append((row, t, None if variant is None else
                                Variant(m, t, aux, variant.setting)))
                group.append(row)
            groups.append(group)
    results = study.test([v for _, _, v in entries])
    columns = [*(Column(k, title) for k, title in METRICS),
               *(Column(f"d{k}", f"Δ{title} vs None", kind="delta", rank=False)
                 for k, title in METRICS)]
    table = Table("Table 5: auxiliary targets", "Auxiliary targets", [r for r, _, _ in entries],
                  columns, rank_groups=groups,
                  notes=study.notes("None: no auxiliary target (single-attribution MoAE; with "
                                    "the `reference` model preset, the release's "
                                    "self-auxiliary form). Ranked within each target. Δ in "
                                    "points vs the None row of the same target, paired by "
                                    "seed.", interval_note(len(study.seeds))))
    by_row = {row: (t, variant, runs) for (row, t, variant), runs in zip(entries, results)}
    for group in groups:
        _, none_variant, none_runs = by_row[group[0]]
        for row in group:
            t, variant, runs = by_row[row]
            paired = None if row == group[0] else paired_test(study, variant, none_variant, t)
            for k, _ in METRICS:
                _add(table, row, k, runs, _metric(t, k))
                if row != group[0]:
                    _add_delta(table, row, f"d{k}", runs, none_runs, _metric(t, k))
                if paired is not None:
                    table.add_interval(row, f"d{k}", paired.deltas[k])
    return StudyOutput([("", table)])


# --- Table 6 -------------------------------------------------------------------------------------
def study_params(study: Study) -> StudyOutput:
    """Table 6: each model with and without multi-attribution labels (λ = 0, same
    architecture, so the same parameter count)."""
    models = study.pick_models(study.setup.models)
    targets = study.pick_targets(("last",))
    tuned = {k: v for k, (v, _) in study.tune([(m, t) for m in models for t in targets]).items()}
    entries: list[tuple[str, str, str, Variant | None]] = []  # row, model, target, variant
    for m in models:
        for t in targets:
            variant = tuned[(m, t)]
            entries.append((model_name(m), m, t, variant))
            if m != "base" and (variant is None or variant.aux):
                without = None if variant is None else Variant(
                    m, t, variant.aux, replace(variant.setting, aux_weight=0.0))
                entries.append((f"{model_name(m)} w/o mal", m, t, without))
    results = study.test([v for *_, v in entries])
    rows = list(dict.fromkeys(r for r, *_ in entries))
    columns = []
    for t in targets:
        columns += _target_columns(targets, t, "BASE" if "base" in models else None)
        columns.append(Column(f"{t}_params", f"{_prefix(targets, t, view_name, ' ')}dense params",
                              kind="count", rank=False))
    table = Table("Table 6: with and without multi-attribution labels (mal)", "Method", rows,
                  columns, notes=study.notes("w/o mal: the same model and auxiliary heads "
                                             "trained with λ = 0 (only the main loss). Δ in "
                                             "points vs BASE, paired by seed.",
                                             interval_note(len(study.seeds))))
    base = {t: results[i] for i, (_, m, t, _) in enumerate(entries) if m == "base"}
    base_variant = {t: v for _, m, t, v in entries if m == "base"}
    for (row, m, t, variant), runs in zip(entries, results):
        paired = None if m == "base" or t not in base_variant else \
            paired_test(study, variant, base_variant[t], t)
        _add_target(table, row, t, runs, base.get(t), paired)
        _add(table, row, f"{t}_params", runs[:1], lambda m: m.params.dense)
    return StudyOutput([("", table)])


# --- Table 7 -------------------------------------------------------------------------------------
ATL_METHODS = (("none", ""), ("gcs", " + GCS"), ("pcgrad", " + PCGrad"))


def study_atl(study: Study) -> StudyOutput:
    """Table 7: each multi-task model plain, with GCS and with PCGrad."""
    models = study.pick_models([m for m in study.setup.models if m != "base"])
    targets = study.pick_targets(("last",))
    tuned = {k: v for k, (v, _) in study.tune([(m, t) for m in models for t in targets]).items()}
    entries: list[tuple[str, str, str, str, Variant | None]] = []  # row, model, target, method
    for m in models:
        for t in targets:
            variant = tuned[(m, t)]
            for method, suffix in ATL_METHODS:
                if method != "none" and variant is not None and not variant.aux:
                    continue  # nothing to balance without auxiliary losses
                entries.append((f"{model_name(m)}{suffix}", m, t, method, None if variant is None
                                else Variant(m, t, variant.aux, variant.setting, method)))
    results = study.test([v for *_, v in entries])
    rows = list(dict.fromkeys(r for r, *_ in entries))
    columns = [c for t in targets for c in _target_columns(targets, t, "plain")]
    variant_note = f"gradient variant `{study.setup.train.get('grad_variant', 'paper')}`"
    table = Table("Table 7: auxiliary-task learning methods", "Method", rows, columns,
                  notes=study.notes(f"GCS and PCGrad with the plain run's setting; "
                                    f"{variant_note}. Δ in points vs the plain model, paired "
                                    "by seed.", interval_note(len(study.seeds))))
    plain = {(m, t): runs for (_, m, t, method, _), runs in zip(entries, results)
             if method == "none"}
    plain_variant = {(m, t): v for _, m, t, method, v in entries if method == "none"}
    for (row, m, t, method, variant), runs in zip(entries, results):
        paired = None if method == "none" else \
            paired_test(study, variant, plain_variant[(m, t)], t)
        _add_target(table, row, t, runs, None if method == "none" else plain[(m, t)], paired)
    return StudyOutput([("", table)])


# --- Tables 2 and 8 ------------------------------------------------------------------------------
def study_labels(study: Study) -> StudyOutput:
    """Table 2 (positive ratio per label) and Table 8 (MML: mean DDA − linear weight of the
    positives of each target), from the data alone."""
    dataset = study.prepared()
    stats = label_statistics((d.arrays()["weights"] for d in dataset.days),
                             dataset.schema.labels)
    labels = [v for v in study.display_labels if v in stats.labels]
    ratio = Table("Table 2: positive ratio per attribution rule", "Statistic",
                  ["Positive ratio", "Positives", "Mean weight of positives"],
                  [Column(v, view_name(v), rank=False) for v in labels],
                  row_kinds={"Positive ratio": "percent", "Positives": "count"},
                  notes=[f"Data {study.data_note or f'`{study.data}`'}: {stats.rows:,} clicks over "
                         f"{len(dataset.days)} days (training and test)."])
    for v in labels:
        ratio.add("Positive ratio", v, stats.ratio(v))
        ratio.add("Positives", v, float(stats.positives[stats.labels.index(v)]))
        ratio.add("Mean weight of positives", v, stats.mean_positive_weight(v))
    tables = [("", ratio)]
    if stats.has_mml:
        targets = [v for v in labels if v not in (DDA_LABEL, LINEAR_LABEL)]
        mml = Table("Table 8: MML, mean (DDA − linear) weight of the positives of each target",
                    "Statistic", ["MML", "Positives"],
                    [Column(v, view_name(v), rank=False) for v in targets],
                    row_kinds={"Positives": "count"},
                    notes=["MML > 0: DDA credits the target's positive clicks more than an "
                           "even (linear) split does."])
        for v in targets:
            mml.add("MML", v, stats.mml(v))
            mml.add("Positives", v, float(stats.positives[stats.labels.index(v)]))
        tables.append(("mml", mml))
    return StudyOutput(tables)


# --- Figure 5 ------------------------------------------------------------------------------------
def study_groups(study: Study) -> StudyOutput:
    """Figure 5: GAUC gain of MoAE over BASE by user conversion-path complexity (linear /
    last-click positives per user on the test day)."""
    from malt.eval.predictions import Predictions
    from malt.eval.report import complexity_breakdown

    compared = [m for m in study.pick_models(("moae",)) if m != "base"]
    if not compared:
        raise ConfigError("the groups study compares models with BASE; name at least one "
                          "other model")
    targets = study.pick_targets(study.mac.targets)
    tuned, results = _tuned_tests(study, [(m, t) for m in [*compared, "base"] for t in targets])
    spans: list[str] = []
    table = Table("Figure 5: GAUC gain over BASE by conversion-path complexity",
                  "linear / last positives per user", spans, [])
    for m in compared:
        for t in targets:
            gain_key, users_key = f"{m}:{t}:gain", f"{m}:{t}:users"
            lead = f"{model_name(m)} {view_name(t)}"
            table.columns += [Column(gain_key, f"{lead} gain", kind="delta", rank=False),
                              Column(users_key, f"{lead} users", kind="count", rank=False)]
            for i, seed in enumerate(study.seeds):
                if results[(m, t)][i] is None or results[("base", t)][i] is None:
                    continue
                run = Predictions.load(RunDir(study.run_dir(tuned[(m, t)], seed))
                                       .predictions_file)
                base = Predictions.load(RunDir(study.run_dir(tuned[("base", t)], seed))
                                        .predictions_file)
                for g in complexity_breakdown(run, base, t).groups:
                    span = f"[{g.lo:g}, {g.hi:g})" if g.hi != float("inf") else f"≥ {g.lo:g}"
                    if span not in spans:
                        spans.append(span)
                    table.add(span, gain_key, g.gain)
                    table.add(span, users_key, float(g.users))
            _add_group_intervals(table, gain_key, paired_predictions(
                study, tuned[(m, t)], tuned[("base", t)]), t, spans)
    table.notes = study.notes("Gain = GAUC(model) − GAUC(BASE) over the users of each group, in "
                              "points; users without a last-click positive on the test day "
                              "belong to no group.", interval_note(len(study.seeds)),
                              ranked=False)
    bars: dict[Any, tuple[list[float], list[float]]] = {}
    for m in compared:
        for t in targets:
            stats = [table.stats(span, f"{m}:{t}:gain") for span in spans]
            key = (model_name(m), view_name(t)) if len(compared) > 1 else view_name(t)
            bars[key] = ([100 * mean for mean, _, _ in stats], [100 * std for _, std, _ in stats])
    figure = grouped_bars(spans, bars, title="GAUC gain over BASE by conversion-path complexity",
                          xlabel="linear / last-click positives per user",
                          ylabel="GAUC gain (pt)",
                          panels=[model_name(m) for m in compared] if len(compared) > 1
                          else None)
    return StudyOutput([("", table)], [("", figure)])


def _add_group_intervals(table: Table, key: str, paired, view: str, spans: Sequence[str]
                         ) -> None:
    """The paired interval of every group's gain, over the group's users and the seeds
    (`paired`: the model's and BASE's test predictions, seed by seed, or None)."""
    if paired is None:
        return
    runs, bases = paired
    first = runs[0]
    groups = complexity_slices(first.user, first.label_weights(LINEAR_LABEL),
                               first.label_weights("last"))
    for gain in slice_gains_over_seeds(runs, bases, view, groups, resamples=DEFAULT_RESAMPLES,
                                       order=spans):
        if gain.has_interval:
            table.add_interval(gain.name, key, gain.deltas["gauc"])


# --- the search and the greedy selection as studies ----------------------------------------------
def study_search(study: Study) -> StudyOutput:
    """The lr × λ grid on the validation days, the selected settings on the test day and,
    with BASE among the models, each selected model against BASE with its paired interval."""

    models = study.pick_models(study.mac.search_models)
    targets = study.pick_targets(study.mac.search_targets)
    tuned = study.tune([(m, t) for m in models for t in targets], search_study=True)
    results = study.test([v for v, _ in tuned.values()])
    grid_rows, groups = [], []
    grid = Table(f"Validation {'days' if _validation_days(study) > 1 else 'day'}: every "
                 "setting of the grid", "Model · target · setting", grid_rows,
                 [Column("val_auc", "val AUC"), Column("val_gauc", "val GAUC"),
                  Column("val_logloss", "val logloss", rank=False),
                  Column("flag", "flag", kind="text"),
                  Column("picked_by", "picked by", kind="text"),
                  Column("selected", "selected", kind="text")])
    chosen = Table("Selected settings on the test day", "Model · target",
                   [], [Column("lr", "lr", kind="text"), Column("aux_weight", "λ", kind="text"),
                        Column("auc", "test AUC"), Column("gauc", "test GAUC"),
                        Column("selection", "selection", kind="text"),
                        Column("disagreement", "other criteria", kind="text")],
                   notes=study.notes("λ ref: the reference λ of the target.", ranked=False))
    for ((m, t), (variant, result)), runs in zip(tuned.items(), results):
        head = f"{model_name(m)} · {view_name(t)}"
        aux = study.reference_aux(m, t)
        group = []
        for setting in result.runs or ([variant.setting] if variant else []):
            row = f"{head} · {_setting_label(aux, setting)}"
            group.append(row)
            for run in result.runs.get(setting, []):
                if run is not None:
                    for k in ("auc", "gauc", "logloss"):
                        grid.add(row, f"val_{k}", getattr(run, k))
            if result.flag(setting):
                grid.add(row, "flag", result.flag(setting))
            picked = [METRIC_NAMES[k] for k, c in result.choices.items() if c.setting == setting]
            if picked:
                grid.add(row, "picked_by", ", ".join(picked))
            if variant is not None and setting == variant.setting:
                grid.add(row, "selected", "✓")
        grid_rows += group
        groups.append(group)
        chosen.rows.append(head)
        if variant is not None:
            chosen.add(head, "lr", f"{variant.setting.lr:g}")
            weight = variant.setting.aux_weight
            chosen.add(head, "aux_weight", "no aux" if not aux else
                       "ref" if weight is None else f"{weight:g}")
        if result.runs:
            chosen.add(head, "selection", result.uncertainty())
            chosen.add(head, "disagreement",
                       result.disagreement_text(lambda s: _setting_label(aux, s)) or "agree")
        for k, _ in METRICS:
            _add(chosen, head, k, runs, _metric(t, k))
    grid.rank_groups = groups
    seeds = study.validation_seed_list
    leaders = f", the leading ones on seeds {seeds[0]}…{seeds[-1]}" if len(seeds) > 1 else ""
    grid.notes = study.notes(
        f"Validation protocol: {_validation_note(study)}; every setting on seed "
        f"{seeds[0]}{leaders}, mean ± std "
        "over the seeds scored. Ranked within each model and target. flag: a run that failed, "
        "diverged or scored worse than a constant predictor (never selected). picked by: the "
        "criteria whose one-standard-error rule selects the setting. A grid of one setting "
        "needs no validation run (–).", *_selection_notes(study)[:1])
    tables = [("", grid), ("selected", chosen)]
    if "base" in models and len(models) > 1:
        variants = {key: variant for key, (variant, _) in tuned.items()}
        tables.append(("vs-base", _versus_base(study, models, targets, variants)))
    return StudyOutput(tables)


def study_greedy(study: Study) -> StudyOutput:
    """App. A: greedy forward selection of auxiliary targets on the validation day."""
    models = [m for m in study.pick_models(study.mac.greedy_models) if m != "base"]
    if not models:
        raise ConfigError("BASE has no auxiliary heads; name a multi-task model for greedy")
    targets = study.pick_targets(study.mac.greedy_targets)
    setting = study.fixed_setting()
    problems = {(m, t): greedy_candidates(study, m, t) for m in models for t in targets}
    seeds = study.validation_seed_list

    def evaluate(batch):
        configs = [study.config(Variant(m, t, aux, setting), seed=seed, split="validation")
                   for (m, t), aux in batch for seed in seeds]
        scores = [main_gauc(metrics, t) for metrics, ((_, t), _) in
                  zip(study.run(configs), [item for item in batch for _ in seeds])]
        return [scores[i * len(seeds):(i + 1) * len(seeds)] for i in range(len(batch))]

    states = run_greedy(problems, evaluate)
    table = Table("App. A: greedy forward selection of auxiliary targets", "Step", [],
                  [Column("set", "auxiliary set", kind="text"),
                   Column("val_gauc", "val GAUC", rank=False),
                   Column("gain", "gain", kind="delta", rank=False),
                   Column("kept", "kept", kind="text")])

    def names(aux: Sequence[str]) -> str:
        return " & ".join(view_name(v) for v in aux) or "none"

    for (m, t), state in states.items():
        head = f"{model_name(m)} · {view_name(t)}"
        start = f"{head} · start"
        table.rows.append(start)
        table.add(start, "set", "none")
        if state.failed:
            table.add(start, "kept", "failed")
            continue
        for score in (state.rounds[0].base_seeds if state.rounds else state.seed_scores):
            table.add(start, "val_gauc", score)
        for k, rnd in enumerate(state.rounds, 1):
            for candidate, gains in rnd.gains.items():
                row = f"{head} · round {k}: + {view_name(candidate)}"
                table.rows.append(row)
                table.add(row, "set", names((*rnd.base, candidate)))
                for base, gain in zip(rnd.base_seeds, gains or ()):
                    table.add(row, "val_gauc", base + gain)
                    table.add(row, "gain", gain)
                if gains is not None:
                    grown = Variant(m, t, (*rnd.base, candidate), setting)
                    _add_gain_interval(study, table, row, grown, Variant(m, t, rnd.base, setting))
                table.add(row, "kept", "✓" if candidate == rnd.chosen else
                          "failed" if gains is None else "")
        final = f"{head} · selected"
        table.rows.append(final)
        table.add(final, "set", names(state.selected))
        for score in state.seed_scores:
            table.add(final, "val_gauc", score)
    over = f"seed {seeds[0]}" if len(seeds) == 1 else \
        f"mean ± std over seeds {seeds[0]}…{seeds[-1]}"
    rule = "the largest positive gain" if len(seeds) == 1 else \
        "the largest mean gain above one standard error of the mean (paired by seed)"
    table.notes = study.notes(f"Validation protocol, {setting.label}, {over}. Each round keeps "
                              f"the candidate with {rule} over the round's starting set; the "
                              "search stops when none improves it.",
                              "gain: the candidate's set − the round's starting set in GAUC "
                              "points, with its 95 % interval from a paired bootstrap over the "
                              "validation users" + (" and the seeds" if len(seeds) > 1 else "") +
                              "; † where it excludes 0 (the rule above decides, not the "
                              "interval).", ranked=False)
    return StudyOutput([("", table)])


def _add_gain_interval(study: Study, table: Table, row: str, candidate: Variant,
                       base: Variant) -> None:
    """Show `row`'s gain as `candidate` − `base` in validation GAUC with its paired interval,
    where both sets' validation runs left their predictions."""
    paired = paired_test(study, candidate, base, candidate.main, split="validation",
                         seeds=study.validation_seed_list, metrics=("gauc",))
    if paired is not None:
        table.add_interval(row, "gain", paired.deltas["gauc"])


def greedy_candidates(study: Study, model: str, main: str) -> list[str]:
    """Greedy's candidates: --aux without the target when given, else every other label in the
    tables' order (and CAT for the knowledge-transfer models)."""
    if study.aux is not None:
        return list(canonical_aux([v for v in study.aux if v != main], study.labels))
    traits = model_spec(model).traits
    cat = traits.family == "knowledge-transfer" and traits.takes_cat
    return [*(v for v in study.display_labels if v != main), *((CAT,) if cat else ())]


MAC_STUDIES: dict[str, tuple[Callable[[Study], StudyOutput], str]] = {
    "main": (study_main, "Table 4: every model × target, AUC/GAUC, Δ vs BASE and NATAL"),
    "aux-metrics": (study_aux_metrics, "Table 3: primary and auxiliary GAUC, last-click target"),
    "aux-targets": (study_aux_targets, "Table 5: MoAE with growing auxiliary sets (± CAT)"),
    "params": (study_params, "Table 6: each model with and without multi-attribution labels"),
    "atl": (study_atl, "Table 7: each model plain, + GCS, + PCGrad"),
    "labels": (study_labels, "Tables 2 and 8: label statistics and MML (no training)"),
    "groups": (study_groups, "Figure 5: GAUC gain of MoAE over BASE by path complexity"),
    "search": (study_search, "the lr × λ grid on the validation day and the selected settings"),
    "greedy": (study_greedy, "App. A: greedy forward selection of auxiliary targets"),
}
