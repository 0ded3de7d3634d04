"""The workloads written with flowjax_gen, as its users write them.

Each model is the library's own factory (``models.glow``, ``models.nice``,
``models.nsf``, ``models.maf``) or a ``chain`` of its bijectors (the tabular
RealNVP), trained by the step
every candidate shares (``workloads`` module docstring).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from bench.candidate import JaxCandidate, adam_candidate
from bench.workloads import Workload
from flowjax_gen import distributions
from flowjax_gen.bijectors import affine_coupling, chain
from flowjax_gen.models import flows
from flowjax_gen.models import tabular_flows as flows_tabular
from flowjax_gen.nets.conditioners import MLP


def _candidate(flow, workload: Workload, note: str, seed: int = 0):
  example = jnp.asarray(workload.batch())
  return adam_candidate(
    "flowjax_gen",
    lambda: flow.init(jax.random.key(seed), example),
    flow.log_prob,
    note,
  )


def glow_flow(workload: Workload, **overrides) -> flows.Flow:
  """The Glow of ``workload`` (``overrides`` e.g. ``steps_per_level=32``)."""
  settings = {**workload.settings, **overrides}
  return flows.glow(workload.batch_shape[1:], **settings)


def candidate(workload: Workload, **overrides) -> JaxCandidate:
  """flowjax_gen's candidate for ``workload``."""
  if workload.name == "glow":
    flow = glow_flow(workload, **overrides)
    return _candidate(
      flow,
      workload,
      "models.glow: scan over K steps, learned split and top priors",
    )
  if workload.name == "nice":
    settings = {**workload.settings, **overrides}
    return _candidate(
      flows.nice(workload.batch_shape[1:], **settings),
      workload,
      "models.nice: odd/even additive couplings, scaling, logistic prior",
    )
  dim = workload.batch_shape[1]
  if workload.name.startswith("nsf_d"):
    settings = {**workload.settings, **overrides}
    return _candidate(
      flows_tabular.nsf((dim,), **settings),
      workload,
      "models.nsf: spline_coupling(MLP) layers, reverse between",
    )
  if workload.name.startswith("maf_d"):
    settings = {**workload.settings, **overrides}
    return _candidate(
      flows_tabular.maf((dim,), **settings),
      workload,
      "models.maf: masked_autoregressive(MADE) layers (affine, exp(tanh) "
      "scale), reverse between",
    )
  make_mlp = functools.partial(
    MLP, hidden_features=tuple(workload.settings["hidden_features"])
  )
  layers = [
    affine_coupling(make_mlp, mask="half", parity=i % 2, scale_fn="exp_tanh")
    for i in range(workload.settings["num_layers"])
  ]
  flow = flows.make_flow(
    chain(*layers), (dim,), base=distributions.standard_normal()
  )
  return _candidate(
    flow, workload, "chain of affine_coupling(MLP), halves alternating"
  )
