"""Tests run on the CPU; the multi-device tests start their own processes.

The test helpers (``registry``) and the experiment configs are imported by
path; the package itself comes from the working tree.
"""

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
os.environ.setdefault(
  "JAX_COMPILATION_CACHE_DIR",
  os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
    "flowjax_gen",
    "jax_test_cache",
  ),
)
# Least recently used entries go beyond 2 GiB (jax needs filelock for it).
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 * 1024**3))
# Only programs worth keeping: every eager op compiles a tiny program, and
# writing each of those to disk costs more than compiling it again.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")
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
