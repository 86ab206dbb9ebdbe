"""Optimisers and the learning-rate schedule of the MAC protocol.

Adam with two parameter groups — embedding tables at `embedding_lr_scale` × lr, everything else
at lr — and a linear warm-up from `warmup_start` × lr over a fraction of the real number of
steps, then a constant rate. Dense Adam uses torch's fused kernel where torch has it for the
parameters' device (CUDA; CPU from torch 2.4): one pass over each tensor instead of about ten,
the same update up to float rounding. With `lazy_adam` the embedding tables produce sparse
gradients and are updated by `torch.optim.SparseAdam`, which only touches the rows of the batch
(moments of other rows are not decayed: faster on large tables, different numbers; see
docs/training.md for its update).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.torch_version import TorchVersion

from malt.training.config import TrainConfig


def warmup_factor(step: int, warmup_steps: int, start: float) -> float:
    """Learning-rate multiplier at `step` (0-based): linear from `start` to 1, then 1."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return start + (1.0 - start) * step / warmup_steps


def fused_adam(params: list[nn.Parameter]) -> bool | None:
    """True when torch's fused Adam kernel serves every one of `params` (CUDA tensors; CPU
    tensors from torch 2.4), else None (torch's own choice, the per-tensor loop on CPU)."""
    devices = {p.device.type for p in params}
    cpu_kernel = TorchVersion(torch.__version__) >= "2.4"
    return True if params and devices <= ({"cuda", "cpu"} if cpu_kernel else {"cuda"}) else None


class Optimisation:
    """The optimiser(s) and their schedulers, stepped together."""

    def __init__(self, model: nn.Module, embedding_params: list[nn.Parameter], cfg: TrainConfig,
                 total_steps: int):
        embedding_ids = {id(p) for p in embedding_params}
        dense = [p for p in model.parameters() if p.requires_grad and id(p) not in embedding_ids]
        embedding_lr = cfg.lr * cfg.embedding_lr_scale
        if cfg.lazy_adam:
            self.optimizers = [torch.optim.Adam(dense, lr=cfg.lr, fused=fused_adam(dense)),
                               torch.optim.SparseAdam(embedding_params, lr=embedding_lr)]
        else:
            self.optimizers = [torch.optim.Adam([
                {"params": dense, "lr": cfg.lr},
                {"params": embedding_params, "lr": embedding_lr},
            ], fused=fused_adam([*dense, *embedding_params]))]
        self.warmup_steps = int(cfg.warmup_fraction * total_steps)

        def schedule(step: int) -> float:
            return warmup_factor(step, self.warmup_steps, cfg.warmup_start)

        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(o, schedule) for o in self.optimizers]

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()
        for scheduler in self.schedulers:
            scheduler.step()

    def zero_grad(self) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=True)

    @property
    def lr(self) -> float:
        return self.optimizers[0].param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {"optimizers": [o.state_dict() for o in self.optimizers],
                "schedulers": [s.state_dict() for s in self.schedulers]}

    def load_state_dict(self, state: dict) -> None:
        for o, s in zip(self.optimizers, state["optimizers"]):
            o.load_state_dict(s)
        for o, s in zip(self.schedulers, state["schedulers"]):
            o.load_state_dict(s)
