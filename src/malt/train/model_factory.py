"""Build the configured model: `[model]` of a RunConfig -> the model's config -> its class."""

from __future__ import annotations

from malt.data.cache import Dataset
from malt.data.task import Task
from malt.models.model import MaltModel
from malt.train.config import RunConfig


def build_from_config(config: RunConfig, dataset: Dataset, task: Task) -> MaltModel:
    """The model named in `config.model`, its options applied to its config class."""
    return config.model_spec.build(dataset.schema, dataset.vocab, task, config.model_config())
