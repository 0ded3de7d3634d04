"""Trains any model from a config file; rerunning the command resumes.

  python experiments/train.py --config=experiments/configs/glow_digits.py \\
      --workdir=workdirs/glow_digits

Every family trains here: flows (``glow_*``, ``realnvp_*``, ``nice_*``, or a
flow factory of your own, ``custom_flow.py``), auto-encoders (``ae_*``,
``dae_*``), VAEs (``vae_*``), GANs (``gan_*``) and the classifier
(``classifier_*``); see ``experiments/configs/``. Prints the test
figures (bits/dim for likelihood models), writes checkpoints, samples
(PNG), metrics (JSONL and TensorBoard events) and learning curves into
``--workdir``. After a loss
spike, ``--resume_step=S --skip_batches=N`` rolls the run back to checkpoint
S and goes on past the next N batches (``training/loop.py``). Log records
(orbax's included) go to ``train.log`` there; a run that fails prints one
line and leaves the traceback in that file.

SIGTERM or SIGINT (a preemption, Ctrl-C) saves the step every process
agrees on, prints ``preempted at step S; the same command resumes`` and
exits with status 75. A job on a workdir that another job holds
(``workdir/run.lock``) is refused before it writes anything.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import distributed  # noqa: E402
import failures  # noqa: E402

# The multi-process and device flags (--num_cpu_devices, ...) in --helpshort.
flags.adopt_module_key_flags(distributed)

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
_TAKE_OVER_WORKDIR = flags.DEFINE_bool(
  "take_over_workdir",
  False,
  "take the workdir's lock from a job on another host that is known to be "
  "gone (a lock left on this host by a killed job is taken over anyway, "
  "and one from another host once its heartbeat is 10 minutes old).",
)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  distributed.initialize()
  import jax  # noqa: PLC0415 -- after the runtime is configured

  from flowjax_gen.training import workdir_lock  # noqa: PLC0415

  workdir = _WORKDIR.value
  try:
    # Held before anything is written, the log included: a second job on
    # this workdir is refused without touching the first one's files.
    with workdir_lock.hold(workdir, take_over=_TAKE_OVER_WORKDIR.value):
      return _train_in(workdir, jax.process_index())
  except (workdir_lock.WorkdirInUseError, OSError) as error:
    # Nothing of this job is in the workdir to hold a traceback.
    print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
    return 1


def _train_in(workdir: str, process_index: int) -> int:
  from flowjax_gen.training import config as config_lib  # noqa: PLC0415
  from flowjax_gen.training import preemption, reporting  # noqa: PLC0415
  from flowjax_gen.training.loop import train_and_evaluate  # noqa: PLC0415

  name = "train.log"
  if process_index > 0:
    name = f"train.process_{process_index}.log"
  log_path = os.path.join(workdir, name)
  try:
    failures.log_to_file(log_path)
  except OSError as error:
    print(f"error: cannot write to {workdir}: {error}", file=sys.stderr)
    return 1
  config = _CONFIG.value.to_dict()
  try:
    result = train_and_evaluate(
      config,
      workdir,
      overwrite=_OVERWRITE.value,
      resume_step=_RESUME_STEP.value,
      skip_batches=_SKIP_BATCHES.value,
    )
  except preemption.Preempted as stopped:
    if process_index == 0:
      print(stopped, file=sys.stderr)
    return preemption.EXIT_PREEMPTED
  except Exception as error:  # noqa: BLE001 -- one line; traceback in the log
    return failures.report(error, log_path)
  if process_index == 0:
    line = reporting.result_line(
      result, dequantization_draws=config_lib.dequantization_draws(config)
    )
    print(f"test: {line}")
    print(f"samples: {result['samples']}")
    print(
      f"checkpoints: {os.path.join(workdir, 'checkpoints')} (final: "
      f"step {result['checkpoint_step']})"
    )
    # Written whole or not at all: evaluation tools trust its step.
    path = os.path.join(workdir, "final_metrics.json")
    with open(path + ".tmp", "w") as f:
      json.dump(result, f, indent=2)
    os.replace(path + ".tmp", path)
  return 0


if __name__ == "__main__":
  app.run(main)
