"""STAR's building blocks (Sheng et al., CIKM 2021): partitioned normalisation and the
star-topology fully connected network, with one path per task (task = domain)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PartitionedNorm(nn.Module):
    """Batch normalisation with per-task moments and a shared x per-task affine.

    Path j normalises x with the moments of the rows that belong to task j (in training; the
    running moments of task j in evaluation) and scales by (γ ⊙ γ_j), shifts by (β + β_j):
        z_j = (γ ⊙ γ_j) ⊙ (x − μ_j) / sqrt(σ²_j + ε) + (β + β_j)
    γ, γ_j start at 1 and β, β_j at 0. Running moments of task j are updated (momentum as
    BatchNorm) only from its own rows; a task with fewer than two rows in a batch uses its
    running moments and leaves them unchanged.

    Args:
        dim: width D of x.
        tasks: number N of paths.
    """

    def __init__(self, dim: int, tasks: int, *, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.task_weight = nn.Parameter(torch.ones(tasks, dim))
        self.task_bias = nn.Parameter(torch.zeros(tasks, dim))
        self.register_buffer("running_mean", torch.zeros(tasks, dim))
        self.register_buffer("running_var", torch.ones(tasks, dim))

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, D], rows bool [B, N] (which rows belong to each task; None = all)
        -> one normalised copy per task [N, B, D]."""
        n_tasks = self.task_weight.shape[0]
        mean, var = self.running_mean, self.running_var
        if self.training:
            w = torch.ones(x.shape[0], n_tasks, device=x.device, dtype=x.dtype) if rows is None \
                else rows.to(x.dtype)
            n = w.sum(0)                                                    # [N]
            batch_mean = (w.t() @ x) / n.clamp(min=1.0).unsqueeze(1)        # [N, D]
            diff = x.unsqueeze(0) - batch_mean.unsqueeze(1)                 # [N, B, D]
            batch_var = (w.t().unsqueeze(2) * diff.square()).sum(1) / n.clamp(min=1.0).unsqueeze(1)
            enough = (n >= 2).unsqueeze(1)
            mean = torch.where(enough, batch_mean, mean)
            var = torch.where(enough, batch_var, var)
            with torch.no_grad():
                unbiased = batch_var * (n / (n - 1).clamp(min=1.0)).unsqueeze(1)
                m = self.momentum
                self.running_mean.copy_(torch.where(enough, (1 - m) * self.running_mean
                                                    + m * batch_mean, self.running_mean))
                self.running_var.copy_(torch.where(enough, (1 - m) * self.running_var
                                                   + m * unbiased, self.running_var))
        scale = (self.weight * self.task_weight) / torch.sqrt(var + self.eps)   # [N, D]
        shift = self.bias + self.task_bias - mean * scale
        return x.unsqueeze(0) * scale.unsqueeze(1) + shift.unsqueeze(1)


class StarFCN(nn.Module):
    """Fully connected layers whose weights are shared ⊙ per-task: W*_j = W ⊙ W_j,
    b*_j = b + b_j; ReLU on hidden layers, none on the output.

    Shared weights start as `nn.Linear`'s, task weights at 1 and task biases at 0, so training
    starts from one shared network (a product of two random matrices would shrink the
    variance layer by layer).

    Args:
        in_dim: input width.
        widths: hidden widths, then the output width (e.g. (256, 128, 64, 1)).
        tasks: number N of paths.
    """

    def __init__(self, in_dim: int, widths: tuple[int, ...], tasks: int):
        super().__init__()
        dims = (in_dim, *widths)
        self.shared = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.task_weight = nn.ParameterList(nn.Parameter(torch.ones(tasks, b, a))
                                            for a, b in zip(dims[:-1], dims[1:]))
        self.task_bias = nn.ParameterList(nn.Parameter(torch.zeros(tasks, b)) for b in dims[1:])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [N, B, in_dim] (path j reads z[j]) -> [N, B, widths[-1]]."""
        last = len(self.shared) - 1
        for i, (layer, w, b) in enumerate(zip(self.shared, self.task_weight, self.task_bias)):
            weight = layer.weight * w                       # [N, out, in]
            bias = layer.bias + b                           # [N, out]
            z = torch.baddbmm(bias.unsqueeze(1), z, weight.transpose(1, 2))
            if i < last:
                z = F.relu(z)
        return z

