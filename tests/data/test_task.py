"""The task: typed fields, its own rules, and the schema checks the run builder makes once."""

from __future__ import annotations

import pytest

from malt.data import MAC
from malt.data.task import Task
from malt.errors import ConfigError


@pytest.mark.parametrize("changes, message", [
    ({"label_mode": "soft"}, "task.label_mode = 'soft': expected one of 'binary', 'weighted'"),
    ({"mask": "adn"}, "task.mask = 'adn': expected one of 'none', 'base', 'adm', 'reported', "
                      "'oracle'; did you mean 'adm'?"),
    ({"aux_weight": -1}, "task.aux_weight = -1: expected a number >= 0"),
    ({"aux": "first"}, "task.aux = 'first': expected a list of strings"),
])
def test_a_field_of_the_wrong_type_names_key_value_and_type(changes, message):
    with pytest.raises(ConfigError) as info:
        Task("last", **changes)
    assert str(info.value) == message


def test_a_task_is_typed_as_it_is_built():
    task = Task("last", ["first"], 1)
    assert task.aux == ("first",) and task.aux_weight == 1.0 and type(task.aux_weight) is float


def test_a_model_needs_its_label_columns_not_the_masks():
    """The mask's columns are the builder's check (training reads them); a model scores
    without them."""
    from malt.data.vocab import VocabInfo
    from malt.models import build_model

    vocab = VocabInfo(dict.fromkeys(MAC.field_names, 10), {s.name: 0 for s in MAC.id_sequences})
    task = Task("last", mask="adm")
    assert build_model("base", MAC, vocab, task).task is task
    with pytest.raises(ConfigError, match="unknown label 'dda'"):
        build_model("base", MAC, vocab, Task("dda"))


def test_the_builder_checks_the_task_against_the_schema_before_building(random_mac,
                                                                      monkeypatch):
    import malt.training.builder as builder
    from malt.runs.config import RunConfig

    monkeypatch.setattr(builder, "build_model", lambda *a, **k: pytest.fail("built a model"))
    config = RunConfig.from_dict({"data": {"path": str(random_mac)}, "task": {"mask": "adm"}})
    with pytest.raises(ConfigError, match=r"mask 'adm' needs the schema to declare "
                                          r"\['target_action_column', 'campaign_column'\]"):
        builder.build_run(config)
