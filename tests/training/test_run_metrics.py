"""metrics.json stays readable as ViewMetrics grows: fields added later load as NaN."""

from __future__ import annotations

import json
import math

from malt.metrics import ViewMetrics
from malt.training.run_dir import ParamCounts, RunDir, RunMetrics, TrainStats


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
