"""The one model registry: a ``config.model`` name -> its family and factory.

Experiment configs, checkpoints, the training tasks and the evaluation tool
all build models through ``build_model``; keyword arguments are checked
against the factory's signature, so an unknown name is refused with the
list of the factory's arguments.

Besides the registered names, ``config.model`` may name a flow factory of
your own, ``"package.module:factory"``: any importable callable
``factory(event_shape, **model_kwargs)`` that returns a ``Flow``
(``models.make_flow``). It trains, resumes and evaluates like the built-in
flows; the processes that train and evaluate it must be able to import it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from flowjax_gen.models.ae import autoencoder
from flowjax_gen.models.classifier import classifier
from flowjax_gen.models.flowpp import flowpp
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
  "flowpp": Entry("flow", flowpp),
  "nsf": Entry("flow", nsf),
  "maf": Entry("flow", maf),
  "autoencoder": Entry("autoencoder", autoencoder),
  "vae": Entry("vae", vae),
  "gan": Entry("gan", gan),
  "classifier": Entry("classifier", classifier),
}
MODELS = tuple(REGISTRY)
FLOWS = {name: e.factory for name, e in REGISTRY.items() if e.family == "flow"}


def _entry(name: str) -> Entry:
  """The registered entry of ``name``, or the flow factory that a name
  ``"package.module:factory"`` imports."""
  if name in REGISTRY:
    return REGISTRY[name]
  if isinstance(name, str) and ":" in name:
    return _imported_flow(name)
  raise ValueError(
    f"config.model must be one of {MODELS}, or a flow factory of your own "
    f"as 'package.module:factory'; got {name!r}."
  )


@functools.cache
def _imported_flow(name: str) -> Entry:
  """``"package.module:factory"``: a factory ``factory(event_shape,
  **kwargs) -> Flow`` from an importable module (cached: the module is
  imported once)."""
  module_name, _, attribute = name.partition(":")
  try:
    module = importlib.import_module(module_name)
  except ImportError as error:
    raise ValueError(
      f"config.model = {name!r}: cannot import {module_name!r} ({error}); "
      "put its package on PYTHONPATH (or install it)."
    ) from error
  factory = getattr(module, attribute, None)
  if not callable(factory):
    raise ValueError(
      f"config.model = {name!r}: {module_name} has no callable {attribute!r}."
    )
  parameters = list(inspect.signature(factory).parameters.values())
  if not parameters or parameters[0].kind not in (
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
  ):
    raise ValueError(
      f"config.model = {name!r}: a flow factory takes the event shape as "
      "its first argument, factory(event_shape, **model_kwargs) -> Flow."
    )
  return Entry("flow", factory)


def family_of(name: str) -> str:
  """The family of a ``config.model`` name."""
  return _entry(name).family


def factory_arguments(name: str) -> list[str]:
  """The keyword arguments ``name``'s factory takes (beyond the shape)."""
  parameters = list(inspect.signature(_entry(name).factory).parameters)
  return parameters[1:]


def factory_defaults(name: str) -> dict[str, Any]:
  """The default of each keyword argument of ``name``'s factory that has
  one."""
  parameters = list(
    inspect.signature(_entry(name).factory).parameters.values()
  )[1:]
  return {
    p.name: p.default
    for p in parameters
    if p.default is not inspect.Parameter.empty
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
  model = _entry(name).factory(tuple(event_shape), **kwargs)
  if name not in REGISTRY and not isinstance(model, Flow):
    raise ValueError(
      f"config.model = {name!r} returned a {type(model).__name__}; a "
      "factory of your own must return a Flow (models.make_flow)."
    )
  return model


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
  if family_of(name) != "flow":
    raise ValueError(
      f"model must be one of {tuple(FLOWS)} or 'package.module:factory'; "
      f"got {name!r}."
    )
  kwargs = dict(kwargs or {})
  if evaluation and "use_running_average" in factory_arguments(name):
    kwargs["use_running_average"] = True
  return build_model(name, event_shape, kwargs)
