"""`Traits.shares_parameters` says what the networks do: some parameter of every model that
claims it learns from the main and an auxiliary loss alike; none of SingleTask's does."""

from __future__ import annotations

import pytest
import torch

from malt.data import MAC
from malt.data.task import Task
from malt.models import build_model, model_names, model_spec
from models.conftest import loss_values, random_batch, small_vocab
from support.model_configs import small_config

MULTI_TASK = [name for name in model_names() if model_spec(name).traits.uses_aux]


def _reached(loss: torch.Tensor, params: list[torch.Tensor]) -> set[int]:
    """Indices of the parameters `loss` reaches."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return {i for i, g in enumerate(grads) if g is not None}


@pytest.mark.parametrize("name", MULTI_TASK)
def test_the_trait_matches_the_parameters_both_losses_reach(name):
    torch.manual_seed(0)
    model = build_model(name, MAC, small_vocab(), Task("last", ("first", "linear"), 0.3),
                        small_config(name))
    batch = random_batch()
    losses = loss_values(model, model(batch), batch)
    params = [p for p in model.parameters() if p.requires_grad]
    main = _reached(losses["last"], params)
    aux = _reached(losses["first"], params) | _reached(losses["linear"], params)
    assert bool(main & aux) is model_spec(name).traits.shares_parameters
    assert main and aux
