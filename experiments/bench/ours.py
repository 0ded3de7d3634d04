"""The workloads written with flowjax_gen, as its users write them.

Each model is the library's own factory (``models.glow``, ``models.nice``)
or a ``chain`` of its bijectors (the tabular RealNVP), trained by the step
every candidate shares (``workloads`` module docstring).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from bench.candidate import JaxCandidate
from bench.workloads import LEARNING_RATE, Workload
from flowjax_gen import distributions
from flowjax_gen.bijectors import affine_coupling, chain
from flowjax_gen.models import flows
from flowjax_gen.nets.conditioners import MLP


def _candidate(flow, workload: Workload, note: str, seed: int = 0):
  optimizer = optax.adam(LEARNING_RATE)
  example = jnp.asarray(workload.batch())

  def init():
    params = flow.init(jax.random.key(seed), example)
    return params, optimizer.init(params)

  def loss_fn(params, batch):
    return -jnp.mean(flow.log_prob(params, batch))

  def train_step(state, batch):
    params, opt_state = state
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  def log_prob(state, batch):
    return flow.log_prob(state[0], batch)

  return JaxCandidate("flowjax_gen", init, train_step, log_prob, note)


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
