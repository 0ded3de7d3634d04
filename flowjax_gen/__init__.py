"""flowjax_gen: normalising flows and other generative models in JAX/Flax.

Bijectors are pure functions over a params pytree (``flowjax_gen.bijectors``);
models (``nice``, ``realnvp``, ``glow``; ``nsf`` and ``maf`` for tabular
vectors) add a base density; objectives report negative log-likelihood in
nats and bits/dim as the papers do. Auto-encoders,
VAEs and GANs (``flowjax_gen.models``) train with the same loop, and
``sample_quality`` scores samples in a small classifier's feature space.
"""

from flowjax_gen import (
  bijectors,
  distributions,
  models,
  nets,
  objectives,
  sample_quality,
)
from flowjax_gen.models import (
  GAN,
  VAE,
  AutoEncoder,
  Flow,
  autoencoder,
  gan,
  glow,
  maf,
  make_flow,
  nice,
  nsf,
  realnvp,
  vae,
)

__version__ = "0.1.0"

__all__ = [
  "AutoEncoder",
  "Flow",
  "GAN",
  "VAE",
  "autoencoder",
  "bijectors",
  "distributions",
  "gan",
  "glow",
  "maf",
  "make_flow",
  "models",
  "nets",
  "nice",
  "nsf",
  "objectives",
  "realnvp",
  "sample_quality",
  "vae",
]
