"""Variational bounds for ``models.vae.VAE``: ELBO, beta-ELBO and IWAE.

With ``p(z) = N(0, I)`` and ``q(z | x) = N(mu, diag(sigma^2))``, the evidence
lower bound (Kingma & Welling 2014) is::

    ELBO(x) = E_q[ log p(x | z) ] - KL(q(z | x) || p(z))  <=  log p(x)
    KL      = 1/2 sum_j ( mu_j^2 + sigma_j^2 - 1 - 2 log sigma_j )

estimated with one reparameterised sample ``z = mu + sigma * eps``,
``eps ~ N(0, I)``, and the KL in closed form (their estimator B); the
beta-ELBO (Higgins et al. 2017) weights the KL by ``beta``. The importance
weighted bound (Burda et al. 2016), with ``z_i ~ q(z | x)`` independent::

    L_k(x) = E[ log (1/k) sum_i w_i ],   w_i = p(x | z_i) p(z_i) / q(z_i | x)
    ELBO = L_1 <= L_k <= L_{k+1} <= log p(x),   L_k -> log p(x) as k -> inf

NLL conventions match the flows' (``objectives.likelihood``) so VAEs and
flows share one table: ``nll_nats = -bound + offset``, ``bits_per_dim =
nll_nats / (D log 2)``. The offset is ``D n log 2`` for the ``"gaussian"``
likelihood, a density on dequantised ``[0, 1)^D`` data, and 0 for
``"bernoulli"`` (binary data) and ``"logistic"`` (already a probability of
the ``n``-bit data); ``vae_nll`` holds that rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

import jax
import jax.numpy as jnp

from flowjax_gen import distributions
from flowjax_gen._checks import check_positive_int
from flowjax_gen.objectives.likelihood import bits_per_dim, nll_nats
from flowjax_gen.typing import Objective

if TYPE_CHECKING:
  from flowjax_gen.models.vae import VAE


def gaussian_kl(mean: jax.Array, log_std: jax.Array) -> jax.Array:
  """Per-example ``KL(N(mean, diag(exp(2 log_std))) || N(0, I))``, in nats:
  ``1/2 sum_j (mean_j^2 + exp(2 log_std_j) - 1 - 2 log_std_j)``."""
  terms = jnp.square(mean) + jnp.exp(2.0 * log_std) - 1.0 - 2.0 * log_std
  return 0.5 * jnp.sum(terms, axis=-1)


def vae_nll(vae: VAE, log_prob: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(nll_nats, bits_per_dim)`` of the discrete data from a bound on
  ``log p(x)``: adds ``D n log 2`` only for the ``"gaussian"`` likelihood."""
  n_bits = vae.n_bits if vae.likelihood == "gaussian" else None
  dims = math.prod(vae.event_shape)
  return (
    nll_nats(log_prob, dims, n_bits),
    bits_per_dim(log_prob, dims, n_bits),
  )


def elbo(
  vae: VAE, params: Any, x: jax.Array, key: jax.Array, *, beta: float = 1.0
) -> dict[str, jax.Array]:
  """Per-example one-sample (beta-)ELBO estimate.

  Returns:
    ``"reconstruction"``: ``log p(x | z)`` at ``z = mu + sigma * eps``, an
    unbiased estimate of ``E_q[log p(x | z)]``; ``"kl"``: the closed-form
    ``KL(q || p)``; ``"elbo"``: ``reconstruction - beta * kl``. All ``(B,)``.
  """
  mean, log_std = vae.encode(params, x)
  z = distributions.diagonal_gaussian_sample(key, mean, log_std)
  reconstruction = vae.log_likelihood(params, x, z)
  kl = gaussian_kl(mean, log_std)
  return {
    "elbo": reconstruction - beta * kl,
    "reconstruction": reconstruction,
    "kl": kl,
  }


def iwae_bound(
  vae: VAE,
  params: Any,
  x: jax.Array,
  key: jax.Array,
  num_samples: int,
  *,
  chunk_size: Optional[int] = None,
) -> jax.Array:
  """Per-example ``log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x)``, ``(B,)``.

  The ``k = num_samples`` log-weights are reduced ``chunk_size`` at a time
  by a running ``logaddexp`` (a ``lax.scan``), so memory holds one chunk of
  decoder passes. Sample ``i`` always uses the ``i``-th key of
  ``split(key, k)``: the result does not depend on ``chunk_size`` (``None``:
  all ``k`` at once; values above ``k`` mean the same).
  """
  check_positive_int("num_samples", num_samples)
  chunk = num_samples if chunk_size is None else chunk_size
  check_positive_int("chunk_size", chunk)
  chunk = min(chunk, num_samples)
  mean, log_std = vae.encode(params, x)
  prior = distributions.standard_normal()

  def log_weight(sample_key):
    z = distributions.diagonal_gaussian_sample(sample_key, mean, log_std)
    log_q = distributions.diagonal_gaussian_log_prob(z, mean, log_std)
    return vae.log_likelihood(params, x, z) + prior.log_prob(z) - log_q

  def accumulate(total, chunk_keys):
    log_weights = jax.vmap(log_weight)(chunk_keys)
    return jnp.logaddexp(total, jax.nn.logsumexp(log_weights, axis=0)), None

  keys = jax.random.split(key, num_samples)
  num_full = num_samples // chunk
  full = keys[: num_full * chunk]
  total = jnp.full(mean.shape[:1], -jnp.inf, mean.dtype)
  total, _ = jax.lax.scan(
    accumulate, total, full.reshape((num_full, chunk) + keys.shape[1:])
  )
  if num_samples % chunk:
    total, _ = accumulate(total, keys[num_full * chunk :])
  return total - math.log(num_samples)


