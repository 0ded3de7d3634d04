"""Flow++'s coupling conditioner: gated residual convolutions and multi-head
self-attention over positions (Ho et al. 2019, §3.3).

One block of ``GatedAttentionNet`` is::

    h <- LayerNorm(h + gate(conv_k(concat_elu(conv_3(concat_elu(h))))))
    h <- LayerNorm(h + gate(dense(attention(h + e))))      (if attention)

where ``concat_elu(h) = [elu(h), elu(-h)]`` (both signs, so no information
is cut off), ``gate([a, b]) = a * sigmoid(b)`` halves the channels of a
``2F``-channel output, ``e`` is a learned position embedding and
``attention`` is multi-head scaled dot-product self-attention over all
``H x W`` positions of an example. ``conv_3`` is a 3x3 convolution to
``F`` channels and ``conv_k`` a ``k x k`` one to ``2F``: Flow++'s couplings
use ``k = 1`` (a "network in network" layer, its ``use_nin=True``), its
dequantiser's context net ``k = 3`` (9 times that layer's parameters and
FLOPs). Attention is::

    softmax(Q K^T / sqrt(F / heads)) V,   Q, K, V = dense(h + e).

Attention gives every output position the whole grid as its receptive
field; the convolutions alone see a ``((k + 1) B + 5)``-pixel square after
``B`` blocks (the input and output convolutions included). The layer norms act
over the channels of one position, so every output depends on its own
example alone and the coupling's log-det stays exact per example. Each
residual branch's last layer starts at a tenth of the default initial
scale (as in Flow++'s code), so the blocks start close to the identity;
the net's own last layer is zero, as every conditioner's
(``nets.conditioners``), so a coupling starts as the identity.

Flow++ regularises its CIFAR-10 model with dropout 0.2; the bijector
protocol passes no random key to ``forward``, so this net has no dropout.
"""

from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowjax_gen._checks import is_int
from flowjax_gen.nets.conditioners import with_context
from flowjax_gen.nets.convolution import conv_function

# Flow++ starts the last layer of each residual branch at 0.1x its default
# scale, so a block starts near the identity but still learns from step 1.
BRANCH_INIT_SCALE = 0.1


def concat_elu(h: jax.Array) -> jax.Array:
  """``[elu(h), elu(-h)]`` on the last axis: twice the channels."""
  return nn.elu(jnp.concatenate([h, -h], axis=-1))


def gate(h: jax.Array) -> jax.Array:
  """``a * sigmoid(b)`` for ``h = [a, b]`` split on the last axis."""
  a, b = jnp.split(h, 2, axis=-1)
  return a * nn.sigmoid(b)


def _branch_init():
  return nn.initializers.variance_scaling(
    BRANCH_INIT_SCALE, "fan_in", "truncated_normal"
  )


def check_gate_kernel_size(size) -> int:
  """``size`` if it is an odd positive int (a centred kernel), else a
  ``ValueError``."""
  if not is_int(size) or size < 1 or size % 2 == 0:
    raise ValueError(
      "gate_kernel_size must be an odd positive int (1: Flow++'s couplings, "
      f"3: its dequantiser's context net); got {size!r}."
    )
  return size


class GatedConv(nn.Module):
  """``h + gate(conv_k(concat_elu(conv_3(concat_elu(h)))))``: a 3x3
  convolution to ``F`` channels, then a ``k x k`` one to ``2F``
  (``k = gate_kernel_size``, Flow++'s couplings 1), the gate halving back
  to ``F``."""

  convolution: str = "auto"
  gate_kernel_size: int = 1

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    features = h.shape[-1]
    conv = conv_function(self.convolution)
    c = nn.Conv(features, (3, 3), padding="SAME", conv_general_dilated=conv)(
      concat_elu(h)
    )
    k = check_gate_kernel_size(self.gate_kernel_size)
    c = nn.Conv(
      2 * features,
      (k, k),
      padding="SAME",
      kernel_init=_branch_init(),
      conv_general_dilated=conv,
    )(concat_elu(c))
    return h + gate(c)


class GatedAttention(nn.Module):
  """``h + gate(dense(attention(h)))``: multi-head self-attention over the
  positions of each example (``h`` is ``(B, ..., F)``; the position
  embedding is added by the caller).

  Logits and softmax are computed in at least float32 whatever the compute
  dtype: a bfloat16 softmax over hundreds of positions loses the small
  weights.
  """

  num_heads: int = 4

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    batch, features = h.shape[0], h.shape[-1]
    if features % self.num_heads:
      raise ValueError(
        f"attention splits {features} channels over {self.num_heads} heads; "
        "choose a number of heads that divides the conditioner's width."
      )
    head_dim = features // self.num_heads
    flat = h.reshape(batch, -1, features)
    qkv = nn.Dense(3 * features)(flat)
    q, k, v = (
      part.reshape(batch, -1, self.num_heads, head_dim)
      for part in jnp.split(qkv, 3, axis=-1)
    )
    # At least float32: bfloat16 inputs are promoted, float64 ones kept.
    logits_dtype = jnp.promote_types(q.dtype, jnp.float32)
    logits = jnp.einsum(
      "bqhd,bkhd->bhqk", q, k, preferred_element_type=logits_dtype
    ) / jnp.sqrt(jnp.asarray(head_dim, logits_dtype))
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    attended = jnp.einsum("bhqk,bkhd->bqhd", weights, v)
    attended = attended.reshape(batch, -1, features)
    out = nn.Dense(2 * features, kernel_init=_branch_init())(attended)
    return h + gate(out).reshape(h.shape)


class GatedAttentionNet(nn.Module):
  """Flow++'s conditioner: a 3x3 conv to ``features`` channels,
  ``num_blocks`` blocks of gated convolution and (``attention``) gated
  self-attention, each followed by layer norm, and a zero-initialised 3x3
  conv to ``out_features``.

  Flow++ used 10 blocks of 96 channels and 4 heads on CIFAR-10. Takes
  images ``(B, H, W, C)``; context as every conditioner's
  (``nets.conditioners.with_context``). ``convolution`` as
  ``GlowConvNet``'s (GEMMs on CPU, XLA convolutions on accelerators).
  ``gate_kernel_size``: the second convolution of each gated block, 1 as
  in Flow++'s couplings (see ``GatedConv``).
  """

  out_features: int
  features: int = 96
  num_blocks: int = 10
  attention: bool = True
  num_heads: int = 4
  convolution: str = "auto"
  gate_kernel_size: int = 1

  @nn.compact
  def __call__(self, x: jax.Array, context: Optional[jax.Array] = None):
    if x.ndim != 4:
      raise ValueError(
        f"GatedAttentionNet takes images (B, H, W, C); got shape {x.shape}."
      )
    conv = conv_function(self.convolution)
    h = nn.Conv(
      self.features, (3, 3), padding="SAME", conv_general_dilated=conv
    )(with_context(x, context))
    if self.attention:
      embedding = self.param(
        "position_embedding",
        nn.initializers.normal(0.01),
        h.shape[1:],
        jnp.float32,
      )
    for _ in range(self.num_blocks):
      block = GatedConv(self.convolution, self.gate_kernel_size)
      h = nn.LayerNorm()(block(h))
      if self.attention:
        h = nn.LayerNorm()(
          GatedAttention(self.num_heads)(h + embedding.astype(h.dtype))
        )
    return nn.Conv(
      self.out_features,
      (3, 3),
      padding="SAME",
      kernel_init=nn.initializers.zeros,
      conv_general_dilated=conv,
    )(h)
