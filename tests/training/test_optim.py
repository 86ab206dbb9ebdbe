import pytest
import torch

from malt.training.config import TrainConfig
from malt.training.optim import Optimisation, warmup_factor


def test_warmup_is_linear_then_constant():
    assert warmup_factor(0, 10, 1e-4) == pytest.approx(1e-4)
    assert warmup_factor(5, 10, 0.0) == pytest.approx(0.5)
    assert warmup_factor(10, 10, 1e-4) == 1.0
    assert warmup_factor(500, 10, 1e-4) == 1.0
    assert warmup_factor(0, 0, 1e-4) == 1.0


def test_embeddings_train_at_scaled_rate_and_schedule_uses_real_steps():
    model = torch.nn.ModuleDict({"emb": torch.nn.Embedding(10, 4), "lin": torch.nn.Linear(4, 1)})
    cfg = TrainConfig(lr=1e-3, embedding_lr_scale=10, warmup_fraction=0.5, warmup_start=0.0)
    opt = Optimisation(model, list(model["emb"].parameters()), cfg, total_steps=8)
    assert opt.warmup_steps == 4
    groups = opt.optimizers[0].param_groups
    assert groups[0]["lr"] == pytest.approx(0.0) and groups[1]["lr"] == pytest.approx(0.0)
    for _ in range(4):
        opt.step()
    assert groups[0]["lr"] == pytest.approx(1e-3) and groups[1]["lr"] == pytest.approx(1e-2)
    assert {id(p) for p in groups[1]["params"]} == {id(model["emb"].weight)}


def test_lazy_adam_updates_only_touched_rows():
    emb = torch.nn.Embedding(10, 4, sparse=True)
    model = torch.nn.ModuleDict({"emb": emb, "lin": torch.nn.Linear(4, 1)})
    cfg = TrainConfig(lr=1e-2, lazy_adam=True, warmup_fraction=0.0)
    opt = Optimisation(model, [emb.weight], cfg, total_steps=5)
    before = emb.weight.detach().clone()
    model["lin"](emb(torch.tensor([1, 3]))).sum().backward()
    opt.step()
    changed = (emb.weight.detach() != before).any(1)
    assert changed.tolist() == [i in (1, 3) for i in range(10)]
