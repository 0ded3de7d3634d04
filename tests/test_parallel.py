"""Data-parallel steps on 4 simulated devices equal the single-device step."""

from __future__ import annotations

import json
import os

import pytest
from scripts import run_python

HERE = os.path.dirname(__file__)


def run_worker(name: str) -> dict:
  result = run_python([os.path.join(HERE, name)])
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_sharded_step_equals_single_device_step_under_both_mesh_kinds():
  report = run_worker("data_parallel_worker.py")
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


@pytest.mark.slow
def test_every_family_trains_the_same_on_four_devices_as_on_one():
  """Two full steps (optimiser, EMA; a GAN's discriminator then generator
  update) of the auto-encoder, denoiser, VAE, GAN and classifier, and of a
  flow with its variational dequantiser."""
  report = run_worker("family_step_worker.py")
  assert len(report) == 6
  for name, numbers in report.items():
    assert numbers["skipped"] == 0, (name, numbers)
    for kind in ("auto", "explicit"):
      assert numbers[kind]["params"] < 1e-5, (name, kind, numbers)
      assert numbers[kind]["ema"] < 1e-5, (name, kind, numbers)
      assert numbers[kind]["metrics"] < 1e-4, (name, kind, numbers)
