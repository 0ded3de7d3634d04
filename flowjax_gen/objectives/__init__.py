"""Objectives, one signature for every family:
``objective(params, batch, key) -> (loss, metrics)``.

``batch`` is the host batch as the data pipeline yields it (``"image"``: 8-bit
pixels, NHWC; ``"label"``: ints); every objective does its own
pre-processing (dequantisation, binarisation, scaling) so that the same batch
feeds every model family.
"""

from flowjax_gen.objectives.autoencoder import (
  CORRUPTIONS,
  corrupt,
  psnr,
  reconstruction_objective,
  reconstruction_per_example,
)
from flowjax_gen.objectives.classification import (
  classification_objective,
  classification_per_example,
)
from flowjax_gen.objectives.dequantization import (
  DEQUANTIZATIONS,
  flow_importance_weighted_bits_per_dim,
  flow_variational_bits_per_dim,
  flow_variational_nll,
  variational_inputs,
)
from flowjax_gen.objectives.gan import (
  LOSSES,
  discriminator_loss,
  gan_objectives,
  gan_per_example,
  generator_loss,
  gradient_penalty,
  r1_penalty,
)
from flowjax_gen.objectives.likelihood import (
  bits_per_dim,
  flow_bits_per_dim,
  flow_nll,
  nll_nats,
  num_dims,
)
from flowjax_gen.objectives.vae import (
  elbo,
  gaussian_kl,
  iwae_bound,
  vae_objective,
  vae_per_example,
)

# Pre-processing and the Objective type are re-exported here, where they
# were first published; they live in flowjax_gen.preprocess and .typing.
from flowjax_gen.preprocess import (
  check_n_bits,
  dequantize,
  flow_inputs,
  reduce_bits,
)
from flowjax_gen.typing import Objective

__all__ = [
  "CORRUPTIONS",
  "DEQUANTIZATIONS",
  "LOSSES",
  "Objective",
  "classification_objective",
  "classification_per_example",
  "corrupt",
  "discriminator_loss",
  "elbo",
  "gan_objectives",
  "gan_per_example",
  "gaussian_kl",
  "generator_loss",
  "gradient_penalty",
  "iwae_bound",
  "psnr",
  "r1_penalty",
  "reconstruction_objective",
  "reconstruction_per_example",
  "vae_objective",
  "vae_per_example",
  "bits_per_dim",
  "check_n_bits",
  "dequantize",
  "flow_bits_per_dim",
  "flow_importance_weighted_bits_per_dim",
  "flow_inputs",
  "flow_nll",
  "flow_variational_bits_per_dim",
  "flow_variational_nll",
  "nll_nats",
  "num_dims",
  "reduce_bits",
  "variational_inputs",
]
