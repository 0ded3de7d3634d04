"""Preemption: every process stops at one agreed step, saves it, exits.

Schedulers announce preemption with SIGTERM and kill the job after a grace
period (TPU VMs, Slurm, Kubernetes: typically 30 s). ``PreemptionWatch``
turns that signal (and SIGINT, Ctrl-C) into a request the loop polls at
*checkpoints* of its own, one per training step and one per evaluation
batch, so a long evaluation does not outlast the grace period.

Every process of a run must stop at the same poll: the save that follows is
collective, and a process that saves while another trains deadlocks both.
How they agree:

* Several processes (``jax.distributed`` initialised): JAX's preemption
  service. Its SIGTERM handler, installed by ``jax.distributed.initialize``,
  tells the coordination service, which propagates the notice to every
  process and fixes the sync point at one past the largest poll count any
  process has reached; ``multihost_utils.reached_preemption_sync_point``
  then returns ``True`` at that same poll everywhere. The service listens to
  SIGTERM only, so SIGINT is forwarded to this process as SIGTERM.
* One process (no ``jax.distributed``, where the service is absent and
  ``reached_preemption_sync_point`` always returns ``False``): Python
  handlers for SIGTERM and SIGINT set a flag the next poll reads.

Signals after the first change nothing: the save already under way is
finished and verified, so a second SIGTERM cannot tear it (SIGKILL still
ends the process at once; orbax's temporary folders make a save torn that
way invisible, and the next start removes them).
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Optional

# ``os.EX_TEMPFAIL``: a temporary failure; the caller may retry. Distinct
# from 1 (an error) and from death by a signal (-15 / 143).
EXIT_PREEMPTED = 75


class Preempted(Exception):  # noqa: N818 -- an event, not an error
  """The run stopped for a preemption signal after saving ``step``."""

  def __init__(self, step: int):
    super().__init__(f"preempted at step {step}; the same command resumes")
    self.step = step


def _preemption_service():
  """JAX's preemption sync manager when ``jax.distributed`` runs, else
  ``None``."""
  from jax._src import distributed  # noqa: PLC0415 -- no public accessor

  state = distributed.global_state
  if state.client is None:
    return None
  return state.preemption_sync_manager


class PreemptionWatch:
  """Context manager that catches SIGTERM and SIGINT and answers, at each
  poll, whether every process has agreed to stop there.

  Polls must come in the same order and number on every process (they do:
  every process runs the same steps and evaluation batches). Outside the
  main thread no handler can be installed and ``requested`` stays ``False``
  unless JAX's service says otherwise.
  """

  def __init__(self):
    self._service = None
    self._polls = 0
    self._agreed = False
    self._signal: Optional[int] = None
    self._previous: dict[int, object] = {}

  def __enter__(self) -> PreemptionWatch:
    self._service = _preemption_service()
    if threading.current_thread() is not threading.main_thread():
      return self
    handled = (signal.SIGINT,)
    if self._service is None:
      handled = (signal.SIGTERM, signal.SIGINT)
    for number in handled:
      self._previous[number] = signal.signal(number, self._on_signal)
    return self

  def __exit__(self, *exc_info) -> None:
    for number, handler in self._previous.items():
      signal.signal(number, handler)  # pyright: ignore[reportArgumentType]
    self._previous.clear()

  def _on_signal(self, number: int, frame) -> None:
    del frame
    if self._signal is not None:
      return  # already stopping: let the save finish
    self._signal = number
    if self._service is not None:
      # Only SIGTERM reaches the coordination service.
      os.kill(os.getpid(), signal.SIGTERM)

  def poll(self) -> bool:
    """Counts one poll; ``True`` from the first poll at which every process
    agreed to stop (and at every later one)."""
    self._polls += 1
    if self._agreed:
      return True
    if self._service is not None:
      from jax.experimental import multihost_utils  # noqa: PLC0415

      self._agreed = multihost_utils.reached_preemption_sync_point(self._polls)
    else:
      self._agreed = self._signal is not None
    return self._agreed
