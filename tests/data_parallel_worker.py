"""Run in a fresh process with 4 simulated CPU devices (see test_parallel).

Prints one JSON line: the largest differences between the single-device and
the 4-device data-parallel results, under Auto and Explicit meshes.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import AxisType  # noqa: E402

from flowjax_gen import models, objectives, training  # noqa: E402


def max_diff(a, b):
  return max(
    float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  )


def run(mesh, flow, images, labels):
  batch = training.shard_batch({"image": images, "label": labels}, mesh)
  x = objectives.dequantize(None, batch["image"], 5)
  context = jax.nn.one_hot(batch["label"], 3)
  params = training.data_parallel_init(flow.init, mesh)(
    jax.random.key(0), x, context
  )
  objective = objectives.flow_nll(flow.log_prob, n_bits=5, num_classes=3)
  (loss, metrics), grads = training.loss_and_grad_step(objective, mesh)(
    params, batch, jax.random.key(1)
  )
  sharding = jax.tree.leaves(grads)[0].sharding
  return {
    "params": params,
    "loss": loss,
    "metrics": metrics,
    "grads": grads,
    "replicated": bool(sharding.is_fully_replicated),
  }


def main():
  assert jax.device_count() == 4, jax.devices()
  flow = models.glow(
    (8, 8, 1),
    levels=2,
    steps_per_level=2,
    hidden_channels=8,
    permutation="conv1x1_lu",
  )
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (8, 8, 8, 1)).astype(np.uint8)
  labels = rng.integers(0, 3, (8,))
  single = run(training.data_mesh(jax.devices()[:1]), flow, images, labels)
  report = {"loss": float(single["loss"])}
  for name, axis_type in (
    ("auto", AxisType.Auto),
    ("explicit", AxisType.Explicit),
  ):
    sharded = run(training.data_mesh(axis_type=axis_type), flow, images, labels)
    report[name] = {
      "params": max_diff(single["params"], sharded["params"]),
      "loss": abs(float(single["loss"]) - float(sharded["loss"])),
      "grads": max_diff(single["grads"], sharded["grads"]),
      "grad_scale": max(
        float(np.max(np.abs(g))) for g in jax.tree.leaves(single["grads"])
      ),
      "replicated": sharded["replicated"],
    }
  print(json.dumps(report))


if __name__ == "__main__":
  sys.exit(main())
