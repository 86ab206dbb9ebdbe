"""HoME: hierarchy of multi-gate experts, in the reference's one-level form or the paper's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from malt.errors import ConfigError
from malt.layers import Expert, SelfGate, SoftmaxGate
from malt.layers.gate import mix
from malt.models.config import ModelConfig
from malt.models.model import MaltModel, MultiTaskModel
from malt.models.registry import Traits, register
from malt.typed_fields import PositiveInt

SINGLE_TOUCH = ("last", "first")


@dataclass(frozen=True)
class HoMEConfig(ModelConfig):
    variant: Literal["reference", "paper"] = "reference"
    """`reference`: the release's one-level HoME; `paper`: meta level, task groups, expert
    normalisation + Swish, feature gates and self-gates as the HoME paper describes."""
    feature_gate_rank: PositiveInt = 4
    """Rank of the low-rank feature gate on every expert input."""
    groups: tuple[tuple[str, ...], ...] | None = None
    """Task categories of the paper HoME; None = single-touch views (last, first) and the rest."""
    meta_shared_experts: PositiveInt = 2
    """Shared meta experts of the paper HoME's first level."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.groups is not None:
            flat = [v for group in self.groups for v in group]
            if not all(self.groups) or len(flat) != len(set(flat)):
                raise ConfigError(f"model.groups must be non-empty groups naming each view "
                                  f"once, got {self.groups}")


@register("home", HoMEConfig, Traits("HoME", "multi-task", gated_experts=True))
class HoME(MultiTaskModel):
    """HoME: experts behind private feature gates, in a one- or two-level hierarchy.

    `variant` picks the reference's one-level form (`ReferenceHoME`) or the paper's two-level
    hierarchy over task categories (`PaperHoME`).
    """

    def make_bottom(self) -> nn.Module:
        return ReferenceHoME(self) if self.config.variant == "reference" else PaperHoME(self)


class ReferenceHoME(nn.Module):
    """The reference's HoME: one shared and one private expert per view, each behind its own
    feature gate x ⊙ 2σ(B A x); per view a softmax gate over [shared, private] reading x and a
    residual on the private expert: h_v = g0 · r_s + g1 · r_v + r_v.

    The reference's self-gates sit over groups of one expert, where a softmax is the constant 1:
    they are identities with no gradient and are not built.
    """

    def __init__(self, model: MaltModel):
        super().__init__()
        rank = model.config.feature_gate_rank
        views = model.task.views
        self.shared = model.make_expert(feature_gate_rank=rank)
        self.private = nn.ModuleDict({v: model.make_expert(feature_gate_rank=rank)
                                      for v in views})
        self.gates = nn.ModuleDict({v: SoftmaxGate(model.in_dim, 2) for v in views})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x [B, D] -> view -> [B, expert_dim]."""
        shared = self.shared(x)
        out = {}
        for view, expert in self.private.items():
            private = expert(x)
            out[view] = mix(self.gates[view](x), [shared, private]) + private
        return out


class PaperHoME(nn.Module):
    """HoME as its paper describes it, two levels over task categories.

    Every expert is feature gate -> linear -> batch norm -> Swish (expert normalisation).
    Views are grouped into categories (`groups`; by default the single-touch views last and
    first, and all others).

    Level 1 (meta), reading x: `meta_shared_experts` shared meta experts and one meta expert
    per category. Category c: z_c = softmax gate over [shared meta, c's meta] + self-gate over
    c's meta expert. Shared: z_sh = softmax gate over every meta expert.

    Level 2 (task): one global expert reading z_sh, one expert per category and one per view,
    both reading z_c of the view's category. View t of category c:
    h_t = softmax gate over [global, category c, t's expert] + self-gate over t's expert, the
    gates reading [z_sh ; z_c]. A self-gate over one expert is a sigmoid.
    """

    def __init__(self, model: MaltModel):
        super().__init__()
        c = model.config
        self.groups = _resolve_groups(model.task.views, c.groups)
        self.category = {v: i for i, group in enumerate(self.groups) for v in group}
        n_meta, width = c.meta_shared_experts, c.expert.dim

        def expert(in_dim: int) -> Expert:
            return Expert(in_dim, width, norm=True, activation="swish",
                          feature_gate_rank=c.feature_gate_rank)

        d, n_cat = model.in_dim, len(self.groups)
        self.meta_shared = nn.ModuleList(expert(d) for _ in range(n_meta))
        self.meta_category = nn.ModuleList(expert(d) for _ in range(n_cat))
        self.meta_gates = nn.ModuleList(SoftmaxGate(d, n_meta + 1) for _ in range(n_cat))
        self.meta_self_gates = nn.ModuleList(SelfGate(d, 1) for _ in range(n_cat))
        self.meta_shared_gate = SoftmaxGate(d, n_meta + n_cat)
        self.task_shared = expert(width)
        self.task_category = nn.ModuleList(expert(width) for _ in range(n_cat))
        self.task_private = nn.ModuleDict({v: expert(width) for v in model.task.views})
        self.task_gates = nn.ModuleDict({v: SoftmaxGate(2 * width, 3) for v in model.task.views})
        self.task_self_gates = nn.ModuleDict({v: SelfGate(2 * width, 1)
                                              for v in model.task.views})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x [B, D] -> view -> [B, expert_dim]."""
        shared = [e(x) for e in self.meta_shared]
        own = [e(x) for e in self.meta_category]
        z_sh = mix(self.meta_shared_gate(x), shared + own)
        z_cat = [mix(gate(x), shared + [own[i]]) + self_gate(x) * own[i]
                 for i, (gate, self_gate) in enumerate(zip(self.meta_gates,
                                                           self.meta_self_gates))]
        global_rep = self.task_shared(z_sh)
        category_rep = [e(z) for e, z in zip(self.task_category, z_cat)]
        out = {}
        for view, expert in self.task_private.items():
            i = self.category[view]
            private = expert(z_cat[i])
            query = torch.cat([z_sh, z_cat[i]], dim=1)
            out[view] = (mix(self.task_gates[view](query), [global_rep, category_rep[i], private])
                         + self.task_self_gates[view](query) * private)
        return out


def _resolve_groups(views: tuple[str, ...], groups: tuple[tuple[str, ...], ...] | None
                    ) -> list[tuple[str, ...]]:
    """Task categories covering `views` exactly once each."""
    if groups is None:
        single = tuple(v for v in views if v in SINGLE_TOUCH)
        rest = tuple(v for v in views if v not in SINGLE_TOUCH)
        return [g for g in (single, rest) if g]
    flat = [v for g in groups for v in g]
    if sorted(flat) != sorted(views):
        raise ConfigError(f"model.groups {[list(g) for g in groups]} must name every view "
                          f"of the task once: {list(views)}")
    return [tuple(g) for g in groups]
