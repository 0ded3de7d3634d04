"""PyTorch peer candidates written with normflows (Stimper et al. 2023).

Every model is assembled from normflows' own building blocks the way its
README and examples do (``nf.flows.GlowBlock`` + ``nf.MultiscaleFlow`` for
Glow, ``nf.flows.AffineCouplingBlock`` + ``nf.flows.Permute`` for RealNVP),
trained by the benchmark's step: ``loss = model.forward_kld(x)`` (that is
``-mean log p(x)`` in nats), Adam with lr 1e-3, float32, eager mode.

torch and normflows are imported inside :func:`candidates`, so a missing
install surfaces as an ``ImportError`` the harness reports as a missing peer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.candidate import TorchCandidate, Unsupported
from bench.workloads import LEARNING_RATE, Workload

_SEED = 0


def candidates(workload: Workload) -> list[TorchCandidate]:
  """The normflows candidates for ``workload``.

  Args:
    workload: one of the benchmark's workloads.

  Returns:
    Two candidates for ``glow`` (default layout and channels_last), one for
    every other workload.

  Raises:
    Unsupported: normflows cannot express the workload.
    ImportError: torch or normflows is not installed.
  """
  import normflows as nf  # noqa: PLC0415 -- optional peer
  import torch  # noqa: PLC0415 -- optional peer

  if workload.name == "glow":
    return _glow(workload, nf, torch)
  if workload.name == "nice":
    return [_nice(workload, nf, torch)]
  if workload.name.startswith("tabular_d"):
    return [_tabular(workload, nf, torch)]
  raise Unsupported(f"no normflows model for workload {workload.name!r}")


def _vector_batch(torch: Any):
  """numpy (batch, d) -> a float32 torch tensor (a copy: nothing the model
  does can reach the caller's array)."""
  return lambda batch: torch.from_numpy(np.array(batch, dtype=np.float32))


def _candidate(
  library: str,
  model: Any,
  torch: Any,
  *,
  to_batch: Any,
  log_prob_fn: Any,
  note: str,
) -> TorchCandidate:
  """Wraps a normflows model in the benchmark's training step.

  Args:
    library: name for the table.
    model: a normflows model with ``forward_kld(x)``.
    torch: the torch module.
    to_batch: numpy batch -> torch tensor.
    log_prob_fn: ``(x) -> (batch,)`` log-likelihoods of ``model``.
    note: how the model is written, for the table.

  Returns:
    The candidate; its Adam state lives in the closure.
  """
  model.train()
  optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)

  def train_step(batch):
    optimizer.zero_grad()
    loss = model.forward_kld(batch)
    loss.backward()
    optimizer.step()
    return loss.item()

  def log_prob(batch):
    with torch.no_grad():
      return log_prob_fn(batch)

  return TorchCandidate(
    library=library,
    to_batch=to_batch,
    train_step=train_step,
    log_prob=log_prob,
    note=note,
  )


def _center(nf: Any, torch: Any) -> Any:
  """Data in [0, 1) -> [-0.5, 0.5), a shift (log-det 0), out of place.

  ``nf.transforms.Shift`` does the same shift in place (``z += shift``), which
  would move the caller's batch by -0.5 on every step; this subclass keeps
  its semantics without touching the input.
  """

  class Center(nf.transforms.Shift):
    """``x -> x - 0.5`` in the data -> latent direction."""

    def forward(self, z):
      log_det = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
      return z - self.shift, log_det

    def inverse(self, z):
      log_det = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
      return z + self.shift, log_det

  return Center(shift=-0.5)


