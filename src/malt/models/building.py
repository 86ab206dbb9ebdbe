"""Building a model for a task: the registered class, wrapped for entire-space training
(`malt.models.entire_space`) when the task asks for it. Every trained or loaded model is built
here, so a run and its reload get the same module tree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from malt.models.config import ModelConfig
from malt.models.entire_space import EntireSpace
from malt.models.model import MaltModel
from malt.models.registry import ModelSpec, model_spec

if TYPE_CHECKING:
    from malt.data.schema import Schema
    from malt.data.task import Task
    from malt.data.vocab import VocabInfo


def build_spec(spec: ModelSpec, schema: Schema, vocab: VocabInfo, task: Task,
               config: ModelConfig | None = None) -> MaltModel:
    """A new model of `spec` for `task` on `schema`; `config` is an instance of the model's
    config class (its defaults when None)."""
    model = spec.build(schema, vocab, task, config)
    return EntireSpace(model) if task.entire_space else model


def build_model(name: str, schema: Schema, vocab: VocabInfo, task: Task,
                config: ModelConfig | None = None) -> MaltModel:
    """A new model `name` for `task` on `schema` (see `build_spec`)."""
    return build_spec(model_spec(name), schema, vocab, task, config)
