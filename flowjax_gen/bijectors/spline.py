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

import functools
import math
from collections.abc import Sequence

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

# Up to this many bins the spline is computed bin by bin, each quantity an
# array shaped like ``x`` (``rational_quadratic_bins``), which XLA fuses
# into a few elementwise loops. Stacked along a last axis of ``K`` (the
# usual formulation, kept for more bins, where unrolling would make the
# program grow with ``K``), the cumulative sums become reduce-windows, the
# end knots pads and the bin selections small reductions, which do not
# fuse with the work around them on the CPU (docs/performance.md,
# "Splines and masked autoregressive flows").
UNROLL_MAX_BINS = 16


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


def _interior_derivatives(unnormalised: Array) -> Array:
  """Knot derivatives from unnormalised values, at least
  ``MIN_DERIVATIVE``; zeros give 1."""
  return MIN_DERIVATIVE + jax.nn.softplus(unnormalised + _DERIVATIVE_SHIFT)


def _derivatives(unnormalised: Array) -> Array:
  """``K + 1`` knot derivatives: 1 at both ends, learned inside."""
  inner = _interior_derivatives(unnormalised)
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


def _rational_map(
  v: Array,
  inside: Array,
  bin_values: tuple[Array, Array, Array, Array, Array, Array],
  inverse: bool,
) -> tuple[Array, Array]:
  """The map of the module docstring on the bin each entry of ``v`` is in.

  ``bin_values`` is ``(x_k, w, y_k, h, d_k, d_{k+1})`` per entry; entries
  outside ``[-B, B]`` (``inside`` false) get ``x`` back and a zero
  log-derivative.
  """
  x_k, w, y_k, h, d_k, d_k1 = bin_values
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
  return out, jnp.where(inside, log_deriv, jnp.zeros_like(log_deriv))


def _inside(x: Array, bound: float) -> tuple[Array, Array]:
  """Which entries the spline maps, and ``x`` with the others set to 0.

  Tail entries go through the spline at 0 instead, so the unused branch
  stays finite and no NaN can leak through the final ``where`` (nor
  through its gradient).
  """
  inside = (x >= -bound) & (x <= bound)
  return inside, jnp.where(inside, x, jnp.zeros_like(x))


def _bins_stacked(
  v: Array,
  widths: Array,
  heights: Array,
  derivatives: Array,
  *,
  bound: float,
  inverse: bool,
) -> tuple[Array, Array, Array, Array, Array, Array]:
  """``(x_k, w, y_k, h, d_k, d_{k+1})`` from parameters stacked along a
  last axis of ``K`` (or ``K - 1``)."""
  x_knots, bin_widths = _knots(widths, bound)
  y_knots, bin_heights = _knots(heights, bound)
  slopes = _derivatives(derivatives)
  search = y_knots if inverse else x_knots
  index = jnp.sum(v[..., None] >= search[..., 1:-1], axis=-1)
  in_bin = index[..., None] == jnp.arange(bin_widths.shape[-1])
  return (
    _select(x_knots[..., :-1], in_bin),
    _select(bin_widths, in_bin),
    _select(y_knots[..., :-1], in_bin),
    _select(bin_heights, in_bin),
    _select(slopes[..., :-1], in_bin),
    _select(slopes[..., 1:], in_bin),
  )


def _inner_knots_by_bin(unnormalised: Sequence[Array], bound: float) -> list:
  """``_knots``' ``K - 1`` interior knots, one array per knot: a softmax
  (each bin at least ``MIN_BIN_SIZE``) and running sums, bin by bin."""
  num_bins = len(unnormalised)
  # As jax.nn.softmax: the shift cancels, so it carries no gradient.
  top = jax.lax.stop_gradient(functools.reduce(jnp.maximum, unnormalised))
  exps = [jnp.exp(u - top) for u in unnormalised]
  scale = (1.0 - MIN_BIN_SIZE * num_bins) / functools.reduce(jnp.add, exps)
  knots, partial_sum = [], None
  for e in exps[:-1]:
    fraction = MIN_BIN_SIZE + scale * e
    partial_sum = fraction if partial_sum is None else partial_sum + fraction
    knots.append(2.0 * bound * partial_sum - bound)
  return knots


def _ends_by_bin(
  inner: Sequence[Array], index: Array, first: float, last: float
) -> tuple[Array, Array]:
  """The values at both ends of bin ``index`` from the ``K - 1`` interior
  ones, with ``first`` left of bin 0 and ``last`` right of bin ``K - 1``.

  Bin ``k``'s right end and bin ``k + 1``'s left end are the same array,
  so neighbouring bins share their knot exactly and the map is continuous.
  """
  left = jnp.full(index.shape, first, inner[0].dtype)
  right = jnp.full(index.shape, last, inner[0].dtype)
  for k, value in enumerate(inner):
    left = jnp.where(index == k + 1, value, left)
    right = jnp.where(index == k, value, right)
  return left, right


