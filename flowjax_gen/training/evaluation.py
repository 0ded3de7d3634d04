"""Per-example metrics over a whole split, with standard errors.

Every example of the split counts once: the last partial batch is padded to
the batch size and the padding is masked out, so the figures do not depend
on the batch size or the device count. Randomness (dequantisation noise,
binarisation, importance samples, corruption) is drawn from a fixed key per
batch, so the same checkpoint gives the same numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Optional

import jax
import numpy as np

from flowjax_gen import data
from flowjax_gen.parallel import (
  batch_sharded,
  check_batch_size,
  process_slice,
  replicated,
  shard_batch,
)

PerExample = Callable[[Any, dict, jax.Array], dict]


class EvaluationInterrupted(Exception):  # noqa: N818 -- an event
  """``interrupt`` asked an evaluation to stop (a preemption)."""


def jit_per_example(per_example: PerExample, mesh: jax.sharding.Mesh):
  """Jits ``per_example(params, batch, key) -> {name: (batch,)}`` with the
  batch sharded over ``data`` and the results replicated."""
  return jax.jit(
    per_example,
    in_shardings=(replicated(mesh), batch_sharded(mesh), replicated(mesh)),
    out_shardings=replicated(mesh),
  )


def evaluate_split(
  per_example_fn: Callable,
  params: Any,
  source: data.Split,
  *,
  batch_size: int,
  mesh: jax.sharding.Mesh,
  seed: int = 0,
  interrupt: Optional[Callable[[], bool]] = None,
) -> dict:
  """Means of every per-example metric over every example of ``source``.

  Args:
    per_example_fn: jitted (``jit_per_example``) per-example metrics.
    params: model params (replicated).
    source: the split, ``{"image": (N, ...), "label": (N,)}`` or records
      on disk (each process reads only its part of each batch).
    batch_size: global evaluation batch.
    mesh: the data mesh.
    seed: seed of the per-batch keys.
    interrupt: called before each batch (on every process alike); ``True``
      abandons the evaluation.

  Returns:
    for every metric ``m``: ``m`` (mean over examples) and ``m_stderr`` (the
    standard error of that mean); ``num_examples``, ``examples_per_s``.

  Raises:
    EvaluationInterrupted: ``interrupt`` returned ``True``.
  """
  check_batch_size(batch_size, mesh)
  total = data.num_examples(source)
  if total == 0:
    raise ValueError("the evaluation split is empty.")
  results: dict[str, list] = {}
  start = time.perf_counter()
  for index, begin in enumerate(range(0, total, batch_size)):
    if interrupt is not None and interrupt():
      raise EvaluationInterrupted(f"stopped before batch {index}")
    rows = np.arange(begin, begin + batch_size)
    valid = rows < total
    rows = np.where(valid, rows, 0)  # pad with example 0, masked out below
    batch = data.take(source, process_slice({"rows": rows})["rows"])
    batch = shard_batch(batch, mesh)
    key = jax.random.fold_in(jax.random.key(seed), index)
    out = per_example_fn(params, batch, key)
    for name, values in out.items():
      results.setdefault(name, []).append(np.asarray(values)[valid])
  elapsed = time.perf_counter() - start
  report = {}
  for name, chunks in results.items():
    values = np.concatenate(chunks).astype(np.float64)
    report[name] = float(values.mean())
    report[f"{name}_stderr"] = (
      float(values.std(ddof=1) / math.sqrt(len(values)))
      if len(values) > 1
      else 0.0
    )
  report["num_examples"] = total
  report["examples_per_s"] = float(total / elapsed)
  return report
