"""Data-parallel steps on 4 simulated devices equal the single-device step."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(__file__)


def test_sharded_step_equals_single_device_step_under_both_mesh_kinds():
  env = dict(
    os.environ,
    PYTHONPATH=os.pathsep.join(
      [os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]
    ),
  )
  result = subprocess.run(
    [sys.executable, os.path.join(HERE, "data_parallel_worker.py")],
    capture_output=True,
    text=True,
    env=env,
    timeout=600,
    check=False,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  for kind in ("auto", "explicit"):
    numbers = report[kind]
    # actnorm's data-dependent init saw one global batch either way.
    assert numbers["params"] < 1e-5, (kind, numbers)
    assert numbers["loss"] < 1e-5, (kind, numbers)
    assert numbers["grads"] < 1e-4 * max(1.0, numbers["grad_scale"]), (
      kind,
      numbers,
    )
    assert numbers["replicated"], (kind, numbers)
