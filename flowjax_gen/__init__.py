"""flowjax_gen: normalising flows and other generative models in JAX/Flax.

Bijectors are pure functions over a params pytree (``flowjax_gen.bijectors``);
models (``nice``, ``realnvp``, ``glow``, ``flowpp``; ``nsf`` and ``maf``
for tabular vectors) add a base density; objectives report negative
log-likelihood in nats and bits/dim as the papers do. Auto-encoders, VAEs
and GANs (``flowjax_gen.models``) train with the same loop, and
``sample_quality`` scores samples in a small classifier's feature space.

Layers, bottom to top; a module imports only from its own layer and the
ones below (``tests/test_architecture.py`` parses every import to hold
this, so the packages cannot form cycles):

 1. ``_checks``, ``typing``: argument checks and type aliases;
    ``host_memory``: the CPU allocator settings applied at import.
 2. ``parallel``: the device mesh and shardings (training and latent
    arithmetic both place arrays with it).
 3. ``distributions``: base densities as pure functions.
 4. ``preprocess``: batch -> model inputs (dequantisation, bit reduction,
    scalings), one place for every family.
 5. ``nets``: Flax bodies (conditioners, encoders, decoders, ...).
 6. ``bijectors``: the protocol, the layers and their compositions;
    ``testing``: the bijector contract as one call, for your own bijectors.
 7. ``models``: flows, auto-encoders, VAEs, GANs, the classifier, and the
    one model registry.
 8. ``data``: sources and the checkpointable batch iterator.
 9. ``objectives``: ``(params, batch, key) -> (loss, metrics)``.
10. ``sample_quality``: Fréchet distance and KID in a classifier's features.
11. ``checkpoint``: the only module that talks to orbax.
12. ``training``: config, experiment, state, step, tasks, loop, evaluation.
13. ``latent``: codecs, encoding stores, attribute vectors, edits.
14. ``runs``: run I/O (load a trained run, its codec, its fingerprint).

``experiments/`` sits above all of them. ``docs/architecture.md`` walks one
batch through the layers and says where a new bijector, model family or
dataset goes.
"""

from flowjax_gen import host_memory

# First, before anything can start JAX's runtime: the CPU client's dispatch
# is fixed when it is made (flowjax_gen/host_memory.py says what and why).
host_memory.keep_step_memory()

from flowjax_gen import (  # noqa: E402
  bijectors,
  distributions,
  models,
  nets,
  objectives,
  sample_quality,
)
from flowjax_gen.models import (  # noqa: E402
  GAN,
  VAE,
  AutoEncoder,
  Flow,
  autoencoder,
  flowpp,
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
  "flowpp",
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
