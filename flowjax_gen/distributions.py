"""Base densities as pure functions over batched events.

``log_prob(x)`` sums over every axis but the first (the batch axis) and
accepts a pytree of arrays (a multi-scale flow's tuple of latents), summing
over its leaves. ``sample(key, shapes, temperature=1.0)`` draws a pytree
shaped like ``shapes`` (``jax.ShapeDtypeStruct`` or array leaves) with the
scale multiplied by ``temperature``, Glow's "temperature" (T < 1 trades
diversity for quality).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

LOG_2PI = math.log(2.0 * math.pi)


class Distribution(NamedTuple):
  """A fixed base density: ``log_prob(x) -> (batch,)``, ``sample``."""

  log_prob: Callable[[Any], jax.Array]
  sample: Callable[..., Any]


def _per_example(fn: Callable[[jax.Array], jax.Array]):
  def log_prob(x):
    terms = [
      jnp.sum(fn(leaf).reshape(leaf.shape[0], -1), axis=1)
      for leaf in jax.tree.leaves(x)
    ]
    return sum(terms[1:], terms[0])

  return log_prob


def _sampler(draw: Callable[[jax.Array, tuple, Any], jax.Array]):
  def sample(key, shapes, temperature: float = 1.0):
    leaves, treedef = jax.tree.flatten(shapes)
    keys = jax.random.split(key, len(leaves))
    draws = [
      temperature * draw(k, leaf.shape, leaf.dtype)
      for k, leaf in zip(keys, leaves, strict=True)
    ]
    return jax.tree.unflatten(treedef, draws)

  return sample


def normal_log_prob(x: jax.Array) -> jax.Array:
  """Elementwise ``log N(x; 0, 1) = -(x^2 + log 2 pi) / 2``."""
  return -0.5 * (x * x + LOG_2PI)


def logistic_log_prob(x: jax.Array) -> jax.Array:
  """Elementwise standard logistic ``log p(x) = -x - 2 log(1 + e^{-x})``
  ``= log sigmoid(x) + log sigmoid(-x)``, NICE's prior (Dinh et al. 2014)."""
  return jax.nn.log_sigmoid(x) + jax.nn.log_sigmoid(-x)


def standard_normal() -> Distribution:
  """Independent ``N(0, 1)`` entries."""
  return Distribution(
    _per_example(normal_log_prob), _sampler(jax.random.normal)
  )


def standard_logistic() -> Distribution:
  """Independent standard logistic entries (NICE)."""
  return Distribution(
    _per_example(logistic_log_prob), _sampler(jax.random.logistic)
  )


def diagonal_gaussian_log_prob(
  x: jax.Array, mean: jax.Array, log_std: jax.Array
) -> jax.Array:
  """``log N(x; mean, diag(exp(2 log_std)))`` summed per example:
  ``sum(-((x - mean) / std)^2 / 2 - log_std - log(2 pi) / 2)``."""
  z = (x - mean) * jnp.exp(-log_std)
  return _per_example(lambda v: v)(normal_log_prob(z) - log_std)


def diagonal_gaussian_sample(
  key: jax.Array, mean: jax.Array, log_std: jax.Array, temperature: float = 1.0
) -> jax.Array:
  """``mean + temperature * exp(log_std) * eps`` with ``eps ~ N(0, I)``."""
  eps = jax.random.normal(key, jnp.shape(mean), jnp.result_type(mean))
  return mean + temperature * jnp.exp(log_std) * eps


def discretized_logistic_log_prob(
  x: jax.Array, mean: jax.Array, log_scale: jax.Array, n_bits: int
) -> jax.Array:
  """Elementwise ``log P(x)`` of ``n``-bit integers ``x in {0, ..., K}``.

  With bin centres ``c = 2 x / K - 1`` in ``[-1, 1]``, half-width
  ``h = 1 / K``, ``s = exp(log_scale)`` and ``a = (c + h - mean) / s``,
  ``b = (c - h - mean) / s``::

      P(x) = sigmoid(a) - sigmoid(b)      0 < x < K
      P(0) = sigmoid(a),  P(K) = 1 - sigmoid(b) = sigmoid(-b)

  (the edge bins take the tails, so the ``K + 1`` probabilities sum to 1).
  The interior uses ``sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b)
  (1 - e^(b - a))``, where ``a - b = 2 h / s`` is exact: no cancellation
  even when both sigmoids are close to 1.
  """
  levels = 2**n_bits - 1
  half_width = 1.0 / levels
  centre = 2.0 * x / levels - 1.0
  inv_scale = jnp.exp(-log_scale)
  upper = (centre + half_width - mean) * inv_scale
  lower = (centre - half_width - mean) * inv_scale
  log_cdf_upper = jax.nn.log_sigmoid(upper)
  log_sf_lower = jax.nn.log_sigmoid(-lower)
  # log(1 - e^-d) for d = 2 h / s > 0; expm1 keeps it accurate for small d.
  log_gap = jnp.log(-jnp.expm1(-2.0 * half_width * inv_scale))
  interior = log_cdf_upper + log_sf_lower + log_gap
  return jnp.where(
    x <= 0, log_cdf_upper, jnp.where(x >= levels, log_sf_lower, interior)
  )