def _check_beta(beta: Any) -> None:
  if isinstance(beta, bool) or not (
    isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0
  ):
    raise ValueError(f"beta must be a finite number >= 0; got {beta!r}.")


def vae_objective(
  vae: VAE, *, beta: float = 1.0, num_samples: int = 1
) -> Objective:
  """Negative (beta-)ELBO, or the IWAE bound, in bits/dim, as an objective.

  Args:
    vae: the model; ``vae.inputs`` pre-processes ``batch["image"]``.
    beta: KL weight (1: the ELBO; beta-VAE otherwise).
    num_samples: ``k``; above 1 the loss is ``-L_k`` (IWAE, Burda et al.),
      which has no KL weight, so ``beta`` must then be 1.

  Returns:
    ``objective(params, batch, key) -> (loss, metrics)``: ``loss`` the batch
    mean of the negative bound in bits/dim; metrics (batch means) of the
    ``beta = 1`` ELBO: ``bits_per_dim``, ``negative_elbo_nats``,
    ``reconstruction_nats`` (``-log p(x|z)`` with the same offset, so
    ``negative_elbo_nats = reconstruction_nats + kl_nats``) and ``kl_nats``.
  """
  _check_beta(beta)
  check_positive_int("num_samples", num_samples)
  if num_samples > 1 and beta != 1.0:
    raise ValueError(
      f"beta must be 1.0 when num_samples > 1 (the IWAE bound has no KL "
      f"weight); got beta={beta!r}, num_samples={num_samples}."
    )

  def objective(params, batch, key):
    key_inputs, key_elbo, key_iwae = jax.random.split(key, 3)
    x = vae.inputs(batch, key_inputs)
    terms = elbo(vae, params, x, key_elbo, beta=beta)
    bound = terms["elbo"]
    if num_samples > 1:
      bound = iwae_bound(vae, params, x, key_iwae, num_samples)
    nats, bits = vae_nll(vae, terms["reconstruction"] - terms["kl"])
    metrics = {
      "bits_per_dim": bits,
      "negative_elbo_nats": nats,
      "reconstruction_nats": vae_nll(vae, terms["reconstruction"])[0],
      "kl_nats": terms["kl"],
    }
    loss = jnp.mean(vae_nll(vae, bound)[1])
    return loss, {k: jnp.mean(v) for k, v in metrics.items()}

  return objective


def vae_per_example(
  vae: VAE, *, num_importance_samples: int, chunk_size: int = 100
) -> Callable[[Any, dict, jax.Array], dict]:
  """Per-example evaluation: importance-sampled NLL and the ELBO.

  ``"nll_nats"`` and ``"bits_per_dim"`` come from ``-L_k`` with
  ``k = num_importance_samples`` (Burda et al.'s evaluation uses
  ``k = 5000``): a stochastic upper bound on the NLL, ``E[-L_k] >= -log
  p(x)``, that tightens as ``k`` grows. ``"elbo_bits_per_dim"``,
  ``"negative_elbo_nats"`` and ``"kl_nats"`` come from one ELBO sample.
  ``key`` is split the same way as in ``vae_objective``: inputs
  (binarisation or dequantisation), ELBO sample, importance samples.
  ``chunk_size`` bounds the importance samples decoded at once.

  Returns:
    ``per_example(params, batch, key) -> dict`` of ``(B,)`` arrays.
  """
  check_positive_int("num_importance_samples", num_importance_samples)
  check_positive_int("chunk_size", chunk_size)

  def per_example(params, batch, key):
    key_inputs, key_elbo, key_iwae = jax.random.split(key, 3)
    x = vae.inputs(batch, key_inputs)
    terms = elbo(vae, params, x, key_elbo)
    bound = iwae_bound(
      vae, params, x, key_iwae, num_importance_samples, chunk_size=chunk_size
    )
    nats, bits = vae_nll(vae, bound)
    elbo_nats, elbo_bits = vae_nll(vae, terms["elbo"])
    return {
      "bits_per_dim": bits,
      "nll_nats": nats,
      "elbo_bits_per_dim": elbo_bits,
      "negative_elbo_nats": elbo_nats,
      "kl_nats": terms["kl"],
    }

  return per_example
