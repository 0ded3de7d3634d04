"""Model factories: flows (images; ``nsf`` and ``maf`` for tabular
vectors), auto-encoders, VAEs, GANs and the classifier behind the
sample-quality metric."""

from flowjax_gen._checks import check_data  # first published here
from flowjax_gen.models.ae import AutoEncoder, autoencoder
from flowjax_gen.models.classifier import Classifier, classifier
from flowjax_gen.models.dequantization import (
  Dequantizer,
  nested_flow,
  variational_dequantizer,
)
from flowjax_gen.models.flowpp import flowpp
from flowjax_gen.models.flows import (
  Flow,
  glow,
  glow_step,
  make_flow,
  nice,
  realnvp,
)
from flowjax_gen.models.gan import GAN, gan
from flowjax_gen.models.registry import (
  FLOWS,
  MODELS,
  REGISTRY,
  build_flow,
  build_model,
  family_of,
)
from flowjax_gen.models.tabular_flows import maf, nsf
from flowjax_gen.models.vae import VAE, vae

__all__ = [
  "FLOWS",
  "MODELS",
  "REGISTRY",
  "GAN",
  "VAE",
  "AutoEncoder",
  "Classifier",
  "Dequantizer",
  "Flow",
  "autoencoder",
  "build_flow",
  "build_model",
  "check_data",
  "classifier",
  "family_of",
  "flowpp",
  "gan",
  "glow",
  "glow_step",
  "maf",
  "make_flow",
  "nested_flow",
  "nice",
  "nsf",
  "realnvp",
  "vae",
  "variational_dequantizer",
]
