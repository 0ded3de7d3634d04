"""Encoders: images ``(B, H, W, C)`` -> feature vectors ``(B, out_features)``.

An auto-encoder reads the output as a code; a VAE reads it as the mean and
log-standard deviation of a diagonal Gaussian posterior ``q(z | x)`` (so it
asks for ``out_features = 2 * latent_size``). A model builds its encoder by
calling a factory with the number of outputs it needs, e.g.
``functools.partial(ConvEncoder, channels=(32, 64))``; every class here takes
``out_features`` as its first field for that reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax


def flatten(x: jax.Array) -> jax.Array:
  """``(B, ...) -> (B, prod(...))``."""
  return x.reshape(x.shape[0], -1)


class MLPEncoder(nn.Module):
  """Flatten, ReLU MLP, linear output.

  The default widths (512, 256) are the usual fully connected MNIST encoder
  size (Kingma & Welling 2014 used one hidden layer of 500).
  """

  out_features: int
  hidden_features: Sequence[int] = (512, 256)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = flatten(x)
    for width in self.hidden_features:
      h = nn.relu(nn.Dense(width)(h))
    return nn.Dense(self.out_features)(h)


class ConvEncoder(nn.Module):
  """Stride-2 3x3 convolutions (ReLU), flatten, ReLU dense, linear output.

  Each convolution halves height and width (``SAME`` padding rounds up), so
  any image size works: 8x8 -> 4x4 -> 2x2, 28x28 -> 14x14 -> 7x7, 32x32 ->
  16x16 -> 8x8 with the default two layers.
  """

  out_features: int
  channels: Sequence[int] = (32, 64)
  hidden_features: int = 256

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = x
    for width in self.channels:
      h = nn.relu(nn.Conv(width, (3, 3), strides=(2, 2), padding="SAME")(h))
    h = nn.relu(nn.Dense(self.hidden_features)(flatten(h)))
    return nn.Dense(self.out_features)(h)
