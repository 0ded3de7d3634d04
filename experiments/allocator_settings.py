"""What glibc's allocator settings buy a CPU training step, in fresh processes.

  python experiments/allocator_settings.py --rounds=2 --steps=30 \
      --output=docs/performance/allocator_settings.json

XLA's CPU runtime allocates a step's temporaries as one block per
execution (for the benchmark's Glow, 269 MiB) from the thread that runs the
program, and frees it when the step ends. A block that large does not fit
a per-thread glibc arena (64 MiB heaps), so glibc maps it with ``mmap``
whatever ``M_MMAP_THRESHOLD`` or ``M_MMAP_MAX`` say, unmaps it on ``free``,
and every step page-faults it in again. This script trains the benchmark's
workload under each setting below, one fresh process per (setting, round),
the order rotating between rounds, and reports each process's median step
and minor page faults per step:

  glibc defaults       nothing set;
  GLIBC_TUNABLES       glibc's start-up tunables (``MALLOC_TUNABLES``:
                       transparent huge pages for malloc'd memory, no
                       trimming, no mmap below 4 GB); glibc reads them only
                       at process start;
  mallopt: no mmap     ``mallopt(M_MMAP_MAX, 0)`` and the largest
                       ``M_TRIM_THRESHOLD``, set in the process before JAX
                       starts (what a library can do at import);
  mallopt: one arena   the same and ``M_ARENA_MAX = 1``: every thread
                       allocates from the main heap, which grows with
                       ``brk`` and so can hold the block;
  mallopt: no mmap, inline
                       what ``import flowjax_gen`` sets
                       (``flowjax_gen/host_memory.py``): ``mallopt: no
                       mmap`` with JAX's CPU programs run on the calling
                       thread (``jax_cpu_enable_async_dispatch = False``),
                       whose arena is the main heap;
  GLIBC_TUNABLES, one arena
                       the tunables and ``arena_max=1``: separates
                       what their huge pages buy from what per-thread
                       arenas do.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import subprocess
import sys
import time

from absl import app, flags

_ROUNDS = flags.DEFINE_integer("rounds", 4, "processes per setting.")
_STEPS = flags.DEFINE_integer("steps", 30, "timed steps per process.")
_WORKLOAD = flags.DEFINE_string(
  "workload", "glow", "a workload of experiments/bench/workloads.py."
)
_OUTPUT = flags.DEFINE_string("output", None, "JSON report path.")
_CHILD = flags.DEFINE_string("child", None, "internal: run one SETTING.")

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_LARGEST_INT = 2**31 - 1

MALLOC_TUNABLES = (
  "glibc.malloc.hugetlb=1:glibc.malloc.trim_threshold=4000000000:"
  "glibc.malloc.mmap_threshold=4000000000"
)
LIBRARY_SETTING = "mallopt: no mmap, inline"
# flowjax_gen.host_memory.OPT_OUT_VARIABLE, written out: importing the
# package here would apply its settings to this process.
_OPT_OUT_VARIABLE = "FLOWJAX_GEN_HOST_MEMORY"
SETTINGS = (
  "glibc defaults",
  "GLIBC_TUNABLES",
  "mallopt: no mmap",
  "mallopt: one arena",
  "mallopt: no mmap, inline",
  "GLIBC_TUNABLES, one arena",
)
# The GLIBC_TUNABLES each setting's process starts with (none if absent).
CHILD_TUNABLES = {
  "GLIBC_TUNABLES": MALLOC_TUNABLES,
  "GLIBC_TUNABLES, one arena": MALLOC_TUNABLES + ":glibc.malloc.arena_max=1",
}
_WARM_UP_STEPS = 3


def _apply_mallopt(setting: str) -> None:
  """Sets ``setting``'s mallopt parameters; fails loudly if glibc refuses."""
  libc = ctypes.CDLL(None)
  options = [(_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _LARGEST_INT)]
  if setting == "mallopt: one arena":
    options.append((_M_ARENA_MAX, 1))
  for parameter, value in options:
    if libc.mallopt(parameter, value) != 1:
      raise OSError(f"mallopt({parameter}, {value}) was refused")


