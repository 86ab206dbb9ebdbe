"""Per-view losses, always computed from logits.

Binary views: binary cross-entropy with logits on the binarised label (`label_mode` binary, as
the paper) or on the soft target clamp(attribution weight, 0, 1) (`weighted`). The Cartesian
view `cat`: cross-entropy over its 2^K classes, the class given by `cat_classes` on
the binarised labels in either mode. Each loss is the mean over the batch rows. Working on
logits avoids the reference's log(softmax + 1e-8), which caps the per-row loss near 18.4 and
loses precision for confident predictions.

With a training mask (`batch["mask"]` [B, K], see `malt.data.masks`) a binary view's loss is
the per-task averaged BCE of the KAML paper (Eq. 12): Σ_i mask_ij · BCE_ij / max(1, n_j) with
n_j = Σ_i mask_ij, so a view with no trusted row in the batch contributes 0.

With a delayed-feedback correction (`malt.losses.delayed`) every binary view's loss is its
corrected stream loss (`fnw`, `fnc`) or its delayed-feedback model's loss (`dfm`, which reads
the batch's `elapsed` and `delay` and the view's delay rate) instead, masked the same way; the
Cartesian view takes none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from malt.data.task import CAT
from malt.losses.delayed import DelayRates, dfm_loss, stream_loss


def cat_classes(labels: torch.Tensor) -> torch.Tensor:
    """Cartesian (CAT) class of each row: `Σ_i 2^i · y_i` over the label columns.

    Args:
        labels: binarised labels [B, K] in schema label order.
    Returns:
        int64 [B] in [0, 2^K). Bit i is label i of the schema, little-endian; for the MAC schema
        (last, first, linear, mta) that is last = bit 0, first = bit 1, linear = bit 2,
        mta (DDA) = bit 3, the order of the MAC reference code. Many classes can never occur
        (last-click positive implies linear positive), which is allowed.
    """
    bits = (labels > 0).to(torch.int64)
    powers = 2 ** torch.arange(bits.shape[-1], device=bits.device, dtype=torch.int64)
    return (bits * powers).sum(-1)


def binary_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean BCE: logits [B], target [B] in [0, 1] -> scalar."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def masked_binary_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                       ) -> torch.Tensor:
    """Σ mask · BCE / max(1, Σ mask): logits, target, mask [B] -> scalar."""
    per_row = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    mask = mask.float()
    return (per_row * mask).sum() / mask.sum().clamp(min=1.0)


def label_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None,
               delay_correction: str = "none", delay: ViewDelay | None = None
               ) -> torch.Tensor:
    """A binary view's loss: the mean BCE (masked when `mask` is given), or its
    delayed-feedback correction's loss (`dfm` reads `delay`). logits, target, mask [B] ->
    scalar."""
    if delay_correction == "dfm":
        if delay is None:
            raise ValueError("the delay correction 'dfm' needs the view's delay times")
        return dfm_loss(logits, delay.log_rate, target, delay.elapsed, delay.delay, mask)
    if delay_correction != "none":
        return stream_loss(logits, target, mask, delay_correction)
    if mask is None:
        return binary_loss(logits, target)
    return masked_binary_loss(logits, target, mask)


@dataclass(frozen=True)
class ViewDelay:
    """What `dfm` reads of one view: its log-rate θ (scalar), and the batch's elapsed times and
    the view's delays [B] (seconds)."""

    log_rate: torch.Tensor
    elapsed: torch.Tensor
    delay: torch.Tensor


def view_delay(batch: Mapping[str, torch.Tensor], column: int, log_rate: torch.Tensor
               ) -> ViewDelay:
    """The `ViewDelay` of label column `column`; a batch without delay times (no click time, or
    no as-of cut) is an error."""
    if "elapsed" not in batch:
        raise ValueError("the delay correction 'dfm' needs batches with elapsed times: train "
                         "--as-of T on data with a click-time column")
    return ViewDelay(log_rate, batch["elapsed"], batch["delay"][:, column])


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
    if label_mode == "binary":
        return batch["labels"][:, column]
    raise ValueError(f"unknown label mode '{label_mode}' (binary or weighted)")


def view_losses(logits: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                columns: Mapping[str, int], label_mode: str = "binary",
                delay_correction: str = "none", delay_rates: DelayRates | None = None
                ) -> dict[str, torch.Tensor]:
    """Loss of every view in `logits`.

    Args:
        logits: view -> [B] (binary views) or [B, 2^K] (`cat`).
        batch: holds `labels` [B, K] (binarised), for `weighted` `weights` [B, K], and
            optionally `mask` [B, K] (which labels carry loss; `cat` takes no mask).
        columns: label view -> its column in the batch's label matrix.
        label_mode: `binary` or `weighted`.
        delay_correction: `none`, `fnw`, `fnc` or `dfm` (`malt.losses.delayed`), for every
            binary view.
        delay_rates: `dfm`'s log-rate of every binary view (and the batch then holds
            `elapsed` [B] and `delay` [B, K]).
    Returns:
        view -> scalar mean loss, in the order of `logits`.
    """
    out = {}
    mask = batch.get("mask")
    for view, z in logits.items():
        if view == CAT:
            if mask is not None:
                raise ValueError("the Cartesian view needs every label: it takes no mask")
            if delay_correction != "none":
                raise ValueError("the Cartesian view takes no delay correction")
            out[view] = cat_loss(z, batch["labels"])
        else:
            column = columns[view]
            delay = None if delay_rates is None else view_delay(batch, column, delay_rates[view])
            out[view] = label_loss(z, binary_target(batch, column, label_mode),
                                   None if mask is None else mask[:, column], delay_correction,
                                   delay)
    return out
