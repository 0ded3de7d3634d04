"""Decoders: codes ``(B, L)`` -> raw images ``(B, H, W, C_out)``.

Outputs are unconstrained: the model that owns the decoder turns them into
pixels or into the parameters of a per-pixel likelihood (a VAE asks for
``C_out = C * params_per_pixel``: Bernoulli logits, or a mean and a log-scale
per channel). A model builds its decoder by calling a factory with the output
shape it needs; every class here takes ``output_shape`` as its first field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax


class MLPDecoder(nn.Module):
  """ReLU MLP, linear output reshaped to ``output_shape``.

  The default widths (256, 512) mirror ``MLPEncoder``'s.
  """

  output_shape: tuple[int, int, int]
  hidden_features: Sequence[int] = (256, 512)

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    h = z
    for width in self.hidden_features:
      h = nn.relu(nn.Dense(width)(h))
    h = nn.Dense(math.prod(self.output_shape))(h)
    return h.reshape((z.shape[0], *self.output_shape))


class ConvDecoder(nn.Module):
  """ReLU dense layers, reshape, stride-2 transposed convolutions, 3x3 conv.

  ``z`` -> Dense(hidden) -> Dense to a ``(H / f, W / f, channels[0])`` grid
  with ``f = 2 ** len(channels)`` -> one stride-2 4x4 transposed convolution
  per entry of ``channels`` (ReLU after each) -> 3x3 convolution to
  ``C_out``. The kernel size is a multiple of the stride so every output
  pixel gets the same number of contributions (no checkerboard pattern from
  uneven overlap, Odena et al. 2016).

  Raises:
    ValueError: if ``H`` or ``W`` is not divisible by ``f`` (4 by default).
  """

  output_shape: tuple[int, int, int]
  channels: Sequence[int] = (64, 32)
  hidden_features: int = 256

  def __post_init__(self):
    # Checked at construction, so a model factory fails before any init.
    factor = 2 ** len(self.channels)
    height, width = self.output_shape[0], self.output_shape[1]
    if height % factor or width % factor:
      raise ValueError(
        f"ConvDecoder output_shape height and width must be divisible by "
        f"2**len(channels) = {factor}; got output_shape "
        f"{tuple(self.output_shape)!r}."
      )
    super().__post_init__()

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    height, width, out_channels = self.output_shape
    factor = 2 ** len(self.channels)
    grid = (height // factor, width // factor, self.channels[0])
    h = nn.relu(nn.Dense(self.hidden_features)(z))
    h = nn.relu(nn.Dense(math.prod(grid))(h))
    h = h.reshape((z.shape[0], *grid))
    for channels in self.channels:
      h = nn.ConvTranspose(channels, (4, 4), strides=(2, 2), padding="SAME")(h)
      h = nn.relu(h)
    return nn.Conv(out_channels, (3, 3), padding="SAME")(h)
