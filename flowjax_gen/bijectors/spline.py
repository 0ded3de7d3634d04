"""Monotone rational-quadratic splines (Durkan et al. 2019, Neural Spline
Flows) and the elementwise spline bijector with learned parameters.

On ``[-B, B]`` the spline has ``K`` bins with knots
``(x_k, y_k)``, ``k = 0..K``, ``x_0 = y_0 = -B``, ``x_K = y_K = B``, and
positive derivatives ``d_k`` at the knots. Inside bin ``k``, with
``w = x_{k+1} - x_k``, ``h = y_{k+1} - y_k``, ``s = h / w`` and
``xi = (x - x_k) / w`` in ``[0, 1]`` (Gregory & Delbourgo's
rational-quadratic form, as used by NSF)::

    forward:  y = y_k + h (s xi^2 + d_k xi (1 - xi)) / D(xi)
              D(xi) = s + (d_{k+1} + d_k - 2 s) xi (1 - xi)
    log_det = log(s^2 (d_{k+1} xi^2 + 2 s xi (1 - xi) + d_k (1 - xi)^2))
              - 2 log D(xi)

The inverse solves the quadratic ``a xi^2 + b xi + c = 0`` with, for
``dy = y - y_k`` and ``e = d_{k+1} + d_k - 2 s``::

    a = h (s - d_k) + dy e,   b = h d_k - dy e,   c = -s dy
    inverse:  xi = 2 c / (-b - sqrt(b^2 - 4 a c)),   x = x_k + w xi

the root in ``[0, 1]``, written in the form that does not cancel when
``a`` is near zero (the textbook ``(-b + sqrt(.)) / 2a`` does). Its
log-det is the negative of the forward one at ``xi``. Outside ``[-B, B]``
the map is the identity (``log_det = 0``); the boundary derivatives are
``d_0 = d_K = 1``, so the derivative is continuous at ``+-B``.

Precision: a forward-then-inverse round trip recovers ``x`` up to the
rounding of ``y`` divided by the local slope ``dy/dx``; in float32 that is
below 1e-5 over the whole line for moderate parameters, and grows where a
bin is very flat (slopes near 1e-4 give errors near 1e-3), as for any
method working from a rounded ``y``.

Parameters are unnormalised, per transformed entry: ``K`` widths, ``K``
heights (softmax, then each bin at least ``MIN_BIN_SIZE`` of the range) and
``K - 1`` interior derivatives (``MIN_DERIVATIVE + softplus(.)``, shifted
so that zeros give ``d = 1``). All zeros is the identity map, so a
zero-initialised conditioner starts every spline as the identity.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from flowjax_gen._checks import check_positive_int
from flowjax_gen.bijectors.base import Bijector, event_sum
from flowjax_gen.bijectors.checks import checked
from flowjax_gen.typing import Array, Context

# The half-width ``B`` of the spline interval, one default for every spline
# bijector and model: standardised features and Glow's activations rarely
# leave [-4, 4], where beyond it the map is the identity.
DEFAULT_BOUND = 4.0

MIN_BIN_SIZE = 1e-3  # fraction of 2 B, for widths and heights (the paper's)
MIN_DERIVATIVE = 1e-3
# softplus(0 + _DERIVATIVE_SHIFT) = 1 - MIN_DERIVATIVE: zeros give d = 1.
_DERIVATIVE_SHIFT = math.log(math.expm1(1.0 - MIN_DERIVATIVE))


def num_spline_params(num_bins: int) -> int:
  """Unnormalised parameters per entry: widths, heights, interior slopes."""
  return 3 * num_bins - 1


def check_spline_args(num_bins: int, bound: float) -> float:
  """Checks the static spline settings; returns ``bound`` as a float."""
  check_positive_int("num_bins", num_bins)
  if num_bins * MIN_BIN_SIZE >= 1.0:
    raise ValueError(
      f"num_bins must be below {round(1 / MIN_BIN_SIZE)} (each bin keeps at "
      f"least {MIN_BIN_SIZE} of the range); got {num_bins}."
    )
  if (
    not isinstance(bound, (int, float))
    or isinstance(bound, bool)
    or not math.isfinite(bound)
    or bound <= 0
  ):
    raise ValueError(f"bound must be a finite number > 0; got {bound!r}.")
  return float(bound)


def _knots(unnormalised: Array, bound: float) -> tuple[Array, Array]:
  """Knot positions (``K + 1``, pinned to exactly ``+-B``) and bin sizes."""
  num_bins = unnormalised.shape[-1]
  fractions = MIN_BIN_SIZE + (1.0 - MIN_BIN_SIZE * num_bins) * jax.nn.softmax(
    unnormalised, axis=-1
  )
  inner = 2.0 * bound * jnp.cumsum(fractions[..., :-1], axis=-1) - bound
  ends = jnp.full(inner.shape[:-1] + (1,), bound, inner.dtype)
  knots = jnp.concatenate([-ends, inner, ends], axis=-1)
  return knots, knots[..., 1:] - knots[..., :-1]


def _derivatives(unnormalised: Array) -> Array:
  """``K + 1`` knot derivatives: 1 at both ends, learned inside."""
  inner = MIN_DERIVATIVE + jax.nn.softplus(unnormalised + _DERIVATIVE_SHIFT)
  ones = jnp.ones(inner.shape[:-1] + (1,), inner.dtype)
  return jnp.concatenate([ones, inner, ones], axis=-1)


def _unit_interval(xi: Array) -> Array:
  # Rounding can put xi a hair outside [0, 1]. jnp.clip would halve the
  # gradient at xi = 0 or 1 exactly (ties in min/max), i.e. at every knot;
  # this clamp keeps the gradient of the identity there.
  return jnp.where(xi < 0.0, 0.0, jnp.where(xi > 1.0, 1.0, xi))


def _select(values: Array, in_bin: Array) -> Array:
  """``values[..., k]`` for the one bin ``k`` where ``in_bin`` is true.

  A masked sum rather than a gather: with ``K`` of a few to a few tens it
  fuses with the surrounding elementwise work, and its gradient is a
  masked broadcast, where a gather's is a scatter-add (slow on CPU).
  """
  return jnp.sum(jnp.where(in_bin, values, jnp.zeros_like(values)), axis=-1)


def rational_quadratic(
  x: Array,
  widths: Array,
  heights: Array,
  derivatives: Array,
  *,
  bound: float,
  inverse: bool = False,
) -> tuple[Array, Array]:
  """Applies the spline (or its inverse) to every entry of ``x``.

  Args:
    x: values of any shape.
    widths, heights: unnormalised, shape ``x.shape + (K,)``.
    derivatives: unnormalised interior derivatives, ``x.shape + (K - 1,)``.
    bound: ``B``; the identity outside ``[-B, B]``.
    inverse: evaluate the inverse spline instead.

  Returns:
    ``(out, log_deriv)``: the mapped values and, per entry, the log of the
    derivative of the map that was applied (``0`` in the tails).
  """
  x_knots, bin_widths = _knots(widths, bound)
  y_knots, bin_heights = _knots(heights, bound)
  slopes = _derivatives(derivatives)
  inside = (x >= -bound) & (x <= bound)
  # Tail entries go through the spline at 0 instead, so the unused branch
  # stays finite and no NaN can leak through the final ``where`` (nor
  # through its gradient).
  v = jnp.where(inside, x, jnp.zeros_like(x))
  search = y_knots if inverse else x_knots
  index = jnp.sum(v[..., None] >= search[..., 1:-1], axis=-1)
  in_bin = index[..., None] == jnp.arange(bin_widths.shape[-1])
  x_k, w = _select(x_knots[..., :-1], in_bin), _select(bin_widths, in_bin)
  y_k, h = _select(y_knots[..., :-1], in_bin), _select(bin_heights, in_bin)
  d_k, d_k1 = (
    _select(slopes[..., :-1], in_bin),
    _select(slopes[..., 1:], in_bin),
  )
  s = h / w
  e = d_k1 + d_k - 2.0 * s
  if inverse:
    dy = v - y_k
    a = h * (s - d_k) + dy * e
    b = h * d_k - dy * e
    c = -s * dy
    root = jnp.sqrt(jnp.maximum(b * b - 4.0 * a * c, 0.0))
    xi = _unit_interval(2.0 * c / (-b - root))
    out = x_k + w * xi
  else:
    xi = _unit_interval((v - x_k) / w)
  xi_1m = xi * (1.0 - xi)
  denominator = s + e * xi_1m
  log_deriv = (
    2.0 * jnp.log(s)
    + jnp.log(d_k1 * xi * xi + 2.0 * s * xi_1m + d_k * (1.0 - xi) ** 2)
    - 2.0 * jnp.log(denominator)
  )
  if inverse:
    log_deriv = -log_deriv
  else:
    out = y_k + h * (s * xi * xi + d_k * xi_1m) / denominator
  return (
    jnp.where(inside, out, x),
    jnp.where(inside, log_deriv, jnp.zeros_like(log_deriv)),
  )


def split_spline_params(h: Array, num_bins: int) -> tuple[Array, Array, Array]:
  """Splits ``(..., 3K - 1)`` into (widths, heights, derivatives)."""
  return (
    h[..., :num_bins],
    h[..., num_bins : 2 * num_bins],
    h[..., 2 * num_bins :],
  )


@checked
def rational_quadratic_spline(
  num_bins: int = 8, *, bound: float = DEFAULT_BOUND
) -> Bijector:
  """Elementwise rational-quadratic spline with learned parameters.

  Every entry of the event has its own spline (see the module docstring
  for the maps and log-det); params ``{"widths", "heights", "derivatives"}``
  of shape ``event + (K,)``, ``event + (K,)``, ``event + (K - 1,)``, zero at
  init (the identity). Domain: all of R, entries outside ``[-B, B]`` pass
  through unchanged; ``log_det`` sums over the event.

  Args:
    num_bins: ``K`` bins, between 1 and 999.
    bound: ``B > 0``, the half-width of the spline's interval.
  """
  bound = check_spline_args(num_bins, bound)

  def init(key, x, context: Context = None):
    del key, context
    event = x.shape[1:]
    return {
      "widths": jnp.zeros(event + (num_bins,), x.dtype),
      "heights": jnp.zeros(event + (num_bins,), x.dtype),
      "derivatives": jnp.zeros(event + (num_bins - 1,), x.dtype),
    }

  def apply(params, x, inverse):
    widths, heights, derivatives = (
      jnp.broadcast_to(p, x.shape + p.shape[-1:])
      for p in (params["widths"], params["heights"], params["derivatives"])
    )
    out, log_deriv = rational_quadratic(
      x, widths, heights, derivatives, bound=bound, inverse=inverse
    )
    return out, event_sum(log_deriv, x.ndim - 1)

  def forward(params, x, context: Context = None):
    del context
    return apply(params, x, inverse=False)

  def inverse(params, y, context: Context = None):
    del context
    return apply(params, y, inverse=True)

  return Bijector(init, forward, inverse)
