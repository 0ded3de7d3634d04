"""Faults injected at chosen points of a training run: preemption signals,
slow steps and a disk that fills.

``install(where, step)`` patches the training code so that this process
sends itself SIGTERM at one point of the run:

* ``"step"``: right after step ``step`` is dispatched (while it computes);
* ``"evaluation"``: after the first batch of the evaluation at ``step``;
* ``"save"``: right after the save of ``step`` starts (twice: the second
  signal comes while the first one's save is under way).

With ``process`` set, only that process of a multi-process run signals;
the others must learn of it through the agreement. After signalling, the
process pauses a moment, so that the agreement has reached every process
before the next poll and the stop lands where the test expects it.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Callable
from typing import Any, Optional

import jax

from flowjax_gen import checkpoint
from flowjax_gen.training import experiment

WHERE = ("step", "evaluation", "save")
# The step the last training step made (the evaluation that follows is
# at it).
_current_step = [0]


def _signal(process: Optional[int], times: int = 1) -> None:
  if process is not None and jax.process_index() != process:
    return
  for _ in range(times):
    os.kill(os.getpid(), signal.SIGTERM)
  time.sleep(1.0 if jax.process_count() > 1 else 0.0)


def install(
  where: str,
  step: int,
  *,
  process: Optional[int] = None,
  patch: Callable[[Any, str, Any], None] = setattr,
) -> None:
  """Patches the training code (``patch(owner, name, value)``: ``setattr``
  or pytest's ``monkeypatch.setattr``)."""
  if where == "step":
    original_step = experiment.Experiment.train_step

    def train_step(self):
      run = original_step(self)

      def signalling(state, batch):
        number = int(state.step) + 1  # read before the step donates it
        new_state, metrics = run(state, batch)
        if number == step:
          _signal(process)
        return new_state, metrics

      return signalling

    patch(experiment.Experiment, "train_step", train_step)
  elif where == "evaluation":
    original_evaluate = experiment.Experiment.evaluate

    def evaluate(self, params, interrupt=None):
      calls = []

      def interrupting():
        calls.append(1)
        # The evaluation is at ``step`` when the state it runs in is.
        if len(calls) == 2 and _current_step[0] == step:
          _signal(process)
        return interrupt() if interrupt is not None else False

      return original_evaluate(self, params, interrupt=interrupting)

    original_step = experiment.Experiment.train_step

    def tracking_step(self):
      run = original_step(self)

      def tracked(state, batch):
        _current_step[0] = int(state.step) + 1
        return run(state, batch)

      return tracked

    patch(experiment.Experiment, "evaluate", evaluate)
    patch(experiment.Experiment, "train_step", tracking_step)
  elif where == "save":
    original_save = checkpoint.Checkpointer.save

    def save(self, saved_step, *args, **kwargs):
      original_save(self, saved_step, *args, **kwargs)
      if saved_step == step:
        _signal(process, times=2)

    patch(checkpoint.Checkpointer, "save", save)
  else:
    raise ValueError(f"where must be one of {WHERE}; got {where!r}.")


def disk_full_at(
  step: int, *, patch: Callable[[Any, str, Any], None] = setattr
) -> None:
  """Makes the save of ``step`` fail as a full disk does (``ENOSPC`` when
  its checksums are written, after orbax has written the arrays), for
  machines where a test cannot mount a small file system."""
  original = checkpoint._write_checksums

  def write_checksums(step_dir: str) -> None:
    if os.path.basename(step_dir) == str(step):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), step_dir)
    original(step_dir)

  patch(checkpoint, "_write_checksums", write_checksums)


def slow_down(
  seconds: float, *, patch: Callable[[Any, str, Any], None] = setattr
) -> None:
  """Makes every training step take ``seconds`` longer (a run that is still
  going when the test acts on it)."""
  original_step = experiment.Experiment.train_step

  def train_step(self):
    run = original_step(self)

    def slow(state, batch):
      time.sleep(seconds)
      return run(state, batch)

    return slow

  patch(experiment.Experiment, "train_step", train_step)