def _glow_model(workload: Workload, nf: Any, torch: Any) -> Any:
  """Unconditional multi-scale Glow, as normflows' Glow example builds it."""
  s = workload.settings
  if s["coupling"] != "affine" or s["permutation"] != "conv1x1_lu":
    raise Unsupported(
      "normflows' GlowBlock is written for affine coupling with a 1x1 conv"
    )
  levels, steps, hidden = (
    s["levels"],
    s["steps_per_level"],
    s["hidden_channels"],
  )
  height, width, channels = workload.batch_shape[1:]
  torch.manual_seed(_SEED)
  q0, merges, flows = [], [], []
  # Level 0 is the coarsest scale (it holds the top latent); normflows lists
  # flows in the latent -> data direction, so each level ends with a Squeeze.
  for i in range(levels):
    level_channels = channels * 2 ** (levels + 1 - i)
    flows.append(
      [
        nf.flows.GlowBlock(
          level_channels,
          hidden,
          scale=True,
          scale_map="sigmoid",
          split_mode="channel",
          init_zeros=True,
          use_lu=True,
        )
        for _ in range(steps)
      ]
      + [nf.flows.Squeeze()]
    )
    if i > 0:
      merges.append(nf.flows.Merge())
      factor = 2 ** (levels - i)
      latent_shape = (channels * factor, height // factor, width // factor)
    else:
      factor = 2**levels
      latent_shape = (
        channels * 2 ** (levels + 1),
        height // factor,
        width // factor,
      )
    q0.append(nf.distributions.GlowBase(latent_shape))
  return nf.MultiscaleFlow(
    q0, flows, merges, transform=_center(nf, torch), class_cond=False
  )


def _glow(workload: Workload, nf: Any, torch: Any) -> list[TorchCandidate]:
  """Glow in the default (NCHW-contiguous) layout and in channels_last."""
  note = (
    "nf.MultiscaleFlow of nf.flows.GlowBlock (affine coupling, sigmoid(h+2) "
    "scale, channel split; ConvNet2d 3x3-ReLU-1x1-ReLU-3x3 zero conv; LU 1x1 "
    "conv; ActNorm) + nf.flows.Squeeze / nf.flows.Merge, one "
    "nf.distributions.GlowBase (learned per-channel mean and log-scale) per "
    "level; input shifted by -0.5 (out-of-place Shift, log-det 0). Differs "
    "from the JAX model: factored-out halves get an unconditional per-channel "
    "prior (Glow's split prior is conditioned on the kept half), the last "
    "coupling conv has no exp(3*logs) output scale, and ActNorm is "
    "initialised from the first batch inside the first call (unbiased std). "
    "The LU 1x1 conv stores L and U as full CxC parameters (only their "
    "strict triangles are used)."
  )

  def nchw(batch):
    # Copy so nothing the model does can reach the caller's numpy array.
    x = torch.from_numpy(np.array(batch, dtype=np.float32))
    return x.permute(0, 3, 1, 2).contiguous()

  def nchw_channels_last(batch):
    return nchw(batch).contiguous(memory_format=torch.channels_last)

  default = _glow_model(workload, nf, torch)
  last = _glow_model(workload, nf, torch).to(memory_format=torch.channels_last)
  return [
    _candidate(
      "normflows",
      default,
      torch,
      to_batch=nchw,
      log_prob_fn=lambda x: default.log_prob(x, None),
      note=note,
    ),
    _candidate(
      "normflows (channels_last)",
      last,
      torch,
      to_batch=nchw_channels_last,
      log_prob_fn=lambda x: last.log_prob(x, None),
      note=note
      + (
        " Model and batches in torch.channels_last; works unmodified: the "
        "coupling ConvNet2d layers run channels_last, while the trunk "
        "(chunk/cat splits, Squeeze's view + contiguous, the functional 1x1 "
        "conv) stays NCHW-contiguous. With one input channel the batch is "
        "already both layouts."
      ),
    ),
  ]


def _standard_logistic(dim: int, nf: Any, torch: Any) -> Any:
  """Standard logistic density over ``dim`` independent features.

  normflows has no logistic base, so this is a small
  ``nf.distributions.BaseDistribution`` subclass with the exact density
  ``log p(z) = -sum(softplus(z) + softplus(-z))``.
  """
  softplus = torch.nn.functional.softplus

  class StandardLogistic(nf.distributions.BaseDistribution):
    """Independent standard logistic features."""

    def __init__(self):
      super().__init__()
      self.shape = (dim,)
      self.register_buffer("_anchor", torch.zeros(()))

    def forward(self, num_samples=1):
      tiny = torch.finfo(self._anchor.dtype).tiny
      u = torch.rand(
        (num_samples, *self.shape),
        dtype=self._anchor.dtype,
        device=self._anchor.device,
      ).clamp(min=tiny)
      z = torch.log(u) - torch.log1p(-u)
      return z, self.log_prob(z)

    def log_prob(self, z):
      return -torch.sum(softplus(z) + softplus(-z), dim=1)

  return StandardLogistic()


def _nice(workload: Workload, nf: Any, torch: Any) -> TorchCandidate:
  """NICE: additive couplings on odd/even features, diagonal scaling."""
  dim = math.prod(workload.batch_shape[1:])
  half = dim // 2
  hidden = list(workload.settings["hidden_features"])
  torch.manual_seed(_SEED)
  # Data -> latent: coupling 0, 1, ..., then the scaling; normflows lists
  # flows latent -> data, so the scaling comes first.
  couplings = [
    nf.flows.AffineCouplingBlock(
      nf.nets.MLP([half, *hidden, half], init_zeros=True),
      scale=False,
      split_mode="checkerboard" if i % 2 == 0 else "checkerboard_inv",
    )
    for i in range(workload.settings["num_couplings"])
  ]
  scaling = nf.flows.AffineConstFlow((dim,), scale=True, shift=False)
  model = nf.NormalizingFlow(
    _standard_logistic(dim, nf, torch), [scaling, *reversed(couplings)]
  )

  return _candidate(
    "normflows",
    model,
    torch,
    to_batch=_vector_batch(torch),
    log_prob_fn=model.log_prob,
    note=(
      "nf.flows.AffineCouplingBlock(scale=False), i.e. additive, with "
      "split_mode 'checkerboard'/'checkerboard_inv' (odd/even features, "
      f"alternating), conditioners nf.nets.MLP([{half}, 5x1000, {half}], "
      "zero-init output); nf.flows.AffineConstFlow(shift=False) as the "
      "diagonal scaling; standard logistic base written as a "
      "BaseDistribution subclass (normflows has none). The checkerboard "
      "split gathers/scatters through index tensors rebuilt on every call."
    ),
  )


def _tabular(workload: Workload, nf: Any, torch: Any) -> TorchCandidate:
  """RealNVP on vectors, as normflows' README writes it."""
  dim = workload.batch_shape[1]
  hidden = list(workload.settings["hidden_features"])
  torch.manual_seed(_SEED)
  flows = []
  for _ in range(workload.settings["num_layers"]):
    param_map = nf.nets.MLP([dim // 2, *hidden, dim], init_zeros=True)
    flows.append(nf.flows.AffineCouplingBlock(param_map))
    flows.append(nf.flows.Permute(dim, mode="swap"))
  base = nf.distributions.DiagGaussian(dim, trainable=False)
  model = nf.NormalizingFlow(base, flows)

  return _candidate(
    "normflows",
    model,
    torch,
    to_batch=_vector_batch(torch),
    log_prob_fn=model.log_prob,
    note=(
      "nf.flows.AffineCouplingBlock (channel halves, exp scale, "
      f"nf.nets.MLP([{dim // 2}, 256, 256, {dim}], init_zeros=True)) "
      "followed by nf.flows.Permute(mode='swap'), 8 times; "
      "nf.distributions.DiagGaussian(trainable=False) base."
    ),
  )
