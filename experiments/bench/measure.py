"""Measurements: compile time, step times, throughput, memory, FLOPs.

Times are wall-clock on a machine whose run-to-run spread is 10-25%, so the
harness interleaves the candidates (``rounds`` of a few steps each, every
candidate in turn) and only ratios within one run are meaningful.

* JAX: the step is jitted with its state donated, lowered and compiled once
  (the compile time); FLOPs come from XLA's cost analysis (of the program
  with its loops unrolled, since XLA counts a loop body once) and peak
  memory from the compiled program's memory analysis (arguments + outputs +
  temporaries - aliased buffers: what the step holds at its peak).
* PyTorch runs eagerly: "compile" is the first step (actnorm's
  data-dependent init included); FLOPs come from
  ``torch.utils.flop_counter``; memory is the growth of the process's
  resident set during the timed steps, sampled every millisecond.
* Attainable FLOP/s: a plain float32 matmul and a plain 3x3 convolution,
  jitted, on this machine, in this process.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass
class Result:
  """What one candidate measured on one workload."""

  workload: str
  library: str
  framework: str
  note: str = ""
  compile_s: Optional[float] = None
  step_ms: list = dataclasses.field(default_factory=list)
  log_prob_examples_per_s: Optional[float] = None
  peak_memory_mb: Optional[float] = None
  memory_definition: str = ""
  gflops_per_step: Optional[float] = None
  error: Optional[str] = None

  @property
  def median_ms(self) -> Optional[float]:
    return statistics.median(self.step_ms) if self.step_ms else None

  def summary(self) -> dict:
    out = dataclasses.asdict(self)
    if self.step_ms:
      out.update(
        step_ms_median=self.median_ms,
        step_ms_min=min(self.step_ms),
        step_ms_max=max(self.step_ms),
        steps_timed=len(self.step_ms),
      )
    return out


def _timed(fn: Callable[[], Any]) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def attainable_gflops(repeats: int = 10) -> dict:
  """GFLOP/s of a plain jitted float32 matmul and 3x3 conv on this machine.

  Sizes are those of the benchmark's heaviest ops, made square enough for
  XLA's GEMM and convolution kernels to reach their best rate: a
  2048 x 1024 x 1024 matmul and a 3x3, 128 -> 128 channel conv over a batch
  of 64 16x16 images.
  """
  key = jax.random.key(0)
  a = jax.random.normal(key, (2048, 1024))
  b = jax.random.normal(key, (1024, 1024))
  x = jax.random.normal(key, (64, 16, 16, 128))
  k = jax.random.normal(key, (3, 3, 128, 128))
  matmul = jax.jit(jnp.matmul)
  conv = jax.jit(
    lambda x, k: jax.lax.conv_general_dilated(
      x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
  )
  rates = {}
  for name, fn, args, flops in (
    ("matmul", matmul, (a, b), 2 * 2048 * 1024 * 1024),
    ("conv", conv, (x, k), 2 * 64 * 16 * 16 * 128 * 128 * 9),
  ):
    fn(*args).block_until_ready()
    best = min(
      _timed(lambda fn=fn, args=args: fn(*args).block_until_ready())
      for _ in range(repeats)
    )
    rates[name] = flops / best / 1e9
  return rates


def compile_step(candidate, state, batch) -> tuple[Any, float]:
  """``(compiled train step with the state donated, seconds to compile)``."""
  start = time.perf_counter()
  compiled = (
    jax.jit(candidate.train_step, donate_argnums=0)
    .lower(state, batch)
    .compile()
  )
  return compiled, time.perf_counter() - start


class JaxRunner:
  """Compiles a ``JaxCandidate`` once and times its steps on demand."""

  def __init__(self, workload, candidate, batch: np.ndarray):
    self.result = Result(workload.name, candidate.library, "jax")
    self.result.note = candidate.note
    self.batch = jnp.asarray(batch)
    self.state = candidate.init()
    self.step, self.result.compile_s = compile_step(
      candidate, self.state, self.batch
    )
    flops = flops_with_loops_unrolled(
      candidate.train_step, self.state, self.batch
    )
    self.result.gflops_per_step = flops and flops / 1e9
    self.result.peak_memory_mb = compiled_peak_bytes(self.step) / 2**20
    self.result.memory_definition = "XLA memory analysis of the step"
    self.log_prob = (
      jax.jit(candidate.log_prob).lower(self.state, self.batch).compile()
    )
    self.run(2, record=False)  # warm-up

  def run(self, steps: int, record: bool = True) -> None:
    for _ in range(steps):
      start = time.perf_counter()
      self.state, loss = self.step(self.state, self.batch)
      jax.block_until_ready((self.state, loss))
      if record:
        self.result.step_ms.append(1e3 * (time.perf_counter() - start))
    if not np.isfinite(float(loss)):
      raise FloatingPointError(f"non-finite loss {float(loss)}")

  def throughput(self, repeats: int) -> None:
    self.log_prob(self.state, self.batch).block_until_ready()
    best = min(
      _timed(lambda: self.log_prob(self.state, self.batch).block_until_ready())
      for _ in range(repeats)
    )
    self.result.log_prob_examples_per_s = self.batch.shape[0] / best


def flops_with_loops_unrolled(fn, *args) -> Optional[float]:
  """FLOPs of ``jit(fn)(*args)`` from XLA's cost analysis.

  XLA counts a loop body once, whatever its trip count, so the program is
  lowered (not compiled) once more with every ``lax.scan`` unrolled; that
  program does the same arithmetic as the compiled one. Libraries that
  imported ``scan`` by name (``from jax.lax import scan``) are patched too.
  """
  scan = jax.lax.scan

  def unrolled(*a, **k):
    k["unroll"] = True
    return scan(*a, **k)

  patched = [
    (module, name)
    for module in list(sys.modules.values())
    for name, value in list(getattr(module, "__dict__", {}).items())
    if value is scan
  ]
  for module, name in patched:
    setattr(module, name, unrolled)
  try:
    # A new function object, so jit traces again rather than reusing the
    # trace (with its rolled loops) cached for ``fn``.
    def retraced(*a):
      return fn(*a)

    cost = jax.jit(retraced).lower(*args).cost_analysis()
  finally:
    for module, name in patched:
      setattr(module, name, scan)
  if isinstance(cost, list):  # older JAX: one dict per computation
    cost = cost[0]
  return float(cost["flops"]) if cost and cost.get("flops") else None


def compiled_peak_bytes(compiled) -> int:
  """Arguments + outputs + temporaries - aliased (donated) buffers."""
  m = compiled.memory_analysis()
  return (
    m.argument_size_in_bytes
    + m.output_size_in_bytes
    + m.temp_size_in_bytes
    - m.alias_size_in_bytes
  )


class _RssPeak:
  """Samples the resident set size every millisecond in a thread."""

  def __init__(self):
    import psutil  # noqa: PLC0415 -- only the PyTorch runner needs it

    self.process = psutil.Process()
    self.base = self.process.memory_info().rss
    self.peak = self.base
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._sample, daemon=True)

  def _sample(self):
    while not self._stop.is_set():
      self.peak = max(self.peak, self.process.memory_info().rss)
      time.sleep(0.001)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()


class TorchRunner:
  """Runs a ``TorchCandidate`` eagerly; the first step stands for compile."""

  def __init__(self, workload, candidate, batch: np.ndarray):
    import torch  # noqa: PLC0415 -- optional peer
    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415

    self.torch = torch
    self.result = Result(workload.name, candidate.library, "torch")
    self.result.note = candidate.note
    self.candidate = candidate
    self.batch = candidate.to_batch(batch)
    self.result.compile_s = _timed(lambda: candidate.train_step(self.batch))
    counter = FlopCounterMode(display=False)
    with counter:
      candidate.train_step(self.batch)
    self.result.gflops_per_step = counter.get_total_flops() / 1e9
    self.result.memory_definition = "growth of the resident set during steps"
    self.run(1, record=False)

  def run(self, steps: int, record: bool = True) -> None:
    with _RssPeak() as rss:
      for _ in range(steps):
        start = time.perf_counter()
        loss = self.candidate.train_step(self.batch)
        if record:
          self.result.step_ms.append(1e3 * (time.perf_counter() - start))
    growth = (rss.peak - rss.base) / 2**20
    if record:
      self.result.peak_memory_mb = max(self.result.peak_memory_mb or 0, growth)
    if not np.isfinite(loss):
      raise FloatingPointError(f"non-finite loss {loss}")

  def throughput(self, repeats: int) -> None:
    self.candidate.log_prob(self.batch)
    best = min(
      _timed(lambda: self.candidate.log_prob(self.batch))
      for _ in range(repeats)
    )
    self.result.log_prob_examples_per_s = self.batch.shape[0] / best
