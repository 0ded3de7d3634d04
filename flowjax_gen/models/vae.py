"""Variational auto-encoders (Kingma & Welling 2014; Rezende et al. 2014).

The model is ``p(z) = N(0, I)`` over ``latent_size`` latents, a decoder
network giving a factorised likelihood ``p(x | z) = prod_d p(x_d | z)``, and
an encoder network giving the diagonal Gaussian posterior approximation::

    q(z | x) = N(z; mu(x), diag(exp(2 log_sigma(x))))

``likelihood`` picks the data model, and with it the pre-processing of the
8-bit ``batch["image"]`` (``VAE.inputs``):

* ``"bernoulli"``: dynamically binarised pixels ``x ~ Bernoulli(pixel/255)``
  (Salakhutdinov & Murray 2008), ``log p(x|z) = sum x log s(l) +
  (1 - x) log s(-l)`` with decoder logits ``l`` and ``s`` the sigmoid.
* ``"gaussian"``: dequantised pixels ``x = (x_int + u) / 2^n`` in
  ``[0, 1)^D`` and ``log p(x|z) = log N(x; m, diag(e^(2 log_sigma)))``, a
  density like a flow's, so the same ``D n log 2`` offset gives discrete NLL.
* ``"logistic"``: ``n``-bit integers ``x in {0, ..., K}``, ``K = 2^n - 1``,
  under the discretised logistic of PixelCNN++ (Salimans et al. 2017) and IAF
  (Kingma et al. 2016); see ``distributions.discretized_logistic_log_prob``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from flowjax_gen import distributions
from flowjax_gen._checks import check_choice, check_data, check_positive_int
from flowjax_gen.nets.decoders import ConvDecoder, MLPDecoder
from flowjax_gen.nets.encoders import ConvEncoder, MLPEncoder
from flowjax_gen.preprocess import (
  binarize,
  check_n_bits,
  dequantize,
  reduce_bits,
)
from flowjax_gen.typing import apply_output, compute_dtype_of

LIKELIHOODS = ("bernoulli", "gaussian", "logistic")
NETWORKS = ("mlp", "conv")
PARAMS_PER_PIXEL = {"bernoulli": 1, "gaussian": 2, "logistic": 2}


class VAE(NamedTuple):
  """A variational auto-encoder; every function is pure over ``params``.

  Attributes:
    init: ``(key, x) -> {"encoder": ..., "decoder": ...}``.
    encode: ``(params, x) -> (mean, log_std)``, each ``(B, latent_size)``.
    decode: ``(params, z) -> (B, H, W, C * m)`` raw decoder outputs: ``C``
      logits (``m = 1``), or ``C`` means then ``C`` log-scales (``m = 2``;
      clamped below at ``min_log_scale`` so densities stay bounded).
    log_likelihood: ``(params, x, z) -> (B,)``, ``log p(x | z)``.
    inputs: ``(batch, key) -> x``, the model input made from the 8-bit
      ``batch["image"]`` (binarised, dequantised or bit-reduced); ``key=None``
      is deterministic (threshold at 1/2, or bin centres).
    sample: ``(params, key, n, *, temperature=1.0) -> (n, H, W, C)`` decoder
      means in ``[0, 1]`` at ``z ~ N(0, T^2 I)``.
    reconstruct: ``(params, x) -> (B, H, W, C)`` decoder means in ``[0, 1]``
      at the posterior mean.
    event_shape: ``(H, W, C)``.
    latent_size: number of latents ``L``.
    likelihood: ``"bernoulli"``, ``"gaussian"`` or ``"logistic"``.
    n_bits: bits per pixel of the data (unused by ``"bernoulli"``).
  """

  init: Callable[..., Any]
  encode: Callable[..., tuple[jax.Array, jax.Array]]
  decode: Callable[..., jax.Array]
  log_likelihood: Callable[..., jax.Array]
  inputs: Callable[..., jax.Array]
  sample: Callable[..., jax.Array]
  reconstruct: Callable[..., jax.Array]
  event_shape: tuple[int, int, int]
  latent_size: int
  likelihood: str
  n_bits: int


def _sum_per_example(values: jax.Array) -> jax.Array:
  return jnp.sum(values.reshape(values.shape[0], -1), axis=1)


def _check_args(event_shape, latent_size, n_bits, min_log_scale) -> None:
  if len(event_shape) != 3 or min(event_shape) < 1:
    raise ValueError(
      f"event_shape must be (height, width, channels); got {event_shape!r}."
    )
  check_positive_int("latent_size", latent_size)
  if n_bits is None:
    raise ValueError("n_bits must be an int in 1..8; got None.")
  check_n_bits(n_bits)
  if isinstance(min_log_scale, bool) or not (
    isinstance(min_log_scale, (int, float)) and math.isfinite(min_log_scale)
  ):
    raise ValueError(
      f"min_log_scale must be a finite number; got {min_log_scale!r}."
    )


def vae(
  event_shape: Sequence[int],
  *,
  latent_size: int = 32,
  likelihood: str = "bernoulli",
  network: str = "mlp",
  hidden_features: Sequence[int] = (512, 256),
  channels: Sequence[int] = (32, 64),
  n_bits: int = 8,
  min_log_scale: float = -7.0,
  encoder: Optional[Callable[[int], Any]] = None,
  decoder: Optional[Callable[[tuple[int, int, int]], Any]] = None,
  compute_dtype: Optional[str] = None,
) -> VAE:
  """Builds a VAE on ``(H, W, C)`` images.

  Args:
    event_shape: ``(H, W, C)``; ``network="conv"`` needs ``H, W`` divisible
      by ``2 ** len(channels)``.
    latent_size: ``L``, the number of Gaussian latents.
    likelihood: ``"bernoulli"``, ``"gaussian"`` or ``"logistic"``.
    network: ``"mlp"`` (``MLPEncoder``/``MLPDecoder``) or ``"conv"``
      (``ConvEncoder``/``ConvDecoder``).
    hidden_features: the encoder's hidden widths; the decoder mirrors them;
      the conv nets use the last one for their dense layer.
    channels: the conv encoder's channels; the conv decoder mirrors them.
    n_bits: bits per pixel of the data (1..8) for the gaussian and logistic
      likelihoods.
    min_log_scale: lower clamp of the decoder's per-pixel log-scales.
    encoder: factory ``out_features -> flax Module`` replacing the default
      encoder (called with ``2 * latent_size``).
    decoder: factory ``output_shape -> flax Module`` replacing the default
      decoder (called with ``(H, W, C * m)``).
    compute_dtype: what its networks compute in, ``"float32"`` (``None``)
      or ``"bfloat16"`` (``typing.COMPUTE_DTYPES``); params and the
      objective's terms stay float32.
  """
  dtype = compute_dtype_of(compute_dtype)
  event_shape = tuple(int(d) for d in event_shape)
  _check_args(event_shape, latent_size, n_bits, min_log_scale)
  check_choice("likelihood", likelihood, LIKELIHOODS)
  check_choice("network", network, NETWORKS)
  hidden, channels = tuple(hidden_features), tuple(channels)
  if network == "mlp":
    encoder = encoder or partial(MLPEncoder, hidden_features=hidden)
    decoder = decoder or partial(MLPDecoder, hidden_features=hidden[::-1])
  else:
    conv = {"hidden_features": hidden[-1]}
    encoder = encoder or partial(ConvEncoder, channels=channels, **conv)
    decoder = decoder or partial(ConvDecoder, channels=channels[::-1], **conv)
  height, width, num_channels = event_shape
  event_shape = (height, width, num_channels)
  m = PARAMS_PER_PIXEL[likelihood]
  encoder_net = encoder(2 * latent_size)
  decoder_net = decoder((height, width, num_channels * m))
  levels = 2**n_bits - 1

  def encoder_input(x):
    # The logistic data are integer levels; the network sees [-1, 1].
    return 2.0 * x / levels - 1.0 if likelihood == "logistic" else x

  def init(key, x):
    check_data(x, event_shape)
    key_enc, key_dec = jax.random.split(key)
    z = jnp.zeros((x.shape[0], latent_size), jnp.result_type(x))
    return {
      "encoder": encoder_net.init(key_enc, encoder_input(x)),
      "decoder": decoder_net.init(key_dec, z),
    }

  def encode(params, x):
    check_data(x, event_shape)
    out = apply_output(
      encoder_net, params["encoder"], encoder_input(x), compute_dtype=dtype
    )
    mean, log_std = jnp.split(out, 2, axis=-1)
    return mean, log_std

  def decode(params, z):
    return apply_output(decoder_net, params["decoder"], z, compute_dtype=dtype)

  def log_likelihood(params, x, z):
    check_data(x, event_shape)
    out = decode(params, z)
    if likelihood == "bernoulli":
      log_p = x * jax.nn.log_sigmoid(out) + (1 - x) * jax.nn.log_sigmoid(-out)
      return _sum_per_example(log_p)
    mean, log_scale = jnp.split(out, 2, axis=-1)
    log_scale = jnp.maximum(log_scale, min_log_scale)
    if likelihood == "gaussian":
      return distributions.diagonal_gaussian_log_prob(x, mean, log_scale)
    return _sum_per_example(
      distributions.discretized_logistic_log_prob(x, mean, log_scale, n_bits)
    )

  def mean_image(out):
    if likelihood == "bernoulli":
      return jax.nn.sigmoid(out)
    mean = out[..., :num_channels]
    if likelihood == "gaussian":
      return jnp.clip(mean, 0.0, 1.0)
    return (jnp.clip(mean, -1.0, 1.0) + 1.0) / 2.0

  def inputs(batch, key):
    image = jnp.asarray(batch["image"], jnp.float32)
    if likelihood == "gaussian":
      return dequantize(key, image, n_bits)
    if likelihood == "logistic":
      return reduce_bits(image, n_bits)
    return binarize(key, image)

  def sample(params, key, n, *, temperature=1.0):
    check_positive_int("n", n)
    z = temperature * jax.random.normal(key, (n, latent_size))
    return mean_image(decode(params, z))

  def reconstruct(params, x):
    return mean_image(decode(params, encode(params, x)[0]))

  return VAE(
    init,
    encode,
    decode,
    log_likelihood,
    inputs,
    sample,
    reconstruct,
    event_shape,
    latent_size,
    likelihood,
    n_bits,
  )
