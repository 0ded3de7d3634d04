"""bfloat16 compute with a float32 likelihood: with ``compute_dtype=
"bfloat16"`` the networks compute in bfloat16 while params, gradients,
log-determinants, priors and the objective stay float32, and a trained
flow's log-density moves by a stated tolerance."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jaxprs import equations

from flowjax_gen import models, objectives, preprocess
from flowjax_gen.training import loop

BF16 = jnp.dtype(jnp.bfloat16)
F32 = jnp.dtype(jnp.float32)


def _small_glow(compute_dtype=None):
  return models.glow(
    (8, 8, 1),
    levels=2,
    steps_per_level=2,
    hidden_channels=8,
    compute_dtype=compute_dtype,
  )


def test_the_step_computes_networks_in_bfloat16_and_sums_in_float32():
  flow = _small_glow("bfloat16")
  pixels = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1), np.uint8)
  batch = {"image": pixels}
  x = preprocess.dequantize(jax.random.key(0), pixels, 8)
  params = flow.init(jax.random.key(1), x)
  assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {F32}
  objective = objectives.flow_nll(flow.log_prob, n_bits=8)
  key = jax.random.key(2)
  forward = equations(jax.make_jaxpr(objective)(params, batch, key).jaxpr)
  # The coupling networks' convolutions run in bfloat16 ...
  low = [
    e
    for e in forward
    if e.primitive.name in ("dot_general", "conv_general_dilated")
    and e.outvars[0].aval.dtype == BF16
  ]
  assert low, "no network computes in bfloat16"
  # ... while every sum of the objective (log-determinants, prior terms,
  # the mean loss) is float32.
  sums = [
    e.outvars[0].aval.dtype
    for e in forward
    if e.primitive.name == "reduce_sum"
    and jnp.issubdtype(e.outvars[0].aval.dtype, jnp.floating)
  ]
  assert sums and set(sums) == {F32}, sums
  # The step's loss and gradients are float32 (the networks' backward
  # pass runs in bfloat16 and its gradients are cast back).
  step = jax.value_and_grad(objective, has_aux=True)
  outputs = jax.make_jaxpr(step)(params, batch, key).jaxpr.outvars
  assert {v.aval.dtype for v in outputs} == {F32}


def _train_tabular(flow, data, steps=300):
  params = flow.init(jax.random.key(0), data)
  optimizer = optax.adam(3e-3)
  state = optimizer.init(params)

  @jax.jit
  def update(params, state):
    loss, grads = jax.value_and_grad(
      lambda p: -jnp.mean(flow.log_prob(p, data))
    )(params)
    updates, state = optimizer.update(grads, state)
    return optax.apply_updates(params, updates), state, loss

  for _ in range(steps):
    params, state, _ = update(params, state)
  return params


@pytest.mark.parametrize("name", ["nsf", "maf"])
def test_trained_tabular_flows_score_within_tolerance_in_bfloat16(name):
  """Trained on correlated 8-d data: in bfloat16 the mean log-density
  moves by under 0.01 nats per dimension and no example's by more than
  0.25 (measured: at most 0.11, mean of the absolute change 0.005-0.007:
  bfloat16 keeps 8 bits of mantissa, and MAF's errors compound over its
  layers)."""
  rng = np.random.default_rng(1)
  mixing = rng.standard_normal((8, 8)) / 3
  data = jnp.asarray(np.tanh(rng.standard_normal((256, 8)) @ mixing) * 2)
  factory = getattr(models, name)
  full = factory((8,), hidden_features=(32, 32))
  low = factory((8,), hidden_features=(32, 32), compute_dtype="bfloat16")
  params = _train_tabular(full, data)
  a = np.asarray(jax.jit(full.log_prob)(params, data))
  b = np.asarray(jax.jit(low.log_prob)(params, data))
  assert b.dtype == np.float32 and np.isfinite(b).all()
  assert abs(float(a.mean() - b.mean())) / 8 < 0.01
  np.testing.assert_allclose(b / 8, a / 8, atol=0.25)


@pytest.mark.slow
def test_trained_digits_glow_scores_within_tolerance_in_bfloat16(tmp_path):
  """A Glow trained 300 steps on the digits: in bfloat16 the test mean
  moves by under 0.005 bits/dim and no example by more than 0.05."""
  config = importlib.import_module("configs.glow_digits").get_config("smoke")
  config = config.to_dict()
  config.update(
    num_steps=300,
    eval_every=1000,
    checkpoint_every=1000,
    log_every=100,
    num_train_examples=1500,
    num_test_examples=297,
    batch_size=64,
  )
  loop.train_and_evaluate(config, str(tmp_path / "run"))
  from flowjax_gen import runs  # noqa: PLC0415

  experiment, state, _ = runs.load_trained(str(tmp_path / "run"))
  kwargs = config["model_kwargs"]
  full = models.glow((8, 8, 1), **kwargs)
  low = models.glow((8, 8, 1), **kwargs, compute_dtype="bfloat16")
  x = preprocess.dequantize(
    jax.random.key(0), experiment.test_source["image"], 8
  )
  scale = 64 * np.log(2)
  a = np.asarray(jax.jit(full.log_prob)(state.ema_params, x)) / scale
  b = np.asarray(jax.jit(low.log_prob)(state.ema_params, x)) / scale
  assert np.isfinite(b).all()
  assert abs(float(a.mean() - b.mean())) < 0.005
  np.testing.assert_allclose(b, a, atol=0.05)


@pytest.mark.parametrize(
  "name",
  ["glow_digits", "vae_digits", "ae_digits", "gan_digits", "classifier_digits"],
)
def test_every_family_trains_in_bfloat16(name, tmp_path):
  config = importlib.import_module(f"configs.{name}").get_config("smoke")
  config = config.to_dict()
  config.update(compute_dtype="bfloat16", num_steps=2)
  result = loop.train_and_evaluate(config, str(tmp_path / "run"))
  headline = [v for k, v in result.items() if isinstance(v, float)]
  assert headline and np.all(np.isfinite(headline))
  from flowjax_gen import runs  # noqa: PLC0415

  _, state, _ = runs.load_trained(str(tmp_path / "run"))
  dtypes = {leaf.dtype for leaf in jax.tree.leaves(state.params)}
  assert dtypes == {F32}


def test_compute_dtype_is_checked():
  with pytest.raises(ValueError, match="compute_dtype must be one of"):
    _small_glow("float16")
