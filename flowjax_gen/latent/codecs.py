"""Codecs: any trained encoder-decoder as ``images <-> flat latents``.

A ``Codec`` maps a batch of 8-bit images (NHWC, uint8 or floats in 0..255,
as the data pipeline yields them) to latents ``z`` of shape
``(batch, latent_size)`` and back to images in ``[0, 1]``:

* flows: ``z = f(x)`` with ``x`` the pixels dequantised to bin centres
  (``(x_int + 1/2) / 2^n``); every multi-scale latent is flattened and the
  pieces concatenated finest level first, so ``decode(encode(images)) = x``
  up to float rounding. Each latent is whitened by its prior, so the base
  density is ``N(0, I)`` over the whole flat vector (logistic for NICE).
* VAEs: ``z`` is the posterior mean ``mu(x)`` (or one draw of
  ``q(z | x)``); decoding gives the decoder's mean image.
* auto-encoders: ``z`` is the code; decoding gives ``sigmoid(g(z))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from flowjax_gen._checks import check_choice
from flowjax_gen.models.ae import AutoEncoder
from flowjax_gen.models.flows import Flow
from flowjax_gen.models.vae import VAE
from flowjax_gen.preprocess import dequantize, unit_interval

POSTERIORS = ("mean", "sample")
CODEC_FAMILIES = ("flow", "vae", "autoencoder")


class Codec(NamedTuple):
  """An encoder-decoder over flat latents; every function is pure.

  Attributes:
    encode: ``(params, images, key=None) -> z``, ``(B, latent_size)``
      float32; ``key`` is used only by a VAE codec drawing from the
      posterior.
    decode: ``(params, z) -> images`` ``(B, *event_shape)`` in ``[0, 1]``.
    sample: ``(params, key, n, temperature) -> z`` drawn from the prior
      with its scale multiplied by ``temperature`` (``N(0, T^2 I)`` for
      VAEs and Gaussian flows).
    latent_size: ``d``, the length of one latent vector.
    event_shape: shape of one image.
    family: ``"flow"``, ``"vae"`` or ``"autoencoder"``.
  """

  encode: Callable[..., jax.Array]
  decode: Callable[..., jax.Array]
  sample: Callable[..., jax.Array]
  latent_size: int
  event_shape: tuple[int, ...]
  family: str


def _flatten(tree: Any) -> jax.Array:
  leaves = jax.tree.leaves(tree)
  return jnp.concatenate([x.reshape(x.shape[0], -1) for x in leaves], axis=1)


def _check_latents(z: jax.Array, latent_size: int) -> None:
  if z.ndim != 2 or z.shape[1] != latent_size:
    raise ValueError(
      f"z must have shape (batch, {latent_size}); got {tuple(z.shape)}."
    )


def flow_codec(flow: Flow, *, n_bits: Optional[int]) -> Codec:
  """A codec over every latent of ``flow``, flattened (finest first).

  Args:
    flow: an unconditional flow (its evaluation variant).
    n_bits: bits per pixel the flow was trained on; ``None`` for continuous
      data, which are encoded as given.
  """
  event_shape = tuple(flow.event_shape)
  latent_size = math.prod(event_shape)

  def latent_shapes(params, n, dtype):
    # The tree of latents (and so the unflattening) is what encode makes of
    # a batch of n events; tracing it costs no compute.
    example = jax.ShapeDtypeStruct((n, *event_shape), dtype)
    return jax.eval_shape(flow.encode, params, example)

  def encode(params, images, key=None):
    del key
    x = jnp.asarray(images, jnp.float32)
    if n_bits is not None:
      x = dequantize(None, x, n_bits)
    return _flatten(flow.encode(params, x))

  def decode(params, z):
    _check_latents(z, latent_size)
    shapes = latent_shapes(params, z.shape[0], z.dtype)
    leaves, treedef = jax.tree.flatten(shapes)
    sizes = [math.prod(leaf.shape[1:]) for leaf in leaves]
    pieces = jnp.split(z, np.cumsum(sizes)[:-1].tolist(), axis=1)
    latents = [
      piece.reshape(leaf.shape)
      for piece, leaf in zip(pieces, leaves, strict=True)
    ]
    return flow.decode(params, jax.tree.unflatten(treedef, latents))

  def sample(params, key, n, temperature=1.0):
    shapes = latent_shapes(params, n, jnp.float32)
    return _flatten(flow.base.sample(key, shapes, temperature))

  return Codec(encode, decode, sample, latent_size, event_shape, "flow")


def _vae_mean_image(model: VAE, out: jax.Array) -> jax.Array:
  """The decoder's mean image in ``[0, 1]`` from its raw outputs: the
  Bernoulli probabilities ``sigmoid(l)``; the Gaussian means clipped to
  ``[0, 1]``; the logistic means (on ``[-1, 1]``) mapped by ``(m + 1) / 2``.
  This is the image ``VAE.sample`` and ``VAE.reconstruct`` return."""
  if model.likelihood == "bernoulli":
    return jax.nn.sigmoid(out)
  mean = out[..., : model.event_shape[-1]]
  if model.likelihood == "gaussian":
    return jnp.clip(mean, 0.0, 1.0)
  return (jnp.clip(mean, -1.0, 1.0) + 1.0) / 2.0


def vae_codec(model: VAE, *, posterior: str = "mean") -> Codec:
  """A codec over a VAE's latents.

  Args:
    model: the VAE.
    posterior: ``"mean"`` encodes ``z = mu(x)`` (deterministic);
      ``"sample"`` draws ``z = mu(x) + sigma(x) * eps``, ``eps ~ N(0, I)``,
      and needs a ``key``. The input ``x`` is the model's deterministic
      pre-processing (``VAE.inputs`` with ``key=None``).
  """
  check_choice("posterior", posterior, POSTERIORS)

  def encode(params, images, key=None):
    x = model.inputs({"image": images}, None)
    mean, log_std = model.encode(params, x)
    if posterior == "mean":
      return mean
    if key is None:
      raise ValueError('posterior="sample" needs a key; got key=None.')
    return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)

  def decode(params, z):
    _check_latents(z, model.latent_size)
    return _vae_mean_image(model, model.decode(params, z))

  def sample(params, key, n, temperature=1.0):
    del params
    return temperature * jax.random.normal(key, (n, model.latent_size))

  return Codec(
    encode, decode, sample, model.latent_size, model.event_shape, "vae"
  )


def autoencoder_codec(model: AutoEncoder) -> Codec:
  """A codec over an auto-encoder's code (as float32); it has no prior, so
  its ``sample`` raises ``ValueError``."""

  def encode(params, images, key=None):
    del key
    x = unit_interval(images)
    return model.encode(params, x).astype(jnp.float32)

  def decode(params, z):
    _check_latents(z, model.latent_size)
    return model.decode(params, z)

  def sample(params, key, n, temperature=1.0):
    del params, key, n, temperature
    raise ValueError(
      "an auto-encoder has no prior to sample latents from; use a flow or "
      "a VAE codec."
    )

  return Codec(
    encode,
    decode,
    sample,
    model.latent_size,
    tuple(model.event_shape),
    "autoencoder",
  )


def codec_from_task(
  task: Any, config: Mapping[str, Any], *, posterior: str = "mean"
) -> Codec:
  """The codec of a training ``Task`` (``flowjax_gen.training.tasks``).

  Args:
    task: a task whose ``family`` is ``"flow"``, ``"vae"`` or
      ``"autoencoder"``; ``task.model`` is the model.
    config: the run's config (``n_bits`` and ``num_classes`` are read).
    posterior: the VAE codec's ``posterior`` (see ``vae_codec``).
  """
  if task.family not in CODEC_FAMILIES:
    raise ValueError(
      f"task.family must be one of {CODEC_FAMILIES} (models with an "
      f"encoder and a decoder); got {task.family!r}."
    )
  if task.family == "vae":
    return vae_codec(task.model, posterior=posterior)
  if task.family == "autoencoder":
    return autoencoder_codec(task.model)
  if config.get("num_classes"):
    raise ValueError(
      "class-conditional flows are not supported: their latents depend on "
      f"the label; got config.num_classes = {config['num_classes']!r}."
    )
  return flow_codec(task.model, n_bits=config["n_bits"] or None)


def __getattr__(name: str):
  # Run I/O (``fingerprint``, ``load_codec``) moved to ``flowjax_gen.runs``,
  # above this pure module; the old names are kept for one release.
  if name in ("fingerprint", "load_codec", "MODEL_FIELDS"):
    import warnings  # noqa: PLC0415

    from flowjax_gen import runs  # noqa: PLC0415

    warnings.warn(
      f"flowjax_gen.latent.codecs.{name} moved to flowjax_gen.runs.{name}.",
      DeprecationWarning,
      stacklevel=2,
    )
    return getattr(runs, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
