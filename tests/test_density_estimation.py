"""experiments/density_estimation.py: a few steps of flowjax_gen's models
end to end (the peers need the ``bench`` extra and are left out)."""

from __future__ import annotations

import json
import os

import pytest
from scripts import ROOT, run_python


@pytest.mark.slow
def test_script_writes_report_and_heat_map(tmp_path):
  result = run_python(
    [
      os.path.join(ROOT, "experiments", "density_estimation.py"),
      "--datasets=two_moons,breast_cancer",
      "--models=flowjax_gen_nsf,flowjax_gen_maf",
      "--steps=20",
      "--eval_every=10",
      "--batch_size=64",
      "--grid=16",
      f"--output_dir={tmp_path}",
    ]
  )
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads((tmp_path / "density_estimation.json").read_text())
  moons = report["datasets"]["two_moons"]
  assert moons["dimension"] == 2 and moons["units"] == "data"
  assert report["datasets"]["breast_cancer"]["dimension"] == 30
  for model in ("flowjax_gen_nsf", "flowjax_gen_maf"):
    entry = moons["models"][model]
    assert entry["non_finite_test_points"] == 0
    assert entry["standard_error"] > 0
    assert entry["best_validation_step"] in (10, 20)
  assert (tmp_path / "density_estimation_two_moons.png").exists()
