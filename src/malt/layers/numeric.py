"""Numeric columns as the models read them: transformed, then shifted and scaled."""

from __future__ import annotations

import torch
from torch import nn

from malt.data.schema import Schema
from malt.data.vocab import VocabInfo


def register_numeric_buffers(module: nn.Module, schema: Schema, vocab: VocabInfo) -> int:
    """Give `module` the buffers `numeric_shift`, `numeric_scale` [N] and `numeric_log1p`
    (bool [N]) of the schema's numeric columns, from `vocab.numeric` (a column missing there
    starts at (0, 1)); buffers travel with the module's state. Returns N."""
    numeric = schema.numeric
    shift_scale = [vocab.numeric.get(f.name, (0.0, 1.0)) for f in numeric]
    module.register_buffer("numeric_shift", torch.tensor([s for s, _ in shift_scale],
                                                         dtype=torch.float32))
    module.register_buffer("numeric_scale", torch.tensor([s for _, s in shift_scale],
                                                         dtype=torch.float32))
    module.register_buffer("numeric_log1p", torch.tensor([f.transform == "log1p"
                                                          for f in numeric], dtype=torch.bool))
    return len(numeric)


def standardise_numeric(values: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor,
                        log1p: torch.Tensor) -> torch.Tensor:
    """Raw numeric columns [B, N] -> (t(x) - shift) / scale [B, N], t = log1p where `log1p`
    [N] says so, else the identity."""
    logged = torch.log1p(torch.where(log1p, values, torch.zeros_like(values)))
    values = torch.where(log1p, logged, values)
    return (values - shift) / scale
