"""Pure-function bijectors; see ``base`` for the protocol and conventions."""

from flowjax_gen.bijectors.activations import (
  exp,
  leaky_relu,
  sinh_arcsinh,
  softplus,
  tanh,
)
from flowjax_gen.bijectors.autoregressive import masked_autoregressive
from flowjax_gen.bijectors.base import Bijector
from flowjax_gen.bijectors.blockwise import concatenate, stack
from flowjax_gen.bijectors.checks import event_shape
from flowjax_gen.bijectors.compose import (
  chain,
  invert,
  invertible_scan,
  multiscale,
  scan,
  scan_steps,
)
from flowjax_gen.bijectors.coupling import (
  additive_coupling,
  affine_coupling,
  logistic_mixture_coupling,
  spline_coupling,
)
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
  permutation,
  reshape,
  reverse,
  shuffle,
  squeeze,
  unsqueeze,
)
from flowjax_gen.bijectors.mixture import logistic_mixture_cdf
from flowjax_gen.bijectors.normalization import batch_norm
from flowjax_gen.bijectors.priors import gaussian_split_prior, learned_prior
from flowjax_gen.bijectors.spline import rational_quadratic_spline

__all__ = [
  "Bijector",
  "actnorm",
  "additive_coupling",
  "affine_coupling",
  "batch_norm",
  "chain",
  "concatenate",
  "conv1x1",
  "conv1x1_lu",
  "event_shape",
  "exp",
  "gaussian_split_prior",
  "invert",
  "invertible_scan",
  "leaky_relu",
  "learned_prior",
  "logit",
  "masked_autoregressive",
  "multiscale",
  "permutation",
  "logistic_mixture_cdf",
  "logistic_mixture_coupling",
  "rational_quadratic_spline",
  "reshape",
  "reverse",
  "scalar_affine",
  "scale",
  "scan",
  "scan_steps",
  "shift",
  "shuffle",
  "sigmoid",
  "sinh_arcsinh",
  "softplus",
  "spline_coupling",
  "squeeze",
  "stack",
  "tanh",
  "unsqueeze",
]
