"""A model as a function of plain tensors, the form exported and served.

Inputs, in `model.serving_inputs` order (B is the batch dimension, any size):
    sparse         int64   [B, F]     table rows of the categorical fields, schema order
    bags           int64   [B, K, M]  table rows of the bags' ids (M: the schema's largest
                                      max_length; row 0 past each bag's length)
    bag_lengths    int64   [B, K]     ids per bag (when the schema has bags)
    seq            int64   [B, S, L]  table rows of the id sequences (when the schema has some;
                                      L the longest one's length, each padded past its own)
    dense_seq      float32 [B, C, L_c] float sequences (when the schema has some; L_c the
                                      length of the first id sequence)
    numeric        float32 [B, N]     raw numeric columns; the model standardises them
    target_action  int64   [B]        label index of the campaign's target action (-1 other;
                                      STAR on data with a target-action column, and any model
                                      whose calibration is per target action)
Outputs: `p_<view>` float32 [B], the predicted probability of every label view, through the
view's calibrator when the module is given the run's calibration (`malt.runs.calibration`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from malt.errors import ConfigError
from malt.models.model import MaltModel
from malt.runs.calibration import Calibration

INPUT_DTYPES = {"sparse": np.int64, "bags": np.int64, "bag_lengths": np.int64, "seq": np.int64,
                "dense_seq": np.float32, "numeric": np.float32, "target_action": np.int64}
"""The dtype each serving input is fed in."""


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and shape of one input or output (`batch` is the dynamic dimension)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]


def output_name(view: str) -> str:
    """The output (and prediction column) of a view: `p_<view>`."""
    return f"p_{view}"


class ServingModule(nn.Module):
    """`model` taking its serving inputs as positional tensors and returning one probability
    tensor [B] per label view, in `views` order, calibrated when `calibration` is given."""

    def __init__(self, model: MaltModel, calibration: Calibration | None = None):
        super().__init__()
        self.model = model
        self.input_names = model.serving_inputs
        self.views = model.task.label_views
        self.calibration = calibration
        self.sliced = calibration is not None and calibration.by is not None
        if calibration is not None:
            calibration.check_views(self.views, "the calibration")
        if self.sliced and "target_action" not in self.input_names:
            if not model.schema.target_action_column:
                raise ConfigError("the calibration is per target action, and the model's "
                                  "schema has no target-action column")
            # the calibrators read each row's target action, whether the model does or not
            self.input_names = (*self.input_names, "target_action")
        # Positional (one per view, in `views` order): a ModuleDict's keys would have to be
        # valid attribute names, and view names need not be.
        self.calibrators = nn.ModuleList(
            [calibration.module(v) for v in self.views] if calibration is not None else [])

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(output_name(v) for v in self.views)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        named = dict(zip(self.input_names, inputs))
        probs = self.model.probabilities(named)
        if not self.calibrators:
            return tuple(probs[v] for v in self.views)
        if self.sliced:
            return tuple(calibrator(probs[v], named["target_action"])
                         for v, calibrator in zip(self.views, self.calibrators))
        return tuple(calibrator(probs[v])
                     for v, calibrator in zip(self.views, self.calibrators))

    def input_specs(self) -> list[TensorSpec]:
        """Name, dtype and shape of every input."""
        schema = self.model.schema
        shapes = {"sparse": ("batch", len(schema.fields)),
                  "bags": ("batch", len(schema.bags), schema.bag_width),
                  "bag_lengths": ("batch", len(schema.bags)),
                  "seq": ("batch", len(schema.id_sequences), schema.sequence_length),
                  "dense_seq": ("batch", len(schema.float_sequences),
                                schema.float_sequence_length),
                  "numeric": ("batch", len(schema.numeric)), "target_action": ("batch",)}
        return [TensorSpec(n, np.dtype(INPUT_DTYPES[n]).name, shapes[n])
                for n in self.input_names]

    def output_specs(self) -> list[TensorSpec]:
        return [TensorSpec(n, "float32", ("batch",)) for n in self.output_names]

    def example_inputs(self, rows: int = 2) -> tuple[torch.Tensor, ...]:
        """Zero-valued inputs of `rows` rows (what export traces the model with)."""
        return tuple(torch.zeros(tuple(rows if d == "batch" else d for d in spec.shape),
                                 dtype=getattr(torch, spec.dtype))
                     for spec in self.input_specs())
