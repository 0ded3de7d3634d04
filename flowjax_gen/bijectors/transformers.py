"""Elementwise transformers: the invertible maps of one entry ``x_i`` given
parameters ``theta_i`` that a conditioner computed (from the other half of a
coupling, or from ``x_{<i}`` in an autoregressive layer).

A conditioner returns its outputs parameter-major: for ``F`` transformed
entries and ``P`` parameters each, output ``p * F + i`` is parameter ``p`` of
entry ``i`` (for the affine transformer, all shifts then all scale logits).
``parameters`` hands it to the transformer as ``theta`` in the transformer's
``layout``: ``"split"``, ``P`` arrays ``(..., F)`` shaped like the entries
they transform (a split, whose gradient is one concatenate), for the
transformers that read each parameter as a whole; ``"stacked"``, one
``(..., F, P)`` array (a transpose both ways), for the logistic mixture,
which slices its ``K`` components off the last axis (split, then stacked
again for those slices, Flow++'s training step was slower).

* ``additive`` (``P = 1``): ``y = x + t``, volume preserving.
* ``affine`` (``P = 2``, ``(t, h)``): ``y = x * s + t`` with
  ``s = scale_fn(h) > 0``, ``log_deriv = log s``; see ``SCALE_FNS``.
* ``spline`` (``P = 3K - 1``): the rational-quadratic spline of
  ``bijectors.spline`` on ``[-B, B]``, identity outside.
* ``logistic_mixture`` (``P = 3K + 2``): Flow++'s
  ``y = exp(alpha) logit(MixLogCDF(x)) + beta`` (``bijectors.mixture``).

Each transformer's ``forward(theta, x)`` and ``inverse(theta, y)`` take
``theta`` in its layout and return the mapped values and the per-entry
log-derivative of the map applied (``None`` when it is identically zero).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from flowjax_gen._checks import check_choice
from flowjax_gen.bijectors.mixture import (
  check_mixture_args,
  logistic_mixture_forward,
  logistic_mixture_inverse,
  num_mixture_params,
)
from flowjax_gen.bijectors.spline import (
  check_spline_args,
  num_spline_params,
  rational_quadratic_bins,
)
from flowjax_gen.typing import Array

SCALE_FNS = ("sigmoid", "exp_tanh", "exp")

# ``P`` arrays (layout "split") or one ``(..., F, P)`` array ("stacked").
Theta = Union[Sequence[Array], Array]
ElementwiseFn = Callable[[Theta, Array], tuple[Array, Optional[Array]]]


class Transformer(NamedTuple):
  """An elementwise map ``x_i -> y_i`` with ``num_params`` params per entry."""

  num_params: int
  forward: ElementwiseFn
  inverse: ElementwiseFn
  layout: str = "split"


def per_parameter(h: Array, num_params: int) -> tuple[Array, ...]:
  """Parameter-major conditioner outputs ``(..., P * F)`` -> ``P`` arrays
  ``(..., F)``."""
  return tuple(jnp.split(h, num_params, axis=-1))


def per_feature(h: Array, num_params: int) -> Array:
  """Parameter-major conditioner outputs ``(..., P * F)`` -> ``(..., F, P)``."""
  return jnp.moveaxis(h.reshape(h.shape[:-1] + (num_params, -1)), -2, -1)


def parameters(h: Array, transformer: Transformer) -> Theta:
  """A conditioner's parameter-major outputs as ``transformer`` reads them."""
  if transformer.layout == "stacked":
    return per_feature(h, transformer.num_params)
  return per_parameter(h, transformer.num_params)


def additive() -> Transformer:
  """``y = x + t``; ``log_deriv`` is zero (``None``)."""
  return Transformer(
    1,
    lambda theta, x: (x + theta[0], None),
    lambda theta, y: (y - theta[0], None),
  )


def _log_scale(h: Array, scale_fn: str) -> Array:
  if scale_fn == "sigmoid":
    return jax.nn.log_sigmoid(h + 2.0)
  if scale_fn == "exp_tanh":
    return jnp.tanh(h)
  return h


def affine(scale_fn: str) -> Transformer:
  """``y = x * s + t``, ``x = (y - t) / s``, ``log_deriv = log s``.

  ``scale_fn``: ``"sigmoid"``, ``s = sigmoid(h + 2)`` in (0, 1), as Glow's
  code; ``"exp_tanh"``, ``s = exp(tanh(h))`` in (1/e, e); ``"exp"``,
  ``s = exp(h)``, unbounded. A zero ``h`` gives ``s = 1`` except for
  ``"sigmoid"`` (``sigmoid(2) ~= 0.881``).
  """
  check_choice("scale_fn", scale_fn, SCALE_FNS)

  def forward(theta, x):
    log_s = _log_scale(theta[1], scale_fn)
    return x * jnp.exp(log_s) + theta[0], log_s

  def inverse(theta, y):
    log_s = _log_scale(theta[1], scale_fn)
    return (y - theta[0]) * jnp.exp(-log_s), -log_s

  return Transformer(2, forward, inverse)


def spline(num_bins: int, bound: float) -> Transformer:
  """Rational-quadratic spline with ``num_bins`` bins on ``[-bound, bound]``.

  ``theta`` holds ``K`` unnormalised widths, ``K`` heights and ``K - 1``
  interior derivatives (``bijectors.spline``); zeros are the identity.
  """
  bound = check_spline_args(num_bins, bound)

  def apply(theta, x, inverse):
    return rational_quadratic_bins(
      x,
      theta[:num_bins],
      theta[num_bins : 2 * num_bins],
      theta[2 * num_bins :],
      bound=bound,
      inverse=inverse,
    )

  return Transformer(
    num_spline_params(num_bins),
    lambda theta, x: apply(theta, x, False),
    lambda theta, y: apply(theta, y, True),
  )


def logistic_mixture(num_components: int) -> Transformer:
  """Flow++'s logistic-mixture CDF with ``num_components`` components and
  an outer affine map (``bijectors.mixture``); zeros are the identity.

  ``theta`` per entry: shift, log-scale logit, then ``K`` weight logits,
  ``K`` means and ``K`` log-scales.
  """
  check_mixture_args(num_components)
  return Transformer(
    num_mixture_params(num_components),
    lambda theta, x: logistic_mixture_forward(theta, x, num_components),
    lambda theta, y: logistic_mixture_inverse(theta, y, num_components),
    layout="stacked",
  )
