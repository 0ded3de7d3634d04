"""``experiments/train.py`` with a fault injected at a chosen point.

  FLOWJAX_TEST_SIGNAL=where:step[:process] python tests/fault_worker.py \
      TRAIN_FLAGS...

(``fault_hooks``); ``FLOWJAX_TEST_STEP_SECONDS=s`` makes each step ``s``
seconds longer and ``FLOWJAX_TEST_DISK_FULL_AT=step`` fails that step's save
as a full disk does. Without them it is ``train.py`` itself.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "experiments"))
sys.path.insert(0, HERE)

import fault_hooks  # noqa: E402
import train  # noqa: E402
from absl import app  # noqa: E402

if __name__ == "__main__":
  spec = os.environ.get("FLOWJAX_TEST_SIGNAL")
  if spec:
    where, step, *process = spec.split(":")
    fault_hooks.install(
      where, int(step), process=int(process[0]) if process else None
    )
  full = os.environ.get("FLOWJAX_TEST_DISK_FULL_AT")
  if full:
    fault_hooks.disk_full_at(int(full))
  seconds = os.environ.get("FLOWJAX_TEST_STEP_SECONDS")
  if seconds:
    fault_hooks.slow_down(float(seconds))
  app.run(train.main)
