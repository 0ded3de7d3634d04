"""Tests run on the CPU; the multi-device tests start their own processes.

The test helpers (``registry``) and the experiment configs are imported by
path; the package itself comes from the working tree.
"""

import contextlib
import os
import sys

# One persistent compilation cache, shared by the xdist workers and the
# subprocesses the end-to-end tests start (they inherit the environment), and
# kept between runs in the user's cache directory: a program compiled once
# (keyed by its HLO, compile options and the jax/jaxlib version, not by
# source paths) is loaded, not compiled, by the resumed and multi-process
# runs of the same session and by every later run on the machine. Set
# JAX_COMPILATION_CACHE_DIR to use another directory. Set before jax is
# imported.
CACHE_DIR = os.environ.setdefault(
  "JAX_COMPILATION_CACHE_DIR",
  os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
    "flowjax_gen",
    "jax_test_cache",
  ),
)
# No size bound inside jax: its bounded cache scans every entry under a lock
# on each write, and stops writing for good once one entry lacks its
# access-time file (what a process killed mid-write leaves; test_train kills
# one on purpose). The pytest process prunes the folder instead, below.
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", "-1")
CACHE_LIMIT_BYTES = 2 * 1024**3
# Every program, down to the tiny one each eager op compiles: at backend
# level 0 such a program still takes ~40 ms to compile, and the suite's eager
# inits and eager-against-compiled checks run thousands (with them cached,
# the warm suite went from 10 to 8.4 minutes).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# The tests run small shapes for a few steps, so compiling is most of their
# time: LLVM's optimisation passes (not XLA's HLO passes, which decide
# fusion, layouts and buffers) are skipped. Results are unchanged (no
# fast-math either way); code runs slower, which tiny shapes do not notice.
# The subprocesses the end-to-end tests start inherit the flag.
_FAST_COMPILE = "--xla_backend_optimization_level=0"
if _FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (
    f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE}".strip()
  )

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for path in (HERE, ROOT, os.path.join(ROOT, "experiments")):
  if path not in sys.path:
    sys.path.insert(0, path)

# The finished run that the fault and preemption tests start from.
from finished_run import finished  # noqa: E402, F401


def prune_compilation_cache(path: str, limit_bytes: int) -> None:
  """Deletes the least recently read files of ``path`` until the rest take
  at most ``limit_bytes`` (access times as the file system keeps them)."""
  try:
    files = [entry for entry in os.scandir(path) if entry.is_file()]
  except FileNotFoundError:
    return
  stats = []
  for entry in files:
    stat = entry.stat()  # one system call per file for both fields
    stats.append((stat.st_atime, stat.st_size, entry.path))
  stats.sort()
  total = sum(size for _, size, _ in stats)
  for _, size, file in stats:
    if total <= limit_bytes:
      break
    with contextlib.suppress(FileNotFoundError):
      os.remove(file)
    total -= size


# Once per session, in the process that starts the xdist workers.
if "PYTEST_XDIST_WORKER" not in os.environ:
  prune_compilation_cache(CACHE_DIR, CACHE_LIMIT_BYTES)
