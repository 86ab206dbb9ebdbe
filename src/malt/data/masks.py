"""Training masks for incomplete multi-label data: which (row, action) pairs carry loss.

Advertisers report only some conversion actions, so an observed 0 may mean "not reported". A
mask policy decides, per training row and label, whether the label is trusted:

* `none`: every label of every row (multi-attribution data, where every label is known);
* `base`: only the row's target action, `1(o_i = j)` (KAML paper Eq. 6); a row whose target is
  none of the labels ("other", -1) trains nothing;
* `adm`: attribution-driven masking, `1(o_i = j) OR 1(c_{e_i, j} >= α_j)` where `c_{e, j}` counts
  the reported conversions (observed label j = 1) of campaign e over the `window_days` training
  days *before* the row's day (no look-ahead; `window = "static"` counts over all training days);
* `reported`: the actions the row's campaign reports (`reported_labels` of the schema), plus the
  target;
* `oracle`: every label, and the true labels (`true_labels` of the schema) replace the observed
  ones.

Only `oracle` lets the true labels into a batch: every other policy removes `true_weights`
before the model sees the batch. Counts are built once per run from the cached arrays of the
training days (`campaign`, `target_action`, `weights`) as a [days, campaigns, labels] table; a
batch's mask is then two gathers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from malt.data.cache import Day
from malt.data.schema import Schema
from malt.data.task import AdmWindow, CoverageMask, Mask, check_mask
from malt.errors import ConfigError
from malt.typed_fields import NonNegativeFloat, PositiveInt, validate

OTHER = "other"
"""Column name of the "target outside the labels" share in coverage reports."""


@dataclass(frozen=True)
class AdmOptions:
    """How ADM counts and thresholds the reported conversions of each campaign."""

    window: AdmWindow = "trailing"
    """`trailing`: the `window_days` training days before the row's day; `static`: every
    training day (the campaign's whole history, future days of the training range included)."""
    window_days: PositiveInt = 7
    alpha: NonNegativeFloat = 10.0
    """Threshold α_j of every action."""
    alpha_per_action: dict[str, NonNegativeFloat] = field(default_factory=dict)
    """Per-action overrides of `alpha`."""

    def __post_init__(self) -> None:
        validate(self, "adm")

    def describe(self) -> str:
        """`trailing window of 7 days, α = 10, α[pay] = 3`: the options in one line."""
        window = f"{self.window} window" + \
            (f" of {self.window_days} days" if self.window == "trailing" else "")
        return window + f", α = {self.alpha:g}" + \
            "".join(f", α[{a}] = {v:g}" for a, v in self.alpha_per_action.items())

    def thresholds(self, labels: Sequence[str]) -> np.ndarray:
        """α per label, float64 [V]."""
        unknown = sorted(set(self.alpha_per_action) - set(labels))
        if unknown:
            raise ConfigError(f"task.adm_alpha_per_action names {unknown}, which are not labels "
                              f"{list(labels)}")
        return np.array([self.alpha_per_action.get(v, self.alpha) for v in labels],
                        dtype=np.float64)


def base_mask(target: torch.Tensor, n_labels: int) -> torch.Tensor:
    """1(o_i = j): target int64 [B] (-1 = other) -> float32 [B, V]."""
    columns = torch.arange(n_labels, device=target.device)
    return (target.unsqueeze(1) == columns).to(torch.float32)


@dataclass
class CampaignCounts:
    """Reported conversions per training day, campaign and action."""

    campaigns: np.ndarray
    """Sorted distinct campaign ids [E] (as stored in the cached arrays)."""
    counts: np.ndarray
    """int64 [D, E, V]: rows of day d, campaign e with observed label j > 0."""

    def codes(self, campaign: np.ndarray) -> np.ndarray:
        """Position in `campaigns` of each id [N] -> int64 [N]."""
        return np.searchsorted(self.campaigns, campaign)


def campaign_counts(days: Sequence[Day], n_labels: int) -> CampaignCounts:
    """Count the reported conversions of every campaign on each of `days` (in order)."""
    if not days:
        raise ConfigError("ADM needs at least one training day")
    campaigns = np.unique(np.concatenate([np.unique(d.arrays()["campaign"]) for d in days]))
    counts = np.zeros((len(days), len(campaigns), n_labels), dtype=np.int64)
    slots = np.arange(n_labels)
    for d, day in enumerate(days):
        arrays = day.arrays()
        codes = np.searchsorted(campaigns, arrays["campaign"])
        positive = np.asarray(arrays["weights"]) > 0
        cells = (codes[:, None] * n_labels + slots)[positive]
        counts[d] = np.bincount(cells, minlength=len(campaigns) * n_labels) \
            .reshape(len(campaigns), n_labels)
    return CampaignCounts(campaigns, counts)


def window_counts(counts: np.ndarray, options: AdmOptions) -> np.ndarray:
    """c_{e, j} seen by the rows of each day: counts [D, E, V] -> [D, E, V].

    `trailing`: day d sees days max(0, d - W) .. d - 1 (never its own day or a later one);
    `static`: every day sees the sum over all days.
    """
    if options.window == "static":
        return np.broadcast_to(counts.sum(0, keepdims=True), counts.shape)
    prefix = np.concatenate([np.zeros_like(counts[:1]), np.cumsum(counts, axis=0)])
    days = np.arange(counts.shape[0])
    return prefix[days] - prefix[np.maximum(days - options.window_days, 0)]


class MaskPolicy:
    """Adds `mask [B, V]` to training batches (and swaps in the true labels for `oracle`).

    Args:
        name: the policy (see `malt.data.task.Mask`).
        schema: the data's schema (checked for the columns the policy needs).
        days: the training days in time order (ADM counts them).
        adm: ADM's window and thresholds.
        device: where the ADM table lives (that of the batches).
        clicks_only: impression logs trained in the click space: the mask also leaves out
            every unclicked row (`batch['click']` 0), so that the views learn from clicks.
    """

    def __init__(self, name: Mask, schema: Schema, days: Sequence[Day] = (),
                 adm: AdmOptions | None = None, device: str | torch.device = "cpu", *,
                 clicks_only: bool = False):
        check_mask(name, schema)
        self.clicks_only = clicks_only
        self.name, self.n_labels = name, len(schema.labels)
        self.adm = adm or AdmOptions()
        self.campaigns: torch.Tensor | None = None
        self.eligible: torch.Tensor | None = None
        self.counts: CampaignCounts | None = None
        if name == "adm":
            self.counts = campaign_counts(days, self.n_labels)
            allowed = window_counts(self.counts.counts, self.adm) >= \
                self.adm.thresholds(schema.labels)
            self.campaigns = torch.as_tensor(self.counts.campaigns, device=device)
            self.eligible = torch.as_tensor(allowed, device=device)

    def mask(self, batch: Mapping[str, torch.Tensor], day: int) -> torch.Tensor | None:
        """The mask float32 [B, V] of a batch of training day `day`; None for `none` and
        `oracle` (every label counts)."""
        if self.name in ("none", "oracle"):
            return None
        mask = base_mask(batch["target_action"], self.n_labels)
        if self.name == "reported":
            return torch.maximum(mask, (batch["reported"] > 0).to(torch.float32))
        if self.name == "adm":
            codes = torch.searchsorted(self.campaigns, batch["campaign"])
            codes = codes.clamp_(max=len(self.campaigns) - 1)
            return torch.maximum(mask, self.eligible[day, codes].to(torch.float32))
        return mask

    def apply(self, batch: Mapping[str, torch.Tensor], day: int) -> dict[str, torch.Tensor]:
        """A copy of `batch` ready for the loss: `mask` added where the policy has one, the
        true labels as `labels`/`weights` under `oracle`, and `true_weights` removed."""
        out = dict(batch)
        truth = out.pop("true_weights", None)
        if self.name == "oracle":
            out["weights"] = truth
            out["labels"] = (truth > 0).to(torch.float32)
        mask = self.mask(out, day)
        if self.clicks_only:
            clicked = out["click"].unsqueeze(1).expand(-1, self.n_labels)
            mask = clicked if mask is None else mask * clicked
        if mask is not None:
            out["mask"] = mask
        return out

    def day_masks(self, day_index: int, day: Day) -> np.ndarray:
        """The mask of every row of one training day, bool [N, V] (for reports)."""
        arrays = day.arrays()
        batch = {k: torch.from_numpy(np.array(arrays[k])) for k in
                 ("target_action", "campaign", "reported") if k in arrays}
        mask = self.mask(batch, day_index)
        if mask is None:
            return np.ones((day.rows, self.n_labels), dtype=bool)
        return mask.cpu().numpy() > 0


def coverage(policy: MaskPolicy, days: Sequence[Day], labels: Sequence[str]
             ) -> dict[str, dict[str, float]]:
    """Share of training rows with mask 1 per action (KAML paper Table 1).

    Returns {"base": {label: share, "other": share of rows whose target is no label},
    policy name: {label: share}} (only `base` when the policy is `base`).
    """
    report = {"base": _base_shares(days, labels)}
    if policy.name != "base":
        report[policy.name] = _mask_shares(policy, days, labels)
    return report


def coverage_masks(schema: Schema) -> tuple[str, ...]:
    """The masks a coverage report shows by default: `adm`, and `reported` when the schema
    says which actions campaigns report."""
    return ("adm", *(("reported",) if schema.reported_labels else ()))


def coverage_report(schema: Schema, days: Sequence[Day], adm: AdmOptions,
                    masks: Sequence[CoverageMask] | None = None) -> dict[str, dict[str, float]]:
    """`coverage` of each of `masks` (default `coverage_masks(schema)`) on the training `days`:
    {"base": {label: share, "other": share}, mask: {label: share}, ...}, `base` first."""
    # Every policy first: each checks that the schema has the columns it needs.
    policies = [MaskPolicy(name, schema, days, adm)
                for name in (masks if masks is not None else coverage_masks(schema))]
    report = {"base": _base_shares(days, schema.labels)}
    for policy in policies:
        if policy.name != "base":
            report[policy.name] = _mask_shares(policy, days, schema.labels)
    return report


def _base_shares(days: Sequence[Day], labels: Sequence[str]) -> dict[str, float]:
    """Share of rows whose target is each label, and of those whose target is none (OTHER)."""
    counts = np.zeros(len(labels) + 1)
    for day in days:
        target = np.asarray(day.arrays()["target_action"])
        counts += np.bincount(np.where(target < 0, len(labels), target),
                              minlength=len(labels) + 1)
    shares = counts / sum(day.rows for day in days)
    return {**{v: float(x) for v, x in zip(labels, shares[:-1])}, OTHER: float(shares[-1])}


def _mask_shares(policy: MaskPolicy, days: Sequence[Day], labels: Sequence[str]
                 ) -> dict[str, float]:
    """Share of rows with mask 1 per label under `policy`."""
    masked = np.zeros(len(labels))
    for d, day in enumerate(days):
        masked += policy.day_masks(d, day).sum(0)
    shares = masked / sum(day.rows for day in days)
    return {v: float(x) for v, x in zip(labels, shares)}


def format_coverage(report: Mapping[str, Mapping[str, float]]) -> str:
    """A fixed-width table: one row per mask, one column per action (plus Other)."""
    columns = list(report["base"])
    lines = [f"{'mask':<10}" + "".join(f"{c:>14}" for c in columns)]
    for name, shares in report.items():
        lines.append(f"{name:<10}" + "".join(f"{100 * shares[c]:>13.2f}%" if c in shares
                                             else f"{'-':>14}" for c in columns))
    return "\n".join(lines)
