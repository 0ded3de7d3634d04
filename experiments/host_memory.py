"""glibc allocator settings for XLA on the CPU, shared by the scripts.

XLA's CPU runtime allocates every step's buffers afresh. By default glibc
serves blocks above 128 KiB with ``mmap`` and returns freed memory to the
OS, so each step page-faults its buffers in again (docs/performance.md,
first-touch page faults); these tunables keep freed memory mapped, on
transparent huge pages. They must be in the environment when the process
starts, so the scripts re-execute themselves with them.
"""

from __future__ import annotations

import importlib.util
import os
import sys

MALLOC_TUNABLES = (
  "glibc.malloc.hugetlb=1:glibc.malloc.trim_threshold=4000000000:"
  "glibc.malloc.mmap_threshold=4000000000"
)

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


def keep_freed_memory() -> None:
  """Re-executes this process with ``MALLOC_TUNABLES`` on Linux, unless
  ``GLIBC_TUNABLES`` is already set (then the caller's choice stands)."""
  if sys.platform.startswith("linux") and "GLIBC_TUNABLES" not in os.environ:
    env = dict(os.environ, GLIBC_TUNABLES=MALLOC_TUNABLES)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)
