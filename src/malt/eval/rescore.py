"""Score a finished run's model on a data set (its own or another with the same vocabs)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from malt.errors import ConfigError
from malt.eval.predictions import Predictions, score_days
from malt.training.builder import build_model, build_task, evaluation_days, open_dataset
from malt.training.checkpoint import load_checkpoint
from malt.training.distributed import device_for, resolve_device
from malt.training.run_dir import RunDir


def rescore(run: RunDir, data: str | Path, *, device: str = "auto") -> Predictions:
    """Predictions of the run's final model on the evaluation days of `data`."""
    config = run.load_config()
    config = replace(config, data=replace(config.data, path=str(data), cache=None))
    checkpoint = load_checkpoint(run.checkpoint)
    if not checkpoint.state.finished:
        raise ConfigError(f"run {run.path} has not finished training; resume it first")
    dataset = open_dataset(config.data)
    task = build_task(config)
    model = build_model(config, dataset, task)
    try:
        model.load_state_dict(checkpoint.model)
    except RuntimeError as exc:
        raise ConfigError(f"the model of {run.path} does not fit the vocabs of {data} "
                          f"(different table sizes)") from exc
    torch_device = device_for(resolve_device(device))
    eval_days = evaluation_days(dataset, config.data)
    return score_days(model.to(torch_device), eval_days, task, dataset.schema,
                   batch_size=config.train.batch_size, device=torch_device)
