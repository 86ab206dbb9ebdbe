"""`malt study kaml`: tables from (fake) runs, RelaImpr baselines, shared cells, coverage; and
one real end-to-end run on a very small simulation."""

from __future__ import annotations

from pathlib import Path

import pytest
from kaml_fake import kaml_fake_train

from malt.cli import main
from malt.data.cache import prepare
from malt.data.masks import AdmOptions, MaskPolicy, coverage
from malt.data.schema import Schema
from malt.errors import ConfigError
from malt.experiments.kaml import all_rows, study_kaml
from malt.experiments.presets import PRESETS, get_preset
from malt.experiments.study import Study
from malt.metrics import rela_impr
from malt.outputs import OutputDir
from malt.sources.simulate.app_promotion import AppSimConfig, simulate_app_promotion

SIM = AppSimConfig(users=600, campaigns=40, days=3, clicks_per_day=1500, seed=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kaml-study") / "data"
    simulate_app_promotion(SIM, root)
    return root


def _study(data: Path, out: Path, **kw) -> tuple[Study, object]:
    schema = Schema.load(data / "schema.toml")
    dataset = prepare(data, schema)
    study = Study(preset="smoke", setup=PRESETS["smoke"].kaml, data=data,
                  output=OutputDir(out, "study"), labels=schema.labels, seeds=(7, 8),
                  dataset=dataset, jobs=1, train=kaml_fake_train, say=lambda _: None, **kw)
    return study, dataset


def run_study(study: Study, dataset) -> list:
    return study_kaml(study).tables


def test_tables_rows_and_shared_runs(data, tmp_path):
    study, dataset = _study(data, tmp_path / "out")
    tables = dict(run_study(study, dataset))
    models, oracle, ablation = tables[""], tables["oracle"], tables["ablation"]
    assert models.rows == ["SingleTask", "Shared-Bottom", "STAR", "MMoE", "PLE", "TAML",
                           "KAML", "RelaImpr", "Δ KAML vs TAML"]
    # KAML against the baseline of the best pooled AUC, per action, paired over 2 seeds.
    paired = {key: delta for (row, key), delta in models.intervals.items()
              if row == "Δ KAML vs TAML"}
    assert set(paired) == {f"{a}_auc" for a in (*study.labels, "all")}
    assert all(d.seeds == 2 and d.low <= d.estimate <= d.high for d in paired.values())
    assert paired["all_auc"].estimate > 0  # the fake KAML's scores carry less noise
    assert oracle.rows == ["Vanilla", "KAML", "KAML (reported + RLU)", "Oracle",
                           "Δ KAML vs Vanilla", "Δ Oracle vs KAML"]
    assert ablation.rows == ["MMoE", "MMoE+ADM", "MMoE+ADM+HKE", "MMoE+RLU", "KAML",
                             "Δ MMoE+ADM vs MMoE", "Δ MMoE+ADM+HKE vs MMoE",
                             "Δ MMoE+RLU vs MMoE", "Δ KAML vs MMoE"]
    # Each Δ row is its first row minus its second, paired over 2 seeds: the fake scores of
    # KAML and of MMoE+ADM carry less noise than those of Vanilla and MMoE.
    for table, row in ((oracle, "Δ KAML vs Vanilla"), (ablation, "Δ MMoE+ADM vs MMoE")):
        delta = table.intervals[(row, "all_auc")]
        assert delta.seeds == 2 and delta.low <= delta.estimate <= delta.high
        assert delta.estimate > 0
        assert all(marked != row for marked, _ in table.marks())
    # Vanilla is MMoE under the base mask: the same runs, trained once.
    assert oracle.values[("Vanilla", "all_auc")] == models.values[("MMoE", "all_auc")]
    distinct = {(r.model, r.mask, r.options) for r in all_rows(study)}
    assert len(list((tmp_path / "out" / "runs").iterdir())) == 2 * len(distinct) == 24
    assert models.stats("MMoE", "payment_auc")[2] == 2
    # SingleTask is never marked best: it is outside the ranking group.
    assert all(row != "SingleTask" for row, _ in models.marks())


def test_rela_impr_uses_the_best_multi_task_baseline(data, tmp_path):
    study, dataset = _study(data, tmp_path / "out")
    table = dict(run_study(study, dataset))[""]
    for action in (*study.labels, "all"):
        key = f"{action}_auc"
        best = max(("Shared-Bottom", "STAR", "MMoE", "PLE", "TAML"),
                   key=lambda row: table.stats(row, key)[0])
        want = rela_impr(table.stats("KAML", key)[0], table.stats(best, key)[0])
        assert table.stats("RelaImpr", key)[0] == pytest.approx(want)
        assert f"{action.replace('all', 'All')}: {best}" in _rela_impr_note(table)
    study, dataset = _study(data, tmp_path / "out", baselines=("single_task",))
    table = dict(run_study(study, dataset))[""]
    want = rela_impr(table.stats("KAML", "payment_auc")[0],
                     table.stats("SingleTask", "payment_auc")[0])
    assert table.stats("RelaImpr", "payment_auc")[0] == pytest.approx(want)
    assert "best among SingleTask;" in _rela_impr_note(table)
    assert table.rows[-1] == "Δ KAML vs SingleTask"


def _rela_impr_note(table) -> str:
    return next(note for note in table.notes if note.startswith("RelaImpr ="))


def test_coverage_table_is_the_masks_coverage(data, tmp_path):
    study, dataset = _study(data, tmp_path / "out")
    table = dict(run_study(study, dataset))["coverage"]
    want = coverage(MaskPolicy("adm", dataset.schema, dataset.train, AdmOptions()),
                    dataset.train, dataset.schema.labels)
    assert table.rows == ["Base", "With ADM", "Reported set"]
    for action, share in want["adm"].items():
        assert table.stats("With ADM", action)[0] == pytest.approx(share)
    assert table.stats("Base", "other")[0] == pytest.approx(want["base"]["other"])


def test_command_errors(data, tmp_path, capsys):
    assert main(["study", "kaml", "--data", str(data), "--out", str(tmp_path / "a"),
                 "--targets", "payment"]) == 3
    assert "not used by the kaml study" in capsys.readouterr().err
    assert main(["study", "kaml", "--data", str(data), "--out", str(tmp_path / "b"),
                 "--models", "mmeo"]) == 3
    from support.mac_data import write_random_dataset

    mac = write_random_dataset(tmp_path / "mac", days=2, rows=20)
    assert main(["study", "kaml", "--data", str(mac), "--out", str(tmp_path / "c")]) == 3
    assert "--schema" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown study preset"):
        get_preset("huge")


def test_study_runs_end_to_end(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["study", "kaml", "--data", str(data), "--out", str(out), "--seeds", "1",
                 "--models", "mmoe", "kaml", "--jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "Table 4: ablations" in printed and "RelaImpr" in printed
    for name in ("kaml.md", "kaml.csv", "kaml-coverage.csv", "kaml-oracle.csv",
                 "kaml-ablation.csv"):
        assert (out / name).is_file()
    markdown = (out / "kaml.md").read_text()
    assert "| KAML |" in markdown and "MMoE+ADM+HKE" in markdown
    # A second call reads every run back.
    assert main(["study", "kaml", "--data", str(data), "--out", str(out), "--seeds", "1",
                 "--models", "mmoe", "kaml", "--jobs", "1"]) == 0
    assert "FAILED" not in capsys.readouterr().out
