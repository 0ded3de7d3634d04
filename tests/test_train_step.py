"""The train step: non-finite guard, skip counters, EMA."""

from __future__ import annotations

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
