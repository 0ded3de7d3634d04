"""The bijector protocol: immutable tuples of pure functions over params.

A bijector is made by a factory that closes over static settings (shapes of
nets, mask kinds, ...) and returns a :class:`Bijector`. Its parameters are a
plain pytree, so they flow through ``jit``, ``grad``, shardings, optax and
orbax untouched (the style of optax's ``GradientTransformation``).

Conventions:
  * **forward = data -> latent**, the normalising direction and the hot path
    for log-likelihood. distrax and TFP use the opposite convention (their
    ``forward`` is latent -> data); our ``forward`` is their ``inverse``.
  * Inputs are batched: ``x`` has shape ``batch + event``; ``log_det`` has the
    batch shape. Images are NHWC.
  * ``log_det`` of ``forward_and_log_det`` is ``log |det d forward(x) / dx|``
    per example; ``inverse_and_log_det`` returns ``log |det d inverse(y) / dy|``
    which is the negative of the forward one at the matching point.
  * ``init(key, x_example, context=None)`` may look at the data (actnorm's
    data-dependent initialisation). It is called with a batch that is
    representative of training data.
  * ``update_stats`` is present only for bijectors that keep running
    statistics (the batch-norm bijector) and for combinators that hold such a
    layer; it returns params with the running statistics moved towards the
    statistics of the given batch. Everywhere else it is ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

Array = jax.Array
Params = Any
Context = Optional[Array]

InitFn = Callable[..., Params]
TransformFn = Callable[..., tuple[Any, Array]]
UpdateStatsFn = Callable[..., Params]


class Bijector(NamedTuple):
  """A bijection as three (optionally four) pure functions.

  Attributes:
    init: ``(key, x_example, context=None) -> params``.
    forward_and_log_det: ``(params, x, context=None) -> (y, log_det)``,
      data -> latent.
    inverse_and_log_det: ``(params, y, context=None) -> (x, log_det)``,
      latent -> data.
    update_stats: ``(params, x, context=None) -> params`` for layers with
      running statistics, else ``None``.
  """

  init: InitFn
  forward_and_log_det: TransformFn
  inverse_and_log_det: TransformFn
  update_stats: Optional[UpdateStatsFn] = None


def no_params_init(key: Array, x: Array, context: Context = None) -> Params:
  """``init`` for bijectors without parameters: an empty dict."""
  del key, x, context
  return {}


def event_sum(values: Array, num_event_dims: int) -> Array:
  """Sums the trailing ``num_event_dims`` axes (per-example log-det terms)."""
  if num_event_dims == 0:
    return values
  return jnp.sum(values, axis=tuple(range(-num_event_dims, 0)))


def zero_log_det(x: Any) -> Array:
  """Zeros of the batch shape of ``x`` (an array or a pytree of arrays)."""
  leaf = jax.tree.leaves(x)[0]
  return jnp.zeros(leaf.shape[:1], leaf.dtype)


def num_positions(x: Array) -> int:
  """Positions per example: every axis but the batch and the channel axes."""
  return math.prod(x.shape[1:-1])


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
  """Raises ``ValueError`` naming ``name`` unless ``value`` is allowed."""
  if value not in allowed:
    raise ValueError(
      f"{name} must be one of {tuple(allowed)!r}; got {value!r}."
    )


def check_positive_int(name: str, value: Any) -> None:
  """Raises ``ValueError`` unless ``value`` is an int >= 1."""
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"{name} must be a positive int; got {value!r}.")


def check_min_rank(name: str, x: Any, min_rank: int, what: str) -> None:
  """Raises ``ValueError`` if ``x`` has fewer than ``min_rank`` dimensions."""
  if jnp.ndim(x) < min_rank:
    raise ValueError(
      f"{name} must have rank >= {min_rank} ({what}); got shape {jnp.shape(x)}."
    )


def check_even(name: str, size: int, what: str) -> None:
  """Raises ``ValueError`` if a size that is split in halves is odd."""
  if size % 2:
    raise ValueError(
      f"{name} must be even to split {what} in halves; got {size}."
    )
