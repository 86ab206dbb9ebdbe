"""Task weights learned or adapted over training: uncertainty weighting, Dynamic Weight Average,
and the smoothed gradient similarity of `gcs-ema`.

The tasks are the loss contract's (`LossTerms.tasks`): the main task's loss L_m first, then each
auxiliary term's L_k. λ (`Task.aux_weight`) keeps its meaning, the weight of every auxiliary
task relative to the main one, by multiplying each auxiliary task's whole contribution:

- `uncertainty` (Kendall, Gal & Cipolla 2018): one log-variance s_t per task, main task
  included, trained by Adam at the dense learning rate beside the model;
  L = exp(-s_m) L_m + s_m + λ Σ_k (exp(-s_k) L_k + s_k).
- `dwa` (Liu, Johns & Davison 2019): w_t = T exp(r_t / τ) / Σ_j exp(r_j / τ) over the T tasks,
  r_t the ratio of task t's mean loss over the last finished period of `period` steps to that
  over the period before (the paper's epochs: a one-pass run has none); every task weighs 1
  until two periods have finished. L = w_m L_m + λ Σ_k w_k L_k.
- `gcs-ema`: w_k = max(0, c_k), c_k an exponential moving average over steps (decay β) of the
  cosine between the auxiliary and the main gradient on the shared parameters (Du et al. 2018
  take the cosine of one step); shared parameters get g_m + λ Σ_k w_k g_k.

Each object's state (`state_dict`) travels in the checkpoint with the optimiser's, so a resumed
run, or a warm start that takes its parent's optimiser state, continues it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from malt.training.distributed import World, all_reduce_mean


class UncertaintyWeighting:
    """Kendall et al.'s weighting (see the module docstring); the log-variances are created at
    the first step, when the number of tasks is known."""

    def __init__(self, aux_weight: float, world: World):
        self.aux_weight, self.world = aux_weight, world
        self.log_variance: torch.Tensor | None = None
        """s_t `[T]`, main task first."""
        self._adam: torch.optim.Adam | None = None
        self._adam_state: dict | None = None

    def loss(self, tasks: Sequence[torch.Tensor]) -> torch.Tensor:
        """Σ_t f_t (exp(-s_t) L_t + s_t), f = (1, λ, ..., λ), of the task losses `[T]`."""
        losses = torch.stack(list(tasks))
        if self.log_variance is None:
            self._start(torch.zeros(len(tasks), device=losses.device))
        s = self.log_variance
        return (_factors(len(tasks), self.aux_weight, losses) *
                (torch.exp(-s) * losses + s)).sum()

    def step(self, lr: float) -> None:
        """One Adam step of the log-variances at `lr`, on their gradient averaged over ranks."""
        if self.log_variance is None or self.log_variance.grad is None:
            return
        all_reduce_mean([self.log_variance.grad], self.world)
        for group in self._adam.param_groups:
            group["lr"] = lr
        self._adam.step()
        self._adam.zero_grad(set_to_none=True)

    def weights(self) -> list[float]:
        """The factor of each task's loss in the last step's objective, f_t exp(-s_t)."""
        if self.log_variance is None:
            return []
        s = self.log_variance.detach()
        return (_factors(len(s), self.aux_weight, s) * torch.exp(-s)).tolist()

    def _start(self, log_variance: torch.Tensor) -> None:
        self.log_variance = log_variance.requires_grad_()
        self._adam = torch.optim.Adam([self.log_variance])
        if self._adam_state is not None:
            self._adam.load_state_dict(self._adam_state)

    def state_dict(self) -> dict:
        if self.log_variance is None:
            return {}
        # a copy: Adam's own state dict holds the moment tensors its later steps change in place
        return {"log_variance": self.log_variance.detach().clone(),
                "adam": copy.deepcopy(self._adam.state_dict())}

    def load_state_dict(self, state: dict) -> None:
        if "log_variance" in state:
            self._adam_state = state["adam"]
            self._start(state["log_variance"].detach().clone().float())


class DynamicWeightAverage:
    """Liu et al.'s Dynamic Weight Average over periods of `period` steps (see the module
    docstring), `temperature` τ."""

    def __init__(self, aux_weight: float, temperature: float, period: int, world: World):
        self.aux_weight, self.temperature, self.period = aux_weight, temperature, period
        self.world = world
        self.sums: torch.Tensor | None = None
        """Σ L_t over the steps of the current period `[T]` (float64, on the losses' device:
        NCCL all-reduces CUDA tensors only)."""
        self.steps = 0
        self.means: torch.Tensor | None = None
        """The mean losses of the last two finished periods `[2, T]`, older first."""
        self.periods = 0
        self._weights: torch.Tensor | None = None

    def loss(self, tasks: Sequence[torch.Tensor]) -> torch.Tensor:
        """w_m L_m + λ Σ_k w_k L_k with the weights of the finished periods; the losses join the
        current period's means."""
        losses = torch.stack(list(tasks))
        weights = self.current_weights(len(tasks))
        self._weights = weights
        self._observe(losses.detach())
        factors = _factors(len(tasks), self.aux_weight, losses)
        return (factors * weights.to(losses) * losses).sum()

    def current_weights(self, tasks: int) -> torch.Tensor:
        """w_t `[T]` (float64): all 1 until two periods have finished."""
        if self.periods < 2:
            return torch.ones(tasks, dtype=torch.float64)
        ratios = self.means[1] / self.means[0]
        return tasks * torch.softmax(ratios / self.temperature, dim=0)

    def _observe(self, losses: torch.Tensor) -> None:
        losses = losses.double()
        self.sums = losses if self.sums is None else self.sums + losses
        self.steps += 1
        if self.steps < self.period:
            return
        mean = self.sums / self.steps
        all_reduce_mean([mean], self.world)
        self.means = torch.stack([mean, mean]) if self.means is None else \
            torch.stack([self.means[1], mean])
        self.periods += 1
        self.sums, self.steps = None, 0

    def step(self, lr: float) -> None:
        """Nothing to train: the weights follow the losses."""

    def weights(self) -> list[float]:
        """The factor of each task's loss in the last step's objective, f_t w_t."""
        if self._weights is None:
            return []
        return (_factors(len(self._weights), self.aux_weight, self._weights)
                * self._weights).tolist()

    def state_dict(self) -> dict:
        state: dict = {"steps": self.steps, "periods": self.periods}
        if self.sums is not None:
            state["sums"] = self.sums.clone()
        if self.means is not None:
            state["means"] = self.means.clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        if not state:  # a checkpoint from before this weighting: start afresh
            return
        self.steps, self.periods = int(state["steps"]), int(state["periods"])
        self.sums = state["sums"].double() if "sums" in state else None
        self.means = state["means"].double() if "means" in state else None


class SmoothedSimilarity:
    """The `gcs-ema` weights: max(0, EMA of the cosines), the EMA starting at the first step's
    cosines (see the module docstring)."""

    def __init__(self, decay: float):
        self.decay = decay
        self.average: torch.Tensor | None = None
        """c_k `[T - 1]` (float64, CPU), one per auxiliary task."""

    def update(self, cosines: Sequence[torch.Tensor]) -> list[float]:
        """Fold this step's cosines into the averages; the weights w_k."""
        cos = torch.stack([c.detach() for c in cosines]).to("cpu", torch.float64)
        self.average = cos if self.average is None else \
            self.decay * self.average + (1 - self.decay) * cos
        return self.average.clamp(min=0.0).tolist()

    def state_dict(self) -> dict:
        return {} if self.average is None else {"average": self.average.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.average = state["average"].cpu().double() if "average" in state else None


def _factors(tasks: int, aux_weight: float, like: torch.Tensor) -> torch.Tensor:
    """(1, λ, ..., λ) `[tasks]`, of the dtype and device of `like`."""
    return like.new_tensor([1.0] + [aux_weight] * (tasks - 1))
