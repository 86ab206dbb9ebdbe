"""Adam for embedding tables that reads and writes only the rows a batch touched.

Semantics (those of `torch.optim.SparseAdam`, which it replaces, faster): at step t of the
optimiser, for every row r that the batch looked up, with g_r the sum of its gradients,

    m_r <- m_r + (1 - b1) (g_r - m_r),   v_r <- v_r + (1 - b2) (g_r^2 - v_r),
    w_r <- w_r - lr sqrt(1 - b2^t) / (1 - b1^t) * m_r / (sqrt(v_r) + eps).

Rows the batch did not touch keep their weights and their moments: their moments are not
decayed, and a row seen again later is bias-corrected with the global t. Dense Adam instead
decays every row's moments at every step and keeps moving rows the batch did not touch; the
two agree only while every row is touched at every step.

Each table costs one coalesce of its sparse gradient (a sort of the batch's ids) and gathers
and scatters of [U, d] rows, U being the distinct rows of the batch, instead of `SparseAdam`'s
sparse-tensor arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class RowSparseAdam(torch.optim.Optimizer):
    """Adam over tables [N, d] with sparse gradients (`nn.Embedding(sparse=True)`); see the
    module docstring for what it does to untouched rows."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid Adam settings lr={lr}, betas={betas}, eps={eps}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch's Optimizer interface
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for table in group["params"]:
                if table.grad is None:
                    continue
                if not table.grad.is_sparse:
                    raise RuntimeError("RowSparseAdam needs sparse gradients: build the "
                                       "embedding with sparse=True")
                rows, values = summed_rows(table.grad)
                self._update(table, rows, values, group["lr"], beta1, beta2, group["eps"])
        return loss

    def _update(self, table: torch.Tensor, rows: torch.Tensor, values: torch.Tensor, lr: float,
                beta1: float, beta2: float, eps: float) -> None:
        state = self.state[table]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(table, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(table, memory_format=torch.preserve_format)
        state["step"] += 1
        exp_avg = state["exp_avg"].index_select(0, rows).lerp_(values, 1 - beta1)
        exp_avg_sq = state["exp_avg_sq"].index_select(0, rows).lerp_(values * values, 1 - beta2)
        state["exp_avg"].index_copy_(0, rows, exp_avg)
        state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
        step = state["step"]
        step_size = lr * math.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
        table.index_add_(0, rows, exp_avg.div_(exp_avg_sq.sqrt_().add_(eps)), alpha=-step_size)


def summed_rows(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct rows [U] (ascending) of a sparse gradient [N, d] and their summed values [U, d].

    `torch.unique` and `index_add_` do what `coalesce()` does, at a fraction of its CPU cost.
    """
    if grad.is_coalesced():
        return grad.indices()[0], grad.values()
    rows, position = torch.unique(grad._indices()[0], return_inverse=True)
    values = grad._values()  # uncoalesced: one row of values per looked-up id
    summed = values.new_zeros((len(rows), *values.shape[1:])).index_add_(0, position, values)
    return rows, summed
