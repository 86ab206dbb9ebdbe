"""Building blocks shared by the models: embeddings, the feature encoders (target attention,
SimTier, fusion; a DNN, DCN-V2 and DIN over flat field embeddings), experts, gates, towers and
the PLE extraction network."""

from malt.layers.attention import TargetAttention
from malt.layers.backbones import DCNv2Encoder, DINEncoder, DNNEncoder
from malt.layers.cross import CrossNetwork
from malt.layers.embedding import FieldEmbeddings
from malt.layers.encoder import FeatureEncoder
from malt.layers.expert import Expert, FeatureGate, SqueezeExcite
from malt.layers.extraction import ExtractionNetwork
from malt.layers.fields import FieldInputs
from malt.layers.gate import SelfGate, SoftmaxGate
from malt.layers.interest import InterestPooling
from malt.layers.mlp import MLP
from malt.layers.simtier import SimTier
from malt.layers.tower import FusedTower, Tower

__all__ = ["MLP", "CrossNetwork", "DCNv2Encoder", "DINEncoder", "DNNEncoder", "Expert",
           "ExtractionNetwork", "FeatureEncoder", "FeatureGate", "FieldEmbeddings",
           "FieldInputs", "FusedTower", "InterestPooling", "SelfGate", "SimTier", "SoftmaxGate",
           "SqueezeExcite", "TargetAttention", "Tower"]
