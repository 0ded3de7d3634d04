"""Host memory for XLA on the CPU: keep a step's buffers mapped.

XLA's CPU runtime allocates an execution's temporaries as one block (269
MiB for the benchmark's Glow step) and frees it when the execution ends.
JAX runs a CPU program on one of its dispatch threads, so the block comes
from that thread's glibc arena, whose heaps hold at most 64 MiB: glibc
maps the block with ``mmap``, unmaps it on ``free``, and every step
page-faults all of it in again (68,789 faults of 4 KiB per Glow step).
``keep_step_memory`` changes two things, once, before JAX makes its CPU
client:

1. glibc serves every block from its heap and keeps freed memory there
   (``mallopt``: ``M_MMAP_MAX = 0``, ``M_TRIM_THRESHOLD = 2**31 - 1``,
   so only more than 2 GiB free at the top of the heap goes back);
2. single-device CPU programs run on the calling thread
   (``jax_cpu_enable_async_dispatch = False``), whose arena is the main
   heap, which grows with ``brk`` and so can hold the block.

Measured with ``experiments/allocator_settings.py`` (docs/performance.md,
"Host memory"), the Glow step took 258 ms with no page faults, against 363
ms with glibc's defaults and 277 ms under glibc's start-up tunables (which
a process cannot set for itself once it runs). Programs over several
devices keep JAX's asynchronous dispatch (its flag covers single-device
programs only). The cost: Python waits for each CPU program it calls, so
host work between steps does not overlap them, and the process keeps the
memory it used at its peak.

``import flowjax_gen`` applies it when JAX will compute on the CPU under
glibc and nothing has started JAX's runtime yet. To keep the defaults, set
``FLOWJAX_GEN_HOST_MEMORY=default`` in the environment before the import.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys

import jax

OPT_OUT_VARIABLE = "FLOWJAX_GEN_HOST_MEMORY"
_ASYNC_DISPATCH_FLAG = "jax_cpu_enable_async_dispatch"
# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_LARGEST_INT = 2**31 - 1
# A process with one of these plugins computes on an accelerator, where the
# host allocator is not on the step's critical path.
_ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "libtpu")


def runs_on_cpu() -> bool:
  """Whether JAX will compute on the CPU, decided without starting it (a
  multi-process run must initialise its runtime first)."""
  platforms = os.environ.get("JAX_PLATFORMS", "")
  if platforms:
    return platforms.split(",")[0].strip() == "cpu"
  return not any(importlib.util.find_spec(p) for p in _ACCELERATOR_PLUGINS)


def _runtime_started() -> bool:
  from jax._src import xla_bridge  # noqa: PLC0415 -- no public query

  return xla_bridge.backends_are_initialized()


_STATE = {"applied": False}


def applied() -> bool:
  """Whether this process runs with the settings above."""
  return _STATE["applied"]


def _mallopt():
  """glibc's ``mallopt``, or ``None`` where there is none to set."""
  if not sys.platform.startswith("linux"):
    return None
  try:
    return ctypes.CDLL(None).mallopt
  except (OSError, AttributeError):  # not glibc (e.g. musl)
    return None


def keep_step_memory() -> bool:
  """Applies the two settings above if this process computes on the CPU
  under glibc, the user has not opted out and JAX's runtime has not
  started (the CPU client's dispatch is fixed when it is made); returns
  whether the process runs with them."""
  if _STATE["applied"]:
    return True
  opted_out = os.environ.get(OPT_OUT_VARIABLE, "").lower() == "default"
  mallopt = _mallopt()
  if opted_out or mallopt is None or not runs_on_cpu() or _runtime_started():
    return False
  settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _LARGEST_INT))
  if not all(mallopt(parameter, value) == 1 for parameter, value in settings):
    return False
  jax.config.update(_ASYNC_DISPATCH_FLAG, False)
  _STATE["applied"] = True
  return True
