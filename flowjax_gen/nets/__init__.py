"""Flax bodies: coupling conditioners, encoders and decoders (auto-encoders,
VAEs), DCGAN generator and discriminator."""

from flowjax_gen.nets.conditioners import (
  MLP,
  ConvFeatures,
  GlowConvNet,
  ResidualBlock,
  ResNet,
  ZeroConv,
)
from flowjax_gen.nets.decoders import ConvDecoder, MLPDecoder
from flowjax_gen.nets.discriminators import DCGANDiscriminator
from flowjax_gen.nets.encoders import ConvEncoder, MLPEncoder
from flowjax_gen.nets.gated_attention import (
  GatedAttention,
  GatedAttentionNet,
  GatedConv,
)
from flowjax_gen.nets.generators import DCGANGenerator
from flowjax_gen.nets.made import MADE, MaskedDense

__all__ = [
  "MADE",
  "MLP",
  "ConvDecoder",
  "ConvEncoder",
  "ConvFeatures",
  "DCGANDiscriminator",
  "DCGANGenerator",
  "GatedAttention",
  "GatedAttentionNet",
  "GatedConv",
  "GlowConvNet",
  "MLPDecoder",
  "MLPEncoder",
  "MaskedDense",
  "ResNet",
  "ResidualBlock",
  "ZeroConv",
]
