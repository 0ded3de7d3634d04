"""The logistic-mixture CDF transformer of Flow++ (Ho et al. 2019, §3.1).

One entry ``x`` with ``K`` components (logits ``w_k``, so weights
``pi = softmax(w)``; means ``mu_k``; log-scales ``l_k``, clamped below at
``MIN_LOG_SCALE``) and an outer affine map (log-scale ``alpha = tanh(h)``,
shift ``beta``)::

    z_k = (x - mu_k) exp(-l_k)
    F(x) = sum_k pi_k sigmoid(z_k)                 (the mixture's CDF)
    forward:  y = exp(alpha) logit(F(x)) + beta
    log_det = alpha + log F'(x) - log F(x) - log(1 - F(x))
    log F'(x)     = logsumexp_k(log pi_k - l_k + log sigmoid(z_k)
                                              + log sigmoid(-z_k))
    log F(x)      = logsumexp_k(log pi_k + log sigmoid(z_k))
    log(1 - F(x)) = logsumexp_k(log pi_k + log sigmoid(-z_k))

Everything is computed in log space, so ``logit(F(x)) = log F - log(1 - F)``
stays finite and exact far in the tails, where ``F`` itself rounds to 0 or
1 in float32.

The inverse has no closed form. With ``v = (y - beta) exp(-alpha)``, the
root of ``logit(F(x)) = v`` lies in the bracket
``[min_k(mu_k + e^{l_k} v), max_k(mu_k + e^{l_k} v)]`` (at its left end
every component's CDF is at most ``sigmoid(v)``, so ``F`` is; at its right
end at least), and ``INVERSE_ITERATIONS`` bisection steps shrink it by
``2^-INVERSE_ITERATIONS`` (1e-18: below the rounding of float64 for brackets
up to 1e3 wide). One Newton step from the bisected point ends the inverse;
it is where the gradient comes from, by the implicit function theorem
(``dx/dtheta = -(d logit F / dtheta) / (d logit F / dx)`` at the root),
since bisection itself has no useful derivative. All of it is fixed-length
``lax`` code, so it runs under ``jit``, ``vmap`` and ``grad``.

All-zero parameters (uniform weights, zero means and log-scales, no outer
affine) give ``F = sigmoid``, so ``y = x``: a zero-initialised conditioner
starts every entry at the identity.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from flowjax_gen._checks import check_positive_int
from flowjax_gen.bijectors.base import Bijector, event_sum
from flowjax_gen.bijectors.checks import checked
from flowjax_gen.typing import Array, Context

MIN_LOG_SCALE = -7.0
INVERSE_ITERATIONS = 60


def num_mixture_params(num_components: int) -> int:
  """Parameters per entry: shift, log-scale logit, and K logits, means and
  log-scales."""
  return 2 + 3 * num_components


def check_mixture_args(num_components: int) -> None:
  check_positive_int("num_components", num_components)


def _split(theta: Array, num_components: int):
  """``(..., 3K + 2)`` -> beta, alpha, log pi, mu, log-scales."""
  k = num_components
  beta, alpha = theta[..., 0], jnp.tanh(theta[..., 1])
  log_pi = jax.nn.log_softmax(theta[..., 2 : 2 + k], axis=-1)
  mu = theta[..., 2 + k : 2 + 2 * k]
  log_scale = jnp.maximum(theta[..., 2 + 2 * k :], MIN_LOG_SCALE)
  return beta, alpha, log_pi, mu, log_scale


def _logit_cdf(x, log_pi, mu, log_scale):
  """``logit F(x)`` and ``log F'(x) - log F(x) - log(1 - F(x))``."""
  z = (x[..., None] - mu) * jnp.exp(-log_scale)
  log_s, log_not_s = jax.nn.log_sigmoid(z), jax.nn.log_sigmoid(-z)
  log_cdf = jax.nn.logsumexp(log_pi + log_s, axis=-1)
  log_survival = jax.nn.logsumexp(log_pi + log_not_s, axis=-1)
  log_pdf = jax.nn.logsumexp(log_pi - log_scale + log_s + log_not_s, axis=-1)
  return log_cdf - log_survival, log_pdf - log_cdf - log_survival


def logistic_mixture_forward(theta: Array, x: Array, num_components: int):
  """``y`` and the per-entry log-derivative (the module docstring)."""
  beta, alpha, log_pi, mu, log_scale = _split(theta, num_components)
  v, log_deriv = _logit_cdf(x, log_pi, mu, log_scale)
  return jnp.exp(alpha) * v + beta, alpha + log_deriv


def logistic_mixture_inverse(theta: Array, y: Array, num_components: int):
  """``x`` (bisection, then one Newton step) and the inverse's
  per-entry log-derivative."""
  beta, alpha, log_pi, mu, log_scale = _split(theta, num_components)
  v = (y - beta) * jnp.exp(-alpha)

  def logit_cdf(x):
    return _logit_cdf(x, log_pi, mu, log_scale)[0]

  ends = mu + jnp.exp(log_scale) * v[..., None]
  bracket = jax.lax.stop_gradient((ends.min(axis=-1), ends.max(axis=-1)))

  def bisect(_, bracket):
    low, high = bracket
    middle = 0.5 * (low + high)
    below = logit_cdf(middle) < jax.lax.stop_gradient(v)
    return jnp.where(below, middle, low), jnp.where(below, high, middle)

  low, high = jax.lax.fori_loop(0, INVERSE_ITERATIONS, bisect, bracket)
  root = jax.lax.stop_gradient(0.5 * (low + high))
  # Newton from the root: F is unchanged to rounding, and the step carries
  # the implicit function theorem's derivative to theta and y.
  value, log_deriv = _logit_cdf(root, log_pi, mu, log_scale)
  x = root - (value - v) * jnp.exp(-log_deriv)
  return x, -(alpha + _logit_cdf(x, log_pi, mu, log_scale)[1])


@checked
def logistic_mixture_cdf(num_components: int = 4) -> Bijector:
  """Elementwise logistic-mixture CDF with learned parameters (Flow++).

  Every entry of the event has its own mixture and outer affine map (the
  module docstring); params ``{"shift", "log_scale", "logits", "means",
  "log_scales"}`` of shapes ``event``, ``event`` and ``event + (K,)``
  three times, zero at init (the identity). Domain: all of R.

  Args:
    num_components: ``K``.
  """
  check_mixture_args(num_components)

  def init(key, x, context: Context = None):
    del key, context
    event = x.shape[1:]
    return {
      "shift": jnp.zeros(event, x.dtype),
      "log_scale": jnp.zeros(event, x.dtype),
      "logits": jnp.zeros(event + (num_components,), x.dtype),
      "means": jnp.zeros(event + (num_components,), x.dtype),
      "log_scales": jnp.zeros(event + (num_components,), x.dtype),
    }

  def theta(params, x):
    theta = jnp.concatenate(
      [
        params["shift"][..., None],
        params["log_scale"][..., None],
        params["logits"],
        params["means"],
        params["log_scales"],
      ],
      axis=-1,
    )
    return jnp.broadcast_to(theta, x.shape + theta.shape[-1:])

  def forward(params, x, context: Context = None):
    del context
    y, log_deriv = logistic_mixture_forward(theta(params, x), x, num_components)
    return y, event_sum(log_deriv, x.ndim - 1)

  def inverse(params, y, context: Context = None):
    del context
    x, log_deriv = logistic_mixture_inverse(theta(params, y), y, num_components)
    return x, event_sum(log_deriv, y.ndim - 1)

  return Bijector(init, forward, inverse)
