"""Coupling layers: additive (NICE), affine (RealNVP, Glow),
rational-quadratic spline (Durkan et al. 2019, Neural Spline Flows) and
logistic-mixture CDF (Ho et al. 2019, Flow++).

A mask splits the input ``x`` into a conditioning part ``a`` (passed through
unchanged) and a transformed part ``b``; a conditioner network ``NN`` reads
``a`` (and the optional context ``c``).

Affine coupling, with ``(t, h) = NN(a, c)`` and ``s = scale_fn(h) > 0``::

    forward:  y_a = a,  y_b = b * s + t
    inverse:  a = y_a,  b = (y_b - t) / s
    log_det = sum(log s)        (over the transformed entries only)

Additive coupling (NICE, Dinh et al. 2014, §3.2): ``y_b = b + t(a, c)``,
``log_det = 0``.

Spline coupling (NSF, §3): every entry of ``b`` goes through its own
monotone rational-quadratic spline on ``[-B, B]`` (identity outside) whose
``3K - 1`` knot parameters are ``NN(a, c)``; ``log_det`` sums the spline's
log-derivatives over the transformed entries (``bijectors.spline``).

Logistic-mixture coupling (Flow++, §3.1): every entry of ``b`` goes through
``y = exp(alpha) logit(sum_k pi_k sigmoid((b - mu_k) / s_k)) + beta`` whose
``3K + 2`` parameters are ``NN(a, c)``; forward and log-det are closed form,
the inverse is a bisection (``bijectors.mixture``).

The elementwise maps of ``b`` are ``bijectors.transformers``; the
conditioner's outputs are parameter-major (all shifts, then all scale
logits, ...), so it outputs ``P * |b|`` features per position.

Masks:
  * ``"half"``: the last axis (channels of an image, features of a vector)
    is cut in two halves; ``parity=1`` swaps which half conditions the other.
  * ``"alternating"``: even / odd entries of the last axis (NICE's partition).
  * ``"checkerboard"``: the spatial pattern ``(i + j + parity) % 2`` on NHWC
    images (RealNVP, §3.4); the conditioner sees the masked image and its
    output covers every position, of which only the unmasked ones are used.

Scale functions (the keyword ``scale_fn``):
  * ``"exp_tanh"`` (the default everywhere): ``s = exp(tanh(h))``, bounded
    in (1/e, e); starts at 1.
  * ``"sigmoid"``: ``s = sigmoid(h + 2)``, as Glow's code; ``s`` is in (0, 1)
    and starts at ``sigmoid(2) ~= 0.881`` when the last layer is zero. Its
    inverse divides by ``s``, which can approach 0: sampled at T = 1 it
    overflowed in 316 of 10,000 MNIST samples (docs/results.md).
  * ``"exp"``: ``s = exp(h)``, unbounded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowjax_gen._checks import check_choice, check_even, check_min_rank
from flowjax_gen.bijectors import transformers
from flowjax_gen.bijectors.base import Bijector, event_sum
from flowjax_gen.bijectors.checks import checked
from flowjax_gen.bijectors.spline import DEFAULT_BOUND
from flowjax_gen.bijectors.transformers import (  # noqa: F401 (public)
  SCALE_FNS,
  Transformer,
)
from flowjax_gen.typing import COMPUTE_DTYPES, Context, apply_output

MASKS = ("half", "alternating", "checkerboard")

ConditionerFactory = Callable[[int], nn.Module]


class _Partition(NamedTuple):
  """How a mask splits ``x`` into ``(a, b)`` and merges ``(a, y_b)`` back."""

  split: Callable[[jax.Array], tuple[jax.Array, jax.Array]]
  merge: Callable[[jax.Array, jax.Array], jax.Array]
  log_det_weight: Optional[jax.Array]  # None: every entry of b counts once.


def _half(x: jax.Array, parity: int) -> _Partition:
  check_even(
    "number of channels/features (last axis)", x.shape[-1], "the 'half' mask"
  )
  half = x.shape[-1] // 2

  def split(x):
    first, second = x[..., :half], x[..., half:]
    return (first, second) if parity == 0 else (second, first)

  def merge(a, b):
    parts = (a, b) if parity == 0 else (b, a)
    return jnp.concatenate(parts, axis=-1)

  return _Partition(split, merge, None)


def _alternating(x: jax.Array, parity: int) -> _Partition:
  check_even(
    "number of features (last axis)", x.shape[-1], "the 'alternating' mask"
  )

  def split(x):
    even, odd = x[..., 0::2], x[..., 1::2]
    return (even, odd) if parity == 0 else (odd, even)

  def merge(a, b):
    even, odd = (a, b) if parity == 0 else (b, a)
    return jnp.stack([even, odd], axis=-1).reshape(a.shape[:-1] + (-1,))

  return _Partition(split, merge, None)


def _checkerboard(x: jax.Array, parity: int) -> _Partition:
  check_min_rank("x", x, 4, "NHWC images for the 'checkerboard' mask")
  height, width = x.shape[1], x.shape[2]
  rows = jnp.arange(height)[:, None]
  cols = jnp.arange(width)[None, :]
  keep = ((rows + cols + parity) % 2 == 0).astype(x.dtype)[..., None]

  def split(x):
    return x * keep, x

  def merge(a, b):
    return a + (1.0 - keep) * b

  return _Partition(split, merge, jnp.broadcast_to(1.0 - keep, x.shape[1:]))


_PARTITIONS = {
  "half": _half,
  "alternating": _alternating,
  "checkerboard": _checkerboard,
}


def _coupling(
  make_conditioner: ConditionerFactory,
  transformer: Transformer,
  *,
  mask: str,
  parity: int,
  compute_dtype: str = "float32",
) -> Bijector:
  check_choice("mask", mask, MASKS)
  check_choice("parity", parity, (0, 1))
  check_choice("compute_dtype", compute_dtype, COMPUTE_DTYPES)
  if not callable(make_conditioner):
    raise ValueError(
      "make_conditioner must be callable as "
      f"make_conditioner(out_features); got {make_conditioner!r}."
    )

  def networks(x):
    partition = _PARTITIONS[mask](x, parity)
    transformed_features = partition.split(x)[1].shape[-1]
    return partition, make_conditioner(
      transformer.num_params * transformed_features
    )

  def theta(net, params, a, context):
    h = apply_output(net, params, a, context, compute_dtype=compute_dtype)
    return transformers.parameters(h, transformer)

  def log_det(partition, log_deriv, batch_shape, dtype):
    if log_deriv is None:
      return jnp.zeros(batch_shape, dtype)
    if partition.log_det_weight is not None:
      log_deriv = log_deriv * partition.log_det_weight
    return event_sum(log_deriv, log_deriv.ndim - 1)

  def init(key, x, context: Context = None):
    check_min_rank("x", x, 2, "a batch of events")
    partition, net = networks(x)
    a, _ = partition.split(x)
    return net.init(key, a, context)

  def forward(params, x, context: Context = None):
    partition, net = networks(x)
    a, b = partition.split(x)
    y_b, log_deriv = transformer.forward(theta(net, params, a, context), b)
    y = partition.merge(a, y_b)
    return y, log_det(partition, log_deriv, x.shape[:1], x.dtype)

  def inverse(params, y, context: Context = None):
    partition, net = networks(y)
    a, y_b = partition.split(y)
    b, log_deriv = transformer.inverse(theta(net, params, a, context), y_b)
    x = partition.merge(a, b)
    return x, log_det(partition, log_deriv, y.shape[:1], y.dtype)

  return Bijector(init, forward, inverse)


@checked
def additive_coupling(
  make_conditioner: ConditionerFactory,
  *,
  mask: str = "half",
  parity: int = 0,
  compute_dtype: str = "float32",
) -> Bijector:
  """NICE's additive coupling ``y_b = b + t(a, c)``; volume preserving.

  Args:
    make_conditioner: ``out_features -> flax Module`` called as
      ``module(a, context)``; see ``flowjax_gen.nets``.
    mask: one of ``MASKS``.
    parity: 0 or 1, which part of the mask conditions the other.
    compute_dtype: what the conditioner computes in, one of
      ``typing.COMPUTE_DTYPES`` (``apply_output``); its params, outputs
      and the log-det stay in the data's precision.
  """
  return _coupling(
    make_conditioner,
    transformers.additive(),
    mask=mask,
    parity=parity,
    compute_dtype=compute_dtype,
  )


@checked
def affine_coupling(
  make_conditioner: ConditionerFactory,
  *,
  mask: str = "half",
  parity: int = 0,
  scale_fn: str = "exp_tanh",
  compute_dtype: str = "float32",
) -> Bijector:
  """Affine coupling ``y_b = b * s(a, c) + t(a, c)`` (RealNVP, Glow).

  Args:
    make_conditioner: ``out_features -> flax Module``; it must output
      ``2 * |b|`` features per position (shift first, scale logits second).
    mask: one of ``MASKS``.
    parity: 0 or 1, which part of the mask conditions the other.
    scale_fn: one of ``SCALE_FNS`` (see the module docstring); the default
      ``"exp_tanh"`` is bounded both ways, so samples cannot overflow in
      the inverse (``"sigmoid"``, Glow's code, divides by a scale that
      can approach 0).
    compute_dtype: what the conditioner computes in, one of
      ``typing.COMPUTE_DTYPES`` (``apply_output``); its params, outputs
      and the log-det stay in the data's precision.
  """
  return _coupling(
    make_conditioner,
    transformers.affine(scale_fn),
    mask=mask,
    parity=parity,
    compute_dtype=compute_dtype,
  )


@checked
def spline_coupling(
  make_conditioner: ConditionerFactory,
  *,
  mask: str = "half",
  parity: int = 0,
  num_bins: int = 8,
  bound: float = DEFAULT_BOUND,
  compute_dtype: str = "float32",
) -> Bijector:
  """Rational-quadratic spline coupling (Durkan et al. 2019, NSF).

  ``y_b = RQS(b; theta(a, c))`` per entry of ``b``, with ``K`` bins on
  ``[-B, B]`` and the identity outside; the inverse is exact (the
  quadratic root). A zero-initialised last conditioner layer gives
  ``theta = 0``, the identity spline. See ``bijectors.spline`` for the maps
  and the log-det.

  Args:
    make_conditioner: ``out_features -> flax Module``; it must output
      ``(3 K - 1) * |b|`` features per position, parameter-major: ``K``
      blocks of unnormalised widths, ``K`` of heights, ``K - 1`` of interior
      derivatives, each ``|b|`` long.
    mask: one of ``MASKS`` (``"checkerboard"`` and channel ``"half"``
      masks on NHWC images too).
    parity: 0 or 1, which part of the mask conditions the other.
    num_bins: ``K``.
    bound: ``B > 0``.
    compute_dtype: what the conditioner computes in, one of
      ``typing.COMPUTE_DTYPES`` (``apply_output``); its params, outputs
      and the log-det stay in the data's precision.
  """
  return _coupling(
    make_conditioner,
    transformers.spline(num_bins, bound),
    mask=mask,
    parity=parity,
    compute_dtype=compute_dtype,
  )


@checked
def logistic_mixture_coupling(
  make_conditioner: ConditionerFactory,
  *,
  mask: str = "half",
  parity: int = 0,
  num_components: int = 4,
  compute_dtype: str = "float32",
) -> Bijector:
  """Flow++'s logistic-mixture CDF coupling (Ho et al. 2019, §3.1).

  ``y_b = exp(alpha) logit(MixLogCDF(b; pi, mu, s)) + beta`` per entry of
  ``b``, the ``K``-component mixture and the outer affine map computed by
  the conditioner from ``(a, c)``. Forward and log-det are closed form and
  computed in log space; the inverse bisects to float64 rounding in
  ``mixture.INVERSE_ITERATIONS`` steps and differentiates by the implicit
  function theorem (``bijectors.mixture``). A zero-initialised last
  conditioner layer gives the identity.

  Args:
    make_conditioner: ``out_features -> flax Module``; it must output
      ``(3 K + 2) * |b|`` features per position, parameter-major: shifts,
      log-scale logits, then ``K`` blocks of weight logits, of means and of
      log-scales, each ``|b|`` long.
    mask: one of ``MASKS``.
    parity: 0 or 1, which part of the mask conditions the other.
    num_components: ``K``, the mixture's components (Flow++ used 32 on
      CIFAR-10).
    compute_dtype: what the conditioner computes in, one of
      ``typing.COMPUTE_DTYPES`` (``apply_output``); its params, outputs
      and the log-det stay in the data's precision.
  """
  return _coupling(
    make_conditioner,
    transformers.logistic_mixture(num_components),
    mask=mask,
    parity=parity,
    compute_dtype=compute_dtype,
  )
