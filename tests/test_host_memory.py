"""``flowjax_gen.host_memory``: what ``import flowjax_gen`` sets on the CPU,
the opt-out, and the property it is for (a program's large buffers are not
page-faulted in again at every call)."""

from __future__ import annotations

import json
import os
import sys

import pytest
from scripts import run_python

from flowjax_gen import host_memory

pytestmark = pytest.mark.skipif(
  not sys.platform.startswith("linux"), reason="glibc settings: Linux only"
)

# Calls a jitted program whose 128 MiB output is freed before the next
# call, and reports the median minor page faults of a call after warm-up
# (the median: now and then the heap grows once, beside other processes).
_PROGRAM = """
import json, resource, sys
{before}
import jax, jax.numpy as jnp
import flowjax_gen
from flowjax_gen import host_memory
double = jax.jit(lambda x: x * 2)
x = jnp.ones((32 * 1024 * 1024,), jnp.float32)
for _ in range(3):
  double(x).block_until_ready()
faults = []
for _ in range(7):
  start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  double(x).block_until_ready()
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
print(json.dumps({{
  "applied": host_memory.applied(),
  "async_dispatch": bool(jax.config.read("jax_cpu_enable_async_dispatch")),
  "faults_per_call": sorted(faults)[len(faults) // 2],
}}))
"""


def _run(env_update: dict, before: str = "") -> dict:
  env = {
    k: v for k, v in os.environ.items() if k != host_memory.OPT_OUT_VARIABLE
  }
  env.update(env_update, JAX_PLATFORMS="cpu")
  result = run_python(
    ["-c", _PROGRAM.format(before=before)], env=env, timeout=300
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_keeps_a_programs_buffers_and_the_opt_out_restores_defaults():
  kept = _run({})
  assert kept["applied"] and not kept["async_dispatch"]
  default = _run({host_memory.OPT_OUT_VARIABLE: "default"})
  assert not default["applied"] and default["async_dispatch"]
  # 128 MiB is 32,768 pages of 4 KiB: by default every call maps its output
  # afresh; with the settings the heap holds it from one call to the next.
  assert default["faults_per_call"] > 16_000, default
  assert kept["faults_per_call"] < 2_000, kept


def test_a_runtime_started_before_the_import_is_left_alone():
  """The CPU client's dispatch is fixed when it is made: after it, the
  import changes nothing rather than half of the settings."""
  started = _run({}, before="import jax; jax.devices()")
  assert not started["applied"] and started["async_dispatch"]
