"""Tests run on the CPU; the multi-device tests start their own processes.

The test helpers (``registry``) and the experiment configs are imported by
path; the package itself comes from the working tree.
"""

import os
import sys
import tempfile

# One persistent compilation cache for the whole run, shared with the
# subprocesses the end-to-end tests start (they inherit the environment):
# the resumed and multi-process runs then reuse the programs compiled by the
# first run instead of compiling them again. Set before jax is imported.
os.environ.setdefault(
  "JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="flowjax_gen_jax_cache_")
)
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


def pytest_collection_modifyitems(config, items):
  """Runs the slow end-to-end tests first, so that with several workers the
  short tests fill the gaps instead of one long test finishing last."""
  del config
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)
