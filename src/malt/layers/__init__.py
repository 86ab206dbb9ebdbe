"""Building blocks shared by the models: embeddings, the feature encoder (target attention,
SimTier, fusion), experts, gates, towers and the PLE extraction network."""

from malt.layers.attention import TargetAttention
from malt.layers.embedding import FieldEmbeddings
from malt.layers.encoder import FeatureEncoder
from malt.layers.expert import Expert, FeatureGate, SqueezeExcite
from malt.layers.extraction import ExtractionNetwork
from malt.layers.gate import SelfGate, SoftmaxGate
from malt.layers.simtier import SimTier
from malt.layers.tower import FusedTower, Tower

__all__ = ["Expert", "ExtractionNetwork", "FeatureEncoder", "FeatureGate", "FieldEmbeddings",
           "FusedTower", "SelfGate", "SimTier", "SoftmaxGate", "SqueezeExcite", "TargetAttention",
           "Tower"]
