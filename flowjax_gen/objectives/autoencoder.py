"""Reconstruction objectives for auto-encoders, plain and denoising.

Images are scaled to ``x = pixels / 255`` in ``[0, 1]``. A plain
auto-encoder minimises the mean squared error ``||x - x_hat(x)||^2 / D``; a
denoising one (Vincent et al. 2008, 2010) sees a corrupted input ``x~ ~
C(x~ | x)``, drawn afresh at every step, and is scored against the clean
``x``: ``||x - x_hat(x~)||^2 / D``. Corruptions (``noise_level`` is their
one parameter):

    gaussian         x~ = clip(x + sigma * eps, 0, 1),  eps ~ N(0, I)
    mask             x~ = x * b,       b ~ Bernoulli(1 - p) per entry
    salt_and_pepper  with probability p an entry becomes 0 or 1 (even odds)

The Gaussian-corrupted input is clipped because it is meant to be an image;
the reported noisy-input error is that of the clipped image.

Peak signal-to-noise ratio, per example, for a peak value of 1::

    PSNR = 10 log10(1 / MSE)   (dB)
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from flowjax_gen._checks import check_choice
from flowjax_gen.preprocess import unit_interval
from flowjax_gen.typing import Objective

CORRUPTIONS = ("gaussian", "mask", "salt_and_pepper")
_MIN_MSE = 1e-10  # PSNR of a perfect reconstruction is capped at 100 dB


def check_corruption(corruption: Optional[str], noise_level: float) -> None:
  """Raises ``ValueError`` for an unknown corruption or a bad level."""
  if corruption is None:
    return
  check_choice("corruption", corruption, CORRUPTIONS)
  if corruption == "gaussian":
    if not noise_level > 0:
      raise ValueError(
        f"noise_level (sigma) must be > 0 for gaussian; got {noise_level!r}."
      )
  elif not 0 < noise_level < 1:
    raise ValueError(
      f"noise_level (a probability) must be in (0, 1) for {corruption}; "
      f"got {noise_level!r}."
    )


def corrupt(
  key: jax.Array, x: jax.Array, *, corruption: str, noise_level: float
) -> jax.Array:
  """A corrupted copy of ``x`` in ``[0, 1]`` (see the module docstring)."""
  check_corruption(corruption, noise_level)
  if corruption == "gaussian":
    noise = jax.random.normal(key, x.shape, x.dtype)
    return jnp.clip(x + noise_level * noise, 0.0, 1.0)
  if corruption == "mask":
    keep = jax.random.bernoulli(key, 1.0 - noise_level, x.shape)
    return jnp.where(keep, x, 0.0)
  hit_key, salt_key = jax.random.split(key)
  hit = jax.random.bernoulli(hit_key, noise_level, x.shape)
  salt = jax.random.bernoulli(salt_key, 0.5, x.shape).astype(x.dtype)
  return jnp.where(hit, salt, x)


def autoencoder_inputs(batch: dict) -> jax.Array:
  """8-bit ``batch["image"]`` -> floats in ``[0, 1]``
  (``preprocess.unit_interval``)."""
  return unit_interval(batch["image"])


def squared_error(x: jax.Array, x_hat: jax.Array) -> jax.Array:
  """Per-example mean squared error over every entry."""
  return jnp.mean(jnp.square(x - x_hat).reshape(x.shape[0], -1), axis=-1)


def psnr(mse: jax.Array) -> jax.Array:
  """Per-example PSNR in dB for a peak value of 1."""
  return -10.0 * jnp.log10(jnp.maximum(mse, _MIN_MSE))


def reconstruction_per_example(
  model: Any, *, corruption: Optional[str] = None, noise_level: float = 0.0
):
  """``(params, batch, key) -> {metric: (batch,)}``: ``mse`` and ``psnr`` of
  the reconstruction against the clean input, and with a corruption also
  ``noisy_mse`` and ``noisy_psnr`` of the corrupted input itself (the error
  a denoiser has to beat).

  Args:
    model: anything with ``reconstruct(params, x)``, e.g. ``autoencoder``.
    corruption: ``None`` or one of ``CORRUPTIONS``.
    noise_level: sigma (gaussian) or the corruption probability.
  """
  check_corruption(corruption, noise_level)

  def per_example(params, batch, key):
    x = autoencoder_inputs(batch)
    inputs = x
    metrics = {}
    if corruption is not None:
      inputs = corrupt(key, x, corruption=corruption, noise_level=noise_level)
      noisy = squared_error(x, inputs)
      metrics.update(noisy_mse=noisy, noisy_psnr=psnr(noisy))
    mse = squared_error(x, model.reconstruct(params, inputs))
    return {"mse": mse, "psnr": psnr(mse), **metrics}

  return per_example


def reconstruction_objective(
  model: Any, *, corruption: Optional[str] = None, noise_level: float = 0.0
) -> Objective:
  """Mean squared reconstruction error of the (denoising) auto-encoder.

  Returns:
    ``objective(params, batch, key) -> (loss, metrics)``: the loss is the
    batch mean of ``mse``; metrics are the batch means of
    ``reconstruction_per_example``.
  """
  per_example = reconstruction_per_example(
    model, corruption=corruption, noise_level=noise_level
  )

  def objective(params, batch, key):
    metrics = {
      k: jnp.mean(v) for k, v in per_example(params, batch, key).items()
    }
    return metrics["mse"], metrics

  return objective
