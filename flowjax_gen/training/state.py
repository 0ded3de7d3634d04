"""Training state and optimiser.

The state is a plain pytree (so orbax, shardings and donation treat it like
params): step, params, optimiser state, EMA params and the non-finite-loss
counters. Per-step randomness is ``fold_in(key(seed), step)``, so the RNG
state is the step counter itself and resuming continues the same stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("adam", "adamax")
SCHEDULES = ("constant", "cosine")


class TrainState(NamedTuple):
  """Everything a step reads and writes; saved whole in checkpoints."""

  step: jax.Array  # int32 scalar
  params: Any
  opt_state: Any
  ema_params: Any  # equals params when EMA is off
  skipped: jax.Array  # int32: updates skipped for non-finite values
  consecutive_skipped: jax.Array


def learning_rate_schedule(
  *, learning_rate: float, warmup_steps: int, num_steps: int, decay: str
) -> optax.Schedule:
  """Linear warm-up from 0 to ``learning_rate``, then constant or cosine
  decay to 0 at ``num_steps``."""
  if decay not in SCHEDULES:
    raise ValueError(f"decay must be one of {SCHEDULES}; got {decay!r}.")
  if learning_rate <= 0:
    raise ValueError(f"learning_rate must be > 0; got {learning_rate!r}.")
  warmup_steps = max(int(warmup_steps), 0)
  if decay == "cosine":
    return optax.warmup_cosine_decay_schedule(
      0.0,
      learning_rate,
      max(warmup_steps, 1),
      max(num_steps, warmup_steps + 1),
      end_value=0.0,
    )
  return optax.join_schedules(
    [
      optax.linear_schedule(0.0, learning_rate, max(warmup_steps, 1)),
      optax.constant_schedule(learning_rate),
    ],
    [max(warmup_steps, 1)],
  )


def make_optimizer(
  *,
  name: str,
  schedule: optax.Schedule,
  grad_clip_norm: float,
  b1: float = 0.9,
) -> optax.GradientTransformation:
  """Global-norm clipping followed by Adam or Adamax (Glow uses Adamax).

  ``b1`` is the first-moment decay; DCGAN (Radford et al. 2015) uses 0.5.
  """
  if name not in OPTIMIZERS:
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {name!r}.")
  if not 0.0 <= b1 < 1.0:
    raise ValueError(f"b1 must be in [0, 1); got {b1!r}.")
  base = optax.adam if name == "adam" else optax.adamax
  parts: list[optax.GradientTransformation] = [base(schedule, b1=b1)]
  if grad_clip_norm and grad_clip_norm > 0:
    parts.insert(0, optax.clip_by_global_norm(grad_clip_norm))
  return optax.chain(*parts)


def create_state(
  params: Any,
  optimizer: optax.GradientTransformation,
  *,
  groups: Optional[Sequence[str]] = None,
) -> TrainState:
  """Step 0 state for ``params``.

  ``groups``: names of parameter groups trained in turn, each with its own
  optimiser state (``opt_state[name] = optimizer.init(params[name])``).
  """

  # Separate buffers for every field: the step donates the whole state, and
  # XLA refuses to donate one buffer twice.
  def zero():
    return jnp.zeros((), jnp.int32)

  if groups is None:
    opt_state = optimizer.init(params)
  else:
    missing = sorted(set(groups) - set(params))
    if missing:
      raise ValueError(
        f"groups {missing} are not keys of params ({sorted(params)})."
      )
    opt_state = {name: optimizer.init(params[name]) for name in groups}
  return TrainState(
    step=zero(),
    params=params,
    opt_state=opt_state,
    ema_params=jax.tree.map(jnp.copy, params),
    skipped=zero(),
    consecutive_skipped=zero(),
  )
