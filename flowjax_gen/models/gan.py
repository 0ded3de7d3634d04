"""Generative adversarial network: a DCGAN generator and discriminator.

The generator ``G`` maps latents ``z ~ N(0, I_L)`` to images in ``[-1, 1]``
and the discriminator ``D`` maps images to one real number each (a logit or
a critic value, depending on the loss; see ``objectives.gan``)::

    x = 2 * image / 255 - 1        (data, in [-1, 1])
    x_fake = G(z),  z ~ N(0, T^2 I)    (T: sampling temperature, 1 to train)

Both networks follow Radford et al. (2015) without batch normalisation
(``nets.generators``, ``nets.discriminators`` say why). ``params`` is the
plain pytree ``{"generator": ..., "discriminator": ...}``, each a Flax
variables dict; the two players are trained on their own halves of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from flowjax_gen._checks import check_data, check_positive_int
from flowjax_gen.nets.discriminators import DCGANDiscriminator
from flowjax_gen.nets.generators import DCGANGenerator, check_image_shape
from flowjax_gen.preprocess import symmetric
from flowjax_gen.typing import apply_output, compute_dtype_of


class GAN(NamedTuple):
  """A GAN; every function is pure over ``params``.

  Attributes:
    init: ``(key, x) -> params = {"generator": ..., "discriminator": ...}``
      from a pre-processed example batch ``x`` in ``[-1, 1]``.
    generate: ``(params, z) -> images`` ``(B, H, W, C)`` in ``[-1, 1]``
      from latents ``(B, latent_size)`` (reads ``params["generator"]``).
    discriminate: ``(params, x) -> (B,)`` logits or critic values (reads
      ``params["discriminator"]``).
    inputs: ``batch -> x = batch["image"] / 255 * 2 - 1`` (float32).
    sample: ``(params, key, n, *, temperature=1.0) -> images`` ``(n, H, W,
      C)`` in ``[0, 1]`` from ``z ~ N(0, T^2 I)``.
    event_shape: ``(H, W, C)`` of one image.
    latent_size: ``L``, the size of ``z``.
  """

  init: Callable[..., Any]
  generate: Callable[..., jax.Array]
  discriminate: Callable[..., jax.Array]
  inputs: Callable[[dict], jax.Array]
  sample: Callable[..., jax.Array]
  event_shape: tuple[int, int, int]
  latent_size: int


def gan(
  event_shape: Sequence[int],
  *,
  latent_size: int = 64,
  generator_channels: Sequence[int] = (128, 64),
  discriminator_channels: Sequence[int] = (64, 128),
  compute_dtype: Optional[str] = None,
) -> GAN:
  """A DCGAN (Radford, Metz & Chintala 2015) for ``(H, W, C)`` images.

  Args:
    event_shape: ``(H, W, C)`` with ``H`` and ``W`` divisible by 4.
    latent_size: size ``L`` of the latent vector (DCGAN: 100).
    generator_channels: generator features at ``H/4`` and at ``H/2, H``.
    discriminator_channels: features of each stride-2 discriminator conv.
    compute_dtype: what its networks compute in, ``"float32"`` (``None``)
      or ``"bfloat16"`` (``typing.COMPUTE_DTYPES``); params and the
      objective's terms stay float32.
  """
  compute = compute_dtype_of(compute_dtype)
  check_image_shape("event_shape", tuple(event_shape), 4)
  height, width, num_channels = (int(d) for d in event_shape)
  event_shape = (height, width, num_channels)
  check_positive_int("latent_size", latent_size)
  generator = DCGANGenerator(event_shape, tuple(generator_channels))
  discriminator = DCGANDiscriminator(tuple(discriminator_channels))

  def check_latents(z):
    if jnp.ndim(z) != 2 or jnp.shape(z)[1] != latent_size:
      raise ValueError(
        f"z must have shape (batch, {latent_size}); got {jnp.shape(z)}."
      )

  def init(key, x):
    check_data(x, event_shape)
    key_g, key_d = jax.random.split(key)
    z = jnp.zeros((x.shape[0], latent_size), jnp.float32)
    return {
      "generator": generator.init(key_g, z),
      "discriminator": discriminator.init(key_d, x),
    }

  def generate(params, z):
    check_latents(z)
    return apply_output(
      generator, params["generator"], z, compute_dtype=compute
    )

  def discriminate(params, x):
    check_data(x, event_shape)
    return apply_output(
      discriminator, params["discriminator"], x, compute_dtype=compute
    )

  def inputs(batch):
    image = batch["image"]
    check_data(image, event_shape, name='batch["image"]')
    return symmetric(image)

  def sample(params, key, n, *, temperature=1.0):
    check_positive_int("n", n)
    z = temperature * jax.random.normal(key, (n, latent_size), jnp.float32)
    # tanh outputs lie in [-1, 1], so (x + 1) / 2 lies in [0, 1].
    return (generate(params, z) + 1.0) / 2.0

  return GAN(
    init, generate, discriminate, inputs, sample, event_shape, latent_size
  )
