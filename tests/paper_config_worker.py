"""Run in a fresh process with 8 simulated CPU devices (see
test_paper_configs): ``python paper_config_worker.py <config name>``.

Builds the named experiment config at its own model size (the paper's
widths and depths) on tfds mock data, with the global batch, the init batch
and the evaluation batch at 8 (one example per device), runs the
data-dependent init and two training steps on the 8-device ``data`` mesh,
and prints one JSON line: devices, parameter count, losses, skipped updates
and the seconds each phase took.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import time

# Full LLVM optimisation, unlike the rest of the suite (conftest.py): these
# steps run real work (8 replicas of 6-44M params through the optimiser and
# EMA), which unoptimised code ran 2.5x slower than the faster compile saved
# (Glow on CIFAR-10: 93 s in all at level 0, 54 s at the default).
os.environ["XLA_FLAGS"] = " ".join(
  [
    flag
    for flag in os.environ.get("XLA_FLAGS", "").split()
    if not flag.startswith("--xla_backend_optimization_level")
  ]
  + ["--xla_force_host_platform_device_count=8"]
)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "experiments"))

from flowjax_gen.parallel import shard_batch  # noqa: E402
from flowjax_gen.training.config import (  # noqa: E402
  validate_config,
  with_defaults,
)
from flowjax_gen.training.experiment import Experiment  # noqa: E402

BATCH = 8  # the smallest global batch that 8 devices share


def main(name: str) -> None:
  assert jax.device_count() == 8, jax.devices()
  config = importlib.import_module(f"configs.{name}").get_config()
  config = with_defaults(config.to_dict())
  model_kwargs = dict(config["model_kwargs"])
  # The paper's model; only the batches and the mock split are small.
  validate_config(config)
  config.update(
    batch_size=BATCH,
    init_batch_size=BATCH,
    eval_batch_size=BATCH,
    num_train_examples=BATCH,
    num_test_examples=BATCH,
  )
  times = {}
  start = time.perf_counter()
  with (
    tempfile.TemporaryDirectory() as workdir,
    tfds.testing.mock_data(
      num_examples=BATCH, policy=tfds.testing.MockPolicy.USE_CODE
    ),
  ):
    run = Experiment(config, workdir)
  state = jax.block_until_ready(run.init_state())
  times["init_s"] = time.perf_counter() - start
  train_step = run.train_step()
  losses = []
  for index in range(2):
    start = time.perf_counter()
    state, metrics = train_step(
      state, shard_batch(next(run.iterator), run.mesh)
    )
    losses.append(float(metrics["loss"]))
    times[f"step_{index + 1}_s"] = time.perf_counter() - start
  params = jax.device_get(state.params)
  print(
    json.dumps(
      {
        "devices": jax.device_count(),
        "mesh_devices": run.mesh.devices.size,
        "model_kwargs": model_kwargs,
        "params": int(sum(np.size(leaf) for leaf in jax.tree.leaves(params))),
        "losses": losses,
        "step": int(state.step),
        "skipped": int(state.skipped),
        **times,
      }
    )
  )


if __name__ == "__main__":
  main(sys.argv[1])
