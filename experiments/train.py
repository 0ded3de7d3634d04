"""Trains a flow from a config file; rerunning the command resumes.

  python experiments/train.py --config=experiments/configs/glow_digits.py \
      --workdir=workdirs/glow_digits

Prints test bits/dim, writes checkpoints, samples (PNG), metrics (JSONL and
TensorBoard events) and learning curves into ``--workdir``. After a loss
spike, ``--resume_step=S --skip_batches=N`` rolls the run back to checkpoint
S and goes on past the next N batches (``training/loop.py``). Log records
(orbax's included) go to ``train.log`` there; a run that fails prints one
line and leaves the traceback in that file.
"""

from __future__ import annotations

import json
import logging as std_logging
import os
import sys
import traceback

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
  "experiment config file; append ':ARG' for a variant (':smoke', a few "
  "steps of a tiny model); an ARG the file does not know is refused.",
)
_WORKDIR = flags.DEFINE_string(
  "workdir", None, "run directory (created if missing); required."
)
# No default directory: a forgotten --workdir would mix unrelated runs in
# one place (or resume one of them).
flags.mark_flag_as_required("workdir")
_OVERWRITE = flags.DEFINE_bool(
  "overwrite", False, "replace a run with a different config in workdir."
)
_RESUME_STEP = flags.DEFINE_integer(
  "resume_step",
  None,
  "resume from this checkpoint instead of the newest (roll back, e.g. to "
  "before a loss spike); newer checkpoints move to "
  "checkpoints/rolled_back/, their log records to rollbacks.jsonl.",
)
_SKIP_BATCHES = flags.DEFINE_integer(
  "skip_batches",
  0,
  "after restoring, discard this many training batches (with "
  "--resume_step: go on past the data of a loss spike).",
)
_KEEP_FREED_MEMORY = flags.DEFINE_bool(
  "keep_freed_memory",
  True,
  "when computing on the CPU under Linux, re-run under GLIBC_TUNABLES that "
  "keep freed memory mapped (experiments/host_memory.py; the Glow "
  "benchmark step took 283 ms instead of ~330 ms); ignored when "
  "GLIBC_TUNABLES is already set.",
)


def _log_to_file(path: str) -> None:
  """Sends absl log records (orbax's too) to ``path`` instead of the
  console, and warnings to both.

  orbax logs each failed background write with its traceback: on the
  console they would bury the one line that says what went wrong.
  """
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  # Open for the rest of the process: the handler writes to it.
  log = open(path, "a")
  logging.get_absl_handler().python_handler.stream = log
  std_logging.captureWarnings(True)
  console = std_logging.StreamHandler(sys.stderr)
  console.setFormatter(std_logging.Formatter("%(message)s"))
  std_logging.getLogger("py.warnings").addHandler(console)


def main(argv):
  del argv
  if _KEEP_FREED_MEMORY.value and host_memory.runs_on_cpu():
    host_memory.keep_freed_memory()
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  distributed.initialize()
  import jax  # noqa: PLC0415 -- after the runtime is configured

  from flowjax_gen.training import config as config_lib  # noqa: PLC0415
  from flowjax_gen.training import reporting  # noqa: PLC0415
  from flowjax_gen.training.loop import train_and_evaluate  # noqa: PLC0415

  name = "train.log"
  if jax.process_index() > 0:
    name = f"train.process_{jax.process_index()}.log"
  log_path = os.path.join(_WORKDIR.value, name)
  try:
    _log_to_file(log_path)
  except OSError as error:
    print(f"error: cannot write to {_WORKDIR.value}: {error}", file=sys.stderr)
    return 1
  config = _CONFIG.value.to_dict()
  try:
    result = train_and_evaluate(
      config,
      _WORKDIR.value,
      overwrite=_OVERWRITE.value,
      resume_step=_RESUME_STEP.value,
      skip_batches=_SKIP_BATCHES.value,
    )
  except Exception as error:  # noqa: BLE001 -- one line; traceback in the log
    # Opened anew: --overwrite may have replaced the file the handler holds.
    with open(log_path, "a") as f:
      f.write(traceback.format_exc())
    print(
      f"error: {type(error).__name__}: {error} (traceback: {log_path})",
      file=sys.stderr,
    )
    return 1
  if jax.process_index() == 0:
    line = reporting.result_line(
      result, dequantization_draws=config_lib.dequantization_draws(config)
    )
    print(f"test: {line}")
    print(f"samples: {result['samples']}")
    print(
      f"checkpoints: {os.path.join(_WORKDIR.value, 'checkpoints')} (final: "
      f"step {result['checkpoint_step']})"
    )
    # Written whole or not at all: evaluation tools trust its step.
    path = os.path.join(_WORKDIR.value, "final_metrics.json")
    with open(path + ".tmp", "w") as f:
      json.dump(result, f, indent=2)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
  app.run(main)
