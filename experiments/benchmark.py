"""Benchmarks flowjax_gen against peer libraries on one machine, in one run.

    python experiments/benchmark.py                      # everything
    python experiments/benchmark.py --workloads=glow --peers=normflows

Workloads (``bench/workloads.py``): Glow on 32x32x1 images, NICE on 784-d
vectors, and a RealNVP MLP coupling flow, a neural spline flow (spline
couplings) and a MAF on 8-d and 64-d vectors. Every
candidate trains the same model with the same step (``-mean log p``, Adam);
peers are distrax, flowjax and TFP's JAX substrate, and normflows on PyTorch
when it is installed (``pip install -e ".[bench]"``); a peer that is missing
or cannot express a workload is reported, not fatal. For each candidate:
compile time, train-step time (median, min, max over the timed steps),
log-likelihood throughput, peak memory, FLOPs per step and the fraction of
the machine's attainable matmul and conv FLOP/s; then the speed ratios
against the peers, and the depth checks: compile time and training
memory of Glow at K = 32 against K = 8, with plain backprop, ``jax.checkpoint``
per step and invertible backprop (inputs reconstructed from outputs).
Last, the input workload (``bench/input.py``): examples/s one process reads
from records on disk (``--config.input=stream``) for 28x28x1, 32x32x3 and
64x64x3 uint8 images with 0 and 2 worker processes, beside the examples/s
flowjax_gen's train steps of this run consume; and the time to first
log-prob (``bench/first_log_prob.py``): build, ``init`` and one eager
``log_prob`` in a fresh process, for the README's example, a tiny Glow and
the ``nsf_d8`` and ``maf_d8`` models of every library that has them.

The machine is noisy (10 to 25 per cent from run to run): candidates are
interleaved in rounds and only ratios within one run mean anything. Run
nothing else meanwhile.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys

import jax
from absl import app, flags

from flowjax_gen import host_memory

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench import (  # noqa: E402
  first_log_prob,  # noqa: E402
  measure,
  ours,
  plain_glow,
  report,
)
from bench import input as input_bench  # noqa: E402
from bench.candidate import Unsupported  # noqa: E402
from bench.workloads import WORKLOADS as KNOWN  # noqa: E402

WORKLOADS = flags.DEFINE_list(
  "workloads",
  [
    "glow",
    "nice",
    "tabular_d8",
    "tabular_d64",
    "nsf_d8",
    "nsf_d64",
    "maf_d8",
    "maf_d64",
  ],
  "workloads",
)
PEERS = flags.DEFINE_list(
  "peers", ["distrax", "flowjax", "tfp", "normflows"], "peer libraries"
)
ROUNDS = flags.DEFINE_integer(
  "rounds", 4, "rounds; every candidate runs its steps once per round"
)
STEPS = flags.DEFINE_integer("steps_per_round", 3, "timed steps per round")
REPEATS = flags.DEFINE_integer(
  "throughput_repeats", 5, "log-likelihood passes; the fastest counts"
)
INPUT = flags.DEFINE_bool(
  "input", True, "input workload: examples/s read from records on disk"
)
FIRST_LOG_PROB = flags.DEFINE_bool(
  "first_log_prob",
  True,
  "time to first log-prob in fresh processes (bench/first_log_prob.py)",
)
DEPTH = flags.DEFINE_bool(
  "depth_checks", True, "compile time and memory of Glow at K=8 vs K=32"
)
OUTPUT = flags.DEFINE_string(
  "output", "benchmark.json", "where the JSON report is written"
)

PEER_MODULES = {
  "distrax": "bench.peer_distrax",
  "flowjax": "bench.peer_flowjax",
  "tfp": "bench.peer_tfp",
  "normflows": "bench.peer_normflows",
}


def _candidates(workload):
  """(candidate or None, library, reason) for every candidate of a workload."""
  found = [(ours.candidate(workload), "flowjax_gen", None)]
  if workload.name == "glow":
    found.append((plain_glow.candidate(workload), "plain JAX", None))
    found.append(
      (
        plain_glow.candidate(workload, gemm_convs=True),
        "plain JAX, GEMM convs",
        None,
      )
    )
  for peer in PEERS.value:
    if peer not in PEER_MODULES:
      raise app.UsageError(
        f"--peers: unknown peer {peer!r}; known: {sorted(PEER_MODULES)}."
      )
    try:
      module = importlib.import_module(PEER_MODULES[peer])
      if hasattr(module, "candidates"):
        for c in module.candidates(workload):
          found.append((c, c.library, None))
      else:
        found.append((module.candidate(workload), peer, None))
    except ImportError as e:
      found.append(
        (None, peer, f"not installed ({e.name}): pip install -e '.[bench]'")
      )
    except Unsupported as e:
      found.append((None, peer, f"cannot express it: {e}"))
  return found


def _runners(workload, batch):
  runners, skipped = [], []
  for candidate, library, reason in _candidates(workload):
    if candidate is None:
      skipped.append(measure.Result(workload.name, library, "-", error=reason))
      continue
    kind = (
      measure.JaxRunner if hasattr(candidate, "init") else measure.TorchRunner
    )
    try:
      runners.append(kind(workload, candidate, batch))
    except Exception as e:  # a peer failing must not stop the benchmark
      skipped.append(
        measure.Result(
          workload.name, library, "-", error=f"failed: {e!r}"[:200]
        )
      )
  return runners, skipped


def run_workload(workload, attainable):
  batch = workload.batch()
  runners, skipped = _runners(workload, batch)
  for round_index in range(ROUNDS.value):
    # Each round starts with the next candidate, so none always runs first.
    shift = round_index % max(len(runners), 1)
    for runner in runners[shift:] + runners[:shift]:
      if runner.result.error is None:
        try:
          runner.run(STEPS.value)
        except Exception as e:
          runner.result.error = f"failed: {e!r}"[:200]
  for runner in runners:
    if runner.result.error is None:
      runner.throughput(REPEATS.value)
  results = [r.result for r in runners] + skipped
  print(report.table(workload, results, attainable), flush=True)
  return results, report.targets(workload, results)


def depth_checks(workload) -> dict:
  """Glow's compile time and training memory, K = 8 against K = 32."""
  batch = jax.numpy.asarray(workload.batch())
  modes = {
    "plain backprop": {},
    "jax.checkpoint per step": {"remat": True},
    "invertible backprop": {"invertible_backprop": True},
  }
  out = {}
  for mode, options in modes.items():
    for depth in (8, 32):
      candidate = ours.candidate(workload, steps_per_level=depth, **options)
      compiled, seconds = measure.compile_step(
        candidate, candidate.init(), batch
      )
      out[f"{mode}, K={depth}"] = dict(
        compile_s=seconds,
        peak_memory_mb=measure.compiled_peak_bytes(compiled) / 2**20,
      )
      del compiled
  lines = ["== depth: Glow train step, K = 8 against K = 32"]
  for mode in modes:
    k8, k32 = out[f"{mode}, K=8"], out[f"{mode}, K=32"]
    lines.append(
      f"  {mode:<24} compile {k8['compile_s']:6.1f} s -> "
      f"{k32['compile_s']:6.1f} s ({k32['compile_s'] / k8['compile_s']:.2f}x)"
      f"   peak memory {k8['peak_memory_mb']:7.1f} MB -> "
      f"{k32['peak_memory_mb']:7.1f} MB "
      f"({k32['peak_memory_mb'] / k8['peak_memory_mb']:.2f}x)"
    )
  compile_ratio = (
    out["plain backprop, K=32"]["compile_s"]
    / out["plain backprop, K=8"]["compile_s"]
  )
  memory_ratio = (
    out["invertible backprop, K=32"]["peak_memory_mb"]
    / out["invertible backprop, K=8"]["peak_memory_mb"]
  )
  lines.append(
    f"  compile K=32 / K=8: {compile_ratio:.2f}x, need <= 1.50x: "
    f"{'met' if compile_ratio <= 1.5 else 'NOT met'}"
  )
  lines.append(
    f"  invertible-backprop memory K=32 / K=8: {memory_ratio:.2f}x, need "
    f"<= 1.50x: {'met' if memory_ratio <= 1.5 else 'NOT met'}"
  )
  print("\n".join(lines), flush=True)
  return dict(runs=out, compile_ratio=compile_ratio, memory_ratio=memory_ratio)


