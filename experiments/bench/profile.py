"""Where a jitted step spends its time: XLA ops from a ``jax.profiler`` trace.

``top_ops`` runs a few steps under ``jax.profiler.trace`` (with a Perfetto
trace, which is plain JSON), sums the duration of every complete event on
the XLA CPU client's threads by op name, and returns the largest shares.
The trace directory is kept, for TensorBoard or ui.perfetto.dev.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re

import jax


def _events(trace_dir: str) -> list[dict]:
  paths = glob.glob(
    os.path.join(trace_dir, "**", "*perfetto_trace.json.gz"), recursive=True
  )
  if not paths:
    raise FileNotFoundError(f"no Perfetto trace under {trace_dir}")
  with gzip.open(max(paths, key=os.path.getmtime)) as f:
    trace = json.load(f)
  return trace["traceEvents"] if isinstance(trace, dict) else trace


def hlo_sources(compiled) -> dict[str, tuple[str, str]]:
  """``{op name: (result shape, source op_name)}`` from the optimised HLO."""
  sources = {}
  for match in re.finditer(
    r"%(\S+) = (\S+) [\w-]+\(.*?op_name=\"([^\"]*)\"", compiled.as_text()
  ):
    sources[match.group(1)] = (match.group(2), match.group(3))
  return sources


def top_ops(run_steps, trace_dir: str, top: int = 12) -> list[tuple]:
  """``[(op name, share of device time, ms per step)]``, largest first.

  Args:
    run_steps: ``() -> number of steps run``; it must block until done.
    trace_dir: where the trace is written.
    top: how many ops to return.
  """
  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    steps = run_steps()
  events = _events(trace_dir)
  threads = {
    (e["pid"], e["tid"]): e["args"]["name"]
    for e in events
    if e.get("ph") == "M" and e.get("name") == "thread_name"
  }
  totals = collections.Counter()
  for e in events:
    thread = threads.get((e.get("pid"), e.get("tid")), "")
    name = e.get("name", "")
    # Ops run on the XLA client's and Eigen pool's threads; the executor's
    # own spans enclose them and would count every op twice.
    if (
      e.get("ph") == "X"
      and "XLA" in thread
      and not name.startswith(("ThunkExecutor", "end: "))
    ):
      totals[name] += e.get("dur", 0.0)
  device = sum(totals.values()) or 1.0
  return [
    (name, us / device, us / 1e3 / steps)
    for name, us in totals.most_common(top)
  ]
