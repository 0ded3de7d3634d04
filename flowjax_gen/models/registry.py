"""The one model registry: a ``config.model`` name -> its family and factory.

Experiment configs, checkpoints, the training tasks and the evaluation tool
all build models through ``build_model``; keyword arguments are checked
against the factory's signature, so an unknown name is refused with the
list of the factory's arguments.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from flowjax_gen.models.ae import autoencoder
from flowjax_gen.models.classifier import classifier
from flowjax_gen.models.flows import Flow, glow, nice, realnvp
from flowjax_gen.models.gan import gan
from flowjax_gen.models.tabular_flows import maf, nsf
from flowjax_gen.models.vae import vae


class Entry(NamedTuple):
  """A registered model: its family and its factory
  ``factory(event_shape, **kwargs)``."""

  family: str
  factory: Callable[..., Any]


FAMILIES = ("flow", "autoencoder", "vae", "gan", "classifier")
REGISTRY: dict[str, Entry] = {
  "nice": Entry("flow", nice),
  "realnvp": Entry("flow", realnvp),
  "glow": Entry("flow", glow),
  "nsf": Entry("flow", nsf),
  "maf": Entry("flow", maf),
  "autoencoder": Entry("autoencoder", autoencoder),
  "vae": Entry("vae", vae),
  "gan": Entry("gan", gan),
  "classifier": Entry("classifier", classifier),
}
MODELS = tuple(REGISTRY)
FLOWS = {name: e.factory for name, e in REGISTRY.items() if e.family == "flow"}


def family_of(name: str) -> str:
  """The family of a ``config.model`` name."""
  if name not in REGISTRY:
    raise ValueError(f"config.model must be one of {MODELS}; got {name!r}.")
  return REGISTRY[name].family


def factory_arguments(name: str) -> list[str]:
  """The keyword arguments ``name``'s factory takes (beyond the shape)."""
  family_of(name)
  parameters = inspect.signature(REGISTRY[name].factory).parameters
  return [p for p in parameters if p != "event_shape"]


def factory_defaults(name: str) -> dict[str, Any]:
  """The default of each keyword argument of ``name``'s factory that has
  one."""
  family_of(name)
  parameters = inspect.signature(REGISTRY[name].factory).parameters
  return {
    p.name: p.default
    for p in parameters.values()
    if p.name != "event_shape" and p.default is not inspect.Parameter.empty
  }


def build_model(
  name: str,
  event_shape: Sequence[int],
  kwargs: Mapping[str, Any] | None = None,
) -> Any:
  """``factory(event_shape, **kwargs)`` for the registered ``name``.

  Args:
    name: one of ``MODELS``.
    event_shape: shape of one example.
    kwargs: model keyword arguments; names the factory does not take are
      refused with the list of those it does.
  """
  allowed = factory_arguments(name)
  kwargs = dict(kwargs or {})
  unknown = sorted(set(kwargs) - set(allowed))
  if unknown:
    raise ValueError(
      f"model_kwargs {unknown} are not arguments of {name}; allowed: {allowed}."
    )
  return REGISTRY[name].factory(tuple(event_shape), **kwargs)


def build_flow(
  name: str,
  event_shape: Sequence[int],
  kwargs: Mapping[str, Any] | None = None,
  *,
  evaluation: bool = False,
) -> Flow:
  """``build_model`` restricted to flows.

  Args:
    name: one of ``FLOWS``.
    event_shape: shape of one example.
    kwargs: model keyword overrides; unknown names raise.
    evaluation: build the evaluation variant (batch-norm bijectors on
      running averages); the params are the same.
  """
  if name not in FLOWS:
    raise ValueError(f"model must be one of {tuple(FLOWS)}; got {name!r}.")
  kwargs = dict(kwargs or {})
  if evaluation and "use_running_average" in factory_arguments(name):
    kwargs["use_running_average"] = True
  return build_model(name, event_shape, kwargs)
