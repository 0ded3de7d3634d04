"""Pure-function bijectors; see ``base`` for the protocol and conventions."""

from flowjax_gen.bijectors.base import Bijector
from flowjax_gen.bijectors.compose import (
  chain,
  invert,
  invertible_scan,
  multiscale,
  scan,
  scan_steps,
)
from flowjax_gen.bijectors.coupling import additive_coupling, affine_coupling
from flowjax_gen.bijectors.elementwise import (
  logit,
  scalar_affine,
  scale,
  shift,
  sigmoid,
)
from flowjax_gen.bijectors.glow import (
  actnorm,
  conv1x1,
  conv1x1_lu,
  reshape,
  reverse,
  shuffle,
  squeeze,
  unsqueeze,
)
from flowjax_gen.bijectors.normalization import batch_norm
from flowjax_gen.bijectors.priors import gaussian_split_prior, learned_prior

__all__ = [
  "Bijector",
  "actnorm",
  "additive_coupling",
  "affine_coupling",
  "batch_norm",
  "chain",
  "conv1x1",
  "conv1x1_lu",
  "gaussian_split_prior",
  "invert",
  "invertible_scan",
  "learned_prior",
  "logit",
  "multiscale",
  "reshape",
  "reverse",
  "scalar_affine",
  "scale",
  "scan",
  "scan_steps",
  "shift",
  "shuffle",
  "sigmoid",
  "squeeze",
  "unsqueeze",
]
