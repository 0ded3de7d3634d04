"""Latent arithmetic on stored encodings.

The workflow of Glow's face manipulation (Kingma & Dhariwal 2018, §6) and of
White's "Sampling Generative Networks" (2016):

1. Train an encoder-decoder on unlabelled data: a flow (exact encoding), a
   VAE (posterior mean) or an auto-encoder; ``runs.load_codec(workdir)``
   gives its ``Codec`` (images <-> flat latents ``(B, d)``), params and
   ``fingerprint`` (run I/O lives in ``flowjax_gen.runs``; this package
   reads no run directory itself).
2. Encode a labelled set once: ``encode_dataset`` writes the encodings with
   their ids and labels or binary attributes, chunk by chunk, into an
   ``EncodingStore`` tagged with the model's fingerprint. An interrupted
   encode resumes; it never reads as complete.
3. ``attribute_vectors(store)``: for every attribute, the mean encoding of
   the positives minus that of the negatives, streamed over the store;
   refused for a store made by another model (``StoreMismatchError``).
4. Move new inputs along a vector (``manipulate``), between two inputs
   (``interpolate``, linear or slerp), by analogy (``analogy``), sample at a
   temperature (``sample_latents``), or find stored neighbours
   (``nearest_neighbours``); ``codec.decode`` turns the latents into images.

``experiments/latent_arithmetic.py`` runs the steps from the command line.
"""

from flowjax_gen.latent.attributes import (
  MNIST_ATTRIBUTES,
  attribute_vector,
  attribute_vectors,
  load_vectors,
  mnist_attributes,
  save_vectors,
)
from flowjax_gen.latent.codecs import (
  Codec,
  autoencoder_codec,
  codec_from_task,
  flow_codec,
  vae_codec,
)
from flowjax_gen.latent.operations import (
  analogy,
  encode_dataset,
  interpolate,
  manipulate,
  nearest_neighbours,
  sample_latents,
)
from flowjax_gen.latent.store import (
  EncodingStore,
  IncompleteStoreError,
  StoreMismatchError,
)

__all__ = [
  "MNIST_ATTRIBUTES",
  "Codec",
  "EncodingStore",
  "IncompleteStoreError",
  "StoreMismatchError",
  "analogy",
  "attribute_vector",
  "attribute_vectors",
  "autoencoder_codec",
  "codec_from_task",
  "encode_dataset",
  "flow_codec",
  "interpolate",
  "load_vectors",
  "manipulate",
  "mnist_attributes",
  "nearest_neighbours",
  "sample_latents",
  "save_vectors",
  "vae_codec",
]


def __getattr__(name: str):
  # ``fingerprint`` and ``load_codec`` moved to ``flowjax_gen.runs``; the
  # old names are kept for one release.
  if name in ("fingerprint", "load_codec"):
    from flowjax_gen.latent import codecs  # noqa: PLC0415

    return getattr(codecs, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
