"""A grad method is refused up front on a model it cannot act on: BASE (no auxiliary head) and
SingleTask (its views share no parameter); the multi-task models take every method."""

from __future__ import annotations

from typing import get_args

import pytest

from malt.cli import main
from malt.errors import ConfigError
from malt.runs.config import GradMethod, RunConfig

METHODS = [m for m in get_args(GradMethod) if m != "none"]


def _config(model: str, method: str, aux: tuple[str, ...] = (), **task) -> RunConfig:
    return RunConfig.from_dict({"model": {"name": model}, "train": {"grad_method": method},
                                "task": {"main": "last", "aux": list(aux), **task}})


@pytest.mark.parametrize("method", METHODS)
def test_base_refuses_every_grad_method(method):
    with pytest.raises(ConfigError, match=f"^config: train.grad_method '{method}' combines the "
                                          "main loss with the auxiliary views' losses, and "
                                          "model 'base' has no auxiliary head"):
        _config("base", method)
    assert _config("base", "none").train.grad_method == "none"


@pytest.mark.parametrize("method", METHODS)
def test_single_task_refuses_a_grad_method_over_auxiliary_losses(method):
    with pytest.raises(ConfigError, match=f"^config: train.grad_method '{method}' lets the "
                                          "auxiliary views help .* model 'single_task' shares "
                                          "none between its views"):
        _config("single_task", method, ("first",))


@pytest.mark.parametrize("aux, task", [((), {}), (("first",), {"aux_weight": 0.0})])
def test_single_task_without_auxiliary_losses_takes_a_method_as_the_plain_step(aux, task):
    assert _config("single_task", "pcgrad", aux, **task).train.grad_method == "pcgrad"


@pytest.mark.parametrize("model", ["shared_bottom", "mmoe", "moae", "kaml"])
def test_the_multi_task_models_take_a_grad_method(model):
    assert _config(model, "pcgrad", ("first",)).train.grad_method == "pcgrad"


def test_malt_train_refuses_pcgrad_on_base_before_writing_anything(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "base", "--grad-method", "pcgrad", "--data",
                 str(tmp_path / "data"), "--out", str(out)]) == 3
    error = capsys.readouterr().err
    assert "train.grad_method 'pcgrad' combines the main loss with the auxiliary views' " \
           "losses, and model 'base' has no auxiliary head" in error
    assert "train it with grad_method 'none', or pick a multi-task model" in error
    assert not out.exists()
