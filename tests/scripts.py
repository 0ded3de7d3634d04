"""Runs the repository's scripts in fresh Python processes for the tests
(each gets its own JAX runtime: device counts, distributed init, kill -9)."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(args, *, env=None, timeout=600) -> subprocess.CompletedProcess:
  """``python *args`` with the repository root on ``PYTHONPATH``; output
  captured as text, never raises on a non-zero exit."""
  env = dict(os.environ if env is None else env)
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  return subprocess.run(
    [sys.executable, *args],
    capture_output=True,
    text=True,
    env=env,
    timeout=timeout,
    check=False,
  )
