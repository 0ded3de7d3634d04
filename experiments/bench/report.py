"""The benchmark's table, its ratios and the checks made of them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from bench.measure import Result

OURS = "flowjax_gen"
# Hand-written references, not libraries: compared with, never "peers".
REFERENCES = ("plain JAX", "plain JAX, GEMM convs")


def _fmt(value: Optional[float], spec: str) -> str:
  return "-" if value is None else format(value, spec)


def speedups(results: Sequence[Result]) -> dict[str, float]:
  """``other median / ours median`` for every other candidate that ran."""
  ours = next((r for r in results if r.library == OURS and r.step_ms), None)
  if ours is None:
    return {}
  return {
    r.library: r.median_ms / ours.median_ms
    for r in results
    if r.library != OURS and r.step_ms
  }


def table(
  workload, results: Sequence[Result], attainable: dict[str, float]
) -> str:
  """One workload's rows: every figure the benchmark measured."""
  ratio = speedups(results)
  header = (
    f"{'library':<27} {'compile s':>9} {'step ms (min-max)':>22} "
    f"{'loglik ex/s':>11} {'peak MB':>8} {'GFLOP':>6} {'%mm':>4} "
    f"{'%conv':>5} {'ours x':>6}"
  )
  lines = [f"== {workload.name}: {workload.description}", header]
  for r in results:
    if r.error:
      lines.append(f"{r.library:<27} {r.error}")
      continue
    rate = (
      r.gflops_per_step / (r.median_ms / 1e3)
      if r.gflops_per_step and r.median_ms
      else None
    )
    spread = f"{r.median_ms:.1f} ({min(r.step_ms):.1f}-{max(r.step_ms):.1f})"
    lines.append(
      f"{r.library:<27} {_fmt(r.compile_s, '9.2f')} {spread:>22} "
      f"{_fmt(r.log_prob_examples_per_s, '11.0f')} "
      f"{_fmt(r.peak_memory_mb, '8.1f')} "
      f"{_fmt(r.gflops_per_step, '6.2f')} "
      f"{_fmt(rate and 100 * rate / attainable['matmul'], '4.0f')} "
      f"{_fmt(rate and 100 * rate / attainable['conv'], '5.0f')} "
      f"{_fmt(ratio.get(r.library), '6.2f')}"
    )
  return "\n".join(lines)


def _fastest(results, keep) -> Optional[Result]:
  timed = [r for r in results if r.step_ms and keep(r)]
  return min(timed, key=lambda r: r.median_ms) if timed else None


def targets(workload, results: Sequence[Result]) -> list[dict]:
  """The speed ratios checked for ``workload``, each with its value."""
  ours = _fastest(results, lambda r: r.library == OURS)
  if ours is None:
    return []

  def peer(r):
    return r.library not in (OURS, *REFERENCES)

  checks = []

  def check(name, other, required):
    ratio = None if other is None else other.median_ms / ours.median_ms
    _record(checks, name, required, other, ratio)

  fastest_peer = _fastest(results, peer)
  if workload.name == "glow":
    check("at least as fast as the fastest peer", fastest_peer, 1.0)
    check(
      "1.5x the fastest JAX peer",
      _fastest(results, lambda r: peer(r) and r.framework == "jax"),
      1.5,
    )
    check(
      "no slower than plain JAX",
      _fastest(results, lambda r: r.library == "plain JAX"),
      1.0,
    )
    # The same convolutions, scan and step without the bijector abstraction:
    # the compiled programs match in FLOPs and memory, so the ratio is 1 up
    # to this machine's run-to-run noise between two identical programs.
    check(
      "composition costs nothing: plain JAX with the same GEMM convs "
      "(within 5% noise)",
      _fastest(results, lambda r: r.library == "plain JAX, GEMM convs"),
      0.95,
    )
  elif workload.name == "nice":
    check("at least as fast as the fastest peer", fastest_peer, 1.0)
  elif workload.name.startswith("nsf_"):
    check("spline coupling: 1.2x the fastest peer", fastest_peer, 1.2)
  elif workload.name.startswith("maf_"):
    check(
      "MAF training: at least as fast as the fastest peer", fastest_peer, 1.0
    )
    _check_throughput(checks, ours, results, peer)
  else:
    check("1.1x the fastest peer", fastest_peer, 1.1)
  return checks


def _record(
  checks: list,
  name: str,
  required: float,
  other: Optional[Result],
  ratio: Optional[float],
) -> None:
  """Appends one target: the ratio against ``other``, or ``None`` when no
  such peer ran."""
  if other is None or ratio is None:
    checks.append(dict(target=name, ratio=None, required=required))
    return
  checks.append(
    dict(
      target=name,
      against=other.library,
      ratio=ratio,
      required=required,
      met=ratio >= required,
    )
  )


def _check_throughput(checks: list, ours: Result, results, peer) -> None:
  """MAF log-likelihood: examples/s at least the fastest peer's."""
  rated = [r for r in results if peer(r) and r.log_prob_examples_per_s]
  name = "MAF log-likelihood: at least as fast as the fastest peer"
  best, ratio = None, None
  if rated and ours.log_prob_examples_per_s:
    best = max(rated, key=lambda r: r.log_prob_examples_per_s)
    ratio = ours.log_prob_examples_per_s / best.log_prob_examples_per_s
  _record(checks, name, 1.0, best, ratio)


def target_lines(workload_name: str, checks: Sequence[dict]) -> list[str]:
  lines = []
  for c in checks:
    if c["ratio"] is None:
      lines.append(f"  {workload_name}: {c['target']}: no such peer ran")
      continue
    verdict = "met" if c["met"] else "NOT met"
    lines.append(
      f"  {workload_name}: {c['target']} ({c['against']}): "
      f"{c['ratio']:.2f}x, need {c['required']:.2f}x: {verdict}"
    )
  return lines
