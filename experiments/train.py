"""Trains a flow from a config file; rerunning the command resumes.

  python experiments/train.py --config=experiments/configs/glow_digits.py \
      --workdir=workdirs/glow_digits

Prints test bits/dim, writes checkpoints, samples (PNG), metrics (JSONL and
TensorBoard events) and learning curves into ``--workdir``.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import distributed  # noqa: E402
import host_memory  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
  "config",
  os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "configs", "glow_digits.py"
  ),
  "experiment config file (append ':smoke' for the smoke variant).",
)
_WORKDIR = flags.DEFINE_string(
  "workdir", "workdirs/default", "run directory (created if missing)."
)
_OVERWRITE = flags.DEFINE_bool(
  "overwrite", False, "replace a run with a different config in workdir."
)
_KEEP_FREED_MEMORY = flags.DEFINE_bool(
  "keep_freed_memory",
  True,
  "when computing on the CPU under Linux, re-run under GLIBC_TUNABLES that "
  "keep freed memory mapped (experiments/host_memory.py; the Glow "
  "benchmark step took 283 ms instead of ~330 ms); ignored when "
  "GLIBC_TUNABLES is already set.",
)


def main(argv):
  del argv
  if _KEEP_FREED_MEMORY.value and host_memory.runs_on_cpu():
    host_memory.keep_freed_memory()
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  distributed.initialize()
  import jax  # noqa: PLC0415 -- after the runtime is configured

  from flowjax_gen.training import reporting  # noqa: PLC0415
  from flowjax_gen.training.loop import train_and_evaluate  # noqa: PLC0415

  config = _CONFIG.value.to_dict()
  result = train_and_evaluate(
    config, _WORKDIR.value, overwrite=_OVERWRITE.value
  )
  if jax.process_index() == 0:
    print(f"test: {reporting.result_line(result)}")
    print(f"samples: {result['samples']}")
    print(f"checkpoints: {os.path.join(_WORKDIR.value, 'checkpoints')}")
    with open(os.path.join(_WORKDIR.value, "final_metrics.json"), "w") as f:
      json.dump(result, f, indent=2)


if __name__ == "__main__":
  app.run(main)
