"""The studies on a fake trainer (deterministic metrics from the config, no training)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
from fake_training import fake_train, score

from malt.data.schema import MAC
from malt.errors import ConfigError
from malt.experiments.cells import Cell
from malt.experiments.engine import STUDIES as ENGINE_STUDIES
from malt.experiments.engine import StudyOptions, run_studies
from malt.experiments.mac import MAC_STUDIES as STUDIES
from malt.experiments.mac import greedy_candidates
from malt.experiments.options import STUDY_NAMES
from malt.experiments.output import write_output
from malt.experiments.presets import PRESETS
from malt.experiments.search import Setting
from malt.experiments.study import Study, Variant, canonical_aux, claim_output, reference_aux
from malt.outputs import OutputDir, foreign_files


def make_context(tmp_path: Path, **changes) -> Study:
    fields = dict(preset="smoke", setup=PRESETS["smoke"].mac, data=Path("/data/mac"),
                  output=OutputDir(tmp_path, "study"), labels=MAC.labels, seeds=(1, 2),
                  train=fake_train, device="cpu", jobs=1, say=lambda line: None)
    fields.update(changes)
    return Study(**fields)


def run_dirs(ctx: Study) -> list[str]:
    return sorted(p.name for p in ctx.runs.iterdir()) if ctx.runs.exists() else []


def test_the_command_lists_every_study():
    assert set(STUDY_NAMES) == set(ENGINE_STUDIES)


def test_a_users_auxiliary_set_replaces_the_reference_grid(tmp_path):
    labels = ("buy", "cart", "view")
    assert reference_aux("moae", "buy", labels) == ("cart", "view", "cat")
    assert reference_aux("moae", "buy", labels, ("view", "buy")) == ("view",)
    assert reference_aux("base", "buy", labels, ("view",)) == ()
    study = make_context(tmp_path, labels=labels, aux=("view", "cart"), targets=("buy",))
    assert greedy_candidates(study, "moae", "buy") == ["cart", "view"]
    assert greedy_candidates(make_context(tmp_path, labels=labels), "moae", "cart") == \
        ["buy", "view", "cat"]
    tuned = study.tune([("natal", "buy")])[("natal", "buy")][0]
    assert tuned.aux == ("cart", "view")


def test_reference_auxiliary_sets_follow_the_release_grid():
    labels = MAC.labels
    assert reference_aux("base", "last", labels) == ()
    assert reference_aux("ple", "last", labels) == ("first", "linear", "mta")
    assert reference_aux("natal", "last", labels) == ("first", "linear", "mta", "cat")
    assert reference_aux("moae", "mta", labels) == ("last", "first", "linear", "cat")
    assert reference_aux("home", "linear", labels) == ("last", "first", "mta")
    for model in ("shared_bottom", "natal", "moae"):
        assert reference_aux(model, "first", labels) == ("last",)
    # without a last-click label the first-click exception does not apply
    assert reference_aux("mmoe", "first", ("first", "linear")) == ("linear",)


def test_canonical_aux_orders_by_schema_with_cat_last():
    assert canonical_aux(["cat", "mta", "first"], MAC.labels) == ("first", "mta", "cat")
    with pytest.raises(ConfigError, match="not labels"):
        canonical_aux(["dda"], MAC.labels)


def test_main_searches_on_validation_then_tests_every_seed(tmp_path):
    ctx = make_context(tmp_path, models=("base", "natal", "moae"), targets=("last",),
                       lrs=(3e-3, 1e-2), aux_weights=(0.1, 0.3))
    output = STUDIES["main"][0](ctx)
    table = dict(output.tables)[""]
    dirs = run_dirs(ctx)
    # validation: BASE 2 lrs, NATAL and MoAE 2 × 2, every one a leader, so on both seeds;
    # test: 3 models × 2 seeds
    assert sum("-val-s1-" in d for d in dirs) == sum("-val-s2-" in d for d in dirs) == 2 + 4 + 4
    assert len([d for d in dirs if "-val-" not in d]) == 6
    moae = Variant("moae", "last", ("first", "linear", "mta", "cat"), Setting(1e-2, 0.3))
    expected = [score(ctx.config(moae, seed=s), "last") for s in ctx.seeds]
    mean, std, n = table.stats("MoAE", "last_gauc")
    assert n == 2 and mean == pytest.approx(sum(expected) / 2)
    assert std == pytest.approx(abs(expected[0] - expected[1]) / math.sqrt(2))
    base = Variant("base", "last", (), Setting(1e-2, None))
    delta = table.stats("Δ MoAE vs BASE", "last_gauc")[0]
    assert delta == pytest.approx(mean - score(ctx.config(base, seed=1), "last") - 0.00005)
    assert table.marks()[("MoAE", "last_gauc")] == "best"
    settings = dict(output.tables)["settings"]
    assert settings.values[("MoAE", "last")] == "lr 0.01, λ 0.3"
    assert settings.values[("BASE", "last")] == "lr 0.01, no aux"
    # the fake GAUC of a setting varies by 0.0001 between the seeds: se 0.00005; the fake
    # logloss is flat, so it ties every setting and selects the most conservative
    assert "MoAE · Last-Click: best GAUC 0.7408 ± 0.0000 (se over 2 seeds); no other of 4 " \
           "candidates within one se. Disagreement: logloss would select lr 0.003, λ 0.1." \
           in settings.notes
    assert "batch 512." in settings.notes[0] and "batch 512." in table.notes[0]


def test_main_compares_every_model_with_base_with_intervals_and_verdicts(tmp_path):
    said = []
    ctx = make_context(tmp_path, models=("base", "natal", "moae"), targets=("last",),
                       seeds=(1, 2, 3), say=said.append)
    output = dict(STUDIES["main"][0](ctx).tables)
    versus = output["vs-base"]
    assert versus.rows == ["NATAL", "MoAE"]
    for model in versus.rows:
        delta = versus.intervals[(model, "gauc")]
        assert delta.seeds == 3 and delta.low <= delta.estimate <= delta.high
    # The fake MoAE's scores carry less noise than BASE's on every seed: clearly better.
    assert versus.values[("MoAE", "verdict")] == "better"
    assert "the test users and the seeds" in versus.notes[-1]
    assert any(line.startswith("MoAE vs BASE on Last-Click (3 seeds): ΔAUC +") and
               line.endswith(": better") for line in said)
    main = output[""]
    interval = main.intervals[("Δ MoAE vs BASE", "last_gauc")]
    assert interval == versus.intervals[("MoAE", "gauc")]
    assert main.cell_text("Δ MoAE vs BASE", main.columns[1]).endswith("]†")


def test_a_rerun_trains_nothing(tmp_path):
    ctx = make_context(tmp_path, models=("base", "moae"), targets=("last", "first"))
    STUDIES["main"][0](ctx)

    def must_not_train(*args, **kwargs):
        raise AssertionError("a completed cell was trained again")

    again = make_context(tmp_path, models=("base", "moae"), targets=("last", "first"),
                         train=must_not_train)
    first = STUDIES["main"][0](ctx)
    second = STUDIES["aux-metrics"][0](again)  # same tuned runs, read back
    assert not again.failures
    assert dict(second.tables)[""].stats("MoAE", "last:last") == \
        dict(first.tables)[""].stats("MoAE", "last_gauc")


def test_params_atl_and_aux_targets_reuse_the_tuned_setting(tmp_path):
    ctx = make_context(tmp_path, models=("base", "moae"), targets=("last",), seeds=(1,))
    params = dict(STUDIES["params"][0](ctx).tables)[""]
    assert params.rows == ["BASE", "MoAE", "MoAE w/o mal"]
    # λ = 0 costs 0.002 · 0.3 in the fake score; the dense size is the same
    assert params.stats("MoAE", "last_gauc")[0] - params.stats("MoAE w/o mal", "last_gauc")[0] \
        == pytest.approx(0.0006)
    assert params.stats("MoAE", "last_params")[0] == params.stats("MoAE w/o mal",
                                                                  "last_params")[0] == 1400

    atl = dict(STUDIES["atl"][0](replace(ctx, models=("moae",))).tables)[""]
    assert atl.rows == ["MoAE", "MoAE + GCS", "MoAE + PCGrad"]
    assert atl.stats("MoAE + PCGrad", "last_dgauc")[0] == pytest.approx(0.003)
    assert atl.stats("MoAE + GCS", "last_dgauc")[0] == pytest.approx(0.0)

    aux = dict(STUDIES["aux-targets"][0](replace(ctx, models=("moae",))).tables)[""]
    assert [r.split(": ")[1] for r in aux.rows] == [
        "None", "First-Click", "DDA", "Linear", "First-Click & DDA & Linear",
        "First-Click & DDA & Linear & CAT"]
    assert aux.marks()[("Last-Click target: First-Click & DDA & Linear & CAT", "gauc")] == "best"
    # Each auxiliary set against the single-attribution row: per seed, and with its interval.
    full = "Last-Click target: First-Click & DDA & Linear & CAT"
    assert aux.stats(full, "dgauc")[0] == pytest.approx(0.04)
    assert aux.intervals[(full, "dgauc")].seeds == 1
    assert ("Last-Click target: None", "dgauc") not in aux.intervals
    assert atl.intervals[("MoAE + PCGrad", "last_dgauc")].seeds == 1
    assert params.intervals[("MoAE w/o mal", "last_dgauc")].seeds == 1


def test_greedy_study_selects_with_validation_runs(tmp_path):
    ctx = make_context(tmp_path, models=("ple",), targets=("mta",), seeds=(3,))
    table = dict(STUDIES["greedy"][0](ctx).tables)[""]
    # the fake score grows with every auxiliary view, so every candidate is kept in turn
    assert table.values[("PLE · DDA · selected", "set")] == "Last-Click & First-Click & Linear"
    assert table.values[("PLE · DDA · round 1: + Last-Click", "kept")] == "✓"
    assert all("-val-s3-" in d for d in run_dirs(ctx))
    assert len(run_dirs(ctx)) == 1 + 3 + 2 + 1


def test_search_study_marks_the_selected_setting(tmp_path):
    ctx = make_context(tmp_path, models=("moae",), targets=("last",), seeds=(1,))
    output = STUDIES["search"][0](ctx)
    grid, chosen = dict(output.tables)[""], dict(output.tables)["selected"]
    assert len(grid.rows) == 4  # the smoke preset's 2 × 2 search grid
    assert grid.values[("MoAE · Last-Click · lr 0.01, λ 0.3", "selected")] == "✓"
    assert grid.marks()[("MoAE · Last-Click · lr 0.01, λ 0.3", "val_gauc")] == "best"
    assert chosen.values[("MoAE · Last-Click", "lr")] == "0.01"
    tables = OutputDir(tmp_path / "tables", "study")
    tables.claim()
    paths = write_output(tables, "search", output)
    assert {p.name for p in paths} == {"search.md", "search.csv", "search-selected.csv"}
    assert foreign_files(tables.path) == []


def test_failed_runs_leave_gaps_and_are_collected(tmp_path):
    from fake_training import picky_train

    ctx = make_context(tmp_path, models=("base", "moae"), targets=("last",), seeds=(1,),
                       lrs=(0.0666,), train=picky_train)
    table = dict(STUDIES["main"][0](ctx).tables)[""]
    assert len(ctx.failures) == 2
    assert table.cell_text("MoAE", table.columns[1]) == "–"


def test_unknown_targets_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="not labels"):
        STUDIES["main"][0](make_context(tmp_path, targets=("dda",)))


@pytest.mark.parametrize("names", [("../x",), ("main", "nope")])
def test_unknown_study_names_are_rejected_before_anything_is_written(tmp_path, names):
    with pytest.raises(ConfigError, match=r"^names = .*: expected a list of values from "
                                          r"'main', 'aux-metrics'"):
        run_studies(StudyOptions(names=names, out=tmp_path / "out"))
    assert list(tmp_path.iterdir()) == []


def test_output_directory_is_tied_to_one_data_set(tmp_path):
    claim_output(tmp_path, Path("/data/a"))
    claim_output(tmp_path, Path("/data/a"))
    with pytest.raises(ConfigError, match="/data/a"):
        claim_output(tmp_path, Path("/data/b"))


def test_cell_of_a_variant_is_the_run_directory(tmp_path):
    ctx = make_context(tmp_path)
    variant = Variant("moae", "last", ("cat", "first"), Setting(1e-2))
    assert ctx.run_dir(variant, 1) == Cell(ctx.config(variant, seed=1)).run_dir(ctx.runs).path
    assert ctx.config(variant, seed=1).task.aux == ["first", "cat"]


def test_cost_summary_counts_only_trained_runs(tmp_path):
    ctx = make_context(tmp_path, models=("base",), targets=("last",))
    assert ctx.cost_summary() == "no run trained (all read back)"
    STUDIES["main"][0](ctx)
    assert ctx.cost_summary() == ("2 run(s) trained: 200 training rows in 1 s of training "
                                  "(200 rows/s per run)")
    STUDIES["main"][0](ctx)
    assert ctx.cost_summary(since=2) == "no run trained (all read back)"


def test_a_model_without_auxiliary_heads_is_never_given_auxiliary_views(tmp_path):
    study = make_context(tmp_path / "refused", models=("base",), targets=("last",))
    # The tuned BASE cells carry no auxiliary view, whatever --aux says...
    tuned = make_context(tmp_path / "tuned", aux=("first",)).tune([("base", "last")])
    assert tuned[("base", "last")][0].aux == ()
    # ... a variant that names some is refused, and aux-targets refuses BASE before training.
    with pytest.raises(ConfigError, match=r"model 'base' has no head for auxiliary views, so "
                                          r"task.aux \['first'\]"):
        study.config(Variant("base", "last", ("first",), Setting(1e-3, None)), seed=1)
    with pytest.raises(ConfigError, match=r"aux-targets .* \['base'\] take none"):
        STUDIES["aux-targets"][0](study)
    assert run_dirs(study) == []


def test_a_thin_gauc_is_said_once_per_split_in_the_study_output(tmp_path):
    said: list[str] = []
    ctx = make_context(tmp_path, models=("base", "moae"), targets=("last",), lrs=(3e-3, 1e-2),
                       say=said.append)
    STUDIES["main"][0](ctx)
    warnings = [line for line in said if line.startswith("warning:")]
    assert warnings == [  # the fake runs' GAUC counts 10 users
        "warning: the validation GAUC counts only 10 users (fewer than 500): choices made on it "
        "are mostly noise; hold out more days (--validation-days) or use more data",
        "warning: the test GAUC of 'last' counts only 10 users (fewer than 500): a difference "
        "between models or settings on it is mostly noise; evaluate on more test days or more "
        "data"]


def test_search_study_names_the_held_out_days_and_gives_base_no_lambda(tmp_path):
    ctx = make_context(tmp_path, models=("base", "moae"), targets=("last",), seeds=(1,),
                       overrides={"data": {"validation_days": 3}})
    output = STUDIES["search"][0](ctx)
    grid, chosen = dict(output.tables)[""], dict(output.tables)["selected"]
    assert "BASE · Last-Click · lr 0.01, no aux" in grid.rows
    assert not any("BASE" in row and "λ" in row for row in grid.rows)
    assert chosen.values[("BASE · Last-Click", "aux_weight")] == "no aux"
    assert chosen.values[("MoAE · Last-Click", "aux_weight")] == "0.3"
    assert grid.title == "Validation days: every setting of the grid"
    notes = " ".join(grid.notes)
    assert "trained on the first T−3 training days, scored on the last 3 pooled" in notes
    assert "day T," not in notes
    one_day = dict(STUDIES["search"][0](make_context(tmp_path, models=("moae",),
                                                     targets=("last",), seeds=(1,))).tables)
    assert "trained on the first T−1 training days, scored on day T; every setting on seed 1" \
        in " ".join(one_day[""].notes)


def test_a_weighted_label_setting_trains_with_weighted_labels(tmp_path):
    ctx = make_context(tmp_path, label_modes=("binary", "weighted"))
    settings = ctx.grid()
    assert {s.label_mode for s in settings} == {"binary", "weighted"}
    moae = Variant("moae", "last", ("first",), Setting(1e-2, 0.3, "weighted"))
    assert ctx.config(moae, seed=1).task.label_mode == "weighted"
    preset = Variant("moae", "last", ("first",), Setting(1e-2, 0.3))
    # No label mode in the setting: the preset's, and the run is the one it always was.
    assert ctx.config(preset, seed=1).task.label_mode == "binary"
    assert Cell(ctx.config(preset, seed=1)).id == Cell(make_context(tmp_path).config(
        preset, seed=1)).id


def test_greedy_validates_every_set_on_the_validation_seeds(tmp_path):
    ctx = make_context(tmp_path, models=("ple",), targets=("mta",), seeds=(3, 4))
    table = dict(STUDIES["greedy"][0](ctx).tables)[""]
    dirs = run_dirs(ctx)
    assert sum("-val-s3-" in d for d in dirs) == sum("-val-s4-" in d for d in dirs) == 7
    # The fake score's seed wiggle (0.0001) is far below each view's gain (0.01): kept.
    assert table.values[("PLE · DDA · selected", "set")] == "Last-Click & First-Click & Linear"
    assert table.stats("PLE · DDA · round 1: + Last-Click", "gain")[2] == 2
    assert "mean ± std over seeds 3…4" in table.notes[-2]
    assert "above one standard error" in table.notes[-2]
    # Every candidate's gain also shows its paired interval over validation users and seeds.
    tried = [row for row in table.rows if " · round " in row]
    assert len(tried) == 3 + 2 + 1
    for row in tried:
        gain = table.intervals[(row, "gain")]
        assert gain.seeds == 2 and gain.low <= gain.estimate <= gain.high
        assert "[" in table.cell_text(row, next(c for c in table.columns if c.key == "gain"))
    assert "paired bootstrap over the validation users and the seeds" in table.notes[-1]


def test_a_search_with_base_ends_with_each_selected_model_against_it(tmp_path):
    said = []
    ctx = make_context(tmp_path, models=("base", "moae"), targets=("last",), seeds=(1, 2),
                       say=said.append)
    output = dict(STUDIES["search"][0](ctx).tables)
    versus = output["vs-base"]
    assert versus.rows == ["MoAE"] and versus.intervals[("MoAE", "gauc")].seeds == 2
    assert versus.values[("MoAE", "verdict")] == "better"
    assert any(line.startswith("MoAE vs BASE on Last-Click (2 seeds): ") for line in said)
