"""Conditioner networks for coupling layers (Flax linen bodies only).

Every conditioner maps the untouched part of the input (and an optional
context) to ``out_features`` values per position, and its last layer is
zero-initialised so that a coupling starts close to the identity (exactly the
identity for additive and ``exp_tanh`` couplings).

A coupling builds its conditioner by calling a factory with the number of
outputs it needs, e.g. ``functools.partial(GlowConvNet, hidden_channels=512)``;
every class here takes ``out_features`` as its first field for that reason.

Context (a class one-hot or any vector per example) is concatenated to the
input: to the features of an MLP, or broadcast over the spatial grid and
concatenated to the channels of a conv net. A context with the input's own
spatial grid (a feature map ``(B, H, W, F)``, e.g. ``ConvFeatures`` of the
image a dequantiser conditions on) is concatenated to the channels as it is.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowjax_gen.nets.convolution import conv_function


def with_context(x: jax.Array, context: Optional[jax.Array]) -> jax.Array:
  """Concatenates a per-example context to the last axis of ``x``: a vector
  broadcast over ``x``'s positions, or a feature map on ``x``'s grid."""
  if context is None:
    return x
  if context.ndim == x.ndim and context.shape[:-1] == x.shape[:-1]:
    return jnp.concatenate([x, context.astype(x.dtype)], axis=-1)
  context = context.reshape(context.shape[0], -1).astype(x.dtype)
  spatial = (1,) * (x.ndim - 2)
  context = jnp.broadcast_to(
    context.reshape((context.shape[0],) + spatial + (context.shape[-1],)),
    x.shape[:-1] + (context.shape[-1],),
  )
  return jnp.concatenate([x, context], axis=-1)


class MLP(nn.Module):
  """ReLU MLP; NICE's conditioner is 5 hidden layers of 1000 units (§5.1)."""

  out_features: int
  hidden_features: Sequence[int] = (1000,) * 5

  @nn.compact
  def __call__(self, x: jax.Array, context: Optional[jax.Array] = None):
    h = with_context(x, context)
    for width in self.hidden_features:
      h = nn.relu(nn.Dense(width)(h))
    return nn.Dense(self.out_features, kernel_init=nn.initializers.zeros)(h)


class ZeroConv(nn.Module):
  """Glow's ``Conv2dZeros``: zero-initialised conv times ``exp(3 * logs)``.

  The learned per-channel ``logs`` (scaled by ``logscale_factor``) lets the
  output grow faster than the conv weights alone early in training. On its
  own it is Glow's split-prior network (mean and log-std of the factored-out
  half from the half that stays).
  """

  out_features: int
  kernel_size: int = 3
  logscale_factor: float = 3.0
  convolution: str = "auto"
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, context: Optional[jax.Array] = None):
    k = (self.kernel_size, self.kernel_size)
    h = nn.Conv(
      self.out_features,
      k,
      padding="SAME",
      kernel_init=nn.initializers.zeros,
      conv_general_dilated=conv_function(self.convolution),
      param_dtype=self.param_dtype,
    )(with_context(x, context))
    # Flax's layers default to float32 params; ``zeros`` alone would follow
    # the x64 flag and make this one leaf float64.
    logs = self.param(
      "logs", nn.initializers.zeros, (self.out_features,), self.param_dtype
    )
    return h * jnp.exp(logs * self.logscale_factor).astype(h.dtype)


class GlowConvNet(nn.Module):
  """Glow's coupling network: 3x3 conv -> ReLU -> 1x1 conv -> ReLU -> ZeroConv.

  Kingma & Dhariwal (2018), §3.3; 512 hidden channels in the paper.
  ``convolution`` chooses how the convolutions run (``nets.convolution``):
  by default as GEMMs on CPU, where they are faster and where XLA's
  convolution gradients are slow inside the ``scan`` over Glow's steps, and
  as XLA convolutions on GPUs and TPUs. The params are the same either way.
  """

  out_features: int
  hidden_channels: int = 512
  convolution: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, context: Optional[jax.Array] = None):
    conv = conv_function(self.convolution)
    h = with_context(x, context)
    h = nn.Conv(
      self.hidden_channels, (3, 3), padding="SAME", conv_general_dilated=conv
    )(h)
    h = nn.Conv(self.hidden_channels, (1, 1), conv_general_dilated=conv)(
      nn.relu(h)
    )
    return ZeroConv(self.out_features, convolution=self.convolution)(nn.relu(h))


class ResidualBlock(nn.Module):
  """Pre-activation residual block ``x + conv(relu(conv(relu(x))))``."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = nn.Conv(self.features, (3, 3), padding="SAME")(nn.relu(x))
    h = nn.Conv(self.features, (3, 3), padding="SAME")(nn.relu(h))
    return x + h


class ResNet(nn.Module):
  """RealNVP's ResNet conditioner (Dinh et al. 2017, §4.1).

  The paper uses 8 residual blocks of 64 features on CIFAR-10 (4 on MNIST)
  with batch normalisation and weight normalisation inside; this body keeps
  the residual structure without normalisation, so its outputs depend on each
  example alone and log-dets stay exact per example.
  """

  out_features: int
  num_blocks: int = 8
  features: int = 64

  @nn.compact
  def __call__(self, x: jax.Array, context: Optional[jax.Array] = None):
    h = nn.Conv(self.features, (3, 3), padding="SAME")(with_context(x, context))
    for _ in range(self.num_blocks):
      h = ResidualBlock(self.features)(h)
    h = nn.relu(h)
    return nn.Conv(
      self.out_features,
      (3, 3),
      padding="SAME",
      kernel_init=nn.initializers.zeros,
    )(h)


class ConvFeatures(nn.Module):
  """Feature map of an image on its own grid: a 3x3 conv, residual blocks
  ``h + conv(relu(conv(relu(h))))``, ReLU and a 3x3 conv to
  ``out_features`` channels.

  The conditioning network of Flow++'s variational dequantiser (Ho et al.
  2019, §3.1): every coupling of ``q(u | x)`` reads these features of ``x``
  as its context. Unlike the conditioners' last layers, the output layer is
  not zero-initialised: the features must carry ``x`` from the first step.
  ``convolution`` as ``GlowConvNet``'s.
  """

  out_features: int
  features: int = 32
  num_blocks: int = 1
  convolution: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = functools.partial(
      nn.Conv,
      kernel_size=(3, 3),
      padding="SAME",
      conv_general_dilated=conv_function(self.convolution),
    )
    h = conv(self.features)(x)
    for _ in range(self.num_blocks):
      h = h + conv(self.features)(nn.relu(conv(self.features)(nn.relu(h))))
    return conv(self.out_features)(nn.relu(h))
