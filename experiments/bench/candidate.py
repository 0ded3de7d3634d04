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

import jax
import jax.numpy as jnp
import optax

from bench.workloads import LEARNING_RATE


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


def adam_candidate(
  library: str,
  init_params: Callable[[], Any],
  log_prob_fn: Callable[[Any, Any], Any],
  note: str = "",
) -> JaxCandidate:
  """The benchmark's shared step around any JAX model.

  Args:
    library: the candidate's name in the table.
    init_params: ``() -> params``, a pytree of arrays.
    log_prob_fn: ``(params, batch) -> (batch,)`` log-likelihoods.
    note: how the model is written, for the table.

  Returns:
    A candidate whose state is ``(params, Adam state)`` and whose step is
    ``loss = -mean log p(x)`` followed by one Adam update (``workloads``).
  """
  optimizer = optax.adam(LEARNING_RATE)

  def loss_fn(params, batch):
    return -jnp.mean(log_prob_fn(params, batch))

  def init():
    params = init_params()
    return params, optimizer.init(params)

  def train_step(state, batch):
    params, opt_state = state
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  def log_prob(state, batch):
    return log_prob_fn(state[0], batch)

  return JaxCandidate(library, init, train_step, log_prob, note)


def flax_candidate(
  library: str, model: Any, workload: Any, note: str = "", seed: int = 0
) -> JaxCandidate:
  """``adam_candidate`` for a flax module whose ``__call__(x)`` is
  ``log p(x)``, initialised on the workload's batch."""
  example = jnp.asarray(workload.batch())
  return adam_candidate(
    library,
    lambda: model.init(jax.random.key(seed), example)["params"],
    lambda params, batch: model.apply({"params": params}, batch),
    note,
  )
