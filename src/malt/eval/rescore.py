"""Score a finished run's model on a data set (its own or another with the same vocabs)."""

from __future__ import annotations

from pathlib import Path

from malt.data.cache import prepare
from malt.data.layout import find_layout
from malt.eval.predictions import Predictions, score_days
from malt.precision import check_precision
from malt.runs.directory import RunDir
from malt.runs.load import load_run
from malt.training.builder import day_index, evaluation_days
from malt.training.distributed import device_for, resolve_device


def rescore(run: RunDir, data: str | Path, *, device: str = "auto",
            day: str | None = None, precision: str = "fp32") -> Predictions:
    """Predictions of the run's final model on the evaluation days of `data` (or on its
    training day `day`: a name or an index), read with the run's own schema
    (`malt.runs.load.load_run`), mapped through the vocabs of `data` and scored in
    `precision`."""
    device_type = resolve_device(device)
    check_precision(precision, device_type)
    layout = find_layout(data)
    trained = load_run(run.path, vocabs=layout.vocab_dir)
    dataset = prepare(data, trained.schema)
    if day is None:
        days = evaluation_days(dataset, trained.config.data)
    else:
        days = [dataset.train[day_index([d.name for d in dataset.train], day, dataset.root,
                                        "--day")]]
    torch_device = device_for(device_type)
    return score_days(trained.model.to(torch_device), days, trained.task, trained.schema,
                      batch_size=trained.config.train.batch_size, device=torch_device,
                      precision=precision)
