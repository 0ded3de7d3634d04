"""What one training step of a config costs, from XLA, without training.

  python experiments/cost.py --num_cpu_devices=8 \
      --config=experiments/configs/glow_mnist.py \
      --config=experiments/configs/glow_cifar10.py \
      --config=experiments/configs/realnvp_cifar10.py \
      [--batch_size=N] [--compute_dtype=bfloat16] [--output=cost.json]

For every ``--config`` (a path, ``:argument`` appended for a variant) it
builds the run as ``train.py`` would, on every device of the ``data`` mesh,
and prints:

* ``params``: number of parameter entries (the model's, and a learned
  dequantiser's), from ``jax.eval_shape`` of the data-dependent init, so no
  parameter is materialised.
* ``flops_per_step``: XLA's cost analysis (``HloCostAnalysis``) of the whole
  training step (forward, backward, optimiser, EMA) for the global batch,
  summed over devices. The analysis counts a while loop's body once,
  whatever its trip count, so the compiled step's own figure misses all but
  one of the ``K`` steps of each ``lax.scan`` (Glow's levels); the step is
  therefore lowered a second time with every ``lax.scan`` unrolled and that
  program is analysed. The compiled program's figure (per device, loop
  bodies once) is reported as ``flops_compiled_per_device``.
* ``peak_bytes_per_device``: from ``compiled.memory_analysis()`` of the
  step compiled for this platform, the bytes one device holds while the
  step runs: its arguments (params, optimiser state and EMA, replicated,
  and its share of the batch), plus outputs not written in place of a
  donated argument, plus XLA's temporary buffers (activations kept for the
  backward pass, gradients, workspace), which XLA allocates as one block.
  XLA's own ``peak_memory_in_bytes`` leaves the temporaries out on the CPU
  backend; it is kept in the JSON report as ``xla_peak_memory_in_bytes``.
  Another platform's compiler makes other choices (fusion, layouts,
  rematerialisation): run the command there for its figure.
* the paper's bits/dim, GPU-hours and hardware, from the config module's
  ``PAPER``.

``--compute_dtype=bfloat16`` costs the same step with its networks in
bfloat16 (``config.compute_dtype``): half the activation bytes of the
networks; the same FLOPs, which an accelerator's matrix units run several
times faster in bfloat16.

Nothing is downloaded: the model needs the dataset's shapes only, so tfds's
mock data (random examples of the dataset's specification) stands in for a
tfds dataset; the built-in and ``.npz`` sources are read as they are.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
import tempfile
import time
from unittest import mock

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import distributed  # noqa: E402

# The multi-process and device flags (--num_cpu_devices, ...) in --helpshort.
flags.adopt_module_key_flags(distributed)

_CONFIGS = flags.DEFINE_multi_string(
  "config",
  None,
  "experiment config file, ':argument' appended for a variant; repeat the "
  "flag for several configs.",
  required=True,
)
_BATCH = flags.DEFINE_integer(
  "batch_size", 0, "global batch of the step (0: the config's batch_size)."
)
_OUTPUT = flags.DEFINE_string("output", None, "also write the figures here.")
_COMPUTE_DTYPE = flags.DEFINE_enum(
  "compute_dtype",
  None,
  ["float32", "bfloat16"],
  "what the networks compute in (config.compute_dtype); default: each "
  "config's own.",
)


def load_config(spec: str) -> tuple[dict, dict]:
  """``(config, paper)`` of ``path[:argument]``: the config module's
  ``get_config(argument)`` as a dict and its ``PAPER`` (``{}`` if none)."""
  path, _, argument = spec.partition(":")
  name = "cost_config_" + os.path.splitext(os.path.basename(path))[0]
  module_spec = importlib.util.spec_from_file_location(name, path)
  if module_spec is None or module_spec.loader is None:
    raise ValueError(f"--config: no config module at {path!r}.")
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(argument).to_dict(), getattr(module, "PAPER", {})


def step_cost(config: dict, batch_size: int = 0) -> dict:
  """Parameters, FLOPs and memory of one training step of ``config``
  (module docstring) on every device of this process."""
  import jax  # noqa: PLC0415 -- after the runtime is configured
  import tensorflow_datasets as tfds  # noqa: PLC0415

  from flowjax_gen.parallel import shard_batch  # noqa: PLC0415
  from flowjax_gen.training.config import (  # noqa: PLC0415
    validate_config,
    with_defaults,
  )
  from flowjax_gen.training.experiment import Experiment  # noqa: PLC0415

  config = with_defaults(config)
  if batch_size:
    config["batch_size"] = batch_size
  validate_config(config)
  examples = max(config["batch_size"], config["init_batch_size"])
  config.update(num_train_examples=examples, num_test_examples=examples)
  with (
    tempfile.TemporaryDirectory() as workdir,
    tfds.testing.mock_data(
      num_examples=examples, policy=tfds.testing.MockPolicy.USE_CODE
    ),
  ):
    run = Experiment(config, workdir)
  state = jax.eval_shape(run.init_state)
  batch = shard_batch(next(run.iterator), run.mesh)
  start = time.perf_counter()
  compiled = run.train_step().lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  # A fresh step function is traced again, now with every scan unrolled.
  with mock.patch.object(
    jax.lax, "scan", functools.partial(jax.lax.scan, unroll=True)
  ):
    unrolled = run.train_step().lower(state, batch)
  memory = compiled.memory_analysis()
  return {
    "model": config["model"],
    "model_kwargs": config["model_kwargs"],
    "dequantization": config["dequantization"],
    "dataset": config["dataset"],
    "event_shape": list(run.event_shape),
    "params": sum(leaf.size for leaf in jax.tree.leaves(state.params)),
    "batch_size": config["batch_size"],
    "devices": jax.device_count(),
    "platform": jax.devices()[0].platform,
    "flops_per_step": float(unrolled.cost_analysis()["flops"]),
    "flops_compiled_per_device": float(compiled.cost_analysis()["flops"]),
    "peak_bytes_per_device": int(
      memory.argument_size_in_bytes
      + memory.output_size_in_bytes
      - memory.alias_size_in_bytes
      + memory.temp_size_in_bytes
    ),
    "argument_bytes_per_device": int(memory.argument_size_in_bytes),
    "output_bytes_per_device": int(memory.output_size_in_bytes),
    "alias_bytes_per_device": int(memory.alias_size_in_bytes),
    "temp_bytes_per_device": int(memory.temp_size_in_bytes),
    "xla_peak_memory_in_bytes": int(memory.peak_memory_in_bytes),
    "compile_s": compile_s,
  }


def _si(value: float, unit: str) -> str:
  for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
    if value >= scale:
      return f"{value / scale:.3g} {prefix}{unit}"
  return f"{value:.3g} {unit}"


def cost_text(spec: str, cost: dict, paper: dict) -> str:
  """One config's figures, a few lines of text."""
  gib = 2.0**30
  batch = cost["batch_size"]
  return "\n".join(
    [
      f"{spec}: {cost['model']} on {cost['dataset']} "
      f"{tuple(cost['event_shape'])}, {cost['params']:,} params, networks "
      f"in {cost.get('compute_dtype', 'float32')}",
      f"  global batch {batch} on {cost['devices']} {cost['platform']} "
      f"devices, step compiled in {cost['compile_s']:.0f} s",
      f"  FLOPs per step: {_si(cost['flops_per_step'], 'FLOP')} "
      f"({_si(cost['flops_per_step'] / batch, 'FLOP')} per example); "
      "compiled program, loop bodies counted once: "
      f"{_si(cost['flops_compiled_per_device'], 'FLOP')} per device",
      f"  peak memory per device: {cost['peak_bytes_per_device'] / gib:.2f} "
      f"GiB (arguments {cost['argument_bytes_per_device'] / gib:.2f} GiB, "
      f"temporaries {cost['temp_bytes_per_device'] / gib:.2f} GiB)",
      f"  paper: {paper.get('bits_per_dim', 'n/a')} bits/dim; GPU-hours: "
      f"{paper.get('gpu_hours', 'not reported')}; hardware: "
      f"{paper.get('hardware', 'not reported')}",
    ]
  )


def main(argv):
  del argv
  # tfds warns at every mock load that the dataset is not on disk.
  logging.set_verbosity(logging.ERROR)
  distributed.initialize()
  report = {}
  for spec in _CONFIGS.value:
    config, paper = load_config(spec)
    if _COMPUTE_DTYPE.value:
      config["compute_dtype"] = _COMPUTE_DTYPE.value
    cost = step_cost(config, _BATCH.value)
    cost["compute_dtype"] = config.get("compute_dtype", "float32")
    report[spec] = {**cost, "paper": paper}
    print(cost_text(spec, cost, paper), flush=True)
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      json.dump(report, f, indent=2)
    print(f"report: {_OUTPUT.value}")


if __name__ == "__main__":
  app.run(main)
