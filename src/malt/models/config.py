"""Typed model configuration and its presets.

`ModelConfig()` is the `default` preset: the reference topology (same widths, expert counts and
parameter counts as the MAC paper's release) with the release's defects fixed where the fix
changes numbers only for the better-defined model: attention masks padded positions and SimTier
does not count them. `ModelConfig.preset("reference")` restores the release's behaviour where it
changes numbers, for results comparable with the paper:

- no key padding mask in target attention,
- padded positions counted in the SimTier histograms,
- SimTier channels summed (also the default),
- the SE group size fixed at 16 whatever the embedding width,
- a MoAE given no auxiliary view becomes the release's self-auxiliary MoAE (`self_aux`).

Neither preset builds the release's unused expert or its identity HoME self-gates: they never
receive gradient, so leaving them out changes no number except the parameter count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from malt.errors import ConfigError
from malt.typed_fields import check_value, hints, reject_unknown, validate

PRESETS = ("default", "reference")


@dataclass(frozen=True)
class ModelConfig:
    """Every knob of the model family. Fields apply to the models that use them."""

    embed_dim: int = 16
    """Width d of every embedding (one table per categorical field)."""
    sparse_embeddings: bool = False
    """Embedding tables produce sparse gradients (needed by lazy / sparse Adam)."""
    attention_heads: int = 4
    """Heads of each target-attention block; must divide `embed_dim`."""
    padding_mask: bool = True
    """Padded sequence positions get zero attention weight (the release has no mask)."""
    simtier_bins: int = 32
    """Tiers of each SimTier histogram over [-1, 1] (width 2 / bins)."""
    simtier_combine: Literal["sum", "concat"] = "sum"
    """`sum` the per-channel SimTier vectors (the release) or `concat` them (wider input)."""
    simtier_count_padding: bool = False
    """Count padded positions in the SimTier histograms (the release does)."""
    se_group_size: int | None = None
    """Group width of the expert's squeeze-excitation gate; None = `embed_dim` (groups are then
    the fields). When the fused width is not a multiple of it, the last group is partial (see
    `malt.layers.SqueezeExcite`)."""
    se_reduction: int = 4
    """Squeeze-excitation bottleneck: group size / reduction hidden units."""
    expert_dim: int = 256
    """Output width of every expert (the tower input)."""
    tower_dims: tuple[int, ...] = (128, 64, 32)
    """Hidden widths of every tower after the expert; the last hidden layer feeds the head."""
    mmoe_experts: int = 2
    """Shared experts of MMoE."""
    ple_levels: int = 1
    """Stacked extraction levels of PLE and MoAE (1 = one CGC layer, the release)."""
    ple_shared_experts: int = 1
    """Shared experts per extraction level (PLE, MoAE)."""
    ple_task_experts: int = 1
    """Private experts per view per extraction level (PLE, MoAE)."""
    home_variant: Literal["reference", "paper"] = "reference"
    """`reference`: the release's one-level HoME; `paper`: meta level, task groups, expert
    normalisation + Swish, feature gates and self-gates as the HoME paper describes."""
    home_feature_gate_rank: int = 4
    """Rank of HoME's low-rank feature gate on every expert input."""
    home_groups: tuple[tuple[str, ...], ...] | None = None
    """Task categories of the paper HoME; None = single-touch views (last, first) and the rest."""
    home_meta_shared_experts: int = 2
    """Shared meta experts of the paper HoME's first level."""
    knowledge_detach: bool = False
    """Stop the main loss's gradient at the knowledge vectors fused into the main tower
    (NATAL, MoAE). The release does not."""
    self_aux: bool = False
    """MoAE without auxiliary views becomes the release's self-auxiliary MoAE: its main tower
    fuses its own plain pass and its main loss is reported twice (see `malt.models.moae`)."""

    # --- incomplete multi-label data: KAML and its baselines (STAR, TAML) ---------------------
    kaml_bottom: Literal["mmoe", "ple", "shared_bottom"] = "mmoe"
    """KAML's multi-task bottom: `mmoe` (the paper), `ple` or `shared_bottom`."""
    hke: bool = True
    """KAML: hierarchical knowledge extraction (original / extended sub-towers); needs a mask
    that extends samples beyond their target (`adm`, `reported`, `oracle` or `none`)."""
    hke_layers: int = 1
    """Tower hidden layers duplicated into the two HKE sub-towers; the rest form the head."""
    rlu: bool = True
    """KAML: ranking-based label utilisation (pairwise loss on (positive, zero) pairs)."""
    rlu_gamma: float = 0.8
    """γ in γ · L_BCE + (1 − γ) · L_rank (used only with `rlu`)."""
    rlu_normalize: Literal["pairs", "batch"] = "pairs"
    """Ranking loss per task divided by its number of pairs (`pairs`) or by the batch size
    (`batch`, the paper's Eq. 11 as written)."""
    rlu_use_mask: bool = False
    """Restrict both sides of the pairs to rows whose mask is 1 (default: every row)."""
    rlu_logits: Literal["routed", "original"] = "routed"
    """Rank the HKE-routed logits (`routed`) or every row through the original sub-tower."""
    rlu_task_weights: tuple[float, ...] | None = None
    """β_k per view in task order (None: 1 for every view)."""
    star_aux_dims: tuple[int, ...] = (32,)
    """Hidden widths of STAR's auxiliary network."""
    taml_learners: int = 3
    """Learners per task in TAML."""
    taml_shared_experts: int = 2
    taml_general_experts: int = 1
    """Experts shared by the learners of one task."""
    taml_learner_experts: int = 1
    """Experts private to one learner."""
    taml_fusion: Literal["gate", "mean"] = "gate"
    """Fuse the learners' logits with a softmax gate (`gate`) or their mean (`mean`)."""
    taml_learner_weight: float = 1.0
    """λ_l: weight of the learners' own BCE."""
    taml_distill_weight: float = 0.5
    """λ_d: weight of the self-distillation from the fused score to each learner."""
    taml_distill_on: Literal["masked", "all"] = "masked"
    """Distil on the rows whose mask is 1 (`masked`) or on every row (`all`)."""

    def __post_init__(self) -> None:
        validate(self, "model")
        self._check()

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str = "default", **overrides: Any) -> ModelConfig:
        """The named preset (`default` or `reference`) with `overrides` applied."""
        if name not in PRESETS:
            raise ConfigError(f"unknown model preset '{name}', expected one of {PRESETS}")
        base = cls() if name == "default" else cls(
            padding_mask=False, simtier_count_padding=True, simtier_combine="sum",
            se_group_size=16, self_aux=True)
        return base.updated(**overrides)

    def updated(self, **overrides: Any) -> ModelConfig:
        """A copy with `overrides`, each checked against its field's type; an unknown key names
        the closest field."""
        return replace(self, **_checked(overrides))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        return cls(**_checked(raw))

    # --- derived values -----------------------------------------------------------------------
    @property
    def se_group(self) -> int:
        return self.embed_dim if self.se_group_size is None else self.se_group_size

    # --- validation --------------------------------------------------------------------------
    def _check(self) -> None:
        positive = ("embed_dim", "attention_heads", "simtier_bins", "se_reduction", "expert_dim",
                    "mmoe_experts", "ple_levels", "ple_shared_experts", "ple_task_experts",
                    "home_feature_gate_rank", "home_meta_shared_experts", "hke_layers",
                    "taml_learners", "taml_shared_experts", "taml_general_experts",
                    "taml_learner_experts")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be a positive integer, got "
                                  f"{getattr(self, name)!r}")
        if self.embed_dim % self.attention_heads:
            raise ConfigError(f"model.embed_dim ({self.embed_dim}) must be a multiple of "
                              f"model.attention_heads ({self.attention_heads})")
        if self.simtier_bins % 2:
            raise ConfigError(f"model.simtier_bins must be even (tiers are symmetric around 0), "
                              f"got {self.simtier_bins}")
        if self.se_group_size is not None and self.se_group_size < 1:
            raise ConfigError(f"model.se_group_size must be a positive integer or None, got "
                              f"{self.se_group_size!r}")
        if self.se_group % self.se_reduction:
            raise ConfigError(f"the SE group size ({self.se_group}, = model.se_group_size or "
                              f"model.embed_dim) must be a multiple of model.se_reduction "
                              f"({self.se_reduction})")
        if not self.tower_dims or any(w < 1 for w in self.tower_dims):
            raise ConfigError(f"model.tower_dims must be positive widths, got {self.tower_dims}")
        if self.hke and self.hke_layers > len(self.tower_dims):
            raise ConfigError(f"model.hke_layers ({self.hke_layers}) exceeds the tower's hidden "
                              f"layers ({len(self.tower_dims)})")
        if not 0.0 <= self.rlu_gamma <= 1.0:
            raise ConfigError(f"model.rlu_gamma must be in [0, 1], got {self.rlu_gamma}")
        if any(w < 1 for w in self.star_aux_dims):
            raise ConfigError(f"model.star_aux_dims must be positive widths, got "
                              f"{self.star_aux_dims}")
        if min(self.taml_learner_weight, self.taml_distill_weight) < 0:
            raise ConfigError("model.taml_learner_weight and taml_distill_weight must be >= 0")
        if self.home_groups is not None:
            flat = [v for group in self.home_groups for v in group]
            if not all(self.home_groups) or len(flat) != len(set(flat)):
                raise ConfigError(f"model.home_groups must be non-empty groups naming each view "
                                  f"once, got {self.home_groups}")


def _checked(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` with every value checked against (and converted to) its field's type."""
    reject_unknown(raw, [f.name for f in fields(ModelConfig)], "model options")
    types = hints(ModelConfig)
    return {key: check_value(f"model.{key}", value, types[key]) for key, value in raw.items()}
