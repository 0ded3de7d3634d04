"""Peer candidates written with flowjax (equinox-based normalizing flows).

* ``tabular_d*``: ``flowjax.flows.coupling_flow`` with an ``Affine``
  transformer (8 layers, conditioners ``eqx.nn.MLP`` of width 256 and depth
  2) on a ``StandardNormal`` base, as flowjax's documentation writes a RealNVP.
* ``nice``: a ``Transformed`` logistic base under an inverted ``Chain`` of a
  fixed ``Permute`` (even features first), a ``Scan`` over 4 additive
  ``Coupling`` layers (``Loc`` transformer, 5x1000 ReLU MLP conditioner)
  each followed by a ``Flip`` (so the halves alternate), and a ``Scale`` with
  an ``exp`` parameterisation (NICE's diagonal scaling).
* ``nsf_d*``: ``coupling_flow`` with a ``RationalQuadraticSpline``
  transformer (``K - 1`` inner knots for ``K`` bins); ``maf_d*``:
  ``masked_autoregressive_flow`` with ``Affine``.
* ``glow``: unsupported (flowjax has no image or multi-scale flows).

Training follows ``flowjax.train.fit_to_data``: the model is split with
``eqx.partition`` (``paramax.NonTrainable`` leaves and integer permutations
go to the static part, out of the gradient), the loss recombines the parts
and calls ``paramax.unwrap`` before ``log_prob``.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import paramax
from flowjax.bijections import (
  Affine,
  Chain,
  Coupling,
  Flip,
  Invert,
  Loc,
  Permute,
  RationalQuadraticSpline,
  Scale,
  Scan,
)
from flowjax.distributions import Logistic, StandardNormal, Transformed
from flowjax.flows import coupling_flow, masked_autoregressive_flow

from bench.candidate import JaxCandidate, Unsupported, adam_candidate
from bench.workloads import Workload

_SEED = 0


def candidate(workload: Workload) -> JaxCandidate:
  """flowjax's candidate for ``workload``.

  Args:
    workload: one of the benchmark's workloads.

  Returns:
    The candidate.

  Raises:
    Unsupported: flowjax cannot express the workload (``glow``).
  """
  if workload.name == "glow":
    raise Unsupported(
      "flowjax has no image flows: no convolutional coupling, 1x1 "
      "convolution, actnorm, squeeze or multi-scale factor-out"
    )
  if workload.name == "nice":
    return _nice(workload)
  if workload.name.startswith("tabular_d"):
    return _tabular(workload)
  if workload.name.startswith(("nsf_d", "maf_d")):
    return _spline_or_autoregressive(workload)
  raise Unsupported(f"no flowjax model for workload {workload.name!r}")


def trainable(dist):
  """``(params, log_prob_fn)`` of a flowjax distribution (an equinox module).

  ``paramax.NonTrainable`` leaves and integer permutations go to the static
  part, out of the gradient; ``log_prob_fn(params, batch)`` recombines the
  parts and unwraps the parameterisations.
  """
  params, static = eqx.partition(
    dist,
    eqx.is_inexact_array,
    is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable),
  )

  def log_prob_fn(params, batch):
    model = paramax.unwrap(eqx.combine(params, static))
    return model.log_prob(batch)

  return params, log_prob_fn


def _candidate(dist, note: str) -> JaxCandidate:
  """Wraps a flowjax distribution in the benchmark's training step.

  Args:
    dist: a flowjax distribution (an equinox module).
    note: how the model is written, for the table.

  Returns:
    The candidate; its state is ``(params, opt_state)``.
  """
  params, log_prob_fn = trainable(dist)
  return adam_candidate("flowjax", lambda: params, log_prob_fn, note)


def _tabular(workload: Workload) -> JaxCandidate:
  """RealNVP through ``flowjax.flows.coupling_flow``."""
  dim = workload.batch_shape[1]
  hidden = tuple(workload.settings["hidden_features"])
  if len(set(hidden)) != 1:
    raise Unsupported("coupling_flow's MLPs have one width for every layer")
  dist = coupling_flow(
    jax.random.key(_SEED),
    base_dist=StandardNormal((dim,)),
    transformer=Affine(),
    flow_layers=workload.settings["num_layers"],
    nn_width=hidden[0],
    nn_depth=len(hidden),
    nn_activation=jax.nn.relu,
  )
  return _candidate(
    dist,
    note=(
      f"flows.coupling_flow(transformer=Affine(), flow_layers=8, "
      f"nn_width={hidden[0]}, nn_depth={len(hidden)}), StandardNormal base; "
      "each layer a Coupling (first d/2 features condition the rest) and a "
      "fixed random Permute (not a reversal), run as a lax.scan "
      "(Scan over filter_vmap'd layers); default invert=True, so log_prob "
      "runs the couplings' forward direction. Affine's scale is "
      "softplus-parameterised (not exp(log-scale)); eqx.nn.MLP default init "
      "(no zero-init output layer)."
    ),
  )


def spline_or_autoregressive(
  kind: str,
  dim: int,
  *,
  num_layers: int,
  hidden_features,
  num_bins: int = 8,
  bound: float = 4.0,
  seed: int = _SEED,
):
  """``(dist, note)``: ``coupling_flow`` with splines (``kind="nsf"``) or
  ``masked_autoregressive_flow`` with ``Affine`` (``kind="maf"``).

  Raises:
    Unsupported: hidden widths differ (flowjax's MLPs have one width).
  """
  hidden = tuple(hidden_features)
  if len(set(hidden)) != 1:
    raise Unsupported("flowjax's MLPs have one width for every layer")
  common = dict(
    base_dist=StandardNormal((dim,)),
    flow_layers=num_layers,
    nn_width=hidden[0],
    nn_depth=len(hidden),
    nn_activation=jax.nn.relu,
  )
  if kind == "nsf":
    # flowjax counts inner knots: K bins are K - 1 knots.
    spline = RationalQuadraticSpline(knots=num_bins - 1, interval=bound)
    dist = coupling_flow(jax.random.key(seed), transformer=spline, **common)
    note = (
      f"flows.coupling_flow(RationalQuadraticSpline(knots={num_bins - 1}, "
      f"interval={bound}), flow_layers={num_layers}); fixed random Permute "
      "between layers; eqx MLP default init"
    )
  else:
    dist = masked_autoregressive_flow(
      jax.random.key(seed), transformer=Affine(), **common
    )
    note = (
      f"flows.masked_autoregressive_flow(Affine(), flow_layers={num_layers})"
      "; softplus scale; fixed random Permute between layers; default "
      "invert=True (log_prob is the one-pass direction); default init"
    )
  return dist, note


def _spline_or_autoregressive(workload: Workload) -> JaxCandidate:
  kind = workload.name.split("_d")[0]
  return _candidate(
    *spline_or_autoregressive(
      kind, workload.batch_shape[1], **workload.settings
    )
  )


def _nice(workload: Workload) -> JaxCandidate:
  """NICE from flowjax bijections: ``Coupling(Loc)`` layers and ``Scale``."""
  dim = math.prod(workload.batch_shape[1:])
  half = dim // 2
  hidden = tuple(workload.settings["hidden_features"])
  if len(set(hidden)) != 1:
    raise Unsupported("flowjax's Coupling MLP has one width for every layer")

  def make_layer(key):
    coupling = Coupling(
      key,
      transformer=Loc(0.0),
      untransformed_dim=half,
      dim=dim,
      nn_width=hidden[0],
      nn_depth=len(hidden),
      nn_activation=jax.nn.relu,
    )
    return Chain([coupling, Flip((dim,))])

  keys = jax.random.split(
    jax.random.key(_SEED), workload.settings["num_couplings"]
  )
  couplings = Scan(eqx.filter_vmap(make_layer)(keys))
  even_first = jnp.concatenate([jnp.arange(0, dim, 2), jnp.arange(1, dim, 2)])
  scaling = eqx.tree_at(
    lambda s: s.scale,
    Scale(jnp.ones(dim)),
    paramax.Parameterize(jnp.exp, jnp.zeros(dim)),
  )
  # Data -> latent: odd/even split, couplings, exp(s) scaling; the flow's
  # bijection maps latent -> data, hence the Invert (as coupling_flow's
  # default invert=True does).
  encoder = Chain([Permute(even_first), couplings, scaling])
  base = paramax.non_trainable(Logistic(jnp.zeros(dim)))
  dist = Transformed(base, Invert(encoder))
  return _candidate(
    dist,
    note=(
      "Transformed(non_trainable(Logistic), Invert(Chain([Permute(even "
      "features first), Scan(4 x Chain([Coupling(Loc, nn_width=1000, "
      "nn_depth=5), Flip])), Scale]))): odd/even halves alternating via the "
      "Flip; Scale re-parameterised to exp(s) with eqx.tree_at; eqx.nn.MLP "
      "default init; the couplings run as a lax.scan."
    ),
  )
