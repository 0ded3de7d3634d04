"""GAN: losses against hand formulas, penalties against closed forms, the
networks' shapes and ranges, and the two objectives' gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax_gen.models.gan import gan
from flowjax_gen.nets.discriminators import DCGANDiscriminator
from flowjax_gen.nets.generators import DCGANGenerator
from flowjax_gen.objectives.gan import (
  LOSSES,
  discriminator_loss,
  gan_objectives,
  gan_per_example,
  generator_loss,
  gradient_penalty,
  r1_penalty,
)

SMALL = {
  "latent_size": 4,
  "generator_channels": (8, 4),
  "discriminator_channels": (4, 8),
}
REAL = np.array([-2.0, 0.0, 3.0], np.float32)
FAKE = np.array([1.0, -1.0, 0.5], np.float32)


def softplus(x):
  return np.log1p(np.exp(x))


def relu(x):
  return np.maximum(x, 0.0)


@pytest.mark.parametrize(
  "kind, expected_d, expected_g",
  [
    (
      "minimax",
      softplus(-REAL) + softplus(FAKE),
      np.log(1.0 - 1.0 / (1.0 + np.exp(-FAKE))),
    ),
    (
      "non_saturating",
      -np.log(1.0 / (1.0 + np.exp(-REAL)))
      - np.log(1.0 - 1.0 / (1.0 + np.exp(-FAKE))),
      -np.log(1.0 / (1.0 + np.exp(-FAKE))),
    ),
    ("hinge", relu(1.0 - REAL) + relu(1.0 + FAKE), -FAKE),
    ("wasserstein", FAKE - REAL, -FAKE),
  ],
)
def test_losses_equal_hand_formulas(kind, expected_d, expected_g):
  d = discriminator_loss(kind, jnp.asarray(REAL), jnp.asarray(FAKE))
  g = generator_loss(kind, jnp.asarray(FAKE))
  assert d.shape == g.shape == (3,)
  np.testing.assert_allclose(d, expected_d, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(g, expected_g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", LOSSES)
def test_loss_directions(kind):
  low, high = jnp.full((4,), -0.5), jnp.full((4,), 0.5)
  # D wins when real logits are high and fake logits low.
  winning = discriminator_loss(kind, high, low)
  losing = discriminator_loss(kind, low, high)
  assert winning.shape == (4,)
  assert bool(jnp.all(winning < losing))
  # Every generator loss falls as D rates the fakes as more real.
  logits = jnp.linspace(-3.0, 3.0, 7)
  assert bool(jnp.all(jnp.diff(generator_loss(kind, logits)) < 0))


def test_minimax_generator_loss_is_minus_the_fake_term():
  real, fake = jnp.asarray(REAL), jnp.asarray(FAKE)
  fake_term = discriminator_loss("minimax", real, fake) - jax.nn.softplus(-real)
  np.testing.assert_allclose(
    generator_loss("minimax", fake), -fake_term, rtol=1e-6
  )


def test_hinge_discriminator_loss_is_zero_beyond_the_margins():
  real = jnp.array([1.0, 2.5, 10.0])
  fake = jnp.array([-1.0, -4.0, -1.5])
  np.testing.assert_array_equal(discriminator_loss("hinge", real, fake), 0.0)


def _linear_critic(w):
  return lambda x: jnp.sum(x * w, axis=(1, 2, 3))


@pytest.mark.parametrize("norm", [1.0, 0.5, 3.0])
def test_penalties_of_a_linear_critic(norm):
  rng = np.random.default_rng(0)
  w = rng.normal(size=(8, 8, 1)).astype(np.float32)
  w = jnp.asarray(w / np.linalg.norm(w) * norm)
  real = jnp.asarray(rng.uniform(-1, 1, size=(5, 8, 8, 1)), jnp.float32)
  fake = jnp.asarray(rng.uniform(-1, 1, size=(5, 8, 8, 1)), jnp.float32)
  gp = gradient_penalty(_linear_critic(w), real, fake, jax.random.key(0))
  assert gp.shape == (5,)
  np.testing.assert_allclose(gp, (norm - 1.0) ** 2, rtol=1e-5, atol=1e-6)
  r1 = r1_penalty(_linear_critic(w), real)
  np.testing.assert_allclose(r1, np.full(5, norm**2), rtol=1e-5)


def test_gradient_penalty_interpolates_per_example():
  # D(x) = ||x||^2 / 2 has gradient x; with real = 2 (4 entries) and fake = 0,
  # ||x^_i|| = 4 e_i, so GP_i = (4 e_i - 1)^2 lies in [0, 9] for e_i in
  # [0, 1], and one e per example makes the values distinct.
  real = jnp.full((6, 2, 2, 1), 2.0)
  gp = gradient_penalty(
    lambda x: 0.5 * jnp.sum(x**2, axis=(1, 2, 3)),
    real,
    jnp.zeros_like(real),
    jax.random.key(3),
  )
  assert bool(jnp.all((gp >= 0.0) & (gp <= 9.0)))
  assert len(np.unique(np.asarray(gp))) == 6


def _random_params(model, x):
  # Real initialisation compiles slowly (every initialiser draws with
  # threefry); the shapes come from tracing ``init``, the values from numpy.
  # ``setup`` below runs the real ``init`` once.
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)
  rng = np.random.default_rng(0)
  return jax.tree.map(
    lambda s: rng.normal(size=s.shape).astype(np.float32), shapes
  )


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3)])
def test_generator_range_and_shape(shape):
  model = gan(shape, **SMALL)
  x = jnp.zeros((2,) + shape)

  @jax.jit
  def outputs(params, key):
    images = model.generate(params, 3.0 * jax.random.normal(key, (3, 4)))
    samples = model.sample(params, key, 3, temperature=0.7)
    return images, samples, model.discriminate(params, x)

  images, samples, logits = outputs(_random_params(model, x), jax.random.key(1))
  assert images.shape == samples.shape == (3,) + shape
  assert bool(jnp.all(jnp.abs(images) <= 1.0))
  assert bool(jnp.all((samples >= 0.0) & (samples <= 1.0)))
  assert logits.shape == (2,)


def test_inputs_scale_pixels_to_the_unit_interval():
  model = gan((8, 8, 1), **SMALL)
  image = np.zeros((2, 8, 8, 1), np.uint8)
  image[1] = 255
  x = model.inputs({"image": image, "label": np.zeros(2, int)})
  assert x.dtype == jnp.float32
  np.testing.assert_array_equal(x[0], -1.0)
  np.testing.assert_array_equal(x[1], 1.0)


@pytest.fixture(scope="module")
def setup():
  model = gan((8, 8, 1), **SMALL)
  rng = np.random.default_rng(0)
  batch = {
    "image": rng.integers(0, 16, size=(4, 8, 8, 1)).astype(np.uint8) * 16,
    "label": rng.integers(0, 10, size=4),
  }
  params = jax.jit(model.init)(jax.random.key(0), model.inputs(batch))
  return model, batch, params


def _norms(tree):
  return [float(jnp.abs(leaf).sum()) for leaf in jax.tree.leaves(tree)]


@pytest.mark.parametrize(
  "loss, r1_weight", [("hinge", 1.0), ("wasserstein", 0.0)]
)
def test_objectives_jit_and_update_only_their_player(setup, loss, r1_weight):
  model, batch, params = setup
  objectives = gan_objectives(model, loss=loss, r1_weight=r1_weight)
  key = jax.random.key(1)
  grads = {}
  for player, objective in objectives.items():
    value_and_grad = jax.jit(jax.value_and_grad(objective, has_aux=True))
    (value, metrics), grads[player] = value_and_grad(params, batch, key)
    assert np.isfinite(value)
    assert all(jnp.shape(m) == () for m in metrics.values())
    assert all(np.isfinite(n) for n in _norms(grads[player]))
  d_grads, g_grads = grads["discriminator"], grads["generator"]
  assert sum(_norms(d_grads["discriminator"])) > 0
  assert sum(_norms(g_grads["generator"])) > 0
  # Each objective stops the gradient to the other player.
  assert sum(_norms(d_grads["generator"])) == 0
  assert sum(_norms(g_grads["discriminator"])) == 0


def test_objective_metrics_and_penalty_weights(setup):
  model, batch, params = setup
  key = jax.random.key(2)
  loss, metrics = gan_objectives(model, loss="wasserstein")["discriminator"](
    params, batch, key
  )
  assert set(metrics) == {
    "discriminator_loss",
    "real_score",
    "fake_score",
    "gradient_penalty",
  }
  expected = metrics["discriminator_loss"] + 10.0 * metrics["gradient_penalty"]
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  loss, metrics = gan_objectives(model, r1_weight=4.0)["discriminator"](
    params, batch, key
  )
  assert "gradient_penalty" not in metrics
  expected = metrics["discriminator_loss"] + 2.0 * metrics["r1_penalty"]
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  _, metrics = gan_objectives(
    model, loss="wasserstein", gradient_penalty_weight=0.0
  )["discriminator"](params, batch, key)
  assert set(metrics) == {"discriminator_loss", "real_score", "fake_score"}
  loss, metrics = gan_objectives(model)["generator"](params, batch, key)
  assert set(metrics) == {"generator_loss"}


def test_per_example_matches_the_losses(setup):
  model, batch, params = setup
  per_example = gan_per_example(model, loss="hinge")(
    params, batch, jax.random.key(3)
  )
  assert {k: v.shape for k, v in per_example.items()} == {
    "discriminator_loss": (4,),
    "generator_loss": (4,),
    "real_score": (4,),
    "fake_score": (4,),
  }
  np.testing.assert_allclose(
    per_example["discriminator_loss"],
    discriminator_loss(
      "hinge", per_example["real_score"], per_example["fake_score"]
    ),
  )
  np.testing.assert_allclose(
    per_example["real_score"], model.discriminate(params, model.inputs(batch))
  )


@pytest.mark.parametrize(
  "make",
  [
    lambda: gan_objectives(gan((8, 8, 1)), loss="least_squares"),
    lambda: gan_objectives(gan((8, 8, 1)), gradient_penalty_weight=-1.0),
    lambda: gan_objectives(gan((8, 8, 1)), r1_weight=-0.1),
    lambda: gan_objectives(gan((8, 8, 1)), r1_weight=float("nan")),
    lambda: gan_per_example(gan((8, 8, 1)), loss="kl"),
    lambda: discriminator_loss("bce", jnp.zeros(2), jnp.zeros(2)),
    lambda: discriminator_loss("hinge", jnp.zeros(2), jnp.zeros(3)),
    lambda: generator_loss("bce", jnp.zeros(2)),
    lambda: gan((30, 28, 1)),
    lambda: gan((28, 6, 1)),
    lambda: gan((8, 8)),
    lambda: gan((8, 8, 1), latent_size=0),
    lambda: gan((8, 8, 1), generator_channels=(8,)),
    lambda: gan((8, 8, 1), discriminator_channels=(4, -8)),
    lambda: DCGANGenerator((10, 8, 1)),
    lambda: DCGANDiscriminator(channels=()),
    lambda: gradient_penalty(
      jnp.sum, jnp.zeros((2, 4)), jnp.zeros((3, 4)), jax.random.key(0)
    ),
  ],
)
def test_bad_arguments_raise(make):
  with pytest.raises(ValueError):
    make()


def test_bad_call_arguments_raise(setup):
  model, batch, params = setup
  with pytest.raises(ValueError, match="z"):
    model.generate(params, jnp.zeros((2, 5)))
  with pytest.raises(ValueError, match="n"):
    model.sample(params, jax.random.key(0), 0)
  with pytest.raises(ValueError, match="image"):
    model.inputs({"image": np.zeros((2, 9, 8, 1))})
