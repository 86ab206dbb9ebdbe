"""Score a finished run's model on a data set (its own or another with the same vocabs)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from malt.data.cache import prepare
from malt.data.schema import resolve_schema
from malt.errors import ConfigError
from malt.eval.predictions import Predictions, predict
from malt.train.checkpoint import load_checkpoint
from malt.train.distributed import resolve_device
from malt.train.model_factory import build_from_config
from malt.train.run_dir import RunDir
from malt.train.trainer import split_days, task_from_config


def rescore(run: RunDir, data: str | Path, *, device: str = "auto") -> Predictions:
    """Predictions of the run's final model on the evaluation days of `data`."""
    config = run.load_config()
    config = replace(config, data=replace(config.data, path=str(data), cache=None))
    if not run.checkpoint.is_file():
        raise ConfigError(f"run {run.path} has no checkpoint")
    payload = load_checkpoint(run.checkpoint)
    if not payload["state"].finished:
        raise ConfigError(f"run {run.path} has not finished training; resume it first")
    dataset = prepare(data, resolve_schema(config.data.schema))
    task = task_from_config(config)
    model = build_from_config(config, dataset, task)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise ConfigError(f"the model of {run.path} does not fit the vocabs of {data} "
                          f"(different table sizes)") from exc
    torch_device = resolve_device(device)
    _, eval_days = split_days(dataset, config)
    return predict(model.to(torch_device), eval_days, task, dataset.schema,
                   batch_size=config.train.batch_size, device=torch_device)
