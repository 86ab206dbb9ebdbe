"""`train.compile`: the model's forward pass through `torch.compile`, eager where it cannot be.

The embedding lookups stay eager: row-wise Adam brings a table's rows up to date in a forward
pre-hook that writes into the table (`malt.training.row_adam`), and sparse table gradients come
from eager `nn.Embedding` calls; everything after the lookups (attention, SimTier, the experts,
the towers) is compiled. Compilation happens at the first call; when it fails there (no C
compiler, an operator the backend lacks) the run warns once and goes on eagerly, with the same
numbers, instead of stopping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from malt.layers.embedding import FieldEmbeddings

log = logging.getLogger(__name__)


class CompiledForward:
    """`forward` compiled, falling back to `forward` itself when the first compiled call fails.

    Only the first call falls back: after one compiled call has succeeded, an error is the
    model's own and is raised.
    """

    def __init__(self, forward: Callable, compiler: Callable = torch.compile):
        self.eager = forward
        self.compiled: Callable | None = compiler(forward)
        self.proven = False

    def __call__(self, *args, **kwargs):
        if self.compiled is None:
            return self.eager(*args, **kwargs)
        if self.proven:
            return self.compiled(*args, **kwargs)
        try:
            out = self.compiled(*args, **kwargs)
        except Exception as error:  # any failure of the compiler: train eagerly instead
            log.warning("torch.compile failed (%s: %s); training eagerly",
                        type(error).__name__, str(error).splitlines()[0] if str(error) else "")
            self.compiled = None
            return self.eager(*args, **kwargs)
        self.proven = True
        return out


def compile_forward(model: nn.Module, compiler: Callable = torch.compile) -> None:
    """Make `model(...)` run its forward pass compiled, its embedding lookups eager (in place;
    the parameters and the state dict are unchanged)."""
    for module in model.modules():
        if isinstance(module, FieldEmbeddings):
            module.forward = torch.compiler.disable(module.forward)
    model.forward = CompiledForward(model.forward, compiler)
