"""MADE: a masked autoencoder for distribution estimation (Germain et al.
2015), the conditioner of masked autoregressive layers (Flax linen body).

Input ``i`` (0-based) of ``D`` gets degree ``i + 1``; hidden unit ``k`` of a
layer of width ``H`` gets degree ``k mod (D - 1) + 1`` (every degree in
``1..D-1`` used in turn; 0 when ``D = 1``). A weight from a unit of degree
``m`` to a hidden unit of degree ``m'`` exists iff ``m' >= m``, and to an
output of degree ``d`` iff ``d > m``. So output ``p * D + i`` (parameter
``p`` of entry ``i``, parameter-major as ``bijectors.transformers`` reads
it) depends on ``x_{<i}`` only: output ``i = 0`` depends on no input.

The context (one vector per example) has degree 0 and reaches every hidden
unit. With a context, hidden degrees cycle through ``0..D-1`` instead: the
units of degree 0 read the context alone, and they are what lets the first
entry's parameters (output degree 1) depend on the context; without them
``x_0`` would be transformed the same way for every context.

The last layer is zero-initialised, so an autoregressive layer starts as
the identity (affine ``exp_tanh``/``exp`` scales and splines).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def input_degrees(num_inputs: int) -> np.ndarray:
  """Degrees ``1..D`` of the inputs, in their natural order."""
  return np.arange(1, num_inputs + 1)


def hidden_degrees(
  num_inputs: int, width: int, *, context: bool = False
) -> np.ndarray:
  """Degrees of a hidden layer: ``1..D-1`` cycled (all 0 when ``D = 1``);
  with a ``context``, ``0..D-1`` cycled (degree 0 reads the context only)."""
  if context:
    return np.arange(width) % num_inputs
  if num_inputs == 1:
    return np.zeros(width, np.int64)
  return np.arange(width) % (num_inputs - 1) + 1


class MaskedDense(nn.Module):
  """``y = x @ (W * mask) + b``; ``mask`` is a fixed 0/1 ``(in, out)`` array.

  Masked-out weights still exist as params (so the pytree is a plain dense
  layer's) but get zero gradient and never reach the output.
  """

  features: int
  mask: np.ndarray
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param(
      "kernel", self.kernel_init, (x.shape[-1], self.features), x.dtype
    )
    bias = self.param("bias", nn.initializers.zeros, (self.features,), x.dtype)
    return x @ (kernel * jnp.asarray(self.mask, x.dtype)) + bias


class MADE(nn.Module):
  """Masked MLP mapping ``x`` (``(batch, D)``) to ``num_params * D`` outputs.

  Output ``p * D + i`` depends on ``x_{<i}`` (and the context) only.

  Attributes:
    num_params: parameters per input entry (2 for affine, ``3K - 1`` for a
      ``K``-bin spline); first field, so ``functools.partial(MADE, ...)``
      is the factory ``masked_autoregressive`` calls with it.
    hidden_features: widths of the ReLU hidden layers (any, >= 1 each).
  """

  num_params: int
  hidden_features: Sequence[int] = (64, 64)

  @nn.compact
  def __call__(self, x: jax.Array, context: Optional[jax.Array] = None):
    num_inputs = x.shape[-1]
    degrees = input_degrees(num_inputs)
    h = x
    if context is not None:
      context = context.reshape(context.shape[0], -1).astype(x.dtype)
      h = jnp.concatenate([x, context], axis=-1)
      # Context entries have degree 0: every hidden unit may read them.
      degrees = np.concatenate([degrees, np.zeros(context.shape[-1], int)])
    for width in self.hidden_features:
      hidden = hidden_degrees(num_inputs, width, context=context is not None)
      mask = hidden[None, :] >= degrees[:, None]
      h = nn.relu(MaskedDense(width, mask)(h))
      degrees = hidden
    outputs = np.tile(input_degrees(num_inputs), self.num_params)
    mask = outputs[None, :] > degrees[:, None]
    return MaskedDense(
      self.num_params * num_inputs, mask, kernel_init=nn.initializers.zeros
    )(h)
