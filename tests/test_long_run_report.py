"""The report of a run trained over several processes
(``experiments/long_run_report.py``): restarts found where ``elapsed_s``
falls, minutes summed over the runs, roll-backs' discarded minutes."""

from __future__ import annotations

import json

import long_run_report
import pytest
from PIL import Image

from flowjax_gen.training import reporting


def _train(step, elapsed, loss):
  return {"step": step, "split": "train", "elapsed_s": elapsed, "loss": loss}


def _test(step, elapsed, bits):
  return {
    "step": step,
    "split": "test",
    "elapsed_s": elapsed,
    "bits_per_dim": bits + 0.5,
    "bits_per_dim_variational": bits,
    "bits_per_dim_variational_stderr": 0.01,
  }


# Three runs: the first logs steps 100-300 in 60 s and is killed after its
# checkpoint of 300; the second resumes and logs 400-600 (test at 600) in
# 90 s; the third resumes from 600 and ends at 800 after 40 s.
RECORDS = [
  _train(100, 20.0, 3.0),
  _train(200, 40.0, 2.5),
  _train(300, 60.0, 2.2),
  _train(400, 30.0, 2.1),
  _train(500, 60.0, 2.0),
  _train(600, 85.0, 1.9),
  _test(600, 90.0, 1.95),
  _train(700, 20.0, 1.8),
  _train(800, 40.0, 1.7),
  _test(800, 45.0, 1.75),
]


def test_restarts_are_where_elapsed_time_falls():
  found = reporting.restarts(RECORDS)
  assert [(r["after_step"], r["first_logged_step"]) for r in found] == [
    (300, 400),
    (600, 700),
  ]
  # Minutes at each restart: the runs before it, summed.
  assert found[0]["training_minutes"] == pytest.approx(60.0 / 60)
  assert found[1]["training_minutes"] == pytest.approx((60.0 + 90.0) / 60)
  assert reporting.restarts(RECORDS[:3]) == []


def test_report_writes_curve_and_marked_pictures(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  with open(workdir / reporting.METRICS_FILE, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in RECORDS)
  # A roll-back from 600 that dropped a branch of two runs (30 s + 12 s).
  dropped = [
    {"step": 700, "split": "train", "time": 1.0, "elapsed_s": 20.0},
    {"step": 800, "split": "train", "time": 2.0, "elapsed_s": 30.0},
    {"step": 900, "split": "train", "time": 3.0, "elapsed_s": 12.0},
  ]
  with open(workdir / long_run_report.ROLLBACKS_FILE, "w") as f:
    f.write(
      json.dumps(
        {
          "time": 4.0,
          "resumed_from_step": 600,
          "skipped_batches": 20,
          "set_aside": [700],
          "dropped_records": dropped,
        }
      )
      + "\n"
    )
  legs = [{"leg": "leg1", "ended_by": "kill -9"}]
  prefix = str(tmp_path / "out" / "run_long")
  report = long_run_report.write_report(
    str(workdir), prefix, legs=legs, command="python train.py"
  )

  saved = json.load(open(prefix + "_curve.json"))
  assert saved == json.loads(json.dumps(report))
  assert saved["legs"] == legs and saved["command"] == "python train.py"
  assert [r["after_step"] for r in saved["restarts"]] == [300, 600]
  assert [r["step"] for r in saved["train"]] == list(range(100, 900, 100))
  assert [r["step"] for r in saved["test"]] == [600, 800]
  # Minutes summed over the three runs: 60 s + 90 s + 45 s at the end.
  assert saved["test"][-1]["training_minutes"] == pytest.approx(3.25)
  assert saved["test"][-1]["bits_per_dim_variational"] == 1.75
  assert saved["train"][3]["loss"] == 2.1
  (rollback,) = saved["rollbacks"]
  assert rollback["dropped_steps"] == [700, 800, 900]
  assert rollback["discarded_training_minutes"] == pytest.approx(0.7)
  assert rollback["resumed_from_step"] == 600
  assert "dropped_records" not in rollback
  for name in ("_step.png", "_wall_time.png"):
    with Image.open(prefix + name) as image:
      assert image.size[0] > 100 and image.size[1] > 100


def test_report_of_an_empty_workdir_is_refused(tmp_path):
  with pytest.raises(ValueError, match="no metrics log"):
    long_run_report.curve(str(tmp_path))
