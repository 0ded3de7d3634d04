"""The benchmark's workloads: one model and one batch shape each.

Every candidate (flowjax_gen, a plain-JAX reference, or a peer library)
implements the same model for a workload: the same layers, widths and base
density, trained by the same step::

    loss = -mean_i log p(x_i)          (nats; one batch)
    params <- Adam(lr = 1e-3)(params, grad loss)

in float32. Only the way a library expresses that model may differ.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Workload:
  """A model, its batch shape and the data it trains on.

  Attributes:
    name: short key used on the command line and in the JSON.
    description: the model, in words, for the table.
    batch_shape: shape of one training batch (examples first).
    data: ``"image"`` (dequantised pixels in [0, 1)) or ``"tabular"``
      (standard normal features).
    settings: the model's hyper-parameters, shared by every candidate.
  """

  name: str
  description: str
  batch_shape: tuple[int, ...]
  data: str
  settings: dict

  def batch(self, seed: int = 0) -> np.ndarray:
    """A float32 batch drawn from ``seed`` (same for every candidate)."""
    rng = np.random.default_rng(seed)
    if self.data == "image":
      return rng.uniform(0.0, 1.0, self.batch_shape).astype(np.float32)
    return rng.standard_normal(self.batch_shape).astype(np.float32)


LEARNING_RATE = 1e-3

GLOW = Workload(
  name="glow",
  description=(
    "Glow 32x32x1, batch 64, L=3, K=8, width 128, affine coupling, "
    "actnorm, LU 1x1 conv"
  ),
  batch_shape=(64, 32, 32, 1),
  data="image",
  settings=dict(
    levels=3,
    steps_per_level=8,
    hidden_channels=128,
    coupling="affine",
    permutation="conv1x1_lu",
  ),
)

NICE = Workload(
  name="nice",
  description=(
    "NICE 784-d, batch 256, 4 additive couplings of 5x1000 MLPs, "
    "diagonal scaling, logistic prior"
  ),
  batch_shape=(256, 784),
  data="image",
  settings=dict(num_couplings=4, hidden_features=(1000,) * 5),
)


def tabular(dim: int) -> Workload:
  """RealNVP MLP coupling flow on ``dim`` features (8 layers, 2x256)."""
  return Workload(
    name=f"tabular_d{dim}",
    description=(
      f"RealNVP MLP coupling, d={dim}, batch 512, 8 affine couplings "
      "(alternating halves), 2x256 ReLU MLPs, normal base"
    ),
    batch_shape=(512, dim),
    data="tabular",
    settings=dict(num_layers=8, hidden_features=(256, 256)),
  )


def spline_coupling(dim: int) -> Workload:
  """Neural spline flow on ``dim`` features (8 couplings, 2x256, 8 bins)."""
  return Workload(
    name=f"nsf_d{dim}",
    description=(
      f"NSF spline coupling, d={dim}, batch 512, 8 rational-quadratic "
      "couplings (8 bins on [-4, 4], first half conditions the second, "
      "reversal between), 2x256 ReLU MLPs, normal base"
    ),
    batch_shape=(512, dim),
    data="tabular",
    settings=dict(
      num_layers=8, hidden_features=(256, 256), num_bins=8, bound=4.0
    ),
  )


def masked_autoregressive(dim: int) -> Workload:
  """MAF on ``dim`` features (8 affine MADE layers, 2x256)."""
  return Workload(
    name=f"maf_d{dim}",
    description=(
      f"MAF, d={dim}, batch 512, 8 affine masked autoregressive layers "
      "(MADE 2x256 ReLU, reversal between), normal base; training and "
      "log_prob run the one-pass (density) direction"
    ),
    batch_shape=(512, dim),
    data="tabular",
    settings=dict(num_layers=8, hidden_features=(256, 256)),
  )


WORKLOADS = {
  w.name: w
  for w in (
    GLOW,
    NICE,
    tabular(8),
    tabular(64),
    spline_coupling(8),
    spline_coupling(64),
    masked_autoregressive(8),
    masked_autoregressive(64),
  )
}
