"""Builds a model from its name and keyword arguments (experiment configs,
checkpoints and the evaluation tool all go through here)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from flowjax_gen.models.flows import Flow, glow, nice, realnvp

FLOWS = {"nice": nice, "realnvp": realnvp, "glow": glow}


def build_flow(
  name: str,
  event_shape: Sequence[int],
  kwargs: Mapping[str, Any] | None = None,
  *,
  evaluation: bool = False,
) -> Flow:
  """``FLOWS[name](event_shape, **kwargs)``.

  Args:
    name: one of ``FLOWS``.
    event_shape: shape of one example.
    kwargs: model keyword overrides; unknown names raise.
    evaluation: build the evaluation variant (batch-norm bijectors on
      running averages); the params are the same.
  """
  if name not in FLOWS:
    raise ValueError(f"model must be one of {tuple(FLOWS)}; got {name!r}.")
  factory = FLOWS[name]
  kwargs = dict(kwargs or {})
  allowed = [
    p for p in inspect.signature(factory).parameters if p != "event_shape"
  ]
  unknown = sorted(set(kwargs) - set(allowed))
  if unknown:
    raise ValueError(
      f"model_kwargs {unknown} are not arguments of {name}; allowed: {allowed}."
    )
  if evaluation and "use_running_average" in allowed:
    kwargs["use_running_average"] = True
  return factory(tuple(event_shape), **kwargs)
