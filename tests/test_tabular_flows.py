"""nsf and maf: train a few steps on a 2-D toy density, sample, condition."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flowjax_gen import data, models


def _train(flow, x, steps, context=None):
  params = flow.init(
    jax.random.key(0), x[:64], None if context is None else context[:64]
  )
  optimiser = optax.adam(3e-3)
  state = optimiser.init(params)

  def loss_fn(params, batch, ctx):
    return -jnp.mean(flow.log_prob(params, batch, ctx))

  @jax.jit
  def step(params, state, batch, ctx):
    loss, grads = jax.value_and_grad(loss_fn)(params, batch, ctx)
    updates, state = optimiser.update(grads, state)
    return optax.apply_updates(params, updates), state, loss

  losses = []
  for i in range(steps):
    rows = slice((i * 128) % x.shape[0], (i * 128) % x.shape[0] + 128)
    ctx = None if context is None else context[rows]
    params, state, loss = step(params, state, x[rows], ctx)
    losses.append(float(loss))
  return params, np.asarray(losses)


@pytest.mark.parametrize(
  "make",
  [
    lambda: models.nsf((2,), num_layers=2, hidden_features=(16,), num_bins=6),
    lambda: models.maf((2,), num_layers=2, hidden_features=(16, 16)),
    lambda: models.maf(
      (2,), num_layers=2, hidden_features=(16,), transformer="spline"
    ),
  ],
)
def test_loss_decreases_on_two_moons(make):
  flow = make()
  x = data.load("two_moons", "train", num_examples=2048)["image"] / 2.0
  params, losses = _train(flow, jnp.asarray(x), steps=60)
  assert np.isfinite(losses).all()
  assert losses[-10:].mean() < losses[:5].mean() - 0.2, losses
  samples = jax.jit(flow.sample, static_argnums=2)(params, jax.random.key(1), 5)
  assert samples.shape == (5, 2)
  back = flow.decode(params, flow.encode(params, samples))
  np.testing.assert_allclose(back, samples, atol=1e-4)


def test_conditional_maf_reads_the_context():
  flow = models.maf((2,), num_layers=1, hidden_features=(16,))
  source = data.load("8gaussians", "train", num_examples=1024)
  x = jnp.asarray(source["image"])
  context = jax.nn.one_hot(jnp.asarray(source["label"]), 8)
  params, losses = _train(flow, x, steps=40, context=context)
  assert losses[-5:].mean() < losses[:5].mean()
  point = jnp.zeros((8, 2))
  log_p = flow.log_prob(params, point, jnp.eye(8))
  assert float(jnp.std(log_p)) > 0  # the class changes the density