def _measure(setting: str) -> dict:
  """One process's median step (ms) and minor faults per step."""
  if setting.startswith("mallopt") and setting != LIBRARY_SETTING:
    _apply_mallopt(setting)  # before JAX starts its threads
  import jax  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  from bench import ours, workloads  # noqa: PLC0415

  # Not bench.measure.JaxRunner: it also compiles the unrolled program
  # (for its FLOP count) and the log-likelihood, which changes what the
  # heap holds before the timed steps; here only the step runs.
  workload = workloads.WORKLOADS[_WORKLOAD.value]
  candidate = ours.candidate(workload)
  step = jax.jit(candidate.train_step, donate_argnums=0)
  state, batch = candidate.init(), jax.numpy.asarray(workload.batch())
  for _ in range(_WARM_UP_STEPS):
    state, loss = step(state, batch)
    jax.block_until_ready(loss)
  times = []
  faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(_STEPS.value):
    start = time.perf_counter()
    state, loss = step(state, batch)
    jax.block_until_ready((state, loss))
    times.append(1e3 * (time.perf_counter() - start))
  faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
  if not np.isfinite(float(loss)):
    raise FloatingPointError(f"non-finite loss {float(loss)}")
  return {
    "median_step_ms": float(np.median(times)),
    "min_step_ms": float(np.min(times)),
    "faults_per_step": faults / _STEPS.value,
    "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
    "async_dispatch": bool(jax.config.read("jax_cpu_enable_async_dispatch")),
  }


def _child_env(setting: str) -> dict:
  env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  if setting in CHILD_TUNABLES:
    env["GLIBC_TUNABLES"] = CHILD_TUNABLES[setting]
  # Every other setting keeps flowjax_gen's import from applying its own.
  env.pop(_OPT_OUT_VARIABLE, None)
  if setting != LIBRARY_SETTING:
    env[_OPT_OUT_VARIABLE] = "default"
  return env


def _run_child(setting: str) -> dict:
  command = [
    sys.executable,
    os.path.abspath(__file__),
    f"--child={setting}",
    f"--steps={_STEPS.value}",
    f"--workload={_WORKLOAD.value}",
  ]
  done = subprocess.run(
    command,
    env=_child_env(setting),
    capture_output=True,
    text=True,
    check=False,
  )
  if done.returncode:
    raise RuntimeError(f"{setting} failed:\n{done.stderr[-3000:]}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv):
  del argv
  if _CHILD.value:
    print(json.dumps(_measure(_CHILD.value)), flush=True)
    return
  if not sys.platform.startswith("linux"):
    raise SystemExit("glibc's allocator settings exist on Linux only.")
  # Imported here, not at the top: it imports JAX, which a child must only
  # import after its mallopt settings.
  from long_run_report import cpu_model_name  # noqa: PLC0415

  cpu = cpu_model_name()
  runs = {setting: [] for setting in SETTINGS}
  for round_index in range(_ROUNDS.value):
    shift = round_index % len(SETTINGS)
    for setting in SETTINGS[shift:] + SETTINGS[:shift]:
      runs[setting].append(_run_child(setting))
      print(
        f"round {round_index + 1} {setting}: {runs[setting][-1]}", flush=True
      )
  print(
    f"\n{_WORKLOAD.value}, {_ROUNDS.value} processes per setting, "
    f"{_STEPS.value} timed steps each, {cpu}"
  )
  print(f"{'setting':26s} {'median step ms (per process)':44s} faults/step")
  for setting, results in runs.items():
    medians = ", ".join(f"{r['median_step_ms']:.1f}" for r in results)
    faults = ", ".join(f"{r['faults_per_step']:.0f}" for r in results)
    print(f"{setting:26s} {medians:44s} {faults}")
  if _OUTPUT.value:
    report = {
      "command": " ".join(
        ["python", "experiments/allocator_settings.py", *sys.argv[1:]]
      ),
      "cpu": cpu,
      "cpu_count": os.cpu_count(),
      "workload": _WORKLOAD.value,
      "steps": _STEPS.value,
      "glibc_tunables": MALLOC_TUNABLES,
      "opt_out_variable": _OPT_OUT_VARIABLE,
      "runs": runs,
    }
    with open(_OUTPUT.value, "w") as f:
      json.dump(report, f, indent=2)
      f.write("\n")


if __name__ == "__main__":
  app.run(main)
