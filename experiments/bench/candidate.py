"""What a candidate hands the benchmark: pure JAX functions, or PyTorch
callables for the PyTorch peer.

A JAX candidate's state is a pytree of arrays only (params and optimiser
state), so the harness can ``jax.jit`` the step with the state donated,
lower it once, and read XLA's cost and memory analyses from the compiled
program. A PyTorch candidate runs eagerly, as its users run it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass
class JaxCandidate:
  """A workload written with one JAX library.

  Attributes:
    library: e.g. ``"flowjax_gen"``, ``"distrax"``.
    init: ``() -> state``, a pytree of arrays (params and Adam state).
    train_step: ``(state, batch) -> (state, loss)``, pure; the harness jits
      it with the state donated.
    log_prob: ``(state, batch) -> (batch,)`` log-likelihoods, pure.
    note: how the library expresses the model, for the table.
  """

  library: str
  init: Callable[[], Any]
  train_step: Callable[[Any, Any], tuple[Any, Any]]
  log_prob: Callable[[Any, Any], Any]
  note: str = ""


@dataclasses.dataclass
class TorchCandidate:
  """A workload written with a PyTorch library (normflows).

  Attributes:
    library: e.g. ``"normflows"`` or ``"normflows (channels_last)"``.
    to_batch: numpy batch (NHWC images, or features) -> torch tensor in the
      layout the model wants.
    train_step: ``(batch) -> float`` loss; one Adam step, in place.
    log_prob: ``(batch) -> tensor`` of log-likelihoods (no grad).
    note: how the library expresses the model.
  """

  library: str
  to_batch: Callable[[Any], Any]
  train_step: Callable[[Any], float]
  log_prob: Callable[[Any], Any]
  note: str = ""


class Unsupported(Exception):
  """Raised by a candidate factory when a library cannot express a workload
  (the reason becomes the table entry)."""
