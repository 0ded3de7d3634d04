"""Log-likelihood objectives: ``(params, batch, key) -> (loss, metrics)``.

Log-likelihood of discrete images, as the flow papers report it. Pixels
``x_int`` in ``{0, ..., 2^n - 1}`` (8-bit data reduced to ``n`` bits by
dropping low bits, e.g. Glow's 5-bit CelebA-HQ) are dequantised,
``x = (x_int + u) / 2^n`` with ``u ~ U[0, 1)^D``, and the flow models the
density ``p(x)`` on ``[0, 1)^D``. By Jensen's inequality (Theis et al. 2016)::

    -log P(x_int) <= E_u[ -log p(x) ] + D * n * log 2           (nats)
    bits/dim       = E_u[ -log p(x) ] / (D log 2) + n

where the ``D n log 2`` term is the Jacobian of the scaling by ``2^-n``; any
further pre-processing (centring, RealNVP's logit) is a bijector inside the
flow, so its log-det is already in ``log p(x)``. A uniform model on
``[0, 1)^D`` therefore scores exactly ``n`` bits/dim.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Optional

import jax
import jax.numpy as jnp

from flowjax_gen.preprocess import check_bound_inputs, check_n_bits, flow_inputs
from flowjax_gen.typing import Objective


def num_dims(x: jax.Array) -> int:
  """Entries per example (every axis but the batch axis)."""
  return math.prod(x.shape[1:])


def nll_nats(
  log_prob: jax.Array, dims: int, n_bits: Optional[int]
) -> jax.Array:
  """Per-example negative log-likelihood in nats of the discrete data
  (``-log p(x) + D n log 2``), or of the continuous data if ``n_bits`` is
  ``None``."""
  check_n_bits(n_bits)
  offset = 0.0 if n_bits is None else dims * n_bits * math.log(2.0)
  return -log_prob + offset


def bits_per_dim(
  log_prob: jax.Array, dims: int, n_bits: Optional[int]
) -> jax.Array:
  """Per-example bits/dim: ``nll_nats / (D log 2)``; see the module
  docstring."""
  return nll_nats(log_prob, dims, n_bits) / (dims * math.log(2.0))


def flow_bits_per_dim(
  log_prob_fn: Callable[..., jax.Array],
  params: Any,
  batch: dict,
  key: Optional[jax.Array],
  *,
  n_bits: Optional[int],
  num_classes: Optional[int],
) -> dict:
  """Per-example ``bits_per_dim`` and ``nll_nats`` of a flow on a batch.

  ``n_bits=None`` declares the data continuous; integer pixels are then
  refused, since a density of the raw levels is no likelihood of discrete
  data (checked from the dtype, when traced). With ``n_bits`` set, float
  images and ``key=None`` are refused (``preprocess.check_bound_inputs``).
  """
  image = batch["image"]
  if n_bits is None and not jnp.issubdtype(
    jnp.result_type(image), jnp.floating
  ):
    raise ValueError(
      f'n_bits=None treats batch["image"] as continuous values, but it has '
      f"dtype {jnp.result_type(image)}: pass n_bits (1..8) to dequantise "
      "the pixel levels (--config.n_bits=8 for experiments/train.py)."
    )
  if n_bits is not None:
    check_bound_inputs("flow_nll", image, key)
  x, context = flow_inputs(batch, key, n_bits=n_bits, num_classes=num_classes)
  log_prob = log_prob_fn(params, x, context)
  dims = num_dims(x)
  return {
    "bits_per_dim": bits_per_dim(log_prob, dims, n_bits),
    "nll_nats": nll_nats(log_prob, dims, n_bits),
  }


def flow_nll(
  log_prob_fn: Callable[..., jax.Array],
  *,
  n_bits: Optional[int] = 8,
  num_classes: Optional[int] = None,
) -> Objective:
  """Mean bits/dim of a flow on a batch, as an objective.

  Args:
    log_prob_fn: ``(params, x, context) -> (batch,)``, e.g. ``Flow.log_prob``,
      a density on ``[0, 1)^D`` (or on ``R^D`` for continuous data).
    n_bits: bits per pixel after reduction (8 for MNIST/CIFAR-10); the batch's
      ``"image"`` holds 8-bit pixel values and is dequantised with the key.
      ``None``: the data are continuous and used as they are.
    num_classes: if set, ``batch["label"]`` (ints) becomes a one-hot context.

  Returns:
    ``objective(params, batch, key) -> (loss, metrics)`` with ``loss`` the
    mean bits/dim and metrics ``bits_per_dim`` and ``nll_nats`` (per-example
    means).
  """
  check_n_bits(n_bits)

  def objective(params, batch, key):
    per_example = flow_bits_per_dim(
      log_prob_fn, params, batch, key, n_bits=n_bits, num_classes=num_classes
    )
    metrics = {k: jnp.mean(v) for k, v in per_example.items()}
    return metrics["bits_per_dim"], metrics

  return objective
