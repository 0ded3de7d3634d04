"""Flax bodies: conditioners (and, later, encoders, decoders, G and D)."""

from flowjax_gen.nets.conditioners import (
  MLP,
  GlowConvNet,
  ResidualBlock,
  ResNet,
  ZeroConv,
)

__all__ = ["MLP", "GlowConvNet", "ResNet", "ResidualBlock", "ZeroConv"]
