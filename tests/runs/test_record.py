"""metrics.json stays readable as ViewMetrics grows: fields added later load as NaN; it is
strict JSON, an undefined metric written as null with the reason."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from malt.cli import main
from malt.metrics import ActionMetrics, ViewMetrics, view_metrics
from malt.runs.directory import RunDir
from malt.runs.record import ParamCounts, RunMetrics, TrainStats
from support.mac_data import write_random_dataset


def strict_json(text: str):
    """`text` parsed as JSON proper: NaN and Infinity, which JSON has not, are refused."""

    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _metrics() -> RunMetrics:
    view = ViewMetrics(auc=0.71, gauc=0.62, gauc_users=40, logloss=0.31, auc_weighted=0.72,
                       gauc_weighted=0.63, pcoc=1.07, ece=0.0042)
    return RunMetrics(main="last", views={"last": view, "first": view}, eval_days=("test",),
                      eval_rows=300, train=TrainStats(2, 600, 10, 1.5, 1),
                      params=ParamCounts(100, 200),
                      per_day={"d0": {"last": view}, "d1": {"last": view}})


def test_metrics_saved_before_pcoc_and_ece_existed_still_load(tmp_path):
    raw = _metrics().to_dict()
    for views in [raw["views"], *raw["per_day"].values()]:
        for view in views.values():
            del view["pcoc"], view["ece"]
    (tmp_path / "metrics.json").write_text(json.dumps(raw))
    loaded = RunDir(tmp_path).load_metrics()
    for view in [*loaded.views.values(), *(v for d in loaded.per_day.values() for v in d.values())]:
        assert math.isnan(view.pcoc) and math.isnan(view.ece)
        assert (view.auc, view.gauc_users, view.gauc_weighted) == (0.71, 40, 0.63)


def test_pcoc_and_ece_survive_a_save_and_load(tmp_path):
    metrics = _metrics()
    (tmp_path / "metrics.json").write_text(json.dumps(metrics.to_dict()))
    loaded = RunDir(tmp_path).load_metrics()
    assert loaded == metrics
    assert (loaded.main_metrics.pcoc, loaded.main_metrics.ece) == (1.07, 0.0042)


def test_undefined_metrics_are_null_with_their_reason_and_read_back_as_nan(tmp_path, caplog):
    rng = np.random.default_rng(0)
    probs, user = rng.random(50), rng.integers(0, 5, 50)
    none_positive = view_metrics(probs, np.zeros(50), user)
    assert none_positive.note == "no positive among the 50 rows: AUC, GAUC and PCOC are undefined"
    assert "no negative among the 50 rows" in view_metrics(probs, np.ones(50), user).note
    assert view_metrics(probs, rng.random(50) < 0.3, user).note == ""
    metrics = RunMetrics(**{**_metrics().__dict__, "views": {"last": _metrics().views["last"],
                                                             "first": none_positive},
                            "target": {"all": ActionMetrics(math.nan, 0.3, 50, 0)}})
    run = RunDir(tmp_path / "run")
    run.claim()
    with caplog.at_level(logging.WARNING, logger="malt"):
        run.save_metrics(metrics)
    saved = strict_json(run.metrics_file.read_text())
    first = saved["views"]["first"]
    assert (first["auc"], first["gauc"], first["pcoc"], saved["target"]["all"]["auc"]) == \
        (None, None, None, None)
    assert first["note"] == none_positive.note and first["logloss"] == none_positive.logloss
    assert "6 undefined metric(s) written as null; first: no positive among the 50 rows" in \
        caplog.text
    loaded = run.load_metrics()
    assert math.isnan(loaded.views["first"].auc) and math.isnan(loaded.target["all"].auc)
    assert loaded.views["first"].note == none_positive.note
    assert loaded.views["last"] == metrics.views["last"]


def test_a_test_day_without_positives_gives_strict_metrics_that_eval_prints(tmp_path, capsys):
    data = write_random_dataset(tmp_path / "mac", rows=120)
    test_day = data / "test" / "test.parquet"
    table = pq.read_table(test_day)
    column = table.schema.get_field_index("first")
    pq.write_table(table.set_column(column, "first", pa.array(np.zeros(table.num_rows))),
                   test_day)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--model", "mmoe", "--aux",
                 "first", "--batch-size", "64", "--model-option", "encoder.embed_dim=4",
                 "--model-option", "encoder.attention_heads=1", "--model-option",
                 "expert.dim=8", "--model-option", "tower.dims=[4]"]) == 0
    saved = strict_json((run / "metrics.json").read_text())["views"]
    assert saved["first"]["auc"] is None and "no positive among the 120 rows" in \
        saved["first"]["note"]
    assert saved["last"]["auc"] is not None
    capsys.readouterr()
    assert main(["eval", "--run", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "first: no positive among the 120 rows: AUC, GAUC and PCOC are undefined" in printed
    first_row = next(line for line in printed.splitlines() if line.startswith("first "))
    assert first_row.split()[1:3] == ["nan", "nan"]
