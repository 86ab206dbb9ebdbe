"""Build the configured model: `[model]` of a RunConfig -> `ModelConfig` -> registered class."""

from __future__ import annotations

from malt.data.cache import Dataset
from malt.data.task import Task
from malt.models.config import ModelConfig
from malt.models.model import MaltModel
from malt.models.registry import build_model
from malt.train.config import RunConfig


def build_from_config(config: RunConfig, dataset: Dataset, task: Task) -> MaltModel:
    """The model named in `config.model`, its other keys overriding the chosen preset."""
    options = dict(config.model)
    name, preset = options.pop("name"), options.pop("preset", "default")
    if config.train.lazy_adam:
        options["sparse_embeddings"] = True
    return build_model(name, dataset.schema, dataset.vocab, task,
                       ModelConfig.preset(preset, **options))
