"""Peer candidates written with distrax, conditioners in flax.linen.

distrax ships bijectors and distributions but no networks; its examples
build conditioners with a neural-network library and assemble the flow
inside the network's transform, which is what these models do with a
``flax.linen`` module:

* ``tabular_d*``: ``distrax.Transformed`` of a standard
  ``MultivariateNormalDiag`` by a ``distrax.Chain`` of 8
  ``distrax.SplitCoupling`` layers (``swap`` alternating, so the halves
  alternate) with ``distrax.ScalarAffine(shift, log_scale)`` inner bijectors.
  distrax's bijectors map latent -> data, so ``log_prob`` runs the
  couplings' inverses.
* ``nice``: ``distrax.Transformed`` of an ``Independent`` standard
  ``Logistic`` by ``distrax.Inverse`` of the data -> latent chain: 4
  ``distrax.MaskedCoupling`` layers on the odd/even mask (alternating),
  shift-only ``ScalarAffine`` inner bijectors, then a
  ``Block(ScalarAffine(0, log_scale=s))`` for NICE's exp(s) scaling.
* ``nsf_d*``: ``SplineFlow``, ``distrax.SplitCoupling`` layers with
  ``distrax.RationalQuadraticSpline`` (identity boundary slopes) inner
  bijectors, ``swap`` alternating. ``maf_d*``: unsupported (distrax has no
  autoregressive bijector).
* ``glow``: unsupported (distrax has no image or multi-scale flows).

Every conditioner's output layer is zero-initialised, as in distrax's flow
example, so each flow starts at the identity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import distrax
import flax.linen as nn
import jax.numpy as jnp

from bench.candidate import JaxCandidate, Unsupported, flax_candidate
from bench.nets import ZeroInitMLP
from bench.workloads import Workload

_SEED = 0


def candidate(workload: Workload) -> JaxCandidate:
  """distrax's candidate for ``workload``.

  Args:
    workload: one of the benchmark's workloads.

  Returns:
    The candidate.

  Raises:
    Unsupported: distrax cannot express the workload (``glow``).
  """
  if workload.name == "glow":
    raise Unsupported(
      "distrax has no image flows: no convolutional coupling, 1x1 "
      "convolution, actnorm, squeeze or multi-scale factor-out"
    )
  if workload.name == "nice":
    dim = math.prod(workload.batch_shape[1:])
    model = _Nice(
      dim=dim,
      num_couplings=workload.settings["num_couplings"],
      hidden=tuple(workload.settings["hidden_features"]),
    )
    note = (
      "Transformed(Independent(Logistic(0, 1)), Inverse(Chain(4 x "
      "MaskedCoupling(odd/even mask, alternating; ScalarAffine(shift)) + "
      "Block(ScalarAffine(0, log_scale=s))))); flax.linen MLP conditioners "
      "(5x1000 ReLU, zero-init output) read the 392 unmasked features "
      "(strided slice) and return 392 shifts, interleaved back to 784 "
      "for MaskedCoupling (distrax's own example feeds the full masked "
      "vector instead)."
    )
    return _candidate(model, workload, note)
  if workload.name.startswith("maf_d"):
    raise Unsupported("distrax has no autoregressive bijector")
  if workload.name.startswith("nsf_d"):
    model = SplineFlow(
      dim=workload.batch_shape[1],
      num_layers=workload.settings["num_layers"],
      hidden=tuple(workload.settings["hidden_features"]),
      num_bins=workload.settings["num_bins"],
      bound=workload.settings["bound"],
    )
    return _candidate(model, workload, model.note())
  if workload.name.startswith("tabular_d"):
    model = _RealNVP(
      dim=workload.batch_shape[1],
      num_layers=workload.settings["num_layers"],
      hidden=tuple(workload.settings["hidden_features"]),
    )
    note = (
      "Transformed(MultivariateNormalDiag(0, 1), Chain(8 x SplitCoupling("
      "split d/2, swap alternating, ScalarAffine(shift, log_scale)))); "
      "flax.linen MLP conditioners (2x256 ReLU, zero-init output); "
      "log_prob runs the inverse (latent -> data is distrax's forward)."
    )
    return _candidate(model, workload, note)
  raise Unsupported(f"no distrax model for workload {workload.name!r}")


def _candidate(model: nn.Module, workload: Workload, note: str):
  return flax_candidate("distrax", model, workload, note, _SEED)


class _RealNVP(nn.Module):
  """RealNVP on vectors: SplitCoupling + ScalarAffine, normal base."""

  dim: int
  num_layers: int
  hidden: Sequence[int]

  def setup(self):
    half = self.dim // 2
    self.conditioners = [
      ZeroInitMLP(self.hidden, 2 * (self.dim - half))
      for _ in range(self.num_layers)
    ]

  def __call__(self, x):
    def affine(params):
      shift, log_scale = jnp.split(params, 2, axis=-1)
      return distrax.ScalarAffine(shift=shift, log_scale=log_scale)

    layers = [
      distrax.SplitCoupling(
        split_index=self.dim // 2,
        event_ndims=1,
        conditioner=conditioner,
        bijector=affine,
        swap=i % 2 == 1,
      )
      for i, conditioner in enumerate(self.conditioners)
    ]
    base = distrax.MultivariateNormalDiag(
      loc=jnp.zeros(self.dim), scale_diag=jnp.ones(self.dim)
    )
    return distrax.Transformed(base, distrax.Chain(layers)).log_prob(x)


class SplineFlow(nn.Module):
  """Neural spline flow: ``SplitCoupling`` + ``RationalQuadraticSpline``
  (identity boundary slopes, so identity tails), normal base."""

  dim: int
  num_layers: int
  hidden: Sequence[int]
  num_bins: int = 8
  bound: float = 4.0

  def note(self) -> str:
    return (
      f"Transformed(MultivariateNormalDiag(0, 1), Chain({self.num_layers} x "
      f"SplitCoupling(RationalQuadraticSpline({self.num_bins} bins on "
      f"[-{self.bound}, {self.bound}], boundary_slopes='identity'), split "
      "d/2, swap alternating))); flax.linen zero-init MLP conditioners; "
      "log_prob runs distrax's inverse"
    )

  @nn.compact
  def __call__(self, x):
    split, per_entry = self.dim // 2, 3 * self.num_bins + 1
    layers = []
    for i in range(self.num_layers):
      swap = i % 2 == 1
      out = split if swap else self.dim - split
      net = ZeroInitMLP(self.hidden, out * per_entry)

      def conditioner(a, net=net, out=out):
        return net(a).reshape(a.shape[:-1] + (out, per_entry))

      def spline(params):
        return distrax.RationalQuadraticSpline(
          params, -self.bound, self.bound, boundary_slopes="identity"
        )

      layers.append(
        distrax.SplitCoupling(
          split_index=split,
          event_ndims=1,
          conditioner=conditioner,
          bijector=spline,
          swap=swap,
        )
      )
    base = distrax.MultivariateNormalDiag(
      jnp.zeros(self.dim), jnp.ones(self.dim)
    )
    return distrax.Transformed(base, distrax.Chain(layers)).log_prob(x)


class _Nice(nn.Module):
  """NICE: odd/even MaskedCoupling with shifts, exp(s) scaling, logistic."""

  dim: int
  num_couplings: int
  hidden: Sequence[int]

  def setup(self):
    self.nets = [
      ZeroInitMLP(self.hidden, self.dim // 2) for _ in range(self.num_couplings)
    ]
    self.log_scale = self.param("log_scale", nn.initializers.zeros, (self.dim,))

  def _conditioner(self, net, parity):
    """Shifts for the features whose index parity is ``1 - parity``."""

    def conditioner(masked_x):
      # MaskedCoupling passes the whole vector with the transformed features
      # zeroed; the net sees only the conditioning ones (index % 2 ==
      # parity) and its shifts are interleaved back to full length.
      shift = net(masked_x[..., parity::2])
      zeros = jnp.zeros_like(shift)
      pair = (zeros, shift) if parity == 0 else (shift, zeros)
      return jnp.stack(pair, axis=-1).reshape(masked_x.shape)

    return conditioner

  def __call__(self, x):
    index = jnp.arange(self.dim)
    couplings = []
    for i, net in enumerate(self.nets):
      parity = i % 2
      couplings.append(
        distrax.MaskedCoupling(
          mask=index % 2 == parity,
          conditioner=self._conditioner(net, parity),
          bijector=lambda shift: distrax.ScalarAffine(shift=shift),
        )
      )
    scaling = distrax.Block(
      distrax.ScalarAffine(shift=0.0, log_scale=self.log_scale), ndims=1
    )
    # distrax.Chain applies its last bijector first: data -> couplings 0..3
    # -> scaling is the encoder; the flow's forward is its inverse.
    encoder = distrax.Chain([scaling, *reversed(couplings)])
    base = distrax.Independent(
      distrax.Logistic(loc=jnp.zeros(self.dim), scale=jnp.ones(self.dim)),
      reinterpreted_batch_ndims=1,
    )
    return distrax.Transformed(base, distrax.Inverse(encoder)).log_prob(x)
