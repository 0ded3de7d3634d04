"""Run in a fresh process with 4 simulated CPU devices (see test_parallel).

For every non-flow family (auto-encoder, denoiser, VAE, GAN, classifier)
and for a flow trained with a variational dequantiser (params
``{"flow", "dequantizer"}``), builds the task of its digits smoke config,
runs two full training steps (optimiser, guard, EMA; a GAN's two parameter
groups) on one device and on 4 devices under Auto and Explicit meshes, and
prints one JSON line with the largest differences in params and metrics.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import AxisType  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "experiments"))

from flowjax_gen import training  # noqa: E402
from flowjax_gen.training import loop, state, step, tasks  # noqa: E402

# ``module`` or ``module:arguments`` (``smoke`` when none are given).
CONFIGS = ("ae_digits", "dae_digits", "vae_digits", "gan_digits")
CONFIGS += ("classifier_digits", "glow_digits:smoke,variational")


def max_diff(a, b):
  return max(
    float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
  )


def two_steps(config, mesh, batch):
  task = tasks.build_task(config, batch["image"].shape[1:])
  optimizer = state.make_optimizer(
    name=config["optimizer"],
    schedule=lambda _: 1e-3,
    grad_clip_norm=config["grad_clip_norm"],
    b1=config["adam_b1"],
  )
  sharded = training.shard_batch(batch, mesh)
  params = training.data_parallel_init(task.init, mesh)(
    jax.random.key(0), sharded
  )
  groups = tuple(task.objective) if isinstance(task.objective, dict) else None
  train_state = training.replicate(
    state.create_state(params, optimizer, groups=groups), mesh
  )
  train_step = step.make_train_step(
    task.objective, optimizer, mesh, seed=0, ema_decay=0.9
  )
  metrics = []
  for _ in range(2):
    train_state, m = train_step(train_state, sharded)
    metrics.append(jax.device_get(m))
  return jax.device_get(train_state), metrics


def main():
  assert jax.device_count() == 4, jax.devices()
  rng = np.random.default_rng(0)
  batch = {
    "image": (rng.integers(0, 17, (8, 8, 8, 1)) * 15).astype(np.uint8),
    "label": rng.integers(0, 10, (8,)),
  }
  report = {}
  for name in CONFIGS:
    module_name, _, argument = name.partition(":")
    module = importlib.import_module(f"configs.{module_name}")
    config = loop.with_defaults(
      module.get_config(argument or "smoke").to_dict()
    )
    single_state, single_metrics = two_steps(
      config, training.data_mesh(jax.devices()[:1]), batch
    )
    report[name] = {"skipped": int(single_state.skipped)}
    for kind, axis_type in (
      ("auto", AxisType.Auto),
      ("explicit", AxisType.Explicit),
    ):
      state4, metrics4 = two_steps(
        config, training.data_mesh(axis_type=axis_type), batch
      )
      report[name][kind] = {
        "params": max_diff(single_state.params, state4.params),
        "ema": max_diff(single_state.ema_params, state4.ema_params),
        "metrics": max_diff(single_metrics, metrics4),
      }
  print(json.dumps(report))


if __name__ == "__main__":
  sys.exit(main())
