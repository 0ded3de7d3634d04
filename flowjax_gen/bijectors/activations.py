"""Fixed elementwise nonlinear bijectors: tanh, softplus, exp, leaky ReLU,
and the sinh-arcsinh map (fixed or learned).

Each forward is the function the name says (as ``sigmoid`` in
``elementwise``), applied to data; wrap it in ``invert`` to use it on the
latent side, e.g. ``invert(tanh())`` maps a Gaussian latent onto data in
(-1, 1). Axis 0 is the batch; log-dets sum over every other axis. Inverses
are not clamped: an input outside a map's range gives NaN or an infinity,
as ``jnp.arctanh``/``jnp.log`` would, rather than a silently wrong finite
value; each docstring says which inputs those are.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from flowjax_gen.bijectors.base import Bijector, event_sum, no_params_init
from flowjax_gen.bijectors.checks import checked
from flowjax_gen.typing import Array, Context

_LOG2 = math.log(2.0)


def _summed(log_deriv: Array) -> Array:
  return event_sum(log_deriv, log_deriv.ndim - 1)


def _fixed(forward_fn, inverse_fn) -> Bijector:
  """A bijector without params from ``fn(x) -> (y, per-entry log_deriv)``."""

  def forward(params, x, context: Context = None):
    del params, context
    y, log_deriv = forward_fn(x)
    return y, _summed(log_deriv)

  def inverse(params, y, context: Context = None):
    del params, context
    x, log_deriv = inverse_fn(y)
    return x, _summed(log_deriv)

  return Bijector(no_params_init, forward, inverse)


def _log_cosh(z: Array) -> Array:
  return jnp.logaddexp(z, -z) - _LOG2


@checked
def tanh() -> Bijector:
  """Hyperbolic tangent, R -> (-1, 1).

  forward ``y = tanh(x)``; inverse ``x = artanh(y)``;
  ``log_det = sum log(1 - tanh(x)^2) = sum 2 (log 2 - x - softplus(-2x))``.
  Inverse domain: ``|y| < 1``; ``y = +-1`` gives ``+-inf``, ``|y| > 1`` NaN.
  In float32 ``tanh(x)`` rounds to 1 for ``x`` above about 9, so the round
  trip is exact only well inside that range.
  """

  def log_deriv(x):
    return 2.0 * (_LOG2 - x - jax.nn.softplus(-2.0 * x))

  def inverse(y):
    x = jnp.arctanh(y)
    return x, -log_deriv(x)

  return _fixed(lambda x: (jnp.tanh(x), log_deriv(x)), inverse)


@checked
def softplus() -> Bijector:
  """Softplus, R -> (0, inf).

  forward ``y = log(1 + e^x)``; inverse ``x = y + log(1 - e^{-y})``;
  ``log_det = sum log sigmoid(x) = sum log(1 - e^{-y})``.
  Inverse domain: ``y > 0``; ``y = 0`` gives ``-inf``, ``y < 0`` NaN.
  """

  def inverse(y):
    log_deriv = jnp.log(-jnp.expm1(-y))  # log sigmoid(x) at x = inverse(y)
    return y + log_deriv, -log_deriv

  return _fixed(lambda x: (jax.nn.softplus(x), jax.nn.log_sigmoid(x)), inverse)


@checked
def exp() -> Bijector:
  """Exponential, R -> (0, inf).

  forward ``y = e^x``; inverse ``x = log y``; ``log_det = sum x``.
  Inverse domain: ``y > 0``; ``y = 0`` gives ``-inf``, ``y < 0`` NaN.
  """

  def inverse(y):
    x = jnp.log(y)
    return x, -x

  return _fixed(lambda x: (jnp.exp(x), x), inverse)


@checked
def leaky_relu(negative_slope: float = 0.01) -> Bijector:
  """Leaky ReLU with a fixed slope ``a > 0`` below zero, R -> R.

  forward ``y = x`` if ``x >= 0`` else ``a x``; inverse ``x = y`` if
  ``y >= 0`` else ``y / a``; ``log_det = (number of x < 0) * log a``.
  Piecewise linear: the derivative jumps at 0 (the log-det is that of the
  side the entry lies on).

  Raises:
    ValueError: unless ``negative_slope`` is a finite number > 0.
  """
  if (
    not isinstance(negative_slope, (int, float))
    or isinstance(negative_slope, bool)
    or not math.isfinite(negative_slope)
    or negative_slope <= 0
  ):
    raise ValueError(
      f"negative_slope must be a finite number > 0; got {negative_slope!r}."
    )
  slope = float(negative_slope)
  log_slope = math.log(slope)

  def log_deriv(negative, value, dtype):
    return jnp.where(negative, value, 0.0).astype(dtype)

  def forward(x):
    negative = x < 0
    y = jnp.where(negative, slope * x, x)
    return y, log_deriv(negative, log_slope, x.dtype)

  def inverse(y):
    negative = y < 0
    x = jnp.where(negative, y / slope, y)
    return x, log_deriv(negative, -log_slope, y.dtype)

  return _fixed(forward, inverse)


@checked
def sinh_arcsinh(
  *, skewness: float = 0.0, tailweight: float = 1.0, learned: bool = False
) -> Bijector:
  """Sinh-arcsinh map (Jones & Pewsey 2009), R -> R, in its Gaussianising
  direction, with skewness ``eps`` and tailweight ``delta > 0``.

  forward ``y = sinh(delta asinh(x) - eps)``;
  inverse ``x = sinh((asinh(y) + eps) / delta)``;
  ``log_det = sum [log delta + log cosh(delta asinh(x) - eps)
  - log(1 + x^2) / 2]``.
  Jones & Pewsey's ``S_{eps,delta}`` (latent -> data) is the inverse, so a
  Gaussian latent becomes a skewed (``eps != 0``), heavy- (``delta < 1``)
  or light-tailed (``delta > 1``) variable.

  Args:
    skewness: ``eps`` (its initial value when learned).
    tailweight: ``delta > 0`` (its initial value when learned).
    learned: if ``True``, params ``{"skewness": eps, "log_tailweight":
      log delta}`` of the event shape, one pair per entry; else no params.

  Raises:
    ValueError: unless both are finite and ``tailweight > 0``.
  """
  for name, value in (("skewness", skewness), ("tailweight", tailweight)):
    if not isinstance(value, (int, float)) or not math.isfinite(value):
      raise ValueError(f"{name} must be a finite number; got {value!r}.")
  if tailweight <= 0:
    raise ValueError(f"tailweight must be > 0; got {tailweight!r}.")
  if not isinstance(learned, bool):
    raise ValueError(f"learned must be a bool; got {learned!r}.")
  fixed = {"skewness": float(skewness), "log_tailweight": math.log(tailweight)}

  def values(params):
    p = params if learned else fixed
    return p["skewness"], p["log_tailweight"]

  def forward(params, x, context: Context = None):
    del context
    eps, log_delta = values(params)
    z = jnp.exp(log_delta) * jnp.arcsinh(x) - eps
    log_deriv = log_delta + _log_cosh(z) - 0.5 * jnp.log1p(x * x)
    return jnp.sinh(z), _summed(jnp.broadcast_to(log_deriv, x.shape))

  def inverse(params, y, context: Context = None):
    del context
    eps, log_delta = values(params)
    z = (jnp.arcsinh(y) + eps) * jnp.exp(-log_delta)
    log_deriv = -log_delta + _log_cosh(z) - 0.5 * jnp.log1p(y * y)
    return jnp.sinh(z), _summed(jnp.broadcast_to(log_deriv, y.shape))

  def init(key, x, context: Context = None):
    del key, context
    if not learned:
      return {}
    return {k: jnp.full(x.shape[1:], v, x.dtype) for k, v in fixed.items()}

  return Bijector(init, forward, inverse)
