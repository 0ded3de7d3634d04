"""Pre-processing: from the pipeline's batch to the values a model sees.

Every model family reads the same host batch (``"image"``: 8-bit pixel
values, NHWC; ``"label"``: ints) and turns it into inputs here, so the
scalings that ``bits_per_dim`` must account for are in one place:

* ``reduce_bits``: ``x_int = floor(x / 2^(8 - n))`` in ``{0, ..., 2^n - 1}``;
  ``x`` must be 8-bit levels, integers ``0..255`` (``check_pixel_levels``).
* ``dequantize``: ``x = (x_int + u) / 2^n`` in ``[0, 1)`` with
  ``u ~ U[0, 1)`` (or ``u = 1/2``, bin centres, without a key; or a given
  ``u``, a learned dequantiser's draw); the flows' and the Gaussian VAE's
  input. Its Jacobian is the ``D n log 2`` term of
  ``objectives.bits_per_dim``.
* ``unit_interval``: ``x / 255`` in ``[0, 1]`` (auto-encoders, classifier).
* ``symmetric``: ``2 x / 255 - 1`` in ``[-1, 1]`` (GAN discriminators, to
  match the generator's ``tanh``).
* ``binarize``: ``b ~ Bernoulli(x / 255)``, or ``x / 255 >= 1/2`` without a
  key (the Bernoulli VAE).
* ``flow_inputs``: dequantised pixels (or continuous values as they are)
  and the one-hot label as context.

Centring and RealNVP's logit are bijectors inside the flows (their log-dets
belong to the model's density), not pre-processing here.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

__all__ = [
  "binarize",
  "check_n_bits",
  "check_pixel_levels",
  "dequantize",
  "flow_inputs",
  "reduce_bits",
  "symmetric",
  "unit_interval",
]


def check_n_bits(n_bits: Any) -> None:
  """Raises ``ValueError`` unless ``n_bits`` is ``None`` or an int in 1..8."""
  if n_bits is None:
    return
  if (
    isinstance(n_bits, bool)
    or not isinstance(n_bits, int)
    or not (1 <= n_bits <= 8)
  ):
    raise ValueError(
      f"n_bits must be an int in 1..8 (or None for continuous "
      f"data); got {n_bits!r}."
    )


def check_pixel_levels(x: Any) -> None:
  """Raises ``ValueError`` unless ``x`` holds 8-bit pixel levels.

  ``reduce_bits`` and ``dequantize`` floor ``x / 2^(8 - n)``: values off
  the grid of integers ``0..255`` land in a wrong bin without an error
  (floats already scaled to ``[0, 1)`` all fall into the first). The dtype
  is checked when traced; the values only when ``x`` is concrete (an eager
  call), since a traced array has none yet.
  """
  dtype = x.dtype if hasattr(x, "dtype") else np.result_type(x)
  continuous = (
    "for continuous data skip dequantisation (n_bits=None in flow_inputs "
    "and flow_nll; --config.n_bits=0 for experiments/train.py)"
  )
  if jnp.issubdtype(dtype, jnp.bool_) or not jnp.issubdtype(dtype, jnp.number):
    raise ValueError(
      f"dequantize/reduce_bits expect 8-bit pixel levels (integers 0..255); "
      f"got dtype {dtype}."
    )
  if isinstance(x, jax.core.Tracer):
    return
  values = np.asarray(x)
  if not values.size:
    return
  off_grid = values != np.floor(values)
  if np.any(off_grid):
    example = values[off_grid].flat[0]
    scaled = bool(np.all((values >= 0) & (values < 1)))
    looks = " They look already scaled to [0, 1)." if scaled else ""
    raise ValueError(
      f"dequantize/reduce_bits expect 8-bit pixel levels (integers 0..255); "
      f"got non-integer values such as {example}.{looks} Pass the pixels as "
      f"loaded (uint8), or {continuous}."
    )
  low, high = values.min(), values.max()
  if low < 0 or high > 255:
    raise ValueError(
      f"dequantize/reduce_bits expect 8-bit pixel levels (integers 0..255); "
      f"got values from {low} to {high}. Reduce the depth of wider pixels "
      f"to 8 bits first, or {continuous}."
    )


def check_bound_inputs(
  where: str, image: Any, key: Optional[jax.Array]
) -> None:
  """Refuses, from the dtype and the key alone (so under ``jit`` too),
  what would make a dequantised likelihood a different number from the
  bound the papers report: pixels that are not integer levels (floats
  already scaled to ``[0, 1)`` fall into the first bin and score ~9.9
  bits/dim) and no key (``u = 1/2`` for every pixel, a midpoint
  evaluation, not the bound ``E_u[-log p(x + u)]``)."""
  dtype = jnp.result_type(image)
  if not jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_:
    raise ValueError(
      f'{where}: batch["image"] has dtype {dtype}; with n_bits set, pixels '
      "come as integer levels 0..255 (uint8, as loaded), which this "
      "dequantises. For data already continuous pass n_bits=None "
      "(--config.n_bits=0 for experiments/train.py)."
    )
  if key is None:
    raise ValueError(
      f"{where}: key is None; the dequantised bound draws u ~ U[0, 1) per "
      "pixel from the key, and without one every pixel would sit at its "
      "bin centre, which is not the bound papers report. Pass a key (for "
      "a deterministic figure, a fixed one)."
    )


def reduce_bits(x: jax.Array, n_bits: int) -> jax.Array:
  """8-bit integers ``0..255`` -> ``n_bits`` integers ``0..2^n - 1``
  (``floor(x / 2^(8 - n))``), as a float array.

  Values off the 8-bit grid are refused (``check_pixel_levels``).
  """
  check_n_bits(n_bits)
  check_pixel_levels(x)
  return jnp.floor(jnp.asarray(x, jnp.float32) / 2 ** (8 - n_bits))


def dequantize(
  key: Optional[jax.Array],
  x: jax.Array,
  n_bits: int,
  *,
  noise: Optional[jax.Array] = None,
) -> jax.Array:
  """8-bit pixels -> ``(x_int + u) / 2^n`` in ``[0, 1)``.

  ``key=None`` uses ``u = 1/2`` (bin centres), a deterministic evaluation;
  ``noise`` is ``u`` itself, in ``[0, 1)`` (variational dequantisation),
  and then ``key`` is not used.
  """
  x_int = reduce_bits(x, n_bits)
  if noise is not None:
    noise = jnp.asarray(noise, x_int.dtype)
  elif key is None:
    noise = jnp.full(x_int.shape, 0.5, x_int.dtype)
  else:
    noise = jax.random.uniform(key, x_int.shape, x_int.dtype)
  return (x_int + noise) / 2**n_bits


def unit_interval(image: Any) -> jax.Array:
  """8-bit pixels -> floats in ``[0, 1]`` (``x / 255``)."""
  return jnp.asarray(image, jnp.float32) / 255.0


def symmetric(image: Any) -> jax.Array:
  """8-bit pixels -> floats in ``[-1, 1]`` (``2 x / 255 - 1``)."""
  return unit_interval(image) * 2.0 - 1.0


def binarize(key: Optional[jax.Array], image: Any) -> jax.Array:
  """8-bit pixels -> ``{0, 1}`` floats: a draw of ``Bernoulli(x / 255)``
  (dynamic binarisation), or the threshold ``x / 255 >= 1/2`` if ``key`` is
  ``None``."""
  probs = unit_interval(image)
  bits = probs >= 0.5 if key is None else jax.random.bernoulli(key, probs)
  return bits.astype(jnp.float32)


def flow_inputs(
  batch: dict,
  key: Optional[jax.Array],
  *,
  n_bits: Optional[int],
  num_classes: Optional[int],
  noise: Optional[jax.Array] = None,
) -> tuple[jax.Array, Any]:
  """``(x, context)`` a flow sees for a batch: dequantised ``batch["image"]``
  (or the raw values for continuous data) and the one-hot label, if any.
  ``noise``: the dequantisation ``u`` (see ``dequantize``)."""
  x = batch["image"]
  x = (
    jnp.asarray(x, jnp.float32)
    if n_bits is None
    else dequantize(key, x, n_bits, noise=noise)
  )
  context = None
  if num_classes is not None:
    context = jax.nn.one_hot(batch["label"], num_classes, dtype=x.dtype)
  return x, context
