"""Checks for a bijector of your own: the contract flowjax_gen's bijectors
are tested against, in one call.

  from flowjax_gen.testing import check_bijector
  report = check_bijector(my_bijector, x)   # x: a batch, (n,) + event

``check_bijector`` raises ``AssertionError`` naming the first property that
fails, and otherwise returns the measured errors:

* round trip: ``inverse(forward(x)) = x`` and ``forward(inverse(y)) = y``;
* the inverse log-det is the negative of the forward one at matching points;
* in float64, each example's log-det equals ``log |det J|`` of the
  forward's Jacobian from ``jax.jacfwd`` (``slogdet``), to 1e-6;
* the compiled (``jit``) call equals the eager one;
* ``vmap`` over single events equals the batch call (the flowjax/distrax
  idiom);
* gradients of the log-det and the outputs with respect to the params are
  finite.

Use small events: the Jacobian is ``D x D`` with ``D`` the event size.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from flowjax_gen.bijectors.base import Bijector
from flowjax_gen.typing import Context, Params


def _flat(tree: Any) -> np.ndarray:
  """Every leaf of a batch as ``(n, D)`` float64 rows on the host."""
  leaves = [np.asarray(a, np.float64) for a in jax.tree.leaves(tree)]
  return np.concatenate([a.reshape(a.shape[0], -1) for a in leaves], axis=1)


def _max_error(a: Any, b: Any) -> float:
  a, b = _flat(a), _flat(b)
  if not (np.isfinite(a).all() and np.isfinite(b).all()):
    return float("inf")
  return float(np.max(np.abs(a - b)))


def _expect(condition: Any, message: str) -> None:
  if not condition:
    raise AssertionError(message)


def _within(
  report: dict, name: str, error: float, tolerance: float, failure: str
) -> None:
  """Records ``error`` as ``report[name]``; fails unless it is below
  ``tolerance``, saying ``failure`` by how much."""
  report[name] = error
  _expect(
    error < tolerance, f"{failure} by {error:.3g} (tolerance {tolerance:.3g})."
  )


def _to(dtype, tree: Any) -> Any:
  return jax.tree.map(
    lambda a: (
      jnp.asarray(a, dtype)
      if jnp.issubdtype(jnp.result_type(a), jnp.floating)
      else a
    ),
    tree,
  )


def check_bijector(
  bijector: Bijector,
  x: Any,
  context: Context = None,
  *,
  params: Optional[Params] = None,
  key: Optional[jax.Array] = None,
  atol: float = 1e-4,
  jacobian_examples: int = 2,
) -> dict[str, float]:
  """Runs the bijector contract on ``bijector`` at the batch ``x``.

  Args:
    bijector: a ``Bijector`` (``init``, ``forward_and_log_det``,
      ``inverse_and_log_det``); forward is data -> latent.
    x: a float batch, ``(n,) + event_shape`` (n >= 1), inside the
      bijector's domain.
    context: the conditioning batch of a conditional bijector.
    params: params to check at (default: ``bijector.init(key, x,
      context)``). Pass trained or perturbed params: a freshly initialised
      coupling is the identity, which passes most checks trivially.
    key: for ``init`` (default ``jax.random.key(0)``).
    atol: tolerance of the float32 comparisons.
    jacobian_examples: how many examples get the float64 Jacobian check.

  Returns:
    ``round_trip``, ``inverse_round_trip``, ``inverse_log_det``,
    ``log_det_float64``, ``jit`` and ``vmap``: the largest absolute error
    each check measured.

  Raises:
    AssertionError: the first property that fails, with the error and the
      tolerance.
  """
  key = jax.random.key(0) if key is None else key
  if params is None:
    params = bijector.init(key, x, context)
  report = {}

  y, log_det = bijector.forward_and_log_det(params, x, context)
  n = jax.tree.leaves(x)[0].shape[0]
  _expect(
    np.shape(log_det) == (n,),
    f"forward log_det has shape {np.shape(log_det)}; expected ({n},), one "
    "per example.",
  )
  _expect(
    np.isfinite(_flat(y)).all() and np.isfinite(np.asarray(log_det)).all(),
    "forward gives non-finite values at x.",
  )
  x_back, inverse_log_det = bijector.inverse_and_log_det(params, y, context)
  _within(
    report,
    "round_trip",
    _max_error(x_back, x),
    atol,
    "inverse(forward(x)) differs from x",
  )
  _within(
    report,
    "inverse_log_det",
    _max_error(inverse_log_det, -np.asarray(log_det)),
    max(atol, 1e-5 * float(np.abs(log_det).max())),
    "the inverse log-det is not the negative of the forward one: they differ",
  )
  y_again, _ = bijector.forward_and_log_det(params, x_back, context)
  _within(
    report,
    "inverse_round_trip",
    _max_error(y_again, y),
    atol,
    "forward(inverse(y)) differs from y",
  )
  _within(
    report,
    "log_det_float64",
    _jacobian_error(bijector, params, x, context, min(jacobian_examples, n)),
    1e-6,
    "log_det differs from log|det J| of jax.jacfwd in float64",
  )

  y_jit, log_det_jit = jax.jit(bijector.forward_and_log_det)(params, x, context)
  _within(
    report,
    "jit",
    max(_max_error(y_jit, y), _max_error(log_det_jit, log_det)),
    atol,
    "the jitted forward differs from the eager one",
  )

  if context is None:
    y_one, log_det_one = jax.vmap(
      lambda v: bijector.forward_and_log_det(params, v)
    )(x)
  else:
    y_one, log_det_one = jax.vmap(
      lambda v, c: bijector.forward_and_log_det(params, v, c)
    )(x, context)
  _expect(
    np.shape(log_det_one) == (n,),
    f"vmap over single events gives log-dets of shape "
    f"{np.shape(log_det_one)}; expected ({n},).",
  )
  _within(
    report,
    "vmap",
    max(_max_error(y_one, y), _max_error(log_det_one, log_det)),
    atol,
    "vmap over single events differs from the batch call",
  )

  def loss(p):
    out, ld = bijector.forward_and_log_det(p, x, context)
    squares = sum(jnp.sum(a**2) for a in jax.tree.leaves(out))
    return jnp.sum(ld) + squares

  gradients = jax.grad(loss)(params)
  _expect(
    all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(gradients)),
    "gradients with respect to the params are not finite.",
  )
  return report


def _jacobian_error(
  bijector: Bijector, params: Params, x: Any, context: Context, count: int
) -> float:
  """Largest ``|log_det - log|det J||`` over the first ``count`` examples,
  in float64."""
  with jax.enable_x64(True):
    params64 = _to(jnp.float64, params)
    x64 = _to(jnp.float64, x)
    context64 = _to(jnp.float64, context)
    _, log_det = bijector.forward_and_log_det(params64, x64, context64)
    leaves, treedef = jax.tree.flatten(x64)
    shapes = [leaf.shape[1:] for leaf in leaves]
    sizes = [int(np.prod(s)) for s in shapes]
    worst = 0.0
    for i in range(count):
      ctx = None
      if context64 is not None:
        ctx = jax.tree.map(lambda c, i=i: c[i : i + 1], context64)

      def forward_flat(v, ctx=ctx):
        parts = jnp.split(v, np.cumsum(sizes)[:-1])
        example = jax.tree.unflatten(
          treedef,
          [p.reshape((1, *s)) for p, s in zip(parts, shapes, strict=True)],
        )
        out, _ = bijector.forward_and_log_det(params64, example, ctx)
        return jnp.concatenate([a.reshape(-1) for a in jax.tree.leaves(out)])

      v = jnp.concatenate([leaf[i].reshape(-1) for leaf in leaves])
      sign, expected = jnp.linalg.slogdet(jax.jacfwd(forward_flat)(v))
      _expect(float(sign) != 0.0, f"the Jacobian at example {i} is singular.")
      worst = max(worst, abs(float(log_det[i]) - float(expected)))
    return worst