def _versions() -> dict:
  versions = {"python": platform.python_version()}
  for name in ("jax", "jaxlib", "flax", "optax", "distrax", "flowjax"):
    try:
      versions[name] = importlib.import_module(name).__version__
    except (ImportError, AttributeError):
      pass
  for module, name in (
    ("tensorflow_probability", "tfp"),
    ("torch", "torch"),
    ("normflows", "normflows"),
  ):
    try:
      versions[name] = importlib.import_module(module).__version__
    except (ImportError, AttributeError):
      pass
  return versions


def _host_memory() -> str:
  """The allocator settings every candidate of this process runs under."""
  if host_memory.applied():
    return (
      "flowjax_gen's (freed memory kept in glibc's heap, single-device CPU "
      "programs on the calling thread)"
    )
  tunables = os.environ.get("GLIBC_TUNABLES")
  return f"GLIBC_TUNABLES={tunables}" if tunables else "glibc and JAX defaults"


def main(argv):
  del argv
  unknown = [w for w in WORKLOADS.value if w not in KNOWN]
  if unknown:
    raise app.UsageError(
      f"--workloads: unknown {unknown}; known: {sorted(KNOWN)}."
    )
  if ROUNDS.value * STEPS.value < 1:
    raise app.UsageError("--rounds and --steps_per_round must be >= 1.")
  try:
    import torch  # noqa: PLC0415 -- optional: only the PyTorch peer needs it

    torch.set_num_threads(os.cpu_count() or 1)
  except ImportError:
    pass
  print(f"host memory: {_host_memory()}")
  attainable = measure.attainable_gflops()
  print(
    f"attainable on this machine: matmul {attainable['matmul']:.1f} GFLOP/s,"
    f" conv {attainable['conv']:.1f} GFLOP/s ({os.cpu_count()} cores)"
  )
  print(
    "ours x = (that candidate's median step) / (flowjax_gen's): above 1, "
    "flowjax_gen is faster"
  )
  report_json = dict(
    command=" ".join([os.path.basename(sys.executable), *sys.argv]),
    versions=_versions(),
    cpu_count=os.cpu_count(),
    host_memory=_host_memory(),
    attainable_gflops=attainable,
    workloads={},
  )
  summary = []
  feeds = {}
  for name in WORKLOADS.value:
    workload = KNOWN[name]
    results, checks = run_workload(workload, attainable)
    ours_result = results[0]  # flowjax_gen comes first
    if ours_result.median_ms:
      examples = workload.batch_shape[0]
      feeds[f"flowjax_gen's {name} step"] = (
        examples / ours_result.median_ms * 1e3
      )
    report_json["workloads"][name] = dict(
      description=workload.description,
      results=[r.summary() for r in results],
      speedups=report.speedups(results),
      targets=checks,
    )
    summary += report.target_lines(name, checks)
  if DEPTH.value:
    report_json["depth"] = depth_checks(KNOWN["glow"])
  if INPUT.value:
    rows = input_bench.run()
    print(input_bench.table(rows, feeds), flush=True)
    report_json["input"] = dict(rows=rows, needed_examples_per_s=feeds)
  if FIRST_LOG_PROB.value:
    rows = first_log_prob.run()
    print(first_log_prob.table(rows), flush=True)
    report_json["first_log_prob"] = rows
  print("== speed ratios checked")
  print("\n".join(summary))
  with open(OUTPUT.value, "w") as f:
    json.dump(report_json, f, indent=1)
  print(f"wrote {OUTPUT.value}")


if __name__ == "__main__":
  app.run(main)
