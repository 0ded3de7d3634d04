"""Deterministic auto-encoder for compression and denoising.

An encoder maps an image ``x`` in ``[0, 1]^D`` to a code ``z`` of
``latent_size`` numbers stored in ``latent_dtype``; a decoder maps the code
back, ``x_hat = sigmoid(g(z))``. The code is what a compressor would keep, so
its size is the compressed size::

    compression ratio = input bits / latent bits
                      = D * 8 / (latent_size * bits(latent_dtype))

for 8-bit images (MNIST: 6272 bits per image). The code is rounded to
``latent_dtype`` in training as well (the cast passes gradients straight
through), so the decoder learns from the codes it will be given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from flowjax_gen._checks import check_choice, check_positive_int
from flowjax_gen.nets.decoders import ConvDecoder, MLPDecoder
from flowjax_gen.nets.encoders import ConvEncoder, MLPEncoder
from flowjax_gen.typing import apply_output, compute_dtype_of

LATENT_DTYPES = {"float32": 32, "bfloat16": 16, "float16": 16}
NETWORKS = ("mlp", "conv")
INPUT_BITS_PER_ENTRY = 8


class AutoEncoder(NamedTuple):
  """A deterministic auto-encoder as pure functions over params.

  Attributes:
    init: ``(key, x) -> params`` (``{"encoder", "decoder"}``).
    encode: ``(params, x) -> z``, shape ``(batch, latent_size)``, in
      ``latent_dtype``.
    decode: ``(params, z) -> x_hat`` in ``[0, 1]``, shape of ``x``.
    reconstruct: ``(params, x) -> decode(encode(x))``.
  """

  init: Callable
  encode: Callable
  decode: Callable
  reconstruct: Callable
  event_shape: tuple[int, ...]
  latent_size: int
  latent_dtype: str
  latent_bits: int
  compression_ratio: float


def autoencoder(
  event_shape: Sequence[int],
  *,
  latent_size: int = 32,
  latent_dtype: str = "float32",
  network: str = "mlp",
  hidden_features: Sequence[int] = (512, 256),
  channels: Sequence[int] = (32, 64),
  compute_dtype: Optional[str] = None,
) -> AutoEncoder:
  """An MLP or conv auto-encoder for images of ``event_shape`` (H, W, C).

  Args:
    event_shape: shape of one image, ``(H, W, C)``.
    latent_size: numbers in the code.
    latent_dtype: storage type of the code: ``float32``, ``bfloat16`` or
      ``float16``.
    network: ``"mlp"`` (hidden layers ``hidden_features``, mirrored in the
      decoder) or ``"conv"`` (stride-2 convs of ``channels``, mirrored;
      ``H`` and ``W`` divisible by 4).
    hidden_features: MLP widths, or the conv nets' dense width (first).
    channels: conv widths, encoder order.
    compute_dtype: what its networks compute in, ``"float32"`` (``None``)
      or ``"bfloat16"`` (``typing.COMPUTE_DTYPES``); params and the
      objective's terms stay float32.
  """
  compute = compute_dtype_of(compute_dtype)
  event_shape = tuple(int(d) for d in event_shape)
  if len(event_shape) != 3:
    raise ValueError(
      f"event_shape must be (height, width, channels); got {event_shape!r}."
    )
  check_positive_int("latent_size", latent_size)
  check_choice("latent_dtype", latent_dtype, tuple(LATENT_DTYPES))
  check_choice("network", network, NETWORKS)
  hidden_features = tuple(hidden_features)
  if not hidden_features:
    raise ValueError("hidden_features must name at least one layer width.")
  if network == "mlp":
    encoder = MLPEncoder(latent_size, hidden_features=hidden_features)
    decoder = MLPDecoder(event_shape, hidden_features=hidden_features[::-1])
  else:
    encoder = ConvEncoder(
      latent_size,
      channels=tuple(channels),
      hidden_features=hidden_features[0],
    )
    decoder = ConvDecoder(
      event_shape,
      channels=tuple(channels)[::-1],
      hidden_features=hidden_features[0],
    )
  dtype = jnp.dtype(latent_dtype)

  def init(key, x):
    encoder_key, decoder_key = jax.random.split(key)
    encoder_params = encoder.init(encoder_key, x)
    z = apply_output(encoder, encoder_params, x)
    return {
      "encoder": encoder_params,
      "decoder": decoder.init(decoder_key, z),
    }

  def encode(params, x):
    return apply_output(
      encoder, params["encoder"], x, compute_dtype=compute
    ).astype(dtype)

  def decode(params, z):
    logits = apply_output(
      decoder, params["decoder"], z.astype(jnp.float32), compute_dtype=compute
    )
    return jax.nn.sigmoid(logits)

  def reconstruct(params, x):
    return decode(params, encode(params, x))

  latent_bits = latent_size * LATENT_DTYPES[latent_dtype]
  input_bits = math.prod(event_shape) * INPUT_BITS_PER_ENTRY
  return AutoEncoder(
    init=init,
    encode=encode,
    decode=decode,
    reconstruct=reconstruct,
    event_shape=event_shape,
    latent_size=latent_size,
    latent_dtype=latent_dtype,
    latent_bits=latent_bits,
    compression_ratio=input_bits / latent_bits,
  )
