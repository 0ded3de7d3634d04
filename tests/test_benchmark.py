"""experiments/benchmark.py: what it counts and how it judges the targets.

Timings are never asserted: the script's run here only has to produce every
field of its report for the one workload without peers.
"""

from __future__ import annotations

import json
import math
import os

import jax
import jax.numpy as jnp
import pytest
from bench import measure, report
from bench.workloads import GLOW, WORKLOADS
from scripts import ROOT, run_python


def test_flops_count_every_step_of_a_scan():
  steps, m, k = 4, 32, 64

  def f(weights, x):
    return jax.lax.scan(lambda h, w: (jnp.tanh(h @ w), None), x, weights)[0]

  weights, x = jnp.ones((steps, k, k)), jnp.ones((m, k))
  flops = measure.flops_with_loops_unrolled(f, weights, x)
  matmuls = steps * 2 * m * k * k
  # XLA counts a rolled loop's body once; unrolled, every step counts.
  assert matmuls <= flops <= 1.1 * matmuls
  rolled = jax.jit(f).lower(weights, x).compile().cost_analysis()
  rolled = rolled[0] if isinstance(rolled, list) else rolled
  assert rolled["flops"] < flops / 2


def _result(library, median_ms, framework="jax"):
  return measure.Result(GLOW.name, library, framework, step_ms=[median_ms] * 3)


def test_targets_compare_medians_against_the_right_candidates():
  results = [
    _result("flowjax_gen", 100.0),
    _result("plain JAX", 200.0),
    _result("plain JAX, GEMM convs", 97.0),
    _result("TFP-JAX", 140.0),
    _result("normflows (channels_last)", 95.0, "torch"),
    measure.Result(GLOW.name, "distrax", "-", error="cannot express it"),
  ]
  assert report.speedups(results)["TFP-JAX"] == pytest.approx(1.4)
  checks = {c["target"]: c for c in report.targets(GLOW, results)}
  fastest = checks["at least as fast as the fastest peer"]
  assert fastest["against"] == "normflows (channels_last)"
  assert not fastest["met"]  # 0.95x
  jax_peer = checks["1.5x the fastest JAX peer"]
  assert jax_peer["against"] == "TFP-JAX" and not jax_peer["met"]  # 1.4x
  assert checks["no slower than plain JAX"]["met"]
  overhead = next(c for name, c in checks.items() if "costs nothing" in name)
  assert overhead["met"]  # 0.97x: within the noise allowed between equals
  lines = report.target_lines(GLOW.name, list(checks.values()))
  assert any("NOT met" in line for line in lines)


def test_spline_and_maf_targets():
  nsf, maf = WORKLOADS["nsf_d8"], WORKLOADS["maf_d8"]
  results = [_result("flowjax_gen", 100.0), _result("flowjax", 115.0)]
  (spline,) = report.targets(nsf, results)
  assert spline["against"] == "flowjax" and not spline["met"]  # 1.15x < 1.2x
  results[0].log_prob_examples_per_s = 900.0
  results[1].log_prob_examples_per_s = 1000.0
  training, likelihood = report.targets(maf, results)
  assert training["met"] and training["ratio"] == pytest.approx(1.15)
  assert likelihood["against"] == "flowjax" and not likelihood["met"]
  assert likelihood["ratio"] == pytest.approx(0.9)


def test_every_workload_has_its_own_batch():
  for workload in WORKLOADS.values():
    batch = workload.batch()
    assert batch.shape == workload.batch_shape and batch.dtype == "float32"
    if workload.data == "image":
      assert 0.0 <= batch.min() and batch.max() < 1.0


@pytest.mark.slow
def test_script_reports_one_workload_without_peers(tmp_path):
  output = tmp_path / "benchmark.json"
  run = run_python(
    [
      os.path.join(ROOT, "experiments", "benchmark.py"),
      "--workloads=tabular_d8",
      "--peers=",
      "--rounds=2",
      "--steps_per_round=5",
      "--throughput_repeats=2",
      "--nodepth_checks",
      "--noinput",
      "--nofirst_log_prob",
      f"--output={output}",
    ]
  )
  assert run.returncode == 0, run.stderr[-3000:]
  assert "== tabular_d8" in run.stdout and "attainable" in run.stdout
  report_json = json.load(open(output))
  (ours,) = report_json["workloads"]["tabular_d8"]["results"]
  assert ours["library"] == "flowjax_gen" and ours["steps_timed"] == 10
  # 8 couplings of 4 -> 256 -> 256 -> 8 MLPs on 512 rows, forward and back.
  assert 1.6 < ours["gflops_per_step"] < 1.8
  assert ours["peak_memory_mb"] > 0 and ours["log_prob_examples_per_s"] > 0
  assert report_json["attainable_gflops"]["matmul"] > 0

  bad = run_python(
    [os.path.join(ROOT, "experiments", "benchmark.py"), "--peers=pyro"]
  )
  assert bad.returncode != 0 and "unknown peer" in bad.stderr


def test_input_workload_reads_records_at_a_positive_rate(tmp_path):
  from bench import input as input_bench  # noqa: PLC0415

  input_bench._write(str(tmp_path), (8, 8, 3))
  rate = input_bench.throughput(str(tmp_path), workers=0, batches=5)
  assert rate["examples_per_s"] > 0 and rate["first_batch_s"] >= 0
  row = {"shape": [8, 8, 3], "workers": 0, "megabytes_per_example": 1.9e-4}
  text = input_bench.table([{**row, **rate}], {"a step": 100.0})
  assert "8x8x3" in text and "needed by a step: 100 examples/s" in text


def test_first_log_prob_times_a_fresh_process():
  from bench import first_log_prob  # noqa: PLC0415

  seconds, note = first_log_prob._run(first_log_prob._TINY_GLOW)
  assert seconds is not None and seconds > 0, note
  # The README case parses: imports first, then the timed body.
  code = first_log_prob._readme_case()
  assert code.index("import jax") < code.index("_start = ")
  assert code.rstrip().endswith(
    'print("SECONDS", _time.perf_counter() - _start)'
  )


def test_normflows_glow_gets_its_batch_in_its_layouts():
  """Each normflows Glow candidate converts the NHWC batch to NCHW (the
  channels_last one with that memory format), and one step trains."""
  pytest.importorskip("normflows")
  import torch  # noqa: PLC0415 -- with normflows
  from bench import peer_normflows  # noqa: PLC0415

  workload = WORKLOADS["glow"]
  images = workload.batch()
  height, width, channels = images.shape[1:]
  default, last = peer_normflows.candidates(workload)
  batches = {c.library: c.to_batch(images) for c in (default, last)}
  for batch in batches.values():
    assert tuple(batch.shape[1:]) == (channels, height, width)
  assert batches[last.library].is_contiguous(memory_format=torch.channels_last)
  assert math.isfinite(default.train_step(batches[default.library]))
