"""Test log-likelihood over a whole split, with its standard error.

Every example of the split counts once: the last partial batch is padded to
the batch size and the padding is masked out, so the figure does not depend
on the batch size or the device count. Dequantisation noise is drawn from a
fixed key per batch, so the same checkpoint gives the same number.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Optional

import jax
import numpy as np

from flowjax_gen import objectives
from flowjax_gen.training.parallel import (
  batch_sharded,
  check_batch_size,
  process_slice,
  replicated,
  shard_batch,
)


def make_per_example_fn(
  log_prob_fn: Callable,
  mesh: jax.sharding.Mesh,
  *,
  n_bits: Optional[int],
  num_classes: Optional[int],
) -> Callable:
  """Jitted ``(params, batch, key) -> {"bits_per_dim", "nll_nats"}`` per
  example, batch sharded over ``data``, results replicated."""

  def per_example(params, batch, key):
    return objectives.flow_bits_per_dim(
      log_prob_fn, params, batch, key, n_bits=n_bits, num_classes=num_classes
    )

  return jax.jit(
    per_example,
    in_shardings=(replicated(mesh), batch_sharded(mesh), replicated(mesh)),
    out_shardings=replicated(mesh),
  )


def evaluate_split(
  per_example_fn: Callable,
  params: Any,
  source: dict,
  *,
  batch_size: int,
  mesh: jax.sharding.Mesh,
  seed: int = 0,
) -> dict:
  """Mean bits/dim and nats over every example of ``source``.

  Returns:
    ``bits_per_dim`` (mean), ``bits_per_dim_stderr`` (standard error of the
    mean over examples), ``nll_nats``, ``num_examples``, ``examples_per_s``.
  """
  check_batch_size(batch_size, mesh)
  keys = [k for k in ("image", "label") if k in source]
  total = len(source["image"])
  if total == 0:
    raise ValueError("the evaluation split is empty.")
  results = {"bits_per_dim": [], "nll_nats": []}
  start = time.perf_counter()
  for index, begin in enumerate(range(0, total, batch_size)):
    rows = np.arange(begin, begin + batch_size)
    valid = rows < total
    rows = np.where(valid, rows, 0)  # pad with example 0, masked out below
    batch = {k: np.asarray(source[k])[rows] for k in keys}
    batch = shard_batch(process_slice(batch), mesh)
    key = jax.random.fold_in(jax.random.key(seed), index)
    out = per_example_fn(params, batch, key)
    for name, values in results.items():
      values.append(np.asarray(out[name])[valid])
  elapsed = time.perf_counter() - start
  bpd = np.concatenate(results["bits_per_dim"]).astype(np.float64)
  nats = np.concatenate(results["nll_nats"]).astype(np.float64)
  stderr = float(bpd.std(ddof=1) / math.sqrt(len(bpd))) if len(bpd) > 1 else 0.0
  return {
    "bits_per_dim": float(bpd.mean()),
    "bits_per_dim_stderr": stderr,
    "nll_nats": float(nats.mean()),
    "num_examples": int(len(bpd)),
    "examples_per_s": float(len(bpd) / elapsed),
  }
