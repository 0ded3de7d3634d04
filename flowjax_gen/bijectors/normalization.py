"""RealNVP's batch-normalisation bijector (Dinh et al. 2017, §3.7, App. E).

params ``{"log_gamma", "beta", "running_mean", "running_var"}``, one value
per channel (last axis). With statistics ``(m, v)``::

    forward:  y = (x - m) / sqrt(v + eps) * exp(log_gamma) + beta
    inverse:  x = (y - beta) * exp(-log_gamma) * sqrt(v + eps) + m
    log_det = P * sum(log_gamma - 0.5 * log(v + eps))

where ``P`` is the number of positions per example. With
``use_running_average=False`` (training) the forward pass uses the batch's
own mean and variance, and the log-det is that of the map with those
statistics held fixed, as in the paper; with ``True`` (evaluation) it uses the
running averages and is an exact per-example bijection. The forward pass
also takes the mode at call time, ``forward_and_log_det(params, x,
training=True)`` (batch statistics) or ``training=False`` (running
averages), which overrides the factory's default. The inverse (latent
-> data, i.e. sampling) has no batch of data to take statistics from, so it
always uses the running averages.

``update_stats(params, x)`` moves the running averages towards the statistics
of ``x`` by ``momentum`` (an exponential moving average) and returns new
params; ``init`` starts them at the statistics of the example batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from flowjax_gen._checks import check_min_rank
from flowjax_gen.bijectors.base import Bijector, num_positions
from flowjax_gen.bijectors.checks import checked
from flowjax_gen.typing import Context


def _moments(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  axes = tuple(range(x.ndim - 1))
  return jnp.mean(x, axis=axes), jnp.var(x, axis=axes)


@checked
def batch_norm(
  *,
  use_running_average: bool = True,
  momentum: float = 0.05,
  eps: float = 1e-4,
) -> Bijector:
  """Batch normalisation as a bijector; see the module docstring.

  Args:
    use_running_average: the default mode: the running averages (``True``,
      so an example's density does not depend on the batch it comes in) or
      the batch statistics (``False``); a call's ``training=`` overrides
      it, and training objectives pass ``training=True``.
    momentum: weight of the new batch in ``update_stats``, in (0, 1].
    eps: variance floor inside the square root, > 0.
  """
  if not isinstance(use_running_average, bool):
    raise ValueError(
      f"use_running_average must be a bool; got {use_running_average!r}."
    )
  if not 0.0 < momentum <= 1.0:
    raise ValueError(f"momentum must be in (0, 1]; got {momentum!r}.")
  if not eps > 0.0:
    raise ValueError(f"eps must be > 0; got {eps!r}.")

  def init(key, x, context: Context = None):
    del key, context
    check_min_rank("x", x, 2, "a batch of events with channels last")
    mean, var = _moments(x)
    zeros = jnp.zeros(x.shape[-1:], x.dtype)
    return {
      "log_gamma": zeros,
      "beta": zeros,
      "running_mean": mean,
      "running_var": var,
    }

  def statistics(params, x, training):
    use_batch = not use_running_average if training is None else training
    if not use_batch:
      return params["running_mean"], params["running_var"]
    return _moments(x)

  def log_det(params, var, x):
    per_channel = params["log_gamma"] - 0.5 * jnp.log(var + eps)
    return jnp.broadcast_to(
      num_positions(x) * jnp.sum(per_channel), x.shape[:1]
    )

  def forward(params, x, context: Context = None, *, training=None):
    del context
    mean, var = statistics(params, x, training)
    y = (x - mean) * jax.lax.rsqrt(var + eps) * jnp.exp(params["log_gamma"])
    return y + params["beta"], log_det(params, var, x)

  def inverse(params, y, context: Context = None):
    del context
    mean, var = params["running_mean"], params["running_var"]
    x = (y - params["beta"]) * jnp.exp(-params["log_gamma"])
    x = x * jnp.sqrt(var + eps) + mean
    return x, -log_det(params, var, y)

  def update_stats(params, x, context: Context = None):
    del context
    mean, var = _moments(jax.lax.stop_gradient(x))
    return dict(
      params,
      running_mean=(1 - momentum) * params["running_mean"] + momentum * mean,
      running_var=(1 - momentum) * params["running_var"] + momentum * var,
    )

  return Bijector(init, forward, inverse, update_stats)
