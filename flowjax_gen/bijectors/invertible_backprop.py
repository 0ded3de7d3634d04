"""Backpropagation through a scanned chain of bijections without storing
activations (the memory-efficient gradients of reversible networks).

A scan of ``K`` steps with stacked params ``p_0, ..., p_{K-1}`` and a
context ``c`` shared by every step computes::

    x_0 = x,   x_{k+1} = f(p_k, x_k; c),   y = x_K,
    L = sum_k l(p_k, x_k; c)          (l: the step's log-det)

Plain reverse-mode autodiff stores every ``x_k`` and every step's internal
activations for the backward pass, so memory grows linearly with ``K``.
Because each ``f(p_k, . ; c)`` is a bijection, ``x_k`` can instead be
recomputed from ``x_{k+1}`` on the way back (Gomez et al. 2017, "The
Reversible Residual Network"; Jacobsen et al. 2018, i-RevNet; Kingma &
Dhariwal 2018, Glow's memory-efficient gradients)::

    x_k = f^{-1}(p_k, x_{k+1}; c)

Given the cotangents ``ybar = dJ/dy`` and ``Lbar = dJ/dL`` of a loss
``J(y, L)``, the backward pass runs ``k = K-1, ..., 0`` starting from
``xbar_K = ybar``, and each step is the VJP of that one step at the
reconstructed input::

    (pbar_k, xbar_k, cbar_k) = vjp[(p, x, c) -> (f, l)](p_k, x_k, c)
                                   applied to (xbar_{k+1}, Lbar)
    cbar = sum_k cbar_k

``Lbar`` is the same for every step because ``L`` is a plain sum. The
residuals kept from the forward pass are the params (an input anyway), the
output ``y`` and the context, so activation memory is O(1) in ``K``; the
price is one extra inverse and one forward recomputation per step. The
gradients are exact up to the round-off of the reconstruction, which grows
with ``K`` in low precision and with ill-conditioned steps.

Requirements on the step: ``reconstruct(p, transform(p, x, c)[0], c)`` must
give back ``x`` for each example on its own (a true bijection of its input
at fixed params). A batch-norm bijector in training mode is not one (its
forward uses the batch's statistics, its inverse the running averages).
Forward-mode differentiation (``jax.jvp``, ``jax.jacfwd``) of the result is
not available (a ``jax.custom_vjp`` rule defines reverse mode only).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from flowjax_gen.typing import Context, Params

Transform = Callable[..., tuple[Any, jax.Array]]


def _differentiable(leaf: Any) -> bool:
  return jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)


def _float0_zeros(leaf: Any) -> np.ndarray:
  # The cotangent type JAX requires for integer and boolean inputs.
  return np.zeros(jnp.shape(leaf), dtype=jax.dtypes.float0)


class _Split:
  """Splits a pytree's leaves into differentiable (float) ones and the rest.

  ``jax.vjp`` is taken with respect to the float leaves only, so integer
  leaves never enter the backward scan (where their ``float0`` cotangents
  could not be stacked); their cotangents are added back as ``float0``
  zeros at the end.
  """

  def __init__(self, tree: Any):
    leaves, self.treedef = jax.tree.flatten(tree)
    self.mask = [_differentiable(leaf) for leaf in leaves]

  def split(self, tree: Any) -> tuple[list, list]:
    leaves = self.treedef.flatten_up_to(tree)
    diff = [leaf for leaf, m in zip(leaves, self.mask, strict=True) if m]
    rest = [leaf for leaf, m in zip(leaves, self.mask, strict=True) if not m]
    return diff, rest

  def merge(self, diff: list, rest: list) -> Any:
    diff_leaves, rest_leaves = iter(diff), iter(rest)
    leaves = [next(diff_leaves) if m else next(rest_leaves) for m in self.mask]
    return jax.tree.unflatten(self.treedef, leaves)


class _Steps(NamedTuple):
  """The static side of a scan (hashable: a ``nondiff_argnums`` entry)."""

  transform: Transform
  reconstruct: Transform
  reverse: bool
  length: Optional[int]
  # The plain forward scan, ``(transform, params, x, context, reverse=,
  # length=) -> (x_K, sum_k l_k)``, passed in by ``compose.scan`` (which
  # owns it) so that this module stays below the compositions.
  plain_scan: Callable[..., tuple[Any, jax.Array]]


def _run_plain(steps: _Steps, params, x, context):
  return steps.plain_scan(
    steps.transform,
    params,
    x,
    context,
    reverse=steps.reverse,
    length=steps.length,
  )


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _scan(steps: _Steps, params, x, context):
  return _run_plain(steps, params, x, context)


def _scan_fwd(steps: _Steps, params, x, context):
  y, total = _run_plain(steps, params, x, context)
  # No per-step activation is kept: the backward pass rebuilds them from y.
  return (y, total), (params, y, context)


def _scan_bwd(steps: _Steps, residuals, cotangents):
  params, y, context = residuals
  y_bar, total_bar = cotangents
  p_split = _Split(params)
  c_split = _Split(context)
  c_diff, c_rest = c_split.split(context)

  def body(carry, p):
    x_next, x_next_bar, c_bar = carry
    x, _ = steps.reconstruct(p, x_next, context)
    p_diff, p_rest = p_split.split(p)

    def step(p_diff, x, c_diff):
      return steps.transform(
        p_split.merge(p_diff, p_rest), x, c_split.merge(c_diff, c_rest)
      )

    (_, log_det), step_vjp = jax.vjp(step, p_diff, x, c_diff)
    # d total / d log_det_k = 1 for every step: each gets the same cotangent.
    log_det_bar = jnp.broadcast_to(total_bar, log_det.shape).astype(
      log_det.dtype
    )
    p_bar, x_bar, c_bar_k = step_vjp((x_next_bar, log_det_bar))
    c_bar = [a + b for a, b in zip(c_bar, c_bar_k, strict=True)]
    return (x, x_bar, c_bar), p_bar

  start = (y, y_bar, [jnp.zeros_like(leaf) for leaf in c_diff])
  # The backward pass visits the steps in the opposite order to the forward.
  (_, x_bar, c_bar), p_bar = jax.lax.scan(
    body, start, params, length=steps.length, reverse=not steps.reverse
  )
  _, p_rest = p_split.split(params)
  params_bar = p_split.merge(p_bar, [_float0_zeros(leaf) for leaf in p_rest])
  context_bar = c_split.merge(c_bar, [_float0_zeros(leaf) for leaf in c_rest])
  return params_bar, x_bar, context_bar


_scan.defvjp(_scan_fwd, _scan_bwd)


def reconstructing_scan(
  transform: Transform,
  reconstruct: Transform,
  params: Params,
  x: Any,
  context: Context = None,
  *,
  plain_scan: Callable[..., tuple[Any, jax.Array]],
  reverse: bool = False,
  length: Optional[int] = None,
) -> tuple[Any, jax.Array]:
  """Scans ``transform`` over stacked ``params``; backprop reconstructs inputs.

  Returns exactly what the plain scan returns, ``(x_K, sum_k l_k)`` (see the
  module docstring), but its VJP recomputes each step's input with
  ``reconstruct`` instead of storing it.

  Args:
    transform: ``(p, x, context) -> (x_next, log_det)``, one step.
    reconstruct: its inverse, ``(p, x_next, context) -> (x, log_det)``.
    params: the steps' params stacked on a leading axis. Integer leaves (a
      fixed permutation) get ``float0`` zero cotangents; leaves read through
      ``stop_gradient`` get zeros.
    x: input batch (an array or a pytree of float arrays).
    context: shared by every step: ``None``, or a pytree whose float leaves
      receive the summed cotangent and whose integer leaves (labels) get
      ``float0`` zeros.
    plain_scan: the forward scan (``compose.scan_steps``).
    reverse: visit the steps last to first (the inverse of a chain).
    length: number of steps; needed only if ``params`` has no leaves.
  """
  steps = _Steps(transform, reconstruct, reverse, length, plain_scan)
  return _scan(steps, params, x, context)
