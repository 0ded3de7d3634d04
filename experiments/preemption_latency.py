"""Seconds from SIGTERM to exit of a training run, as a scheduler sees it.

  python experiments/preemption_latency.py \
      --config=experiments/configs/glow_mnist.py:cpu_hour,variational \
      --data_path=../shared/data/mnist.npz --at_step=300

Starts ``experiments/train.py`` three times in fresh workdirs and sends
SIGTERM once the run reaches ``--at_step``: while a step computes, during
the evaluation of that step (``eval_every = at_step``) and during the save
of that step (``checkpoint_every = at_step``). For each it prints the
seconds from the signal to the process's exit, its status (75 for a
preemption) and the line it printed. Compare the figures with your
scheduler's grace period. Run nothing else meanwhile.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from absl import app, flags

_CONFIG = flags.DEFINE_string(
  "config", None, "config file (with ':ARG'), as for train.py; required."
)
_DATA_PATH = flags.DEFINE_string(
  "data_path", "", "an .npz dataset (sets --config.dataset=npz)."
)
_AT_STEP = flags.DEFINE_integer("at_step", 300, "the step to signal at.")
_WORKDIRS = flags.DEFINE_string(
  "workdirs", "", "folder for the runs' workdirs (default: a temporary one)."
)
flags.mark_flag_as_required("config")

TRAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")


def _logged(workdir: str, step: int) -> bool:
  """Whether the metrics log holds the train record of ``step``."""
  try:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      return any(f'"step": {step}, "split": "train"' in line for line in f)
  except FileNotFoundError:
    return False


def _saving(workdir: str, step: int) -> bool:
  """Whether the save of ``step`` has started."""
  folder = os.path.join(workdir, "checkpoints")
  return os.path.isdir(folder) and any(
    name.split(".")[0] == str(step) for name in os.listdir(folder)
  )


def _measure(name: str, workdir: str, extra: list[str], ready: Callable) -> str:
  shutil.rmtree(workdir, ignore_errors=True)
  command = [
    sys.executable,
    TRAIN,
    f"--config={_CONFIG.value}",
    f"--workdir={workdir}",
    f"--config.log_every={min(10, _AT_STEP.value)}",
    *extra,
  ]
  if _DATA_PATH.value:
    command += [
      "--config.dataset=npz",
      f"--config.data_path={_DATA_PATH.value}",
    ]
  process = subprocess.Popen(
    command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
  )
  while not ready(workdir):
    if process.poll() is not None:
      return f"{name}: the run ended before step {_AT_STEP.value}"
    time.sleep(0.01)
  sent = time.perf_counter()
  process.send_signal(signal.SIGTERM)
  _, err = process.communicate()
  seconds = time.perf_counter() - sent
  last = (err.strip().splitlines() or [""])[-1]
  return f"{name}: {seconds:.1f} s to exit {process.returncode} ({last})"


def main(argv):
  del argv
  root = _WORKDIRS.value or tempfile.mkdtemp(prefix="preemption_latency.")
  step = _AT_STEP.value
  cases = (
    ("during a step", [], lambda w: _logged(w, step)),
    (
      "during an evaluation",
      [f"--config.eval_every={step}"],
      lambda w: _logged(w, step),
    ),
    (
      "during a save",
      [f"--config.checkpoint_every={step}"],
      lambda w: _saving(w, step),
    ),
  )
  for index, (name, extra, ready) in enumerate(cases):
    print(_measure(name, os.path.join(root, str(index)), extra, ready))


if __name__ == "__main__":
  app.run(main)
