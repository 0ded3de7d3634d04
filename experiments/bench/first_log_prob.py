"""Time to first log-prob: what a researcher waits for in a fresh process,
imports excluded, from building a model to its first log-likelihoods.

Each (case, library) runs in a fresh Python process without a persistent
compilation cache, as a new notebook kernel or script does: the libraries
are imported, then the clock runs over building the model, ``init`` (with
the Adam state the benchmark's candidates make) and one eager
``log_prob`` of the workload's batch, until the result is ready. Cases:
the README's compose example (flowjax_gen only), a tiny Glow (8x8x1,
L = 2, K = 2, 16 channels; no peer has image flows), and the benchmark's
``nsf_d8`` and ``maf_d8`` workloads for every JAX library that can express
them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKLOAD_CASES = ("nsf_d8", "maf_d8")
PEERS = {
  "flowjax_gen": "bench.ours",
  "distrax": "bench.peer_distrax",
  "flowjax": "bench.peer_flowjax",
  "tfp": "bench.peer_tfp",
}

_WORKLOAD = """
import importlib, sys, time
sys.path.insert(0, {experiments!r})
import jax
from bench import workloads
from bench.candidate import Unsupported
module = importlib.import_module({module!r})
workload = workloads.WORKLOADS[{name!r}]
batch = workload.batch()
start = time.perf_counter()
try:
  candidate = module.candidate(workload)
except Unsupported as e:
  print("UNSUPPORTED", e)
  raise SystemExit(0)
state = candidate.init()
jax.block_until_ready(candidate.log_prob(state, batch))
print("SECONDS", time.perf_counter() - start)
"""

_TINY_GLOW = """
import time
import jax, numpy as np
from flowjax_gen import models
x = np.random.default_rng(0).uniform(size=(16, 8, 8, 1)).astype(np.float32)
start = time.perf_counter()
flow = models.glow((8, 8, 1), levels=2, steps_per_level=2, hidden_channels=16)
params = flow.init(jax.random.key(0), x)
jax.block_until_ready(flow.log_prob(params, x))
print("SECONDS", time.perf_counter() - start)
"""


def _readme_case() -> str:
  """The README's compose example: its imports, then the rest timed."""
  with open(os.path.join(ROOT, "README.md")) as f:
    code = re.findall(r"```python\n(.*?)```", f.read(), re.S)[0]
  lines = code.splitlines()
  imports = [ln for ln in lines if ln.startswith(("import ", "from "))]
  body = [ln for ln in lines if ln not in imports]
  return "\n".join(
    [
      *imports,
      "import time as _time",
      "_start = _time.perf_counter()",
      *body,
      "jax.block_until_ready(loss)",
      'print("SECONDS", _time.perf_counter() - _start)',
    ]
  )


def _run(code: str) -> tuple[float | None, str]:
  """Seconds the code prints, or ``None`` and why."""
  env = dict(os.environ, PYTHONPATH=ROOT)
  env.pop("JAX_COMPILATION_CACHE_DIR", None)  # a fresh researcher's process
  result = subprocess.run(
    [sys.executable, "-c", code],
    capture_output=True,
    text=True,
    env=env,
    # ``python -c`` puts the working directory first on sys.path: run from
    # this checkout so that its flowjax_gen is the one measured.
    cwd=ROOT,
    timeout=600,
    check=False,
  )
  for line in result.stdout.splitlines():
    if line.startswith("SECONDS "):
      return float(line.split()[1]), ""
    if line.startswith("UNSUPPORTED "):
      return None, "cannot express it"
  if "ModuleNotFoundError" in result.stderr:
    return None, "not installed"
  return None, "failed: " + result.stderr.strip().splitlines()[-1][:120]


def run() -> list[dict]:
  """Every case; rows for the report."""
  rows = [
    {"case": "README compose example", "library": "flowjax_gen"},
    {"case": "tiny Glow 8x8x1", "library": "flowjax_gen"},
  ]
  rows[0]["seconds"], rows[0]["note"] = _run(_readme_case())
  rows[1]["seconds"], rows[1]["note"] = _run(_TINY_GLOW)
  for name in WORKLOAD_CASES:
    for library, module in PEERS.items():
      code = _WORKLOAD.format(
        experiments=os.path.dirname(HERE), module=module, name=name
      )
      seconds, note = _run(code)
      rows.append(
        {"case": name, "library": library, "seconds": seconds, "note": note}
      )
  return rows


def table(rows: list[dict]) -> str:
  lines = [
    "== time to first log-prob: build, init and one eager log_prob in a "
    "fresh process (imports excluded, no compilation cache)",
    "case                     library        seconds",
  ]
  for row in rows:
    figure = f"{row['seconds']:7.2f}" if row["seconds"] is not None else ""
    lines.append(
      f"{row['case']:<24} {row['library']:<14} {figure} {row['note']}"
    )
  return "\n".join(lines)
