"""A fake `train_run` for the KAML study: deterministic target metrics from the config."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from malt.eval.predictions import Predictions
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
    predictions(config, actions).save(run.predictions_file)
    run.save_metrics(metrics)
    return metrics


def predictions(config: RunConfig, actions: list[str]) -> Predictions:
    """Scores on one fixed day of 600 rows, 80 users, each row targeting one action: the
    higher the fake AUC of an action, the less noise on the latent score of its labels."""
    day = np.random.default_rng(0)
    user, latent = day.integers(0, 80, 600), day.normal(0, 1, (600, len(actions)))
    labels = (day.random((600, len(actions))) < 1 / (1 + np.exp(-2 * latent))).astype(np.float32)
    target = day.integers(0, len(actions), 600)
    noise = np.random.default_rng([config.seed, zlib.crc32(config.model["name"].encode())])
    scale = np.array([np.exp(30 * (0.73 - auc(config, a))) for a in actions])
    probs = 1 / (1 + np.exp(-(latent + noise.normal(0, 1, latent.shape) * scale)))
    return Predictions(views=tuple(actions), labels=tuple(actions),
                       probs=probs.astype(np.float32), weights=labels, user=user,
                       target_action=target, days=("test",), day_rows=(600,))
