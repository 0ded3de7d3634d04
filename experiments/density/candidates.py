"""The density models the density-estimation experiment compares.

Each candidate is ``(params, log_prob)`` with ``log_prob(params, x) ->
(batch,)``, so one training loop serves every library. Shared settings
(``Settings``): the same layer counts, MLP widths, spline bins and interval
for everyone; what differs between libraries is written in each ``note``.

* ``flowjax_gen_nsf``, ``flowjax_gen_maf``: ``flowjax_gen.nsf`` / ``maf``.
* ``flowjax_nsf``: ``flowjax.flows.coupling_flow`` with a
  ``RationalQuadraticSpline`` transformer; ``flowjax_maf``:
  ``flowjax.flows.masked_autoregressive_flow`` with ``Affine``.
* ``distrax_nsf``: ``distrax.SplitCoupling`` layers with
  ``RationalQuadraticSpline`` (identity boundary slopes) and flax MLP
  conditioners. distrax has no autoregressive bijector, so no MAF.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from bench.nets import ZeroInitMLP

import flowjax_gen

MODELS = (
  "flowjax_gen_nsf",
  "flowjax_gen_maf",
  "flowjax_nsf",
  "flowjax_maf",
  "distrax_nsf",
)


class Settings(NamedTuple):
  """Architecture shared by every library."""

  nsf_layers: int = 4
  maf_layers: int = 5
  hidden: tuple[int, ...] = (64, 64)
  num_bins: int = 8
  bound: float = 4.0


class Candidate(NamedTuple):
  params: Any
  log_prob: Callable[[Any, jax.Array], jax.Array]
  note: str


class Unsupported(Exception):
  """The library cannot express the model (the reason goes in the report)."""


def make(name: str, dim: int, x_init: jax.Array, s: Settings) -> Candidate:
  """Builds candidate ``name`` for ``dim``-d data (seed 0)."""
  key = jax.random.key(0)
  if name.startswith("flowjax_gen_"):
    return _ours(name, dim, x_init, s, key)
  if name.startswith("flowjax_"):
    return _flowjax(name, dim, s, key)
  if name == "distrax_nsf":
    return _distrax_nsf(dim, x_init, s, key)
  raise Unsupported(f"unknown model {name!r}")


def _ours(name, dim, x_init, s, key) -> Candidate:
  if name.endswith("nsf"):
    flow = flowjax_gen.nsf(
      (dim,),
      num_layers=s.nsf_layers,
      hidden_features=s.hidden,
      num_bins=s.num_bins,
      bound=s.bound,
    )
    note = (
      f"nsf: {s.nsf_layers} spline couplings (first half conditions the "
      "second), reverse permutation between them, zero-init MLP output"
    )
  else:
    flow = flowjax_gen.maf(
      (dim,), num_layers=s.maf_layers, hidden_features=s.hidden
    )
    note = (
      f"maf: {s.maf_layers} MADE layers, affine exp(tanh) scale, reverse "
      "permutation between them, zero-init output"
    )
  return Candidate(flow.init(key, x_init), flow.log_prob, note)


def _flowjax(name, dim, s, key) -> Candidate:
  import equinox as eqx  # noqa: PLC0415
  import paramax  # noqa: PLC0415
  from flowjax.bijections import (  # noqa: PLC0415
    Affine,
    RationalQuadraticSpline,
  )
  from flowjax.distributions import StandardNormal  # noqa: PLC0415
  from flowjax.flows import (  # noqa: PLC0415
    coupling_flow,
    masked_autoregressive_flow,
  )

  if len(set(s.hidden)) != 1:
    raise Unsupported("flowjax's MLPs have one width for every layer")
  common = dict(
    base_dist=StandardNormal((dim,)),
    nn_width=s.hidden[0],
    nn_depth=len(s.hidden),
    nn_activation=jax.nn.relu,
  )
  if name.endswith("nsf"):
    # flowjax counts inner knots: K bins are K - 1 knots.
    spline = RationalQuadraticSpline(knots=s.num_bins - 1, interval=s.bound)
    dist = coupling_flow(
      key, transformer=spline, flow_layers=s.nsf_layers, **common
    )
    note = (
      f"coupling_flow(RationalQuadraticSpline(knots={s.num_bins - 1}, "
      f"interval={s.bound}), flow_layers={s.nsf_layers}); random Permute "
      "between layers; eqx MLP default init"
    )
  else:
    dist = masked_autoregressive_flow(
      key, transformer=Affine(), flow_layers=s.maf_layers, **common
    )
    note = (
      f"masked_autoregressive_flow(Affine(), flow_layers={s.maf_layers}); "
      "softplus scale; random Permute between layers; default init"
    )
  params, static = eqx.partition(
    dist,
    eqx.is_inexact_array,
    is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable),
  )

  def log_prob(params, x):
    return paramax.unwrap(eqx.combine(params, static)).log_prob(x)

  return Candidate(params, log_prob, note)


def _distrax_nsf(dim, x_init, s, key) -> Candidate:
  import distrax  # noqa: PLC0415
  import flax.linen as nn  # noqa: PLC0415

  split = dim // 2
  bins = s.num_bins

  class SplineFlow(nn.Module):
    @nn.compact
    def __call__(self, x):
      layers = []
      for i in range(s.nsf_layers):
        swap = i % 2 == 1
        out = dim - split if not swap else split
        net = ZeroInitMLP(s.hidden, out * (3 * bins + 1))

        def conditioner(a, net=net, out=out):
          return net(a).reshape(a.shape[:-1] + (out, 3 * bins + 1))

        layers.append(
          distrax.SplitCoupling(
            split_index=split,
            event_ndims=1,
            conditioner=conditioner,
            bijector=lambda p: distrax.RationalQuadraticSpline(
              p, -s.bound, s.bound, boundary_slopes="identity"
            ),
            swap=swap,
          )
        )
      base = distrax.MultivariateNormalDiag(jnp.zeros(dim), jnp.ones(dim))
      return distrax.Transformed(base, distrax.Chain(layers)).log_prob(x)

  model = SplineFlow()
  note = (
    f"Transformed(MVN, Chain({s.nsf_layers} x SplitCoupling("
    "RationalQuadraticSpline, boundary_slopes='identity', swap "
    "alternating))); flax zero-init MLPs; log_prob runs distrax's inverse"
  )
  return Candidate(model.init(key, x_init), model.apply, note)
