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
from bench.candidate import Unsupported  # noqa: F401 (raised by the peers)

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


def make(name: str, dim: int, x_init: jax.Array, s: Settings) -> Candidate:
  """Builds candidate ``name`` for ``dim``-d data (seed 0)."""
  key = jax.random.key(0)
  if name.startswith("flowjax_gen_"):
    return _ours(name, dim, x_init, s, key)
  if name.startswith("flowjax_"):
    return _flowjax(name, dim, s)
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


def _flowjax(name, dim, s) -> Candidate:
  from bench.peer_flowjax import (  # noqa: PLC0415 -- optional peer
    spline_or_autoregressive,
    trainable,
  )

  nsf = name.endswith("nsf")
  dist, note = spline_or_autoregressive(
    "nsf" if nsf else "maf",
    dim,
    num_layers=s.nsf_layers if nsf else s.maf_layers,
    hidden_features=s.hidden,
    num_bins=s.num_bins,
    bound=s.bound,
  )
  return Candidate(*trainable(dist), note)


def _distrax_nsf(dim, x_init, s, key) -> Candidate:
  from bench.peer_distrax import SplineFlow  # noqa: PLC0415 -- optional peer

  model = SplineFlow(
    dim=dim,
    num_layers=s.nsf_layers,
    hidden=s.hidden,
    num_bins=s.num_bins,
    bound=s.bound,
  )
  return Candidate(model.init(key, x_init), model.apply, model.note())
