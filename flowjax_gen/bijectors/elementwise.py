"""Elementwise bijectors: fixed shift and affine maps, learned diagonal scale,
sigmoid and RealNVP's logit pre-processing.

Axis 0 is the batch axis; every other axis is part of the event, and log-dets
sum over all of them. Forward is data -> latent (see ``base``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from flowjax_gen.bijectors.base import Bijector, event_sum, no_params_init
from flowjax_gen.bijectors.checks import checked
from flowjax_gen.typing import Context


def _num_event_dims(x: jax.Array) -> int:
  return x.ndim - 1


def _event_size(x: jax.Array) -> int:
  return math.prod(x.shape[1:])


@checked
def shift(amount: float) -> Bijector:
  """Fixed shift, e.g. centring data in [0, 1) to [-0.5, 0.5) (Glow).

  forward ``y = x + a``; inverse ``x = y - a``; ``log_det = 0``.
  """
  amount = float(amount)

  def forward(params, x, context: Context = None):
    del params, context
    return x + amount, jnp.zeros(x.shape[:1], x.dtype)

  def inverse(params, y, context: Context = None):
    del params, context
    return y - amount, jnp.zeros(y.shape[:1], y.dtype)

  return Bijector(no_params_init, forward, inverse)


@checked
def scalar_affine(*, shift: float = 0.0, scale: float = 1.0) -> Bijector:
  """Fixed scalar affine map ``y = scale * x + shift``.

  inverse ``x = (y - shift) / scale``; ``log_det = D log|scale|`` with ``D``
  the event size.

  Raises:
    ValueError: if ``scale`` is zero or not finite.
  """
  shift_value, scale_value = float(shift), float(scale)
  if scale_value == 0.0 or not math.isfinite(scale_value):
    raise ValueError(f"scale must be finite and non-zero; got {scale!r}.")
  log_abs_scale = math.log(abs(scale_value))

  def forward(params, x, context: Context = None):
    del params, context
    log_det = jnp.full(x.shape[:1], _event_size(x) * log_abs_scale, x.dtype)
    return scale_value * x + shift_value, log_det

  def inverse(params, y, context: Context = None):
    del params, context
    log_det = jnp.full(y.shape[:1], -_event_size(y) * log_abs_scale, y.dtype)
    return (y - shift_value) / scale_value, log_det

  return Bijector(no_params_init, forward, inverse)


@checked
def scale() -> Bijector:
  """Learned diagonal scaling, NICE's last layer (Dinh et al. 2014, §3.3).

  params ``{"log_scale": s}`` with ``s`` of the event shape, zero-initialised.
  forward ``y = x * exp(s)``; inverse ``x = y * exp(-s)``;
  ``log_det = sum(s)``.
  """

  def init(key, x, context: Context = None):
    del key, context
    return {"log_scale": jnp.zeros(x.shape[1:], x.dtype)}

  def forward(params, x, context: Context = None):
    del context
    s = params["log_scale"]
    log_det = jnp.broadcast_to(jnp.sum(s), x.shape[:1])
    return x * jnp.exp(s), log_det

  def inverse(params, y, context: Context = None):
    del context
    s = params["log_scale"]
    log_det = jnp.broadcast_to(-jnp.sum(s), y.shape[:1])
    return y * jnp.exp(-s), log_det

  return Bijector(init, forward, inverse)


@checked
def sigmoid() -> Bijector:
  """Logistic sigmoid, R -> (0, 1).

  forward ``y = sigma(x)``; inverse ``x = log y - log(1 - y)``;
  ``log_det = sum(log sigma(x) + log sigma(-x))``.
  """

  def forward(params, x, context: Context = None):
    del params, context
    log_det = jax.nn.log_sigmoid(x) + jax.nn.log_sigmoid(-x)
    return jax.nn.sigmoid(x), event_sum(log_det, _num_event_dims(x))

  def inverse(params, y, context: Context = None):
    del params, context
    log_y, log_1my = jnp.log(y), jnp.log1p(-y)
    return log_y - log_1my, -event_sum(log_y + log_1my, _num_event_dims(y))

  return Bijector(no_params_init, forward, inverse)


@checked
def logit(alpha: float = 0.05) -> Bijector:
  """RealNVP's pre-processing (Dinh et al. 2017, §4.1), (0, 1) -> R.

  With ``p = alpha + (1 - 2 alpha) x``:
  forward ``y = log p - log(1 - p)``; inverse
  ``x = (sigma(y) - alpha) / (1 - 2 alpha)``;
  ``log_det = sum(log(1 - 2 alpha) - log p - log(1 - p))``.
  ``alpha`` keeps the logit away from the boundaries of the pixel range.

  Raises:
    ValueError: unless ``0 <= alpha < 0.5``.
  """
  alpha = float(alpha)
  if not 0.0 <= alpha < 0.5:
    raise ValueError(f"alpha must be in [0, 0.5); got {alpha!r}.")
  log_range = math.log1p(-2.0 * alpha)

  def forward(params, x, context: Context = None):
    del params, context
    p = alpha + (1.0 - 2.0 * alpha) * x
    log_p, log_1mp = jnp.log(p), jnp.log1p(-p)
    log_det = event_sum(log_range - log_p - log_1mp, _num_event_dims(x))
    return log_p - log_1mp, log_det

  def inverse(params, y, context: Context = None):
    del params, context
    x = (jax.nn.sigmoid(y) - alpha) / (1.0 - 2.0 * alpha)
    log_det = jax.nn.log_sigmoid(y) + jax.nn.log_sigmoid(-y) - log_range
    return x, event_sum(log_det, _num_event_dims(y))

  return Bijector(no_params_init, forward, inverse)
