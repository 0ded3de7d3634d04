"""DCGAN-style generator (Radford, Metz & Chintala 2015), a Flax linen body.

The generator maps a latent batch ``z`` of shape ``(B, L)`` to images of
shape ``(B, H, W, C)`` in ``[-1, 1]``::

    h_0 = relu(norm(reshape(Dense(z))))       # (H/4, W/4, channels[0])
    h_1 = relu(norm(ConvTranspose_2(h_0)))    # (H/2, W/2, channels[1])
    h_2 = relu(norm(ConvTranspose_2(h_1)))    # (H, W, channels[1])
    x   = tanh(Conv_3x3(h_2))                 # (H, W, C)

(``ConvTranspose_2``: transposed convolution with stride 2)

as DCGAN's guidelines: no pooling (fractionally-strided convolutions do the
up-sampling), ReLU inside, ``tanh`` at the output to match data scaled to
``[-1, 1]``. Two up-samplings by 2 need ``H`` and ``W`` divisible by 4, which
covers 8x8 digits, 28x28 MNIST and 32x32 CIFAR-10.

``norm`` is a layer norm over the channels of each pixel of each example
instead of DCGAN's batch norm: it keeps the pre-activations at unit scale
as batch norm does (and as ProGAN's pixel-wise feature normalisation does,
Karras et al. 2018), but its output depends on one example alone and it has
no running statistics, so the parameters stay a plain pytree with no mutable
collections, and train and evaluation modes coincide.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import flax.linen as nn
import jax

from flowjax_gen._checks import check_positive_int


def check_image_shape(name: str, shape: Sequence[int], factor: int) -> None:
  """Raises ``ValueError`` unless ``shape`` is ``(H, W, C)`` of positive ints
  with ``H`` and ``W`` divisible by ``factor``."""
  shape = tuple(shape)
  if len(shape) != 3 or not all(
    isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1
    for d in shape
  ):
    raise ValueError(
      f"{name} must be (height, width, channels) of positive ints; got "
      f"{shape!r}."
    )
  if shape[0] % factor or shape[1] % factor:
    raise ValueError(
      f"{name}: height and width must be divisible by {factor}; got {shape}."
    )


def check_channels(name: str, channels: Sequence[int], count: int) -> None:
  """Raises ``ValueError`` unless ``channels`` holds ``count`` positive ints."""
  channels = tuple(channels)
  if len(channels) != count:
    raise ValueError(
      f"{name} must hold {count} channel counts; got {channels!r}."
    )
  for width in channels:
    check_positive_int(name, width)


class DCGANGenerator(nn.Module):
  """Latents ``(B, L)`` -> images ``(B, H, W, C)`` in ``[-1, 1]``.

  Attributes:
    output_shape: ``(H, W, C)`` with ``H`` and ``W`` divisible by 4.
    channels: features at resolution ``H/4`` and at ``H/2`` and ``H``.
    kernel_size: side of the transposed convolutions; 4 (a multiple of the
      stride) gives every output pixel the same number of contributions,
      which avoids checkerboard artefacts (Odena et al. 2016).
  """

  output_shape: tuple[int, int, int]
  channels: Sequence[int] = (128, 64)
  kernel_size: int = 4

  def __post_init__(self):
    # Checked at construction so that a bad shape fails before tracing.
    check_image_shape("output_shape", self.output_shape, 4)
    check_channels("channels", self.channels, 2)
    check_positive_int("kernel_size", self.kernel_size)
    super().__post_init__()

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    if z.ndim != 2:
      raise ValueError(f"z must have shape (batch, latent); got {z.shape}.")
    height, width, out_channels = self.output_shape
    first, rest = self.channels
    h = nn.Dense(height // 4 * width // 4 * first)(z)
    h = h.reshape(z.shape[0], height // 4, width // 4, first)
    h = nn.relu(nn.LayerNorm()(h))
    k = (self.kernel_size, self.kernel_size)
    for _ in range(2):
      h = nn.ConvTranspose(rest, k, strides=(2, 2), padding="SAME")(h)
      h = nn.relu(nn.LayerNorm()(h))
    return nn.tanh(nn.Conv(out_channels, (3, 3), padding="SAME")(h))