def _bins_by_bin(
  v: Array,
  widths: Sequence[Array],
  heights: Sequence[Array],
  derivatives: Sequence[Array],
  *,
  bound: float,
  inverse: bool,
) -> tuple[Array, Array, Array, Array, Array, Array]:
  """``_bins_stacked`` with one array per bin (per interior knot for the
  derivatives), each shaped like ``v``; the same knots up to the order of
  float32 additions."""
  x_inner = _inner_knots_by_bin(widths, bound)
  y_inner = _inner_knots_by_bin(heights, bound)
  slopes = [_interior_derivatives(d) for d in derivatives]
  search = y_inner if inverse else x_inner
  # A reduction rather than a sum of the K - 1 comparisons, so that XLA
  # computes the index once, into a buffer. Fused into its consumers, it
  # is recomputed in each of the six selections, and two loops can round a
  # knot differently (vectorised with fused multiply-adds in one, not in
  # the other's remainder), so an entry at a knot fell in bin k for one
  # selection and k + 1 for another.
  index = jnp.sum(
    jnp.stack([v >= knot for knot in search], axis=-1), axis=-1, dtype=jnp.int32
  )
  x_k, x_k1 = _ends_by_bin(x_inner, index, -bound, bound)
  y_k, y_k1 = _ends_by_bin(y_inner, index, -bound, bound)
  d_k, d_k1 = _ends_by_bin(slopes, index, 1.0, 1.0)
  return x_k, x_k1 - x_k, y_k, y_k1 - y_k, d_k, d_k1


def _by_bin(params: Array) -> list:
  """``(..., K)`` -> ``K`` arrays ``(...)``; a split, whose gradient is a
  single concatenate."""
  return [
    jnp.squeeze(p, -1) for p in jnp.split(params, params.shape[-1], axis=-1)
  ]


def _by_bin_is_used(num_bins: int) -> bool:
  # Above UNROLL_MAX_BINS the stacked form keeps the program small; one
  # bin has no interior knot to search or select.
  return 1 < num_bins <= UNROLL_MAX_BINS


def _spline(x: Array, bin_values, *params, bound: float, inverse: bool):
  """The spline with ``bin_values`` (``_bins_by_bin`` or ``_bins_stacked``)
  reading the bins' parameters ``params``."""
  inside, v = _inside(x, bound)
  bins = bin_values(v, *params, bound=bound, inverse=inverse)
  out, log_deriv = _rational_map(v, inside, bins, inverse)
  return jnp.where(inside, out, x), log_deriv


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
  if _by_bin_is_used(widths.shape[-1]):
    return rational_quadratic_bins(
      x,
      _by_bin(widths),
      _by_bin(heights),
      _by_bin(derivatives),
      bound=bound,
      inverse=inverse,
    )
  params = (widths, heights, derivatives)
  return _spline(x, _bins_stacked, *params, bound=bound, inverse=inverse)


def rational_quadratic_bins(
  x: Array,
  widths: Sequence[Array],
  heights: Sequence[Array],
  derivatives: Sequence[Array],
  *,
  bound: float,
  inverse: bool = False,
) -> tuple[Array, Array]:
  """``rational_quadratic`` with its parameters given bin by bin, as a
  conditioner's parameter-major outputs split (``transformers``).

  Args:
    x: values of any shape.
    widths, heights: ``K`` unnormalised arrays each, shaped like ``x``.
    derivatives: ``K - 1`` unnormalised interior derivatives, likewise.
    bound: ``B``; the identity outside ``[-B, B]``.
    inverse: evaluate the inverse spline instead.

  Returns:
    ``(out, log_deriv)`` as ``rational_quadratic``.
  """
  num_bins = len(widths)
  if len(heights) != num_bins or len(derivatives) != num_bins - 1:
    raise ValueError(
      "rational_quadratic_bins needs K widths, K heights and K - 1 "
      f"derivatives; got {num_bins}, {len(heights)} and {len(derivatives)}."
    )
  if not _by_bin_is_used(num_bins):
    return rational_quadratic(
      x,
      jnp.stack(widths, axis=-1),
      jnp.stack(heights, axis=-1),
      (
        jnp.stack(derivatives, axis=-1)
        if derivatives
        else jnp.zeros(x.shape + (0,), x.dtype)
      ),
      bound=bound,
      inverse=inverse,
    )
  params = (widths, heights, derivatives)
  return _spline(x, _bins_by_bin, *params, bound=bound, inverse=inverse)


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
