"""Argument checks shared by every layer; errors name the argument, what was
given and what is allowed.

This module sits at the bottom of the package (it imports only JAX and the
standard library), so nets, bijectors, models, objectives, training and the
latent tools all validate their static arguments the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.core
import jax.numpy as jnp
import numpy as np


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
  """Raises ``ValueError`` naming ``name`` unless ``value`` is allowed."""
  if value not in allowed:
    raise ValueError(
      f"{name} must be one of {tuple(allowed)!r}; got {value!r}."
    )


def is_int(value: Any) -> bool:
  """``True`` for Python ints that are not bools."""
  return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any) -> None:
  """Raises ``ValueError`` unless ``value`` is an int >= 1."""
  if not is_int(value) or value < 1:
    raise ValueError(f"{name} must be a positive int; got {value!r}.")


def check_non_negative_int(name: str, value: Any) -> None:
  """Raises ``ValueError`` unless ``value`` is an int >= 0."""
  if not is_int(value) or value < 0:
    raise ValueError(f"{name} must be an int >= 0; got {value!r}.")


def check_in_unit_interval(name: str, value: Any) -> None:
  """Raises ``ValueError`` unless ``0 <= value < 1`` (decays, momenta)."""
  if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
    raise ValueError(f"{name} must be in [0, 1); got {value!r}.")


def check_min_rank(name: str, x: Any, min_rank: int, what: str) -> None:
  """Raises ``ValueError`` if ``x`` has fewer than ``min_rank`` dimensions."""
  if jnp.ndim(x) < min_rank:
    raise ValueError(
      f"{name} must have rank >= {min_rank} ({what}); got shape {jnp.shape(x)}."
    )


def check_even(name: str, size: int, what: str) -> None:
  """Raises ``ValueError`` if a size that is split in halves is odd."""
  if size % 2:
    raise ValueError(
      f"{name} must be even to split {what} in halves; got {size}."
    )


def check_data(
  x: Any,
  event_shape: Sequence[int],
  *,
  check_finite: bool = False,
  name: str = "x",
) -> None:
  """Raises ``ValueError`` if ``x`` is not a batch of ``event_shape`` events.

  ``check_finite`` also rejects NaN/inf entries; it needs concrete values, so
  call it on the host batch, before ``jit``.
  """
  shape = tuple(jnp.shape(x))
  expected = tuple(event_shape)
  if len(shape) != len(expected) + 1 or shape[1:] != expected:
    raise ValueError(
      f"{name} must have shape (batch, *{expected}); got {shape}."
    )
  if check_finite:
    if isinstance(x, jax.core.Tracer):
      raise ValueError(
        "check_finite needs concrete values; validate the batch outside jit."
      )
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(np.asarray(x))))
    if bad:
      raise ValueError(f"{name} holds {bad} non-finite values (NaN or inf).")
