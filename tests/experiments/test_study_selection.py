"""`Study.tune`'s selection on a fake trainer: one batch size for validation and test runs,
runs worse than a constant predictor flagged, the criterion and the validation seeds chosen."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from fake_training import fake_train

from malt.data.cache import Dataset, Day
from malt.data.reader import DayStats
from malt.data.schema import MAC
from malt.data.vocab import VocabInfo
from malt.errors import ConfigError
from malt.experiments.mac import MAC_STUDIES as STUDIES
from malt.experiments.options import StudyOptions
from malt.experiments.presets import PRESETS
from malt.experiments.search import Setting
from malt.experiments.study import Study, Variant
from malt.outputs import OutputDir
from malt.training.steps import auto_batch_size


def fake_dataset(day_rows: list[int], positive_share: float) -> Dataset:
    """A data set of statistics only (the fake trainer reads nothing)."""
    def day(name: str, split: str, rows: int) -> Day:
        stats = DayStats(rows=rows, positives={"last": int(rows * positive_share)})
        return Day(name, split, Path(name), Path(name), stats)

    return Dataset(Path("/data/mac"), MAC, VocabInfo({}, {}),
                   [day(f"d{i}", "train", r) for i, r in enumerate(day_rows)],
                   [day("test", "test", 1000)])


def make_study(tmp_path: Path, dataset: Dataset, **changes) -> Study:
    fields = dict(preset="smoke", setup=PRESETS["smoke"].mac, data=Path("/data/mac"),
                  output=OutputDir(tmp_path, "study"), labels=MAC.labels, seeds=(1,),
                  dataset=dataset, train=fake_train, device="cpu", jobs=1,
                  say=lambda line: None, models=("moae",), targets=("last",))
    fields.update(changes)
    return Study(**fields)


def test_auto_batch_size_is_resolved_once_from_the_full_training_days(tmp_path):
    # 2 days of 60k rows: batch 512 gives 236 steps over both days, while the validation runs'
    # single day alone would have picked 256
    days = [60_000, 60_000]
    assert auto_batch_size(days) == 512 and auto_batch_size(days[:1]) == 256
    study = make_study(tmp_path, fake_dataset(days, 0.2),
                       overrides={"train": {"batch_size": "auto"}})
    variant = Variant("moae", "last", ("first",), Setting(1e-2, 0.3))
    assert study.config(variant, seed=1, split="validation").train.batch_size == 512
    assert study.config(variant, seed=1).train.batch_size == 512
    assert "batch 512 (`auto`, resolved once from the full training days" in study.notes()[0]
    fixed = make_study(tmp_path, fake_dataset(days, 0.2))
    assert fixed.config(variant, seed=1, split="validation").train.batch_size == 512
    assert fixed.notes()[0].endswith("one seed (1); batch 512.")


def test_runs_worse_than_a_constant_predictor_are_never_selected(tmp_path):
    # the fake runs' logloss is 0.3; a 20% base rate's entropy (0.50) is above it, 1% (0.056)
    # below it
    assert make_study(tmp_path, fake_dataset([1000, 1000], 0.01)).validation_base_rate(
        make_study(tmp_path, fake_dataset([1000, 1000], 0.01)).config(
            Variant("moae", "last", (), Setting(1e-2)), seed=1, split="validation")) == 0.01
    grid = {"lrs": (3e-3, 1e-2), "aux_weights": (0.1, 0.3)}
    good = make_study(tmp_path / "good", fake_dataset([1000, 1000], 0.2), **grid)
    variant, result = good.tune([("moae", "last")])[("moae", "last")]
    assert variant is not None and not any(result.flag(s) for s in result.runs)
    bad = make_study(tmp_path / "bad", fake_dataset([1000, 1000], 0.01), **grid)
    variant, result = bad.tune([("moae", "last")])[("moae", "last")]
    assert variant is None
    assert {result.flag(s) for s in result.runs} == {"worse than constant"}
    settings = dict(STUDIES["main"][0](bad).tables)["settings"]
    assert settings.values[("MoAE", "last")] == "failed"
    assert any("4 setting(s) flagged, never selected" in n for n in settings.notes)


def test_the_criterion_and_the_validation_seeds_are_the_users(tmp_path):
    grid = {"lrs": (3e-3, 1e-2), "aux_weights": (0.1, 0.3)}
    data = fake_dataset([1000, 1000], 0.2)
    by_gauc = make_study(tmp_path, data, validation_seeds=3, **grid)
    variant, result = by_gauc.tune([("moae", "last")])[("moae", "last")]
    assert variant.setting == Setting(1e-2, 0.3)
    assert all(len(runs) == 3 for runs in result.runs.values())  # every one of 4 leads
    val = sorted(p.name for p in by_gauc.runs.iterdir() if "-val-" in p.name)
    assert [sum(f"-val-s{s}-" in d for d in val) for s in (1, 2, 3)] == [4, 4, 4]
    # the fake logloss is the same for every setting: all tied, the most conservative wins
    by_logloss = make_study(tmp_path, data, select_metric="logloss", **grid)
    variant, result = by_logloss.tune([("moae", "last")])[("moae", "last")]
    assert variant.setting == Setting(3e-3, 0.1)
    assert result.disagreements() == {"gauc": Setting(1e-2, 0.3), "auc": Setting(1e-2, 0.3)}
    table = dict(STUDIES["search"][0](by_logloss).tables)["selected"]
    assert table.values[("MoAE · Last-Click", "disagreement")] == \
        "GAUC would select lr 0.01, λ 0.3; AUC would select lr 0.01, λ 0.3"
    # BASE trains no auxiliary view: its settings are worded without a λ
    with_base = make_study(tmp_path / "base", data, select_metric="logloss",
                           models=("base", "moae"), **grid)
    output = STUDIES["search"][0](with_base)
    assert dict(output.tables)["selected"].values[("BASE · Last-Click", "disagreement")] == \
        "GAUC would select lr 0.01, no aux; AUC would select lr 0.01, no aux"
    notes = dict(STUDIES["main"][0](with_base).tables)["settings"].notes
    assert any(n.startswith("BASE · Last-Click: ") and n.endswith(
        "Disagreement: GAUC would select lr 0.01, no aux; AUC would select lr 0.01, no aux.")
        for n in notes)
    assert math.isclose(by_logloss.reference_weight("moae", "first"), 0.1)
    with pytest.raises(ConfigError, match="select_metric = 'ndcg': expected one of"):
        StudyOptions(names=("search",), select_metric="ndcg")
    with pytest.raises(ConfigError, match="validation_seeds = 0"):
        StudyOptions(names=("search",), validation_seeds=0)
