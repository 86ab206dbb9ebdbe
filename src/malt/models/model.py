"""The base classes of the models: what is not particular to one model.

A model is built from `(schema, vocab, task, config)`. `MaltModel` owns the feature encoder
(embeddings, target attention, SimTier, fusion), the construction of experts and towers from the
config, the per-view losses and the predictions; a model class only says how the fused features
x [B, D] become per-view logits (`heads`). `MultiTaskModel` is a bottom (one representation per
view) under one tower per view: Shared-Bottom, MMoE, PLE and HoME only say which bottom.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from malt.data.schema import Schema
from malt.data.task import CAT, Task
from malt.data.vocab import VocabInfo
from malt.errors import ConfigError
from malt.layers import Expert, ExtractionNetwork, FeatureEncoder, Tower
from malt.losses.delayed import DelayRates, corrected_probability
from malt.losses.terms import LossTerms
from malt.losses.views import view_losses
from malt.models.backbones import (
    DCNv2Config,
    DINConfig,
    DNNConfig,
    dcnv2_encoder,
    din_encoder,
    dnn_encoder,
)
from malt.models.config import ExtractionConfig, ModelConfig, TargetAttentionConfig
from malt.models.encoders import DEFAULT_ENCODER, Encoder, encoder_spec, register_encoder

if TYPE_CHECKING:
    from malt.models.registry import Traits


@dataclass
class Outputs:
    """What a forward pass returns."""

    logits: dict[str, torch.Tensor]
    """view -> [B] logit (binary views) or [B, 2^K] (the Cartesian view `cat`)."""
    knowledge: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    """auxiliary view -> its tower's hidden states [B, n_l] fused into the main tower (NATAL,
    MoAE); empty for the other models."""


class MaltModel(nn.Module):
    """Base class: encoder, heads, losses and predictions of a multi-attribution model.

    Subclasses implement `heads(x) -> Outputs` and are registered by name, with their config
    class and traits, by `malt.models.registry.register_model`. Binary views have a single
    logit read through a sigmoid (the reference's two-way softmax spans the same functions);
    `cat` has 2^K logits, K being the number of label columns of the schema.

    The loss contract: `loss_terms(outputs, batch)` returns the model's `LossTerms`
    (`malt.losses.terms`), each a named scalar with its own weight w and a role. A `main` term
    is part of the main task and enters the loss as w · value; an `auxiliary` term is a task of
    its own and enters as λ · w · value (λ = `task.aux_weight`; left out when λ = 0). The
    trainer minimises Σ_main w · value + λ · Σ_auxiliary w · value, or hands the tasks
    (Σ_main w · value, then each auxiliary w · value) to GCS / PCGrad, and logs every term's
    w · value under its name. The default is one term per view of weight 1; a model with a
    loss of its own (KAML's γ-balanced ranking term, TAML's learners) returns its own terms
    and the trainer needs no case for it.
    """

    name = ""
    config_class: type[ModelConfig] = ModelConfig
    """Set by `register`: the config class of the model."""
    traits: Traits | None = None
    """Set by `register`: what the model is (see `malt.models.registry.Traits`)."""

    def __init__(self, schema: Schema, vocab: VocabInfo, task: Task,
                 config: ModelConfig | None = None):
        super().__init__()
        if CAT in task.views and self.traits is not None and not self.traits.takes_cat:
            raise ConfigError(f"{self.traits.display_name} has one logit per task; it takes no "
                              f"'{CAT}' view")
        self.schema, self.vocab, self.task = schema, vocab, task
        if config is None:
            config = self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(f"model '{self.name}' takes a {self.config_class.__name__}, got "
                            f"{type(config).__name__}")
        self.config = config
        self.encoder = self.make_encoder()
        refuse_unread_bags(schema, self.encoder, config.encoder.name)
        self.columns = {v: schema.label_index(v) for v in task.label_views}
        self.cat_classes = 2 ** len(schema.labels)
        self.delay_rates = (DelayRates(self.headed_label_views)
                            if task.delay_correction == "dfm" else None)

    @property
    def headed_label_views(self) -> tuple[str, ...]:
        """The label views the model has a head for: every one, or the main view alone for a
        model without auxiliary heads (`Traits.uses_aux`)."""
        if self.traits is not None and not self.traits.uses_aux:
            return (self.task.main,)
        return self.task.label_views

    # --- what the subclasses build from ----------------------------------------------------
    @property
    def in_dim(self) -> int:
        """Width D of the fused features."""
        return self.encoder.out_dim

    def out_dim(self, view: str) -> int:
        return self.cat_classes if view == CAT else 1

    def make_encoder(self) -> Encoder:
        """The encoder the `encoder` block names, with its options (models with one per view
        build more)."""
        encoder = self.config.encoder
        return encoder_spec(encoder.name).build(self.schema, self.vocab, encoder)

    def make_expert(self, in_dim: int | None = None, *, feature_gate_rank: int | None = None
                    ) -> Expert:
        """The reference expert: squeeze-excitation, linear to `expert.dim`, ReLU."""
        c = self.config
        return Expert(self.in_dim if in_dim is None else in_dim, c.expert.dim,
                      se_group=c.se_group, se_reduction=c.expert.se_reduction,
                      feature_gate_rank=feature_gate_rank)

    def make_extraction(self, extraction: ExtractionConfig) -> ExtractionNetwork:
        """PLE's extraction network over the task's views, of this model's experts."""
        return ExtractionNetwork(self.in_dim, self.task.views, levels=extraction.levels,
                                 shared=extraction.shared_experts,
                                 private=extraction.task_experts, make_expert=self.make_expert,
                                 out_dim=self.config.expert.dim)

    def make_tower(self, view: str) -> Tower:
        """expert.dim -> tower.dims -> the view's logits."""
        return Tower(self.config.expert.dim, self.config.tower.dims, self.out_dim(view))

    def head_logits(self, view: str, raw: torch.Tensor) -> torch.Tensor:
        """A tower's output [B, C] as the view's logits: [B] for binary views."""
        return raw if view == CAT else raw.squeeze(-1)

    # --- the interface ---------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> Outputs:
        return self.features_and_outputs(batch)[1]

    def features_and_outputs(self, batch: dict[str, torch.Tensor]
                             ) -> tuple[torch.Tensor, Outputs]:
        """(the fused features x [B, D] of the batch, the forward pass's outputs). Entire-space
        training (`malt.models.entire_space`) reads its click head off x, so a model with a
        forward pass of its own overrides this, not `forward`, to be wrapped: x is then what
        it says its main view reads."""
        x = self.encoder(batch)
        return x, self.heads(x)

    def heads(self, x: torch.Tensor) -> Outputs:
        """Fused features x [B, D] -> per-view logits (and knowledge vectors)."""
        raise NotImplementedError

    def loss_terms(self, outputs: Outputs, batch: dict[str, torch.Tensor]) -> LossTerms:
        """The terms of the loss (see the class docstring): one per view with a logit, its
        mean loss over the batch rows (`malt.losses.views`) of weight 1, the main view's in
        the main role and the others auxiliary."""
        losses = view_losses(outputs.logits, batch, self.columns, self.task.label_mode,
                             self.task.delay_correction, self.delay_rates)
        return self.view_loss_terms(losses)

    def view_loss_terms(self, losses: dict[str, torch.Tensor]) -> LossTerms:
        """The terms made of the per-view losses (view -> scalar, in the order of the logits):
        by default one per view of weight 1, the main view's in the main role and the others
        auxiliary. Entire-space training passes each view's CTCVR loss through it in place of
        the view's loss, so a model whose own terms are made of its per-view losses alone
        (MoAE's self-auxiliary term) overrides this, not `loss_terms`, and keeps them there."""
        return LossTerms.of_views(losses, self.task.main)

    @classmethod
    def own_auxiliary_terms(cls, config: ModelConfig) -> bool:
        """Whether `loss_terms` holds an auxiliary term of the model's own when the task has no
        auxiliary view (one an auxiliary-task method can weigh against the main one)."""
        return False

    def probabilities(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """label view -> probability [B] for every label view with a head (no `cat`), read
        through the task's delay correction (`fnc` predicts q / (1 − q)). Call it under
        `torch.inference_mode()` when no gradient is needed."""
        logits = self(batch).logits
        return {v: corrected_probability(z, self.task.delay_correction)
                for v, z in logits.items() if v != CAT}

    @property
    def serving_inputs(self) -> tuple[str, ...]:
        """The batch keys `probabilities` reads, in the order an exported model takes them: those of
        the encoder (`sparse`, then `seq`, `dense_seq` and `numeric` when the schema has such
        columns, for malt's own)."""
        return tuple(self.encoder.inputs)

    def embedding_parameters(self) -> list[nn.Parameter]:
        """The embedding tables (trained at a higher learning rate)."""
        return list(self.encoder.embedding_parameters())

    def parameter_counts(self) -> tuple[int, int]:
        """(dense, embedding) parameter counts."""
        embedding = sum(p.numel() for p in self.embedding_parameters())
        return sum(p.numel() for p in self.parameters()) - embedding, embedding


def refuse_unread_bags(schema: Schema, encoder: Encoder, name: str) -> None:
    """A `ConfigError` when the schema has bags and the encoder `name` does not read them:
    an encoder written before bags existed would otherwise drop those columns silently."""
    unread = [key for key in ("bags", "bag_lengths") if key not in encoder.inputs]
    if schema.bags and unread:
        raise ConfigError(
            f"schema '{schema.name}' has the bags {', '.join(schema.bag_names)}, and the "
            f"encoder '{name}' does not read {' and '.join(repr(k) for k in unread)} (its "
            f"inputs: {', '.join(encoder.inputs)}); build it on malt.layers.FieldInputs or "
            f"FieldEmbeddings, which pool them, or move the bags from [bags] to "
            f"ignore_columns")


def target_attention_encoder(schema: Schema, vocab: VocabInfo, config: TargetAttentionConfig
                             ) -> FeatureEncoder:
    """malt's own encoder (`malt.layers.FeatureEncoder`) of `config`."""
    return FeatureEncoder(
        schema, vocab, dim=config.embed_dim, heads=config.attention_heads,
        padding_mask=config.padding_mask, simtier_bins=config.simtier_bins,
        simtier_combine=config.simtier_combine, count_padding=config.simtier_count_padding,
        sparse=config.sparse_embeddings)


register_encoder(DEFAULT_ENCODER, target_attention_encoder, TargetAttentionConfig)
register_encoder("dnn", dnn_encoder, DNNConfig)
register_encoder("dcnv2", dcnv2_encoder, DCNv2Config)
register_encoder("din", din_encoder, DINConfig)


class MultiTaskModel(MaltModel):
    """A bottom, giving one representation [B, expert.dim] per view, under one tower per view.

    Subclasses say which bottom (`make_bottom`); its modules are built before the towers.
    """

    def __init__(self, schema, vocab, task, config=None):
        super().__init__(schema, vocab, task, config)
        self.bottom = self.make_bottom()
        self.towers = nn.ModuleDict({v: self.make_tower(v) for v in task.views})

    def make_bottom(self) -> nn.Module:
        """A module x [B, D] -> view -> [B, expert.dim]."""
        raise NotImplementedError

    def heads(self, x: torch.Tensor) -> Outputs:
        reps = self.bottom(x)
        return Outputs(logits={v: self.head_logits(v, t(reps[v])[0])
                               for v, t in self.towers.items()})
