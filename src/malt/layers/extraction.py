"""PLE's progressive layered extraction: stacked CGC levels of shared and private experts."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from malt.layers.gate import SoftmaxGate, mix


class _Level(nn.Module):
    def __init__(self, in_dim: int, tasks: Sequence[str], shared: int, private: int,
                 make_expert: Callable[[int], nn.Module], with_shared_gate: bool):
        super().__init__()
        self.shared = nn.ModuleList(make_expert(in_dim) for _ in range(shared))
        self.private = nn.ModuleDict({t: nn.ModuleList(make_expert(in_dim) for _ in range(private))
                                      for t in tasks})
        self.gates = nn.ModuleDict({t: SoftmaxGate(in_dim, shared + private) for t in tasks})
        self.shared_gate = SoftmaxGate(in_dim, shared + private * len(tasks)) \
            if with_shared_gate else None


class ExtractionNetwork(nn.Module):
    """`levels` stacked extraction layers (PLE); one level is a CGC layer.

    At each level, task t's gate reads t's previous representation and mixes the shared experts
    (first) and t's private experts; the shared experts read the previous shared representation,
    the private experts of t read t's. Every level but the last also has a shared gate that
    mixes all experts of the level into the next shared representation. Level 1 reads x for
    every input. With one level, one shared and one private expert per task this is the
    reference PLE.

    Args:
        in_dim: width of x; deeper levels read expert outputs.
        tasks: task (view) names, in order.
        levels: stacked extraction levels.
        shared: shared experts per level.
        private: private experts per task per level.
        make_expert: builds one expert from its input width; all experts of the network must
            share one output width, `out_dim`.
        out_dim: the experts' output width.
    """

    def __init__(self, in_dim: int, tasks: Sequence[str], *, levels: int = 1, shared: int = 1,
                 private: int = 1, make_expert: Callable[[int], nn.Module], out_dim: int):
        super().__init__()
        self.tasks = tuple(tasks)
        self.levels = nn.ModuleList(
            _Level(in_dim if j == 0 else out_dim, self.tasks, shared, private, make_expert,
                   with_shared_gate=j < levels - 1)
            for j in range(levels))
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x [B, in_dim] -> task -> representation [B, out_dim]."""
        task_in = {t: x for t in self.tasks}
        shared_in = x
        for level in self.levels:
            shared_out = [e(shared_in) for e in level.shared]
            private_out = {t: [e(task_in[t]) for e in level.private[t]] for t in self.tasks}
            if level.shared_gate is not None:
                every = shared_out + [h for t in self.tasks for h in private_out[t]]
                shared_in = mix(level.shared_gate(shared_in), every)
            task_in = {t: mix(level.gates[t](task_in[t]), shared_out + private_out[t])
                       for t in self.tasks}
        return task_in
