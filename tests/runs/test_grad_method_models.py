"""A grad method is refused up front on a model it cannot act on: BASE (no auxiliary head) and
SingleTask (its views share no parameter), and a run with no auxiliary loss (no auxiliary view,
or λ = 0) on any model, where every method would be the plain step; the multi-task models take
every method when auxiliary views are trained."""

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


@pytest.mark.parametrize("model", ["single_task", "shared_bottom", "mmoe", "moae", "kaml"])
def test_lambda_zero_refuses_a_grad_method(model):
    with pytest.raises(ConfigError, match=r"^config: train.grad_method 'pcgrad' weighs or "
                                          "combines the auxiliary views' losses with the main "
                                          r"one, and this run trains none \(task.aux_weight "
                                          r"\(λ\) is 0\)"):
        _config(model, "pcgrad", ("first",), aux_weight=0.0)
    assert _config(model, "none", ("first",), aux_weight=0.0).train.grad_method == "none"


@pytest.mark.parametrize("model", ["single_task", "shared_bottom", "mmoe", "moae"])
def test_no_auxiliary_view_refuses_a_grad_method(model):
    with pytest.raises(ConfigError, match=r"^config: train.grad_method 'gcs' weighs or "
                                          r".* \(task.aux is empty and model "
                                          f"'{model}' adds no auxiliary loss of its own\\)"):
        _config(model, "gcs")
    assert _config(model, "none").train.grad_method == "none"


@pytest.mark.parametrize("model, options", [("kaml", {}), ("moae", {"release_defaults": True}),
                                            ("moae", {"self_aux": True})])
def test_an_auxiliary_term_of_the_models_own_takes_a_grad_method_without_aux_views(model,
                                                                                   options):
    # KAML's ranking term and MoAE's self-auxiliary term are tasks a method can weigh.
    config = RunConfig.from_dict({"model": {"name": model, **options},
                                  "train": {"grad_method": "gcs"}, "task": {"main": "last"}})
    assert config.train.grad_method == "gcs"
    with pytest.raises(ConfigError, match="adds no auxiliary loss of its own"):
        RunConfig.from_dict({"model": {"name": model, **options}, "train": {"grad_method": "gcs"},
                             "task": {"main": "last", "entire_space": True}})


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


@pytest.mark.parametrize("method", ["dwa", "gcs"])
def test_malt_train_refuses_a_grad_method_with_lambda_zero_before_writing_anything(
        tmp_path, capsys, method):
    out = tmp_path / "run"
    assert main(["train", "--model", "mmoe", "--grad-method", method, "--main", "last",
                 "--aux", "first", "--aux-weight", "0", "--data", str(tmp_path / "data"),
                 "--out", str(out)]) == 3
    error = capsys.readouterr().err
    assert f"train.grad_method '{method}' weighs or combines the auxiliary views' losses" \
           in error
    assert "task.aux_weight (λ) is 0" in error
    assert not out.exists()
