"""GAN losses and gradient penalties, per example, and the two objectives.

With ``l = D(x)`` the discriminator output (a logit, or a critic value),
``s`` the softplus ``log(1 + e^l)``, real data ``x ~ p_data`` and fakes
``x~ = G(z)``, ``z ~ N(0, I)``, the per-example losses (minimised) are::

    kind             discriminator                      generator
    minimax          s(-D(x)) + s(D(x~))                -s(D(x~))
    non_saturating   s(-D(x)) + s(D(x~))                s(-D(x~))
    hinge            relu(1 - D(x)) + relu(1 + D(x~))   -D(x~)
    wasserstein      D(x~) - D(x)                       -D(x~)

``minimax`` is Goodfellow et al. (2014)'s game ``min_G max_D E log
sigmoid(D(x)) + E log(1 - sigmoid(D(x~)))`` written with
``-log sigmoid(l) = s(-l)`` and ``-log(1 - sigmoid(l)) = s(l)``, stable for
any logit; its generator loss ``log(1 - sigmoid(D(x~)))`` is minus the
discriminator's fake term and saturates when ``D`` wins. ``non_saturating``
is the paper's fix, ``-log sigmoid(D(x~))``. ``hinge`` is the
geometric/hinge GAN (Lim & Ye 2017; Miyato et al. 2018). ``wasserstein``
is the WGAN critic loss (Arjovsky et al. 2017); ``D`` must then be
1-Lipschitz, enforced softly by the gradient penalty of WGAN-GP (Gulrajani
et al. 2017)::

    GP(x, x~) = (||grad_x^ D(x^)||_2 - 1)^2,  x^ = e x + (1 - e) x~,
    e ~ U[0, 1] per example,

or by R1 (Mescheder et al. 2018), ``R1(x) = ||grad_x D(x)||_2^2`` on real
data, which enters the loss as ``gamma / 2 * R1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

import jax
import jax.numpy as jnp

from flowjax_gen._checks import check_choice
from flowjax_gen.typing import Objective

if TYPE_CHECKING:  # objectives never import models at run time
  from flowjax_gen.models.gan import GAN

LOSSES = ("minimax", "non_saturating", "hinge", "wasserstein")
# ``x -> (B,)``, output ``i`` a function of ``x[i]`` alone (no batch norm).
Critic = Callable[[jax.Array], jax.Array]


def discriminator_loss(
  kind: str, real_logits: jax.Array, fake_logits: jax.Array
) -> jax.Array:
  """Per-example discriminator loss ``(B,)`` (table in the module docstring).

  Example ``i`` pairs real ``i`` with fake ``i``; both are ``(B,)``.
  """
  check_choice("kind", kind, LOSSES)
  if jnp.shape(real_logits) != jnp.shape(fake_logits):
    raise ValueError(
      f"real_logits and fake_logits must have the same shape; got "
      f"{jnp.shape(real_logits)} and {jnp.shape(fake_logits)}."
    )
  if kind == "hinge":
    return jax.nn.relu(1.0 - real_logits) + jax.nn.relu(1.0 + fake_logits)
  if kind == "wasserstein":
    return fake_logits - real_logits
  return jax.nn.softplus(-real_logits) + jax.nn.softplus(fake_logits)


def generator_loss(kind: str, fake_logits: jax.Array) -> jax.Array:
  """Per-example generator loss ``(B,)`` (table in the module docstring)."""
  check_choice("kind", kind, LOSSES)
  if kind == "minimax":
    return -jax.nn.softplus(fake_logits)
  if kind == "non_saturating":
    return jax.nn.softplus(-fake_logits)
  return -fake_logits


def _input_gradients(critic_fn: Critic, x: jax.Array) -> jax.Array:
  # D(x_i) depends on x_i alone (no batch norm in the critic), so the
  # gradient of the sum holds every per-example input gradient.
  return jax.grad(lambda x: jnp.sum(critic_fn(x)))(x)


def _squared_norms(g: jax.Array) -> jax.Array:
  return jnp.sum(jnp.square(g).reshape(g.shape[0], -1), axis=1)


def gradient_penalty(
  critic_fn: Critic, real: jax.Array, fake: jax.Array, key: jax.Array
) -> jax.Array:
  """WGAN-GP penalty ``(||grad D(x^)||_2 - 1)^2`` per example ``(B,)``.

  Args:
    critic_fn: ``x -> (B,)``, output ``i`` a function of ``x[i]`` only.
    real, fake: batches of the same shape ``(B, ...)``.
    key: draws the interpolation weights ``e ~ U[0, 1]``, one per example.
  """
  if jnp.shape(real) != jnp.shape(fake):
    raise ValueError(
      f"real and fake must have the same shape; got {jnp.shape(real)} and "
      f"{jnp.shape(fake)}."
    )
  shape = (real.shape[0],) + (1,) * (real.ndim - 1)
  e = jax.random.uniform(key, shape, real.dtype)
  x_hat = e * real + (1.0 - e) * fake
  # The small constant keeps the derivative of the norm finite when a
  # gradient vanishes (d||g||/dg = g/||g||); it moves the norm by <= 1e-6.
  norms = jnp.sqrt(_squared_norms(_input_gradients(critic_fn, x_hat)) + 1e-12)
  return jnp.square(norms - 1.0)


def r1_penalty(critic_fn: Critic, real: jax.Array) -> jax.Array:
  """R1 penalty ``||grad_x D(x)||_2^2`` on real data, per example ``(B,)``.

  Unweighted: the caller multiplies by ``gamma / 2`` (``gan_objectives`` does,
  with ``gamma = r1_weight``).
  """
  return _squared_norms(_input_gradients(critic_fn, real))


def _check_weight(name: str, value: Any) -> float:
  if (
    isinstance(value, bool)
    or not isinstance(value, (int, float))
    or not 0.0 <= value < float("inf")
  ):
    raise ValueError(f"{name} must be a finite float >= 0; got {value!r}.")
  return float(value)


def _logits(gan: GAN, params: Any, batch: dict, key: jax.Array):
  """Real images, fakes (as many as reals) and both logits."""
  real = gan.inputs(batch)
  z = jax.random.normal(key, (real.shape[0], gan.latent_size), real.dtype)
  fake = gan.generate(params, z)
  real_logits = gan.discriminate(params, real)
  return real, fake, real_logits, gan.discriminate(params, fake)


def gan_objectives(
  gan: GAN,
  *,
  loss: str = "non_saturating",
  gradient_penalty_weight: Optional[float] = None,
  r1_weight: float = 0.0,
) -> dict[str, Objective]:
  """The two players' objectives ``(params, batch, key) -> (loss, metrics)``.

  Both take the full ``params = {"generator": ..., "discriminator": ...}``.
  One training step alternates: differentiate ``"discriminator"`` with
  respect to ``params["discriminator"]`` only and apply that update; then
  differentiate ``"generator"`` with respect to ``params["generator"]`` only,
  with the updated discriminator. Each objective also stops the gradient to
  the other player's half (the fakes in the first, the discriminator in the
  second), so a gradient over the full dict is zero outside the player's own
  half; zero gradients still move a stateful optimiser (momentum, weight
  decay), so update each half with its own optimiser regardless.

  The discriminator loss is ``mean_i [ L_D(x_i, x~_i) + w_gp GP_i + gamma / 2
  R1_i ]`` with ``B`` fakes for ``B`` reals, ``z`` drawn from ``key``; the
  generator loss is ``mean_i L_G(x~_i)``, ``z`` drawn from ``key`` too.

  Args:
    gan: the model (``models.gan``).
    loss: one of ``LOSSES``.
    gradient_penalty_weight: ``w_gp`` of WGAN-GP; ``None`` means 10 (the
      paper's) for ``"wasserstein"`` and 0 otherwise. ``"wasserstein"`` with
      0 is allowed, but the critic is then unconstrained and its loss can
      diverge (the original WGAN clipped weights, which is not provided).
    r1_weight: ``gamma`` of the R1 penalty (0 turns it off).

  Returns:
    ``{"discriminator": objective, "generator": objective}``. Metrics
    (batch means) of the first: ``"discriminator_loss"`` (without the
    penalties), ``"real_score"`` and ``"fake_score"`` (mean ``D`` output), and
    ``"gradient_penalty"`` / ``"r1_penalty"`` when their weight is positive;
    of the second: ``"generator_loss"``. The key sets are disjoint, so the
    two dicts merge without loss.
  """
  check_choice("loss", loss, LOSSES)
  if gradient_penalty_weight is None:
    gradient_penalty_weight = 10.0 if loss == "wasserstein" else 0.0
  gp_weight = _check_weight("gradient_penalty_weight", gradient_penalty_weight)
  r1_weight = _check_weight("r1_weight", r1_weight)

  def discriminator_objective(params, batch, key):
    key_z, key_gp = jax.random.split(key)
    generator_params = jax.lax.stop_gradient(params["generator"])
    params = {**params, "generator": generator_params}
    real, fake, real_logits, fake_logits = _logits(gan, params, batch, key_z)
    adversarial = jnp.mean(discriminator_loss(loss, real_logits, fake_logits))
    metrics = {
      "discriminator_loss": adversarial,
      "real_score": jnp.mean(real_logits),
      "fake_score": jnp.mean(fake_logits),
    }
    total = adversarial

    def critic(x):
      return gan.discriminate(params, x)

    if gp_weight > 0.0:
      penalty = jnp.mean(gradient_penalty(critic, real, fake, key_gp))
      metrics["gradient_penalty"] = penalty
      total = total + gp_weight * penalty
    if r1_weight > 0.0:
      penalty = jnp.mean(r1_penalty(critic, real))
      metrics["r1_penalty"] = penalty
      total = total + r1_weight / 2.0 * penalty
    return total, metrics

  def generator_objective(params, batch, key):
    discriminator_params = jax.lax.stop_gradient(params["discriminator"])
    params = {**params, "discriminator": discriminator_params}
    n = jnp.shape(batch["image"])[0]
    z = jax.random.normal(key, (n, gan.latent_size), jnp.float32)
    value = jnp.mean(
      generator_loss(loss, gan.discriminate(params, gan.generate(params, z)))
    )
    return value, {"generator_loss": value}

  return {
    "discriminator": discriminator_objective,
    "generator": generator_objective,
  }


def gan_per_example(
  gan: GAN, *, loss: str = "non_saturating"
) -> Callable[[Any, dict, jax.Array], dict]:
  """``per_example(params, batch, key) -> dict of (B,)`` for evaluation.

  Keys: ``"discriminator_loss"`` and ``"generator_loss"`` (without
  penalties), ``"real_score"`` and ``"fake_score"`` (``D`` outputs), with
  one fake per real, ``z`` drawn from ``key``.
  """
  check_choice("loss", loss, LOSSES)

  def per_example(params, batch, key):
    _, _, real_logits, fake_logits = _logits(gan, params, batch, key)
    return {
      "discriminator_loss": discriminator_loss(loss, real_logits, fake_logits),
      "generator_loss": generator_loss(loss, fake_logits),
      "real_score": real_logits,
      "fake_score": fake_logits,
    }

  return per_example
