"""The train step: non-finite guard, skip counters, EMA."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from configs import glow_digits

from flowjax_gen.training import data_mesh, loop, replicate, shard_batch, tasks
from flowjax_gen.training.state import create_state
from flowjax_gen.training.step import make_train_step


def objective(params, batch, key):
  """Squared error whose loss turns NaN when the batch holds a NaN."""
  del key
  loss = jnp.mean((batch["image"] * params["w"] - 1.0) ** 2)
  return loss, {"bits_per_dim": loss}


def test_non_finite_updates_are_skipped_and_counted():
  mesh = data_mesh()
  optimizer = optax.sgd(0.1)
  step = make_train_step(objective, optimizer, mesh, seed=0, ema_decay=0.5)
  state = replicate(create_state({"w": jnp.zeros((2,))}, optimizer), mesh)
  good = shard_batch({"image": np.ones((4, 2), np.float32)}, mesh)
  bad = shard_batch({"image": np.full((4, 2), np.nan, np.float32)}, mesh)

  state, metrics = step(state, good)
  w_after_good = np.asarray(state.params["w"])
  ema_after_good = np.asarray(state.ema_params["w"])
  assert np.all(w_after_good > 0) and int(metrics["skipped"]) == 0
  # EMA decay warms up: (1 + 0) / (10 + 0) = 0.1 at step 0.
  np.testing.assert_allclose(ema_after_good, 0.9 * w_after_good, rtol=1e-6)

  for expected in (1, 2):
    state, metrics = step(state, bad)
    assert int(metrics["skipped"]) == expected
    assert int(state.consecutive_skipped) == expected
    np.testing.assert_array_equal(state.params["w"], w_after_good)
    np.testing.assert_array_equal(state.ema_params["w"], ema_after_good)
  assert int(state.step) == 3

  state, _ = step(state, good)
  assert int(state.consecutive_skipped) == 0 and int(state.skipped) == 2
  assert not np.allclose(state.params["w"], w_after_good)


def test_guard_stops_training_with_a_clear_message(tmp_path, monkeypatch):
  config = glow_digits.get_config("smoke").to_dict()
  config.update(
    num_steps=6, max_consecutive_skips=2, eval_every=100, checkpoint_every=100
  )
  original = tasks.objectives.flow_nll

  def poisoned(*args, **kwargs):
    inner = original(*args, **kwargs)

    def objective(params, batch, key):
      loss, metrics = inner(params, batch, key)
      return loss * jnp.nan, metrics

    return objective

  monkeypatch.setattr(tasks.objectives, "flow_nll", poisoned)
  with pytest.raises(loop.NonFiniteLossError, match="2 consecutive updates"):
    loop.train_and_evaluate(config, str(tmp_path))


def _many_leaf_objective(params, batch, key):
  """Each leaf's gradient is its own: leaf ``i`` sees ``log(w_i)``, so a
  leaf at 0 has an infinite gradient while the others stay finite."""
  del key
  loss = sum(
    jnp.mean(batch["image"] * jnp.log(w)) for w in jax.tree.leaves(params)
  )
  return -loss, {"bits_per_dim": -loss}


def _leaves(n: int, value: float = 1.0) -> dict:
  return {f"w{i:03d}": jnp.full((3,), value) for i in range(n)}


def test_one_non_finite_leaf_of_many_skips_the_whole_update():
  mesh = data_mesh()
  optimizer = optax.adam(0.1)
  step = make_train_step(_many_leaf_objective, optimizer, mesh, seed=0)
  params = _leaves(5)
  params["w002"] = jnp.array([1.0, 0.0, 1.0])  # d/dw log(w) = inf at 0
  state = replicate(create_state(params, optimizer), mesh)
  batch = shard_batch({"image": np.ones((4, 1), np.float32)}, mesh)
  before = jax.device_get(state)
  state, metrics = step(state, batch)
  assert int(metrics["skipped"]) == 1 and int(state.consecutive_skipped) == 1
  for got, want in zip(
    jax.tree.leaves(jax.device_get(state.params)),
    jax.tree.leaves(before.params),
    strict=True,
  ):
    np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(
    np.concatenate([np.ravel(x) for x in jax.tree.leaves(state.opt_state)]),
    np.concatenate([np.ravel(x) for x in jax.tree.leaves(before.opt_state)]),
  )


def test_compiled_step_grows_linearly_with_the_number_of_leaves():
  """The guard's verdict must reach every leaf without XLA copying the
  check of every other leaf into each one (a program quadratic in the
  number of leaves: a RealNVP step with 400 leaves took minutes to compile).
  """
  mesh = data_mesh()
  optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
  step = make_train_step(
    _many_leaf_objective, optimizer, mesh, seed=0, ema_decay=0.99
  )
  batch = shard_batch({"image": np.ones((4, 1), np.float32)}, mesh)

  def compiled_size(n: int) -> int:
    state = replicate(create_state(_leaves(n), optimizer), mesh)
    return len(step.lower(state, batch).compile().as_text())

  small, large = compiled_size(8), compiled_size(64)
  # 8x the leaves: about 8x the program when linear, ~64x when quadratic.
  assert large / small < 12, (small, large)
