"""A fake `train_run` for the KAML study: deterministic target metrics from the config."""

from __future__ import annotations

import zlib
from pathlib import Path

from malt.metrics import ActionMetrics
from malt.runs.config import RunConfig
from malt.runs.directory import RunDir
from malt.runs.record import ParamCounts, RunMetrics, TrainStats

MODEL_SCORE = {"single_task": 0.70, "shared_bottom": 0.71, "star": 0.705, "mmoe": 0.712,
               "ple": 0.715, "taml": 0.716, "kaml": 0.72}


def auc(config: RunConfig, action: str) -> float:
    """Model + mask + a per-action and per-seed wiggle."""
    bonus = {"base": 0.0, "adm": 0.004, "reported": 0.002, "oracle": 0.01}[config.task.mask]
    wiggle = zlib.crc32(f"{action}-{config.seed}".encode()) % 100 / 10_000
    return MODEL_SCORE[config.model["name"]] + bonus + wiggle


def kaml_fake_train(config: RunConfig, out, *, resume: bool = False, dataset=None
                    ) -> RunMetrics:
    actions = [config.task.main, *config.task.aux]
    target = {a: ActionMetrics(auc=auc(config, a), logloss=0.3, rows=10, positives=2)
              for a in [*actions, "all"]}
    metrics = RunMetrics(main=config.task.main, views={}, eval_days=("test",), eval_rows=10,
                         train=TrainStats(days=1, rows=100, steps=1, seconds=0.1, world_size=1),
                         params=ParamCounts(dense=10, embedding=10), target=target)
    run = RunDir(Path(out))
    run.save_config(config)
    run.save_metrics(metrics)
    return metrics
