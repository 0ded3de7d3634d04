"""DCGAN-style discriminator / critic (Radford et al. 2015), a Flax body.

Images ``(B, H, W, C)`` -> one real number per example ``(B,)``::

    h_i = leaky_relu_{0.2}(Conv_{stride 2}(h_{i-1}))    i = 1..len(channels)
    D(x) = Dense_1(flatten(h_n))

The output is a logit for the minimax and non-saturating losses and an
unbounded critic value for the hinge and Wasserstein losses
(``objectives.gan``). As DCGAN: strided convolutions instead of pooling,
leaky ReLU with slope 0.2, no fully connected hidden layers.

There is no batch normalisation: ``D(x_i)`` must depend on example ``i``
alone, because the gradient penalties differentiate the summed critic
``sum_i D(x_i)`` to get every per-example input gradient at once, and
penalise each example separately (Gulrajani et al. 2017, §4, make the same
point); batch norm would couple the examples of a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from flowjax_gen._checks import check_positive_int


class DCGANDiscriminator(nn.Module):
  """Images ``(B, H, W, C)`` -> logits or critic values ``(B,)``.

  Attributes:
    channels: features of each stride-2 convolution (one per halving).
    kernel_size: side of the convolution kernels.
    negative_slope: slope of the leaky ReLU for negative inputs.
  """

  channels: Sequence[int] = (64, 128)
  kernel_size: int = 4
  negative_slope: float = 0.2

  def __post_init__(self):
    # Checked at construction so that bad settings fail before tracing.
    if not tuple(self.channels):
      raise ValueError(
        f"channels must hold at least one channel count; got {self.channels!r}."
      )
    for width in self.channels:
      check_positive_int("channels", width)
    check_positive_int("kernel_size", self.kernel_size)
    if not 0.0 <= self.negative_slope < 1.0:
      raise ValueError(
        f"negative_slope must be in [0, 1); got {self.negative_slope!r}."
      )
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(
        f"x must have shape (batch, height, width, channels); got {x.shape}."
      )
    h = x
    k = (self.kernel_size, self.kernel_size)
    for width in self.channels:
      h = nn.Conv(width, k, strides=(2, 2), padding="SAME")(h)
      h = nn.leaky_relu(h, self.negative_slope)
    h = h.reshape(h.shape[0], -1)
    return nn.Dense(1)(h)[:, 0]
