"""Model configuration: the blocks every model is built from, and each model's own fields.

A model's config class (defined in its own file) derives from `ModelConfig`, which composes the
shared blocks: `encoder` (a registered encoder by `name` and its options; by default malt's
own, `target_attention`: embeddings, target attention, SimTier; see `malt.models.encoders`),
`expert` and `tower`; PLE-style models add an `extraction` block. In a config file the blocks
are tables:

    [model]
    name = "moae"
    knowledge_detach = true      # a field of MoAE's own config
    [model.encoder]
    embed_dim = 8
    [model.tower]
    dims = [64, 32]

Defaults are the reference topology (same widths, expert counts and parameter counts as the MAC
paper's release) with the release's defects fixed where the fix changes numbers only for the
better-defined model: attention masks padded positions and SimTier does not count them.
`release_defaults = true` starts instead from the release's behaviour where it changes numbers,
for results comparable with the paper (`RELEASE`): no key padding mask in target attention,
padded positions counted in the SimTier histograms, SimTier channels summed (also malt's
default), the SE group size fixed at 16 whatever the embedding width, and (MoAE) the
self-auxiliary form of a MoAE without auxiliary views. Neither builds the release's unused
expert or its identity HoME self-gates: they never receive gradient, so leaving them out
changes no number except the parameter count.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from malt.config_files import merge_tables
from malt.errors import ConfigError
from malt.models.encoders import DEFAULT_ENCODER, EncoderConfig, encoder_spec
from malt.typed_fields import PositiveInt, build, check_value, validate

C = TypeVar("C", bound="ModelConfig")


@dataclass(frozen=True)
class TargetAttentionConfig(EncoderConfig):
    """malt's feature encoder, every built-in model's default (`malt.layers.FeatureEncoder`):
    embeddings, target attention over the id sequences, SimTier over the float sequences."""

    name: str = field(default=DEFAULT_ENCODER, init=False)
    attention_heads: PositiveInt = 4
    """Heads of each target-attention block; must divide `embed_dim`."""
    padding_mask: bool = True
    """Padded sequence positions get zero attention weight (the release has no mask)."""
    simtier_bins: PositiveInt = 32
    """Tiers of each SimTier histogram over [-1, 1] (width 2 / bins); even."""
    simtier_combine: Literal["sum", "concat"] = "sum"
    """`sum` the per-channel SimTier vectors (the release) or `concat` them (wider input)."""
    simtier_count_padding: bool = False
    """Count padded positions in the SimTier histograms (the release does)."""

    RELEASE: ClassVar[dict[str, Any]] = {"padding_mask": False, "simtier_count_padding": True,
                                         "simtier_combine": "sum"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.embed_dim % self.attention_heads:
            raise ConfigError(f"model.encoder.embed_dim ({self.embed_dim}) must be a multiple "
                              f"of model.encoder.attention_heads ({self.attention_heads})")
        if self.simtier_bins % 2:
            raise ConfigError(f"model.encoder.simtier_bins must be even (tiers are symmetric "
                              f"around 0), got {self.simtier_bins}")


@dataclass(frozen=True)
class ExpertConfig:
    """Every expert: squeeze-excitation, then a linear layer and ReLU (`malt.layers.Expert`)."""

    dim: PositiveInt = 256
    """Output width of every expert (the tower input)."""
    se_group_size: PositiveInt | None = None
    """Group width of the squeeze-excitation gate; None = the embedding width (groups are then
    the fields). When the fused width is not a multiple of it, the last group is partial."""
    se_reduction: PositiveInt = 4
    """Squeeze-excitation bottleneck: group size / reduction hidden units."""

    def __post_init__(self) -> None:
        validate(self, "model.expert")


@dataclass(frozen=True)
class TowerConfig:
    """Every tower: the expert's output through hidden layers to the view's logits."""

    dims: tuple[PositiveInt, ...] = (128, 64, 32)
    """Hidden widths; the last hidden layer feeds the head."""

    def __post_init__(self) -> None:
        validate(self, "model.tower")
        if not self.dims:
            raise ConfigError("model.tower.dims must list at least one hidden width")


@dataclass(frozen=True)
class ExtractionConfig:
    """PLE's extraction network (`malt.layers.ExtractionNetwork`)."""

    levels: PositiveInt = 1
    """Stacked extraction levels (1 = one CGC layer, the release)."""
    shared_experts: PositiveInt = 1
    """Shared experts per level."""
    task_experts: PositiveInt = 1
    """Private experts per view per level."""

    def __post_init__(self) -> None:
        validate(self, "model.extraction")


@dataclass(frozen=True)
class ModelConfig:
    """What every model is built from; each model's config class adds its own fields."""

    encoder: EncoderConfig = field(default_factory=TargetAttentionConfig)
    """The feature encoder: its `name` (a registered encoder, see `malt.models.encoders`) and
    that encoder's options."""
    expert: ExpertConfig = field(default_factory=ExpertConfig)
    tower: TowerConfig = field(default_factory=TowerConfig)

    RELEASE: ClassVar[dict[str, Any]] = {"expert": {"se_group_size": 16}}
    """What `release_defaults` changes, as a tree of options (and in the encoder, what its
    config's own `RELEASE` says)."""

    def __post_init__(self) -> None:
        validate(self, "model")
        chosen = encoder_spec(self.encoder.name).config
        if type(self.encoder) is not chosen:
            raise ConfigError(f"model.encoder is a {type(self.encoder).__name__}; the encoder "
                              f"'{self.encoder.name}' takes a {chosen.__name__}")
        if self.se_group % self.expert.se_reduction:
            raise ConfigError(f"the SE group size ({self.se_group}, = model.expert.se_group_size "
                              f"or model.encoder.embed_dim) must be a multiple of "
                              f"model.expert.se_reduction ({self.expert.se_reduction})")

    @classmethod
    def from_options(cls: type[C], options: dict[str, Any] | None = None, *,
                     release_defaults: bool = False) -> C:
        """The config from a tree of options (`{"encoder": {"embed_dim": 8}, ...}`), every value
        checked against its field's type; an unknown key names the closest field. The
        `encoder` table is built as the config of the encoder it names (`name`; default the
        encoder of this class's default config)."""
        tree = merge_tables(cls.RELEASE, options or {}) if release_defaults else options or {}
        encoder = tree.get("encoder", {})
        if not isinstance(encoder, dict):
            raise ConfigError(f"model.encoder must be a table of keys, got {encoder!r}")
        name = check_value("model.encoder.name", encoder.get("name", cls.default_encoder()), str)
        encoder_class = encoder_spec(name).config
        own = {k: v for k, v in encoder.items() if k != "name"}
        if release_defaults:
            own = merge_tables(encoder_class.RELEASE, own)
        return build(cls, {**tree, "encoder": build(encoder_class, own, "model.encoder")},
                     "model")

    @classmethod
    def default_encoder(cls) -> str:
        """The name of the encoder this config class uses unless told otherwise."""
        return next(f for f in dataclasses.fields(cls) if f.name == "encoder"
                    ).default_factory().name

    def updated(self: C, **options: Any) -> C:
        """A copy with `options` (a block given as a table changes only the keys it names)."""
        return type(self).from_options(merge_tables(self.to_dict(), options))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def se_group(self) -> int:
        """The squeeze-excitation group width in effect."""
        size = self.expert.se_group_size
        return self.encoder.embed_dim if size is None else size
