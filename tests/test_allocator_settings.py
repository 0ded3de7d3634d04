"""``experiments/allocator_settings.py``: every setting runs in a fresh
process, only the tunables settings start with ``GLIBC_TUNABLES``, only the
inline one turns JAX's async dispatch off, and the report names the
command. (Step times and page faults are what the script measures; on a
small workload with other tests running they prove nothing, so they are
only checked to be there.)"""

from __future__ import annotations

import json
import math
import os
import sys

import pytest
from scripts import ROOT, run_python

from flowjax_gen import host_memory

_TUNABLES = (
  "glibc.malloc.hugetlb=1:glibc.malloc.trim_threshold=4000000000:"
  "glibc.malloc.mmap_threshold=4000000000"
)

# The script's SETTINGS, written out: importing the script would define its
# absl flags in the test process, where cost.py's share their names.
_SETTINGS = {
  "glibc defaults",
  "GLIBC_TUNABLES",
  "mallopt: no mmap",
  "mallopt: one arena",
  "mallopt: no mmap, inline",
  "GLIBC_TUNABLES, one arena",
}


@pytest.mark.skipif(
  not sys.platform.startswith("linux"), reason="glibc settings: Linux only"
)
def test_every_setting_runs_in_its_own_process(tmp_path):
  output = tmp_path / "allocator.json"
  env = dict(
    os.environ,
    GLIBC_TUNABLES="glibc.malloc.arena_max=2",
    FLOWJAX_GEN_HOST_MEMORY="default",
  )
  result = run_python(
    [
      os.path.join(ROOT, "experiments", "allocator_settings.py"),
      "--rounds=1",
      "--steps=3",
      "--workload=tabular_d8",
      f"--output={output}",
    ],
    env=env,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(output.read_text())
  assert report["command"].startswith(
    "python experiments/allocator_settings.py"
  )
  assert set(report["runs"]) == _SETTINGS
  for setting, runs in report["runs"].items():
    (run,) = runs
    assert math.isfinite(run["median_step_ms"]) and run["median_step_ms"] > 0
    assert run["faults_per_step"] >= 0
    # The caller's own GLIBC_TUNABLES never reaches a child; the tunables
    # settings' children start with the scripts' tunables.
    expected = {
      "GLIBC_TUNABLES": _TUNABLES,
      "GLIBC_TUNABLES, one arena": _TUNABLES + ":glibc.malloc.arena_max=1",
    }.get(setting)
    assert run["glibc_tunables"] == expected, setting
    # Only the library's setting runs programs on the calling thread: the
    # others opt out of what importing flowjax_gen applies.
    assert run["async_dispatch"] == (setting != "mallopt: no mmap, inline")
  assert report["opt_out_variable"] == host_memory.OPT_OUT_VARIABLE
