"""``experiments/allocator_settings.py``: every setting runs in a fresh
process, its report names the command, and the startup tunables keep a
step's freed memory mapped where glibc's defaults fault it in again."""

from __future__ import annotations

import json
import math
import os
import sys

import allocator_settings
import pytest
from scripts import ROOT, run_python


@pytest.mark.skipif(
  not sys.platform.startswith("linux"), reason="glibc settings: Linux only"
)
def test_every_setting_runs_in_its_own_process(tmp_path):
  output = tmp_path / "allocator.json"
  result = run_python(
    [
      os.path.join(ROOT, "experiments", "allocator_settings.py"),
      "--rounds=1",
      "--steps=3",
      "--workload=tabular_d8",
      f"--output={output}",
    ],
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(output.read_text())
  assert report["command"].startswith(
    "python experiments/allocator_settings.py"
  )
  assert set(report["runs"]) == set(allocator_settings.SETTINGS)
  for runs in report["runs"].values():
    assert len(runs) == 1
    assert (
      math.isfinite(runs[0]["median_step_ms"]) and runs[0]["median_step_ms"] > 0
    )
  faults = {
    setting: runs[0]["faults_per_step"]
    for setting, runs in report["runs"].items()
  }
  # The mechanism docs/performance.md describes: without the tunables the
  # step's temporaries are mapped afresh and page-faulted in every step.
  assert faults["GLIBC_TUNABLES"] < faults["glibc defaults"], faults


def test_only_the_tunables_setting_passes_glibc_tunables(monkeypatch):
  monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
  for setting in allocator_settings.SETTINGS:
    env = allocator_settings._child_env(setting)
    if setting == "GLIBC_TUNABLES":
      assert (
        env["GLIBC_TUNABLES"] == allocator_settings.host_memory.MALLOC_TUNABLES
      )
    else:
      assert "GLIBC_TUNABLES" not in env
