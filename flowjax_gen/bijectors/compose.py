"""Composition: ``chain``, ``invert``, ``scan`` over stacked layers, and the
multi-scale factor-out architecture.

``chain(a, b, c)`` applies ``a`` first, then ``b``, then ``c`` (left to right
in the forward, data -> latent direction), unlike ``distrax.Chain`` which
applies its list right to left. The log-det of a chain is the sum of its
members' log-dets (chain rule for Jacobian determinants).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

import jax
import jax.numpy as jnp

from flowjax_gen._checks import check_even, check_positive_int
from flowjax_gen.bijectors.base import (
  Bijector,
  as_inputs,
  forward_in_mode,
  zero_log_det,
)
from flowjax_gen.bijectors.checks import checked
from flowjax_gen.bijectors.invertible_backprop import (
  Transform,
  reconstructing_scan,
)
from flowjax_gen.typing import Context, Params


def _has_stats(bijectors: Sequence[Bijector]) -> bool:
  return any(b.update_stats is not None for b in bijectors)


@checked
def chain(*bijectors: Bijector) -> Bijector:
  """Applies ``bijectors`` left to right; params are a tuple, one per member.

  ``init`` threads the example batch through each member in turn, so a
  data-dependent initialisation (actnorm) sees the activations it will
  normalise, with no special machinery.
  """
  if not bijectors or not all(isinstance(b, Bijector) for b in bijectors):
    raise ValueError(
      "chain needs one or more Bijector arguments; got "
      f"{[type(b).__name__ for b in bijectors]}."
    )

  def init(key, x, context: Context = None):
    params = []
    for bijector, k in zip(
      bijectors, jax.random.split(key, len(bijectors)), strict=True
    ):
      p = as_inputs(bijector.init(k, x, context))
      x, _ = bijector.forward_and_log_det(p, x, context)
      params.append(p)
    return tuple(params)

  def forward(params, x, context: Context = None, *, training=None):
    total = zero_log_det(x)
    for bijector, p in zip(bijectors, params, strict=True):
      x, log_det = forward_in_mode(bijector, p, x, context, training)
      total = total + log_det
    return x, total

  def inverse(params, y, context: Context = None):
    total = zero_log_det(y)
    for bijector, p in zip(reversed(bijectors), reversed(params), strict=True):
      y, log_det = bijector.inverse_and_log_det(p, y, context)
      total = total + log_det
    return y, total

  def update_stats(params, x, context: Context = None):
    new_params = []
    for bijector, p in zip(bijectors, params, strict=True):
      if bijector.update_stats is not None:
        new_params.append(bijector.update_stats(p, x, context))
      else:
        new_params.append(p)
      # The statistics track the activations seen in training.
      x, _ = forward_in_mode(bijector, p, x, context, training=True)
    return tuple(new_params)

  return Bijector(
    init, forward, inverse, update_stats if _has_stats(bijectors) else None
  )


@checked
def invert(bijector: Bijector) -> Bijector:
  """Swaps the directions: forward becomes ``bijector``'s inverse.

  ``init`` hands the example to ``bijector.init`` unchanged, which is right
  for bijectors whose parameters do not look at the example's values (the
  example lives in the other domain).
  """
  if bijector.update_stats is not None:
    raise ValueError(
      "invert cannot wrap a bijector with running statistics "
      "(they are defined on the data side)."
    )
  return Bijector(
    bijector.init, bijector.inverse_and_log_det, bijector.forward_and_log_det
  )


def scan_steps(
  transform: Transform,
  params: Params,
  x: Any,
  context: Context = None,
  *,
  reverse: bool = False,
  length: Optional[int] = None,
  wrap_body: Callable = lambda body: body,
) -> tuple[Any, jax.Array]:
  """Runs one step ``transform(p_k, x_k, context)`` per slice of stacked
  ``params``: returns ``(x_K, sum_k l_k)`` with ``l_k`` the steps' log-dets.

  ``wrap_body`` wraps the scan body, e.g. in ``jax.checkpoint``.
  """

  @wrap_body
  def body(carry, p):
    x, total = carry
    x, log_det = transform(p, x, context)
    return (x, total + log_det), None

  start = (x, zero_log_det(x))
  (y, total), _ = jax.lax.scan(
    body, start, params, length=length, reverse=reverse
  )
  return y, total


def invertible_scan(
  transform: Transform,
  reconstruct: Transform,
  params: Params,
  x: Any,
  context: Context = None,
  *,
  reverse: bool = False,
  length: Optional[int] = None,
) -> tuple[Any, jax.Array]:
  """``scan_steps`` whose backward pass rebuilds each step's input with
  ``reconstruct`` (the step's inverse) instead of storing it; see
  ``invertible_backprop.reconstructing_scan`` for the rule and the
  requirements on the step."""
  return reconstructing_scan(
    transform,
    reconstruct,
    params,
    x,
    context,
    plain_scan=scan_steps,
    reverse=reverse,
    length=length,
  )


@checked
def scan(
  bijector: Bijector,
  num_steps: int,
  *,
  remat: Union[bool, Callable[..., Any]] = False,
  invertible_backprop: bool = False,
) -> Bijector:
  """``num_steps`` copies of ``bijector`` with stacked params, via ``lax.scan``.

  Equivalent to ``chain(bijector, ..., bijector)`` with independent params,
  but traced and compiled once, so compile time stays flat in depth. Params
  are the member's params with a leading axis of size ``num_steps``.

  Backprop through ``K = num_steps`` steps normally stores every step's
  activations: memory O(K). Two alternatives trade compute for memory:

  * ``remat``: each step is wrapped in ``jax.checkpoint``, so the backward
    pass keeps only the step inputs ``x_k`` (O(K) arrays of the input's
    size) and recomputes each step's internal activations (one extra forward
    per step). A ``jax.checkpoint`` policy, e.g.
    ``jax.checkpoint_policies.dots_with_no_batch_dims_saveable``, chooses
    which intermediates are still saved.
  * ``invertible_backprop``: the backward pass rebuilds ``x_k`` from
    ``x_{k+1}`` with the step's inverse (RevNet / i-RevNet / Glow), so
    activation memory is O(1) in ``K``; the cost is roughly one extra
    inverse and one forward recomputation per step, and the gradients are
    exact up to the float round-off of the reconstruction (see
    ``invertible_backprop.invertible_scan``). The step must be a true
    bijection of each example at fixed params: a batch-norm bijector in
    training mode is not (its forward uses batch statistics, its inverse the
    running averages; ``update_stats`` itself runs outside this path and is
    unaffected). Forward-mode autodiff (``jax.jvp``, ``jax.jacfwd``) is not
    available with it. Applied to both directions: ``inverse`` runs the
    chain last to first and reconstructs with the step's forward.

  Args:
    bijector: the step (e.g. Glow's actnorm -> 1x1 conv -> coupling).
    num_steps: number of steps, >= 1.
    remat: ``True`` to wrap each step in ``jax.checkpoint``, or a checkpoint
      policy (a callable passed as ``jax.checkpoint(fn, policy=remat)``).
    invertible_backprop: reconstruct step inputs in the backward pass
      instead of storing them. An alternative to ``remat``, not combinable.
  """
  check_positive_int("num_steps", num_steps)
  if not (isinstance(remat, bool) or callable(remat)):
    raise ValueError(
      "remat must be a bool or a jax.checkpoint policy (a callable); got "
      f"{remat!r}."
    )
  if not isinstance(invertible_backprop, bool):
    raise ValueError(
      f"invertible_backprop must be a bool; got {invertible_backprop!r}."
    )
  if invertible_backprop and remat is not False:
    raise ValueError(
      "remat and invertible_backprop are alternative ways to save memory; "
      f"set one of them, not both (got remat={remat!r}, "
      "invertible_backprop=True)."
    )

  def maybe_remat(fn):
    if remat is False:
      return fn
    if remat is True:
      return jax.checkpoint(fn)
    return jax.checkpoint(fn, policy=remat)

  def init(key, x, context: Context = None):
    def body(x, k):
      p = as_inputs(bijector.init(k, x, context))
      x, _ = bijector.forward_and_log_det(p, x, context)
      return x, p

    _, params = jax.lax.scan(body, x, jax.random.split(key, num_steps))
    return params

  def run(transform, params, x, context, reverse):
    return scan_steps(
      transform,
      params,
      x,
      context,
      reverse=reverse,
      length=num_steps,
      wrap_body=maybe_remat,
    )

  def forward(params, x, context: Context = None, *, training=None):
    step = functools.partial(forward_in_mode, bijector, training=training)
    if invertible_backprop:
      if training:
        raise ValueError(
          "invertible_backprop needs steps that are bijections of each "
          "example; batch statistics (training=True) are not."
        )
      return invertible_scan(
        step,
        bijector.inverse_and_log_det,
        params,
        x,
        context,
        length=num_steps,
      )
    return run(step, params, x, context, False)

  def inverse(params, y, context: Context = None):
    if invertible_backprop:
      return invertible_scan(
        bijector.inverse_and_log_det,
        bijector.forward_and_log_det,
        params,
        y,
        context,
        reverse=True,
        length=num_steps,
      )
    return run(bijector.inverse_and_log_det, params, y, context, True)

  step_update_stats = bijector.update_stats
  if step_update_stats is None:
    return Bijector(init, forward, inverse)

  def update_stats(params, x, context: Context = None):
    def body(x, p):
      new_p = step_update_stats(p, x, context)
      x, _ = forward_in_mode(bijector, p, x, context, training=True)
      return x, new_p

    return jax.lax.scan(body, x, params)[1]

  return Bijector(init, forward, inverse, update_stats)


def _split_channels(h: jax.Array, level: int):
  check_even(
    f"number of channels at the end of level {level}",
    h.shape[-1],
    "factor out half of them",
  )
  half = h.shape[-1] // 2
  return h[..., :half], h[..., half:]


@checked
def multiscale(levels: Sequence[Bijector]) -> Bijector:
  """Multi-scale architecture with factor-out (RealNVP §3.6, Glow §3).

  After every level but the last, the second half of the channels leaves
  the flow as a latent and the first half goes on to the next level::

      h_0 = x;   (h_i, z_i) = split(level_i(h_{i-1}))  for i < L
      z_L = level_L(h_{L-1})
      forward(x) = (z_1, ..., z_L),  log_det = sum_i log_det(level_i)

  The latents form a tuple (finest first); ``inverse`` concatenates them back
  level by level and is exact. A learned prior on a factored-out half
  (Glow's split prior) is the last member of that level: an affine map of
  ``z_i`` conditioned on ``h_i`` (``priors.gaussian_split_prior``), after
  which every latent is standard normal under the flow.
  """
  levels = tuple(levels)
  if not levels or not all(isinstance(b, Bijector) for b in levels):
    raise ValueError("multiscale needs one or more Bijector levels.")
  last = len(levels) - 1

  def init(key, x, context: Context = None):
    params = []
    h = x
    for i, (level, k) in enumerate(
      zip(levels, jax.random.split(key, last + 1), strict=True)
    ):
      p = as_inputs(level.init(k, h, context))
      h, _ = level.forward_and_log_det(p, h, context)
      if i < last:
        h, _ = _split_channels(h, i)
      params.append(p)
    return tuple(params)

  def forward(params, x, context: Context = None, *, training=None):
    latents, total, h = [], zero_log_det(x), x
    for i, (level, p) in enumerate(zip(levels, params, strict=True)):
      h, log_det = forward_in_mode(level, p, h, context, training)
      total = total + log_det
      if i < last:
        h, z = _split_channels(h, i)
        latents.append(z)
    latents.append(h)
    return tuple(latents), total

  def inverse(params, latents, context: Optional[jax.Array] = None):
    if len(latents) != len(levels):
      raise ValueError(
        f"latents must hold {len(levels)} arrays (one per "
        f"level); got {len(latents)}."
      )
    h = latents[-1]
    total = zero_log_det(h)
    for i in reversed(range(len(levels))):
      if i < last:
        h = jnp.concatenate([h, latents[i]], axis=-1)
      h, log_det = levels[i].inverse_and_log_det(params[i], h, context)
      total = total + log_det
    return h, total

  def update_stats(params, x, context: Context = None):
    new_params, h = [], x
    for i, (level, p) in enumerate(zip(levels, params, strict=True)):
      if level.update_stats is not None:
        new_params.append(level.update_stats(p, h, context))
      else:
        new_params.append(p)
      h, _ = forward_in_mode(level, p, h, context, training=True)
      if i < last:
        h, _ = _split_channels(h, i)
    return tuple(new_params)

  return Bijector(
    init, forward, inverse, update_stats if _has_stats(levels) else None
  )
