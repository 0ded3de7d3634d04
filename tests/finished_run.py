"""One small finished glow_digits run (6 steps, checkpoints at 2, 4 and 6,
an evaluation at 4) that the fault and preemption tests copy, break or
interrupt, and the checks that a recovered run reproduces it.

``finished`` is registered in ``conftest.py``; the tests that use it share
the ``faults`` xdist group, so one worker trains it once.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil

import jax
import numpy as np
import pytest
from scripts import ROOT

from flowjax_gen import runs
from flowjax_gen.training import loop, reporting

TRAIN = os.path.join(ROOT, "experiments", "train.py")
EVALUATE = os.path.join(ROOT, "experiments", "evaluate.py")
SMOKE = os.path.join(ROOT, "experiments", "configs", "glow_digits.py:smoke")
STEPS = 6
# The flags that make ``train.py`` run ``_config()``.
FLAGS = [
  f"--config={SMOKE}",
  f"--config.num_steps={STEPS}",
  "--config.checkpoint_every=2",
  "--config.eval_every=4",
]


def _config(**changes) -> dict:
  config = importlib.import_module("configs.glow_digits").get_config("smoke")
  config = config.to_dict()
  config.update(num_steps=STEPS, checkpoint_every=2, eval_every=4)
  config.update(changes)
  return config


def _train(workdir, **changes) -> dict:
  """``train_and_evaluate`` and the ``final_metrics.json`` that
  ``experiments/train.py`` writes when a run finishes."""
  result = loop.train_and_evaluate(_config(**changes), str(workdir))
  with open(os.path.join(workdir, "final_metrics.json"), "w") as f:
    json.dump(result, f)
  return result


def _leaves(tree) -> list[np.ndarray]:
  return [np.asarray(leaf) for leaf in jax.tree.leaves(jax.device_get(tree))]


# Session scope: xdist may run another file's tests between two of these on
# the worker that holds the "faults" group, which would end a module-scoped
# fixture and train the run again.
@pytest.fixture(scope="session")
def finished(tmp_path_factory):
  """``(workdir, final metrics, final EMA params)`` of a run that never
  broke: what every recovered run must reproduce."""
  workdir = tmp_path_factory.mktemp("finished") / "run"
  result = _train(workdir)
  _, state, step = runs.load_trained(str(workdir))
  assert step == STEPS
  return workdir, result, _leaves(state.ema_params)


def _copy(finished, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished[0], workdir)
  return workdir


def _logged_once(workdir) -> None:
  pairs = [(r["step"], r["split"]) for r in reporting.read_metrics(workdir)]
  assert len(pairs) == len(set(pairs)), pairs
  assert [s for s, split in pairs if split == "train"] == list(
    range(1, STEPS + 1)
  )
  assert [s for s, split in pairs if split == "test"] == [4, STEPS]


def _same_final_model(workdir, finished) -> None:
  _, state, step = runs.load_trained(str(workdir))
  assert step == STEPS
  for got, want in zip(_leaves(state.ema_params), finished[2], strict=True):
    np.testing.assert_array_equal(got, want)
