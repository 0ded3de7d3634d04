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
  * The mode of such layers is chosen at call time: a bijector whose
    ``update_stats`` is not ``None`` takes a keyword ``training`` in
    ``forward_and_log_det`` (``True``: batch statistics; ``False``: running
    averages; ``None``: the mode given to its factory). Combinators pass it
    on with ``forward_in_mode``, so one built flow serves training and
    evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

# Re-exported for code written against earlier releases, which imported the
# argument checks and type aliases from here; they now live below every layer.
from flowjax_gen._checks import (  # noqa: F401
  check_choice,
  check_even,
  check_min_rank,
  check_positive_int,
)
from flowjax_gen.typing import Array, Context, Params

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


def forward_in_mode(
  bijector: Bijector,
  params: Params,
  x: Any,
  context: Context = None,
  training: Optional[bool] = None,
) -> tuple[Any, Array]:
  """``bijector.forward_and_log_det``, passing ``training`` on only to
  bijectors with running statistics (the others take no mode)."""
  if training is None or bijector.update_stats is None:
    return bijector.forward_and_log_det(params, x, context)
  return bijector.forward_and_log_det(params, x, context, training=training)


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


def as_inputs(params: Params) -> Params:
  """``params``, computed: an ``init`` that runs a member's forward on the
  params it has just made passes them through this first.

  Inside one compiled program (a jitted ``init``, a ``scan`` body) freshly
  initialised params are compile-time constants: a zero-initialised last
  layer is ``broadcast(0)``. XLA's CPU backend (jaxlib 0.10) miscompiles a
  fused dot whose operand is such a broadcast constant and whose other
  operand is computed in the same fusion (a layer norm, a normalised
  activation): it returns garbage of order 1e15-1e29 instead of the
  product. ``lax.optimization_barrier`` keeps the params opaque, so they
  enter the dot as buffers, as they do in a training step; it computes
  nothing.
  """
  return jax.lax.optimization_barrier(params)
