"""The conditioner network the JAX peers share (their libraries ship none)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn


class ZeroInitMLP(nn.Module):
  """ReLU MLP whose output layer starts at zero (each flow starts at the
  identity, as in distrax's flow example)."""

  hidden: Sequence[int]
  out: int

  @nn.compact
  def __call__(self, x):
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(
      self.out,
      kernel_init=nn.initializers.zeros,
      bias_init=nn.initializers.zeros,
    )(x)
