"""Glow's building blocks (Kingma & Dhariwal 2018): actnorm, invertible 1x1
convolutions (plain and LU), channel permutations (reversed, seeded random,
or given), and squeeze.

All act on the last axis ("channels"); every other non-batch axis is a
position, and ``P`` below is the number of positions (``H * W`` for NHWC
images, 1 for vectors). Forward is data -> latent.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from flowjax_gen._checks import check_min_rank
from flowjax_gen.bijectors.base import Bijector, no_params_init, num_positions
from flowjax_gen.bijectors.checks import checked
from flowjax_gen.bijectors.compose import invert
from flowjax_gen.typing import Context


@checked
def actnorm(*, eps: float = 1e-6) -> Bijector:
  """Activation normalisation with data-dependent initialisation (§3.1).

  params ``{"bias": b, "log_scale": s}``, one value per channel::

      forward:  y = (x + b) * exp(s)
      inverse:  x = y * exp(-s) - b
      log_det = P * sum(s)

  ``init`` sets ``b = -mean(x)`` and ``s = -log std(x)`` over every axis but
  the channels, so the first batch comes out with zero mean and unit
  variance per channel. A channel whose variance is below ``eps`` (constant
  on the init batch, e.g. MNIST's empty border) keeps ``s = 0`` rather than
  being blown up by ``1 / std``.
  """

  def init(key, x, context: Context = None):
    del key, context
    check_min_rank("x", x, 2, "a batch of events with channels last")
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axis=axes)
    var = jnp.var(x, axis=axes)
    log_scale = jnp.where(var > eps, -0.5 * jnp.log(jnp.maximum(var, eps)), 0.0)
    return {"bias": -mean, "log_scale": log_scale.astype(x.dtype)}

  def forward(params, x, context: Context = None):
    del context
    s = params["log_scale"]
    log_det = jnp.broadcast_to(num_positions(x) * jnp.sum(s), x.shape[:1])
    return (x + params["bias"]) * jnp.exp(s), log_det

  def inverse(params, y, context: Context = None):
    del context
    s = params["log_scale"]
    log_det = jnp.broadcast_to(-num_positions(y) * jnp.sum(s), y.shape[:1])
    return y * jnp.exp(-s) - params["bias"], log_det

  return Bijector(init, forward, inverse)


def _random_rotation(key: jax.Array, channels: int, dtype) -> jax.Array:
  q, _ = jnp.linalg.qr(jax.random.normal(key, (channels, channels), dtype))
  return q


# Matmuls on the bijector's own data path run at full precision whatever
# ``jax_default_matmul_precision`` says: at TPU's default (bfloat16 passes)
# or TF32 on recent GPUs, ``W`` and ``W^{-1}`` stop being exact inverses and
# ``decode(encode(x))`` drifts. Conditioners keep the default: their output
# enters both directions identically.
EXACT = jax.lax.Precision.HIGHEST


def _matmul(a: jax.Array, b: jax.Array) -> jax.Array:
  return jnp.matmul(a, b, precision=EXACT)


def _mix_channels(x: jax.Array, weight: jax.Array) -> jax.Array:
  # A 1x1 convolution is a matmul over channels at every position; writing it
  # as one keeps XLA on its fast GEMM path instead of a tiny-kernel conv.
  return jnp.einsum("...j,ij->...i", x, weight, precision=EXACT)


@checked
def conv1x1() -> Bijector:
  """Invertible 1x1 convolution with a full weight matrix ``W`` (§3.2).

  params ``{"weight": W}``, ``W`` a random rotation at init::

      forward:  y = W x            (at every position)
      inverse:  x = W^{-1} y
      log_det = P * log|det W|     (``slogdet``, stable for any sign)
  """

  def init(key, x, context: Context = None):
    del context
    check_min_rank("x", x, 2, "a batch of events with channels last")
    return {"weight": _random_rotation(key, x.shape[-1], x.dtype)}

  def forward(params, x, context: Context = None):
    del context
    w = params["weight"]
    log_det = num_positions(x) * jnp.linalg.slogdet(w)[1]
    return _mix_channels(x, w), jnp.broadcast_to(log_det, x.shape[:1])

  def inverse(params, y, context: Context = None):
    del context
    w = params["weight"]
    log_det = -num_positions(y) * jnp.linalg.slogdet(w)[1]
    return _mix_channels(y, jnp.linalg.inv(w)), jnp.broadcast_to(
      log_det, y.shape[:1]
    )

  return Bijector(init, forward, inverse)


@checked
def conv1x1_lu() -> Bijector:
  """LU-parameterised invertible 1x1 convolution (§3.2, "LU decomposition").

  ``W = Perm @ L @ (U + diag(sign * exp(log_s)))`` with ``L`` unit lower
  triangular, ``U`` strictly upper triangular, and a fixed permutation and
  fixed signs taken from the LU decomposition of a random rotation at init::

      forward:  y = W x
      inverse:  x = W^{-1} y      (two triangular solves)
      log_det = P * sum(log_s)    (O(C) instead of O(C^3))

  params ``{"lower", "upper", "log_s", "fixed": {"permutation", "sign"}}``.
  The ``fixed`` entries are read through ``stop_gradient``: their gradient is
  zero, so any optimiser without weight decay on them leaves them unchanged.
  """

  def init(key, x, context: Context = None):
    del context
    check_min_rank("x", x, 2, "a batch of events with channels last")
    perm, lower, upper = jax.scipy.linalg.lu(
      _random_rotation(key, x.shape[-1], x.dtype)
    )
    diag = jnp.diag(upper)
    return {
      "lower": lower,
      "upper": jnp.triu(upper, k=1),
      "log_s": jnp.log(jnp.abs(diag)),
      "fixed": {"permutation": perm, "sign": jnp.sign(diag)},
    }

  def factors(params):
    fixed = jax.lax.stop_gradient(params["fixed"])
    channels = params["log_s"].shape[0]
    eye = jnp.eye(channels, dtype=params["log_s"].dtype)
    lower = jnp.tril(params["lower"], k=-1) + eye
    upper = jnp.triu(params["upper"], k=1) + jnp.diag(
      fixed["sign"] * jnp.exp(params["log_s"])
    )
    return fixed["permutation"], lower, upper

  def forward(params, x, context: Context = None):
    del context
    perm, lower, upper = factors(params)
    log_det = num_positions(x) * jnp.sum(params["log_s"])
    weight = _matmul(_matmul(perm, lower), upper)
    return _mix_channels(x, weight), jnp.broadcast_to(log_det, x.shape[:1])

  def inverse(params, y, context: Context = None):
    del context
    perm, lower, upper = factors(params)
    eye = jnp.eye(lower.shape[0], dtype=lower.dtype)
    # W^{-1} = U^{-1} L^{-1} Perm^T, from triangular solves on the identity.
    lower_inv = solve_triangular(lower, eye, lower=True, unit_diagonal=True)
    w_inv = solve_triangular(upper, _matmul(lower_inv, perm.T), lower=False)
    log_det = -num_positions(y) * jnp.sum(params["log_s"])
    return _mix_channels(y, w_inv), jnp.broadcast_to(log_det, y.shape[:1])

  return Bijector(init, forward, inverse)


def _permutation(order_fn) -> Bijector:
  def forward(params, x, context: Context = None):
    del params, context
    order = order_fn(x.shape[-1])
    return x[..., order], jnp.zeros(x.shape[:1], x.dtype)

  def inverse(params, y, context: Context = None):
    del params, context
    undo = np.argsort(order_fn(y.shape[-1]))
    return y[..., undo], jnp.zeros(y.shape[:1], y.dtype)

  return Bijector(no_params_init, forward, inverse)


@checked
def permutation(indices) -> Bijector:
  """A fixed permutation ``pi`` of the last axis (features or channels).

  forward ``y_i = x_{pi(i)}`` (``y = x[..., pi]``); inverse
  ``x = y[..., argsort(pi)]``; ``log_det = 0``. Between masked
  autoregressive layers it changes which feature each one sees first.

  Raises:
    ValueError: at construction unless ``indices`` is a permutation of
      ``0..n-1``; when called on a last axis whose size is not ``n``.
  """
  order = np.asarray(indices)
  if (
    order.ndim != 1
    or order.size == 0
    or not np.issubdtype(order.dtype, np.integer)
    or not np.array_equal(np.sort(order), np.arange(order.size))
  ):
    raise ValueError(
      f"indices must be a permutation of 0..n-1 (ints); got {indices!r}."
    )

  def order_fn(size):
    if size != order.size:
      raise ValueError(
        f"permutation of {order.size} entries applied to a last axis of "
        f"size {size}."
      )
    # A fresh array per call: jax caches the device constant of a numpy
    # index array by identity, so reusing one array across a float32 and a
    # float64 (x64) trace would hand the second an index of the wrong width.
    return order.copy()

  return _permutation(order_fn)


@checked
def reverse() -> Bijector:
  """Reverses the channel order (RealNVP/Glow's "reverse" permutation).

  forward ``y_i = x_{C-1-i}``; its own inverse; ``log_det = 0``. On
  tabular ``(batch, D)`` vectors it reverses the features.
  """
  return _permutation(lambda channels: np.arange(channels)[::-1])


@checked
def shuffle(seed: int = 0) -> Bijector:
  """A fixed random channel permutation drawn from ``seed`` (Glow's "shuffle").

  forward ``y_i = x_{pi(i)}``; inverse ``x = y[argsort(pi)]``;
  ``log_det = 0``. The permutation is a static function of ``seed`` and the
  channel count, so it needs no parameters; every copy of the layer inside a
  ``scan`` uses the same one. On tabular ``(batch, D)`` vectors it shuffles
  the features.
  """
  return _permutation(
    lambda channels: np.random.default_rng(seed).permutation(channels)
  )


@checked
def squeeze() -> Bijector:
  """2x2 space-to-depth: ``(N, H, W, C) -> (N, H/2, W/2, 4C)`` (RealNVP §3.6).

  Channel ``4c + 2i + j`` of the output holds pixel ``(2h + i, 2w + j)`` of
  input channel ``c`` (Glow's ``squeeze2d`` order). A permutation of the
  entries: ``log_det = 0``.

  Raises:
    ValueError: if the input is not NHWC or ``H`` or ``W`` is odd.
  """

  def check(x):
    check_min_rank("x", x, 4, "NHWC images")
    if x.ndim != 4 or x.shape[1] % 2 or x.shape[2] % 2:
      raise ValueError(
        "squeeze needs NHWC images with even height and width; "
        f"got shape {x.shape}."
      )

  def forward(params, x, context: Context = None):
    del params, context
    check(x)
    n, h, w, c = x.shape
    y = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4)
    return y.reshape(n, h // 2, w // 2, 4 * c), jnp.zeros((n,), x.dtype)

  def inverse(params, y, context: Context = None):
    del params, context
    check_min_rank("y", y, 4, "NHWC images")
    n, h, w, c4 = y.shape
    if c4 % 4:
      raise ValueError(
        f"unsqueeze needs a channel count divisible by 4; got shape {y.shape}."
      )
    x = y.reshape(n, h, w, c4 // 4, 2, 2).transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(n, 2 * h, 2 * w, c4 // 4), jnp.zeros((n,), y.dtype)

  return Bijector(no_params_init, forward, inverse)


@checked
def unsqueeze() -> Bijector:
  """Depth-to-space, the inverse of :func:`squeeze`."""
  return invert(squeeze())


@checked
def reshape(
  event_shape_in: tuple[int, ...], event_shape_out: tuple[int, ...]
) -> Bijector:
  """Reshapes each example, e.g. an MNIST image ``(28, 28, 1)`` to ``(784,)``.

  A relabelling of the entries: ``log_det = 0``; the inverse reshapes back.

  Raises:
    ValueError: if the shapes are not tuples of positive ints of equal size,
      or an input does not have ``event_shape_in``.
  """
  shape_in = _event_shape("event_shape_in", event_shape_in)
  shape_out = _event_shape("event_shape_out", event_shape_out)
  if math.prod(shape_in) != math.prod(shape_out):
    raise ValueError(
      f"event_shape_in {shape_in} and event_shape_out "
      f"{shape_out} must have the same number of entries."
    )

  def move(x, source, target):
    if tuple(x.shape[1:]) != source:
      raise ValueError(
        f"expected events of shape {source}; got {x.shape[1:]} "
        f"(batch shape {x.shape})"
      )
    return x.reshape((x.shape[0],) + target), jnp.zeros(x.shape[:1], x.dtype)

  def forward(params, x, context: Context = None):
    del params, context
    return move(x, shape_in, shape_out)

  def inverse(params, y, context: Context = None):
    del params, context
    return move(y, shape_out, shape_in)

  return Bijector(no_params_init, forward, inverse)


def _event_shape(name: str, shape) -> tuple[int, ...]:
  try:
    shape = tuple(int(d) for d in shape)
  except TypeError:
    raise ValueError(
      f"{name} must be a tuple of ints; got {shape!r}."
    ) from None
  if not shape or min(shape) < 1:
    raise ValueError(
      f"{name} must be a non-empty tuple of positive ints; got {shape!r}."
    )
  return shape
