"""Convolutions written as matrix multiplications, for CPUs.

A drop-in for ``lax.conv_general_dilated`` (pass it to ``flax.linen.Conv``
as ``conv_general_dilated=``) that computes a stride-1, undilated, ungrouped
NHWC x HWIO convolution with the same arithmetic (the same products and
sums, so the same FLOPs) as one GEMM:

* input side, when ``C_in <= C_out`` (im2col)::

      P[n, o, (i, j, c)] = x_pad[n, o + (i, j), c]
      y[n, o, :]         = P[n, o, :] @ K.reshape(kh * kw * C_in, C_out)

* output side, when ``C_out < C_in`` (col2im)::

      Z[n, p, (i, j, d)] = x[n, p, :] @ K[i, j, :, d]     (one GEMM)
      y[n, o, d]         = sum_{i, j} Z_pad[n, o + (i, j), (i, j, d)]

so the expanded tensor always has ``kh * kw * min(C_in, C_out)`` channels.
Gradients are GEMMs too. On XLA's CPU backend this matters twice over:
its convolution kernels are slow for the few channels of a flow's coupling
networks, and the kernel gradient of a convolution inside a loop body (a
``scan`` over Glow's K steps) runs tens of times slower than the same
convolution outside a loop, while GEMMs run at full speed in both places.

Anything else (strides, dilation, groups, other layouts) goes to
``lax.conv_general_dilated`` unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

import jax
import jax.numpy as jnp
from jax import lax

CONVOLUTIONS = ("auto", "matmul", "xla")

_NHWC = lax.ConvDimensionNumbers(
  lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2)
)


def _is_nhwc_hwio(dimension_numbers) -> bool:
  if dimension_numbers is None:
    return False
  if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
    return tuple(dimension_numbers) == tuple(_NHWC)
  return tuple(dimension_numbers) == ("NHWC", "HWIO", "NHWC")


def _ones(values) -> bool:
  return values is None or all(int(v) == 1 for v in values)


def _explicit_padding(padding, kernel_hw) -> Optional[list[tuple[int, int]]]:
  if isinstance(padding, str):
    if padding.upper() == "VALID":
      return [(0, 0), (0, 0)]
    if padding.upper() == "SAME":  # stride 1: total padding k - 1
      return [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel_hw]
    return None
  pads = [tuple(int(v) for v in pair) for pair in padding]
  if len(pads) != 2 or any(len(p) != 2 or min(p) < 0 for p in pads):
    return None
  return [(low, high) for low, high in pads]


def _windows(x: jax.Array, kernel_hw, out_hw, channels: Optional[int]):
  """The ``kh * kw`` shifted windows of ``x``, concatenated on channels.

  With ``channels`` set, window ``(i, j)`` takes only channel block
  ``(i * kw + j)`` of width ``channels`` (the output-side sum).
  """
  kh, kw = kernel_hw
  ho, wo = out_hw
  parts = []
  for i in range(kh):
    for j in range(kw):
      window = x[:, i : i + ho, j : j + wo, :]
      if channels is not None:
        block = (i * kw + j) * channels
        window = window[..., block : block + channels]
      parts.append(window)
  return parts


# The positions of a GEMM's rows are split into this many blocks, and the
# weight broadcast over them: a batched GEMM whose weight gradient is also
# batched (one block per core) instead of one transposed, tall-skinny
# contraction over every position, which XLA's CPU runtime runs 1.5-6x
# slower (measured inside a scan over Glow's steps). Same products and sums.
_ROW_BLOCKS = 2


def _gemm(x: jax.Array, weight: jax.Array, precision) -> jax.Array:
  """``x @ weight`` over the last axis of ``x`` (module docstring)."""
  rows = x.size // x.shape[-1]
  if rows % _ROW_BLOCKS:
    return jnp.einsum("...k,kd->...d", x, weight, precision=precision)
  blocks = x.reshape(_ROW_BLOCKS, rows // _ROW_BLOCKS, x.shape[-1])
  y = jnp.einsum(
    "bqk,bkd->bqd",
    blocks,
    jnp.broadcast_to(weight, (_ROW_BLOCKS, *weight.shape)),
    precision=precision,
  )
  return y.reshape(x.shape[:-1] + (weight.shape[-1],))


def conv_as_matmul(  # noqa: PLR0917 -- lax.conv_general_dilated's signature
  lhs: jax.Array,
  rhs: jax.Array,
  window_strides: Sequence[int],
  padding: Union[str, Sequence[tuple[int, int]]],
  lhs_dilation: Optional[Sequence[int]] = None,
  rhs_dilation: Optional[Sequence[int]] = None,
  dimension_numbers: Any = None,
  feature_group_count: int = 1,
  precision: Any = None,
  **kwargs,
) -> jax.Array:
  """``lax.conv_general_dilated`` with the 2-D NHWC case done as one GEMM.

  Same signature and result as ``lax.conv_general_dilated`` (module
  docstring); any case other than a stride-1, undilated, ungrouped NHWC x
  HWIO convolution is passed to it unchanged.
  """
  pads = _explicit_padding(padding, rhs.shape[:2]) if rhs.ndim == 4 else None
  if (
    lhs.ndim != 4
    or pads is None
    or feature_group_count != 1
    or kwargs
    or not _is_nhwc_hwio(dimension_numbers)
    or not (
      _ones(window_strides) and _ones(lhs_dilation) and _ones(rhs_dilation)
    )
  ):
    return lax.conv_general_dilated(
      lhs,
      rhs,
      window_strides,
      padding,
      lhs_dilation=lhs_dilation,
      rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count,
      precision=precision,
      **kwargs,
    )
  kh, kw, c_in, c_out = rhs.shape
  if (kh, kw) == (1, 1) and pads == [(0, 0), (0, 0)]:
    return _gemm(lhs, rhs[0, 0], precision)
  (top, bottom), (left, right) = pads
  out_hw = (
    lhs.shape[1] + top + bottom - kh + 1,
    lhs.shape[2] + left + right - kw + 1,
  )
  spatial_pad = ((0, 0), (top, bottom), (left, right), (0, 0))
  if c_in <= c_out:
    patches = jnp.concatenate(
      _windows(jnp.pad(lhs, spatial_pad), (kh, kw), out_hw, None), axis=-1
    )
    return _gemm(patches, rhs.reshape(kh * kw * c_in, c_out), precision)
  taps = _gemm(
    lhs, rhs.transpose(2, 0, 1, 3).reshape(c_in, kh * kw * c_out), precision
  )
  windows = _windows(jnp.pad(taps, spatial_pad), (kh, kw), out_hw, c_out)
  return sum(windows[1:], windows[0])


def conv_function(convolution: str):
  """The ``conv_general_dilated`` to hand ``flax.linen.Conv``.

  Args:
    convolution: ``"matmul"`` (:func:`conv_as_matmul`), ``"xla"``
      (``lax.conv_general_dilated``) or ``"auto"``: matmul on the CPU
      backend, XLA's convolution on GPUs and TPUs (cuDNN and the TPU's
      convolution units are the fast path there).
  """
  if convolution not in CONVOLUTIONS:
    raise ValueError(
      f"convolution must be one of {CONVOLUTIONS}; got {convolution!r}."
    )
  if convolution == "auto":
    convolution = "matmul" if jax.default_backend() == "cpu" else "xla"
  return conv_as_matmul if convolution == "matmul" else None
