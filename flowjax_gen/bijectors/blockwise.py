"""Different bijectors on different slices of the last axis of the event.

``concatenate(bijectors, sizes)`` cuts the last axis into consecutive
slices of the given sizes, ``stack(bijectors)`` into single entries
(dropping the axis for each member, as ``x[..., i]``); member ``i`` maps
slice ``i``::

    forward:  y = concat_i(f_i(x_i))      inverse:  x = concat_i(f_i^-1(y_i))
    log_det = sum_i log_det_i

The Jacobian is block diagonal, so the log-dets add. Members must keep
their slice's shape (elementwise maps, couplings, ...). Params are a tuple,
one per member; context reaches every member.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from flowjax_gen._checks import check_positive_int
from flowjax_gen.bijectors.base import Bijector, zero_log_det
from flowjax_gen.bijectors.checks import checked
from flowjax_gen.typing import Context


def _check_members(name: str, bijectors) -> tuple[Bijector, ...]:
  bijectors = tuple(bijectors)
  if not bijectors or not all(isinstance(b, Bijector) for b in bijectors):
    raise ValueError(
      f"{name} needs a non-empty sequence of Bijectors; got "
      f"{[type(b).__name__ for b in bijectors]}."
    )
  if any(b.update_stats is not None for b in bijectors):
    raise ValueError(f"{name} does not hold layers with running statistics.")
  return bijectors


def _blockwise(bijectors, split, merge, size: int) -> Bijector:
  def pieces(x):
    if x.shape[-1] != size:
      raise ValueError(
        f"expected a last axis of size {size} (the members' slices); got "
        f"shape {x.shape}."
      )
    return split(x)

  def init(key, x, context: Context = None):
    keys = jax.random.split(key, len(bijectors))
    return tuple(
      b.init(k, piece, context)
      for b, k, piece in zip(bijectors, keys, pieces(x), strict=True)
    )

  def apply(params, x, context, inverse):
    outs, total = [], zero_log_det(x)
    for b, p, piece in zip(bijectors, params, pieces(x), strict=True):
      fn = b.inverse_and_log_det if inverse else b.forward_and_log_det
      out, log_det = fn(p, piece, context)
      outs.append(out)
      total = total + log_det
    return merge(outs), total

  def forward(params, x, context: Context = None):
    return apply(params, x, context, inverse=False)

  def inverse(params, y, context: Context = None):
    return apply(params, y, context, inverse=True)

  return Bijector(init, forward, inverse)


@checked
def concatenate(
  bijectors: Sequence[Bijector], sizes: Sequence[int]
) -> Bijector:
  """Member ``i`` maps the ``i``-th slice (``sizes[i]`` entries) of the last
  axis; see the module docstring.

  Raises:
    ValueError: if the members are not Bijectors, ``sizes`` are not
      positive ints or their counts differ; when called on a last axis of a
      size other than ``sum(sizes)``.
  """
  bijectors = _check_members("concatenate", bijectors)
  sizes = tuple(sizes)
  for size in sizes:
    check_positive_int("each of sizes", size)
  if len(sizes) != len(bijectors):
    raise ValueError(
      f"sizes must give one size per bijector ({len(bijectors)}); got {sizes}."
    )
  cuts = list(np.cumsum(sizes)[:-1])
  return _blockwise(
    bijectors,
    lambda x: jnp.split(x, cuts, axis=-1),
    lambda outs: jnp.concatenate(outs, axis=-1),
    sum(sizes),
  )


@checked
def stack(bijectors: Sequence[Bijector]) -> Bijector:
  """Member ``i`` maps entry ``x[..., i]`` (the last axis is dropped for it,
  so a vector event gives each member a scalar event); see the module
  docstring.

  Raises:
    ValueError: if the members are not Bijectors; when called on a last
      axis whose size is not the number of members.
  """
  bijectors = _check_members("stack", bijectors)
  return _blockwise(
    bijectors,
    lambda x: [x[..., i] for i in range(len(bijectors))],
    lambda outs: jnp.stack(outs, axis=-1),
    len(bijectors),
  )
