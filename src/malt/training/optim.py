"""Optimisers and the learning-rate schedule of the MAC protocol.

Adam with two parameter groups — embedding tables at `embedding_lr_scale` × lr, everything else
at lr — and a linear warm-up from `warmup_start` × lr over a fraction of the real number of
steps, then a constant rate. Dense Adam uses torch's fused kernel where torch has it for the
parameters' device (CUDA; CPU from torch 2.4): one pass over each tensor instead of about ten,
the same update up to float rounding. `table_optimizer` chooses how the embedding tables are
updated: `rows` (the default on the CPU) gives them sparse gradients and updates them with
`RowAdam` (dense Adam's numbers at the cost of the rows a batch touched), `lazy` with torch's
`SparseAdam` (only the touched rows, whose moments are not decayed between touches: different
numbers), `dense` with the dense fused Adam. See docs/training.md.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.torch_version import TorchVersion

from malt.runs.config import TrainConfig
from malt.training.row_adam import RowAdam


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


def clip_gradients(params: list[nn.Parameter], max_norm: float) -> None:
    """Scale the gradients of `params` so that their global L2 norm is at most `max_norm`, as
    `nn.utils.clip_grad_norm_` does, sparse (row) gradients included: their duplicate rows are
    summed first, so the norm is that of the dense gradient."""
    grads = []
    for param in params:
        if param.grad is not None:
            if param.grad.is_sparse:
                param.grad = param.grad.coalesce()
            grads.append(param.grad)
    if not grads:
        return
    norms = [g.detach().norm() for g in grads]  # of a coalesced sparse tensor: of its values
    coefficient = (max_norm / (torch.stack(norms).norm() + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(coefficient)


class Optimisation:
    """The optimiser(s) and their schedulers, stepped together. With `sparse_tables` the
    embedding tables have sparse gradients (`RunConfig.sparse_table_gradients`) and their own
    optimiser (`RowAdam` or `SparseAdam`); otherwise one fused Adam updates everything."""

    def __init__(self, model: nn.Module, embedding_params: list[nn.Parameter], cfg: TrainConfig,
                 total_steps: int, *, sparse_tables: bool = False):
        embedding_ids = {id(p) for p in embedding_params}
        dense = [p for p in model.parameters() if p.requires_grad and id(p) not in embedding_ids]
        embedding_lr = cfg.lr * cfg.embedding_lr_scale
        if sparse_tables and cfg.table_optimizer == "dense":
            raise ValueError("table_optimizer 'dense' updates dense table gradients")
        if cfg.table_optimizer == "lazy" and not sparse_tables:
            raise ValueError("table_optimizer 'lazy' needs sparse table gradients")
        if sparse_tables:
            tables = RowAdam if cfg.table_optimizer == "rows" else torch.optim.SparseAdam
            table_optimizer = tables(embedding_params, lr=embedding_lr)
            if isinstance(table_optimizer, RowAdam):
                table_optimizer.watch(model)
            self.optimizers = [torch.optim.Adam(dense, lr=cfg.lr, fused=fused_adam(dense)),
                               table_optimizer]
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

    def catch_up(self) -> None:
        """Bring deferred table updates up to date (`RowAdam.catch_up`); a no-op otherwise."""
        for optimizer in self.optimizers:
            if isinstance(optimizer, RowAdam):
                optimizer.catch_up()

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
