"""A plain MLP: linear layers, each followed by an activation and dropout."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Activation = Literal["relu", "prelu", "gelu", "sigmoid"]
"""The activations an encoder's MLP may use (PReLU has one learned slope per layer)."""


def activation(name: str) -> nn.Module:
    """The activation `name` (one of `Activation`) as a module."""
    makers = {"relu": nn.ReLU, "prelu": nn.PReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}
    return makers[name]()


class MLP(nn.Module):
    """in_dim -> dims[0] -> ... -> dims[-1], every layer linear, activated, then dropped out.

    Args:
        in_dim: input width.
        dims: the widths of the layers; empty gives the identity (out_dim = in_dim).
        activation_name: one of `Activation`.
        dropout: probability of zeroing a unit after each activation while training.
    """

    def __init__(self, in_dim: int, dims: tuple[int, ...], activation_name: str = "relu",
                 dropout: float = 0.0):
        super().__init__()
        widths = (in_dim, *dims)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), activation(activation_name)]
            if dropout:
                layers.append(nn.Dropout(dropout))
        self.layers = nn.Sequential(*layers)
        self.out_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, in_dim] -> [B, out_dim]."""
        return self.layers(x)
