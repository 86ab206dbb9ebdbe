"""Per-view losses, always computed from logits.

Binary views: binary cross-entropy with logits on the binarised label (`label_mode` binary, as
the paper) or on the soft target clamp(attribution weight, 0, 1) (`weighted`). The Cartesian
view `cat`: cross-entropy over its 2^K classes, the class given by `malt.task.cat_classes` on
the binarised labels in either mode. Each loss is the mean over the batch rows. Working on
logits avoids the reference's log(softmax + 1e-8), which caps the per-row loss near 18.4 and
loses precision for confident predictions.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from malt.task import CAT, cat_classes


def binary_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean BCE: logits [B], target [B] in [0, 1] -> scalar."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def cat_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the Cartesian view: logits [B, 2^K], binarised labels [B, K]
    -> scalar."""
    return F.cross_entropy(logits.float(), cat_classes(labels))


def binary_target(batch: Mapping[str, torch.Tensor], column: int, label_mode: str
                  ) -> torch.Tensor:
    """Target of label column `column`: labels[:, column] (binary) or the clamped weight
    (weighted) -> [B]."""
    if label_mode == "weighted":
        return batch["weights"][:, column].clamp(0.0, 1.0)
    return batch["labels"][:, column]


def view_losses(logits: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                columns: Mapping[str, int], label_mode: str = "binary") -> dict[str, torch.Tensor]:
    """Loss of every view in `logits`.

    Args:
        logits: view -> [B] (binary views) or [B, 2^K] (`cat`).
        batch: holds `labels` [B, K] (binarised) and, for `weighted`, `weights` [B, K].
        columns: label view -> its column in the batch's label matrix.
        label_mode: `binary` or `weighted`.
    Returns:
        view -> scalar mean loss, in the order of `logits`.
    """
    out = {}
    for view, z in logits.items():
        if view == CAT:
            out[view] = cat_loss(z, batch["labels"])
        else:
            out[view] = binary_loss(z, binary_target(batch, columns[view], label_mode))
    return out
