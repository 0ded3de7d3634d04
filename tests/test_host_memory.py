"""The scripts' allocator settings: ``keep_freed_memory`` re-executes the
process once under ``MALLOC_TUNABLES`` and leaves a caller's own setting."""

from __future__ import annotations

import os
import sys

import host_memory
import pytest
from scripts import run_python

_PROBE = """
import os, sys
sys.path.insert(0, {experiments!r})
import host_memory
print("start", os.getpid(), os.environ.get("GLIBC_TUNABLES"), flush=True)
host_memory.keep_freed_memory()
print("kept", os.getpid(), os.environ.get("GLIBC_TUNABLES"), flush=True)
"""


def _run_probe(tmp_path, env):
  probe = tmp_path / "probe.py"
  experiments = os.path.dirname(os.path.abspath(host_memory.__file__))
  probe.write_text(_PROBE.format(experiments=experiments))
  result = run_python([str(probe)], env=env, timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  return [line.split(" ", 2) for line in result.stdout.splitlines()]


@pytest.mark.skipif(
  not sys.platform.startswith("linux"), reason="glibc tunables: Linux only"
)
def test_keep_freed_memory_re_executes_once_with_the_tunables(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
  lines = _run_probe(tmp_path, env)
  # First start without the tunables; the re-executed process (same pid,
  # execve) starts with them and does not execute itself again.
  assert [line[0] for line in lines] == ["start", "start", "kept"]
  assert lines[0][2] == "None"
  assert lines[1][2] == lines[2][2] == host_memory.MALLOC_TUNABLES
  assert lines[0][1] == lines[1][1] == lines[2][1]


def test_keep_freed_memory_leaves_a_callers_setting(tmp_path):
  env = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.arena_max=2")
  lines = _run_probe(tmp_path, env)
  assert [line[0] for line in lines] == ["start", "kept"]
  assert lines[1][2] == "glibc.malloc.arena_max=2"
