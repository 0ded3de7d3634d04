"""The variational-dequantisation bound of a flow (Ho et al. 2019, Flow++).

Pixels ``x_int`` in ``{0, ..., 2^n - 1}^D`` are dequantised with a draw of a
learned ``q(u | x_int)`` on ``[0, 1)^D`` (``models.dequantization``)
instead of ``U[0, 1)^D``, and ``x = (x_int + u) / 2^n``. Since
``P(x_int) = E_q[ p(x) 2^{-nD} / q(u | x_int) ]``, Jensen's inequality
gives::

    -log P(x_int) <= E_q[ -log p(x) + log q(u | x_int) ] + D n log 2   (nats)
    bits/dim       = that / (D log 2)

The ``D n log 2`` term is the Jacobian of the scaling by ``2^-n``, as in
the uniform bound (``objectives.likelihood``), which is the case
``log q = 0``. The bound is tight when ``q`` is the model's own density on
the bin of ``x_int``; a flow and its dequantiser trained jointly on it
close part of the gap the uniform bound leaves.

With ``k`` draws ``u_1 .. u_k`` of ``q`` the same identity gives the
importance-weighted bound (Burda et al. 2016 for VAEs; Hoogeboom et al.
2020 for dequantisation)::

    -log P(x_int) <= E[ -log (1/k) sum_i p(x_i) / q(u_i | x_int) ] + D n log 2

which is the variational bound at ``k = 1``, never looser in expectation,
and tends to ``-log P(x_int)`` as ``k`` grows: a tighter estimate of the
same model's discrete NLL, for evaluation.

The params of a flow trained this way are one pytree
``{"flow": ..., "dequantizer": ...}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Optional

import jax
import jax.numpy as jnp

from flowjax_gen._checks import check_positive_int
from flowjax_gen.models.dequantization import Dequantizer
from flowjax_gen.objectives.likelihood import bits_per_dim, nll_nats, num_dims
from flowjax_gen.preprocess import (
  check_bound_inputs,
  check_n_bits,
  flow_inputs,
  reduce_bits,
)
from flowjax_gen.typing import Objective

DEQUANTIZATIONS = ("uniform", "variational")


def variational_inputs(
  dequantizer: Dequantizer,
  params: Any,
  batch: dict,
  key: jax.Array,
  *,
  n_bits: int,
  num_classes: Optional[int],
) -> tuple[jax.Array, Any, jax.Array]:
  """``(x, context, log_q)``: the batch dequantised with one draw of
  ``q(u | x_int)`` (``params`` are the dequantiser's), the flow's context
  and ``log q(u | x_int)`` per example."""
  check_n_bits(n_bits)
  check_bound_inputs("variational dequantisation", batch["image"], key)
  grid = reduce_bits(batch["image"], n_bits) / 2**n_bits
  u, log_q = dequantizer.sample(params, key, grid)
  x, context = flow_inputs(
    batch, None, n_bits=n_bits, num_classes=num_classes, noise=u
  )
  return x, context, log_q


def flow_variational_bits_per_dim(
  log_prob_fn: Callable[..., jax.Array],
  dequantizer: Dequantizer,
  params: Any,
  batch: dict,
  key: jax.Array,
  *,
  n_bits: int,
  num_classes: Optional[int],
) -> dict:
  """Per-example variational bound: ``bits_per_dim_variational`` and
  ``nll_nats_variational`` (module docstring), one draw of ``u`` each.

  Args:
    log_prob_fn: ``(flow params, x, context) -> (batch,)``.
    dequantizer: the ``q(u | x)`` of ``models.variational_dequantizer``.
    params: ``{"flow": ..., "dequantizer": ...}``.
    batch: ``"image"`` (8-bit pixels), ``"label"`` if ``num_classes``.
    key: draws ``u``.
    n_bits: bits per pixel after reduction.
    num_classes: if set, ``batch["label"]`` becomes a one-hot context.
  """
  x, context, log_q = variational_inputs(
    dequantizer,
    params["dequantizer"],
    batch,
    key,
    n_bits=n_bits,
    num_classes=num_classes,
  )
  log_bound = log_prob_fn(params["flow"], x, context) - log_q
  dims = num_dims(x)
  return {
    "bits_per_dim_variational": bits_per_dim(log_bound, dims, n_bits),
    "nll_nats_variational": nll_nats(log_bound, dims, n_bits),
  }


def flow_importance_weighted_bits_per_dim(
  log_prob_fn: Callable[..., jax.Array],
  dequantizer: Dequantizer,
  params: Any,
  batch: dict,
  key: jax.Array,
  *,
  num_samples: int,
  n_bits: int,
  num_classes: Optional[int],
) -> dict:
  """Per-example importance-weighted bound with ``num_samples`` draws of
  ``u`` (module docstring): ``bits_per_dim_variational_iw`` and
  ``nll_nats_variational_iw``.

  Draw ``i`` uses ``jax.random.split(key, num_samples)[i]``, the key
  ``flow_variational_bits_per_dim`` would be given for one draw, so with
  ``num_samples = 1`` the figure equals the variational bound of
  ``split(key, 1)[0]``. The draws run one after another (``lax.map``):
  memory stays that of one draw, time grows ``num_samples``-fold.

  Args:
    log_prob_fn, dequantizer, params, batch, n_bits, num_classes: as for
      ``flow_variational_bits_per_dim``.
    key: split into one key per draw.
    num_samples: draws of ``u`` per example (``k`` above).
  """
  check_positive_int("num_samples", num_samples)

  def log_weight(draw_key):
    x, context, log_q = variational_inputs(
      dequantizer,
      params["dequantizer"],
      batch,
      draw_key,
      n_bits=n_bits,
      num_classes=num_classes,
    )
    return log_prob_fn(params["flow"], x, context) - log_q

  log_weights = jax.lax.map(log_weight, jax.random.split(key, num_samples))
  log_bound = jax.nn.logsumexp(log_weights, axis=0) - math.log(num_samples)
  dims = num_dims(batch["image"])
  return {
    "bits_per_dim_variational_iw": bits_per_dim(log_bound, dims, n_bits),
    "nll_nats_variational_iw": nll_nats(log_bound, dims, n_bits),
  }


def flow_variational_nll(
  log_prob_fn: Callable[..., jax.Array],
  dequantizer: Dequantizer,
  *,
  n_bits: int = 8,
  num_classes: Optional[int] = None,
) -> Objective:
  """Mean variational bits/dim of a flow and its dequantiser, as one
  objective over ``params = {"flow": ..., "dequantizer": ...}``.

  The draw of ``u`` is reparameterised (``u`` is a differentiable function
  of ``eps ~ N(0, I)``), so the gradient reaches both parts.

  Returns:
    ``objective(params, batch, key) -> (loss, metrics)`` with ``loss`` the
    mean ``bits_per_dim_variational`` and metrics its per-example means
    ``bits_per_dim_variational`` and ``nll_nats_variational``.
  """
  check_n_bits(n_bits)
  if n_bits is None:
    raise ValueError(
      "variational dequantisation needs discrete data (n_bits in 1..8); "
      "got n_bits=None (continuous data)."
    )

  def objective(params, batch, key):
    per_example = flow_variational_bits_per_dim(
      log_prob_fn,
      dequantizer,
      params,
      batch,
      key,
      n_bits=n_bits,
      num_classes=num_classes,
    )
    metrics = {k: jnp.mean(v) for k, v in per_example.items()}
    return metrics["bits_per_dim_variational"], metrics

  return objective
