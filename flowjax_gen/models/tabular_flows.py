"""Flows for tabular vectors: neural spline flows and masked autoregressive
flows, each a ``Flow`` (``make_flow``) with a standard normal base.

``nsf``: spline couplings (Durkan et al. 2019, §3 and the tabular
experiments of §5.1), each conditioned on one half of the features by an
MLP, with a fixed permutation between couplings so every feature is
transformed. ``maf``: masked autoregressive layers (Papamakarios et al.
2017) with MADE conditioners, affine or spline transformers, with a fixed
permutation between layers. Both are conditional when ``context`` is
passed to ``init`` and every call (the conditioners read it).

Unlike ``nice``/``realnvp``/``glow`` there is no pre-processing: feed
standardised features (zero mean, unit variance), so that most of the mass
lies inside the splines' ``[-bound, bound]``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Optional

from flowjax_gen._checks import check_choice, check_positive_int
from flowjax_gen.bijectors import (
  Bijector,
  chain,
  masked_autoregressive,
  reverse,
  shuffle,
  spline_coupling,
)
from flowjax_gen.bijectors.spline import DEFAULT_BOUND
from flowjax_gen.models.flows import Flow, make_flow
from flowjax_gen.nets.conditioners import MLP
from flowjax_gen.nets.made import MADE
from flowjax_gen.typing import compute_dtype_of

PERMUTATIONS = ("reverse", "shuffle")


def _vector_shape(event_shape: Sequence[int], minimum: int) -> tuple[int]:
  shape = tuple(int(d) for d in event_shape)
  if len(shape) != 1 or shape[0] < minimum:
    raise ValueError(
      f"event_shape must be (features,) with at least {minimum} features; "
      f"got {tuple(event_shape)!r}."
    )
  return shape


def _interleave(layers: Sequence[Bijector], permutation: str) -> Bijector:
  """``layers`` with a fixed permutation between consecutive ones."""
  check_choice("permutation", permutation, PERMUTATIONS)
  members = []
  for i, layer in enumerate(layers):
    if i:
      members.append(reverse() if permutation == "reverse" else shuffle(i))
    members.append(layer)
  return chain(*members)


def nsf(
  event_shape: Sequence[int],
  *,
  num_layers: int = 4,
  hidden_features: Sequence[int] = (64, 64),
  num_bins: int = 8,
  bound: float = DEFAULT_BOUND,
  permutation: str = "reverse",
  compute_dtype: Optional[str] = None,
) -> Flow:
  """Neural spline flow with rational-quadratic couplings (RQ-NSF (C)).

  ``num_layers`` spline couplings; each transforms the second half of the
  features with ``num_bins``-bin splines on ``[-bound, bound]`` (identity
  outside), conditioned on the first half through a ReLU MLP; a fixed
  permutation sits between couplings (``"reverse"``, or ``"shuffle"``: a
  seeded random one per position). Every coupling starts as the identity.

  Args:
    event_shape: ``(D,)`` with ``D`` even (the coupling splits it in
      halves), ``D >= 2``.
    num_layers: number of couplings.
    hidden_features: MLP hidden widths.
    num_bins: ``K`` per spline.
    bound: ``B``; standardised data mostly lies inside ``[-4, 4]``.
    permutation: ``"reverse"`` or ``"shuffle"``.
    compute_dtype: what its networks compute in, ``"float32"`` (``None``:
      the data's precision) or ``"bfloat16"`` (``typing.COMPUTE_DTYPES``);
      params, log-determinants, priors and likelihoods stay in the data's
      precision.
  """
  shape = _vector_shape(event_shape, 2)
  check_positive_int("num_layers", num_layers)
  if shape[0] % 2:
    raise ValueError(
      "nsf splits the features in halves: the number of features must be "
      f"even; got event_shape {shape}."
    )
  make_mlp = functools.partial(MLP, hidden_features=tuple(hidden_features))
  couplings = [
    spline_coupling(
      make_mlp,
      mask="half",
      num_bins=num_bins,
      bound=bound,
      compute_dtype=compute_dtype_of(compute_dtype),
    )
    for _ in range(num_layers)
  ]
  return make_flow(_interleave(couplings, permutation), shape)


def maf(
  event_shape: Sequence[int],
  *,
  num_layers: int = 5,
  hidden_features: Sequence[int] = (64, 64),
  transformer: str = "affine",
  scale_fn: str = "exp_tanh",
  num_bins: int = 8,
  bound: float = DEFAULT_BOUND,
  permutation: str = "reverse",
  compute_dtype: Optional[str] = None,
) -> Flow:
  """Masked autoregressive flow (MAF; with splines, RQ-NSF (AR)).

  ``num_layers`` masked autoregressive layers with MADE conditioners and a
  fixed permutation between them. Density evaluation (``log_prob``,
  ``encode``) is one MADE pass per layer; sampling and ``decode`` are ``D``
  sequential passes per layer (see ``bijectors.autoregressive``).

  Args:
    event_shape: ``(D,)``, ``D >= 1``.
    num_layers: number of autoregressive layers.
    hidden_features: MADE hidden widths.
    transformer: ``"affine"`` or ``"spline"``.
    scale_fn: affine scale function (``"exp_tanh"``: each layer's scale in
      (1/e, e)).
    num_bins: ``K`` for splines.
    bound: ``B`` for splines.
    permutation: ``"reverse"`` or ``"shuffle"``.
    compute_dtype: what its networks compute in, ``"float32"`` (``None``:
      the data's precision) or ``"bfloat16"`` (``typing.COMPUTE_DTYPES``);
      params, log-determinants, priors and likelihoods stay in the data's
      precision.
  """
  shape = _vector_shape(event_shape, 1)
  check_positive_int("num_layers", num_layers)
  make_made = functools.partial(MADE, hidden_features=tuple(hidden_features))
  layers = [
    masked_autoregressive(
      make_made,
      transformer=transformer,
      scale_fn=scale_fn,
      num_bins=num_bins,
      bound=bound,
      compute_dtype=compute_dtype_of(compute_dtype),
    )
    for _ in range(num_layers)
  ]
  return make_flow(_interleave(layers, permutation), shape)
