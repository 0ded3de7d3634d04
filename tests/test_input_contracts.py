"""What a flow refuses at its boundary, and what it keeps: each test is a
wrong input that once gave a plausible number or an unreadable error.

Every refusal is a ``ValueError`` raised before any compute, from shapes and
dtypes (so also inside ``jit``), that says what was given and what to pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax_gen import models, objectives, preprocess

KEY = jax.random.key(0)
SHAPE = (4, 4, 1)
BATCH = 4


def tiny_glow():
  return models.glow(SHAPE, levels=1, steps_per_level=1, hidden_channels=4)


def pixels():
  return np.arange(BATCH * 16, dtype=np.uint8).reshape(BATCH, *SHAPE) * 3


@pytest.fixture(scope="module")
def unconditional():
  flow = tiny_glow()
  x = preprocess.dequantize(KEY, pixels(), 8)
  return flow, flow.init(KEY, x), x


@pytest.fixture(scope="module")
def conditional():
  flow = tiny_glow()
  x = preprocess.dequantize(KEY, pixels(), 8)
  context = jax.nn.one_hot(jnp.arange(BATCH) % 3, 3)
  return flow, flow.init(KEY, x, context), x, context


# Integer or bool data: a flow models continuous values.


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.bool_])
def test_integer_and_bool_data_are_refused_naming_dequantize(
  unconditional, dtype
):
  flow, params, _ = unconditional
  data = pixels().astype(dtype)
  for call in (
    lambda: flow.log_prob(params, data),
    lambda: flow.encode(params, data),
    lambda: flow.init(KEY, data),
    lambda: jax.jit(flow.log_prob)(params, data),
  ):
    with pytest.raises(ValueError, match="dequantize"):
      call()


# dequantize / reduce_bits: values off the 8-bit grid.


def test_dequantize_refuses_floats_already_in_unit_interval():
  scaled = pixels() / 256.0
  with pytest.raises(ValueError, match=r"already scaled to \[0, 1\)") as info:
    objectives.dequantize(KEY, scaled, n_bits=8)
  assert "n_bits=0" in str(info.value)  # what to pass instead


@pytest.mark.parametrize(
  "values, message",
  [
    (np.full((2, 3), 12.5), "non-integer"),
    (np.full((2, 3), np.nan), "non-integer"),
    (np.full((2, 3), 300.0), "0 to 300"),
    (np.full((2, 3), -1, np.int32), "-1 to -1"),
    (np.ones((2, 3), np.bool_), "dtype bool"),
  ],
)
def test_dequantize_refuses_values_off_the_8_bit_grid(values, message):
  with pytest.raises(ValueError, match=message):
    preprocess.dequantize(None, values, 8)
  with pytest.raises(ValueError, match=message):
    preprocess.reduce_bits(values, 5)


def test_dequantize_accepts_levels_of_any_dtype():
  levels = np.arange(256).reshape(1, 256)
  for dtype in (np.uint8, np.int32, np.float32):
    x = np.asarray(preprocess.dequantize(None, levels.astype(dtype), 8))
    np.testing.assert_allclose(x, (levels + 0.5) / 256)


def test_flow_objective_refuses_integer_pixels_declared_continuous(
  unconditional,
):
  flow, params, _ = unconditional
  objective = objectives.flow_nll(flow.log_prob, n_bits=None)
  for run in (objective, jax.jit(objective)):
    with pytest.raises(ValueError, match="n_bits"):
      run(params, {"image": pixels()}, KEY)


@pytest.mark.parametrize("jit", [False, True])
def test_flow_objective_refuses_scaled_pixels_and_no_key_under_jit_too(
  unconditional, jit
):
  """Pixels already scaled to [0, 1) once scored 9.863 bits/dim under
  ``jit`` (the value checks need concrete arrays); the dtype tells."""
  flow, params, _ = unconditional
  objective = objectives.flow_nll(flow.log_prob, n_bits=8)
  run = jax.jit(objective) if jit else objective
  with pytest.raises(ValueError, match="pixels come as integer levels"):
    run(params, {"image": pixels() / 256.0}, KEY)
  with pytest.raises(ValueError, match="key is None"):
    run(params, {"image": pixels()}, None)
  loss, _ = run(params, {"image": pixels()}, KEY)
  assert np.isfinite(float(loss))


# A NaN in the init batch.


def test_non_finite_init_batch_raises():
  flow = tiny_glow()
  x = np.array(preprocess.dequantize(KEY, pixels(), 8))
  x[1, 2, 3, 0] = np.nan
  with pytest.raises(ValueError, match="1 non-finite"):
    flow.init(KEY, x)
  x[1, 2, 3, 0] = np.inf
  with pytest.raises(ValueError, match="non-finite"):
    flow.init(KEY, x)


# Params that did not come from this flow's init.


def foreign_params(kind, params, x):
  if kind == "None":
    return None, "got None"
  if kind == "empty":
    return {}, "got {}"
  if kind == "other glow":
    other = models.glow(SHAPE, levels=1, steps_per_level=1, hidden_channels=8)
    return jax.eval_shape(other.init, KEY, x), "(1, 8), expected (1, 4)"
  # Actnorm's params emptied (once a KeyError deep inside the layer):
  # params = (shift, ((squeeze, (actnorm, conv, coupling), prior),)).
  squeeze, step, prior = params[1][0]
  return (params[0], ((squeeze, ({}, *step[1:]), prior),)), "tree differs"


@pytest.mark.parametrize("kind", ["None", "empty", "other glow", "actnorm {}"])
@pytest.mark.parametrize("method", ["log_prob", "encode", "sample", "jit"])
def test_params_not_from_this_flow_are_refused(unconditional, kind, method):
  flow, params, x = unconditional
  given, detail = foreign_params(kind, params, x)
  if method == "sample":
    call = lambda: flow.sample(given, KEY, 2)  # noqa: E731
  elif method == "jit":
    call = lambda: jax.jit(flow.log_prob)(given, x)  # noqa: E731
  else:
    call = lambda: getattr(flow, method)(given, x)  # noqa: E731
  with pytest.raises(ValueError, match="not made by this flow's init") as info:
    call()
  assert detail in str(info.value)


def test_a_flow_never_initialised_checks_params_against_its_init(
  unconditional,
):
  """Params loaded from elsewhere (no ``init`` in this process) are checked
  against ``jax.eval_shape`` of ``init`` rather than a recorded tree."""
  flow, params, x = unconditional
  np.testing.assert_allclose(
    tiny_glow().log_prob(params, x), flow.log_prob(params, x)
  )
  given, detail = foreign_params("other glow", params, x)
  with pytest.raises(ValueError, match="not made by this flow's init") as info:
    tiny_glow().log_prob(given, x)
  assert detail in str(info.value)


def test_decode_refuses_foreign_params(unconditional):
  flow, params, x = unconditional
  latents = flow.encode(params, x)
  with pytest.raises(ValueError, match="not made by this flow's init"):
    flow.decode(None, latents)


# Contexts of a conditional flow (and of an unconditional one).


def test_conditional_flow_refuses_missing_and_mis_shaped_contexts(conditional):
  flow, params, x, context = conditional
  cases = [
    (
      lambda: flow.log_prob(params, x),
      r"context of shape \(batch, 3\); got no",
    ),
    (lambda: flow.sample(params, KEY, BATCH), r"\(batch, 3\); got no context"),
    (
      lambda: flow.log_prob(params, x, jnp.ones((BATCH, 5))),
      r"\(batch, 3\); got a context of shape \(batch, 5\)",
    ),
    (
      lambda: flow.log_prob(params, x, jnp.arange(BATCH)),
      r"dtype int32 \(shape \(4,\)\).*one_hot",
    ),
    (
      lambda: flow.log_prob(params, x, context[:1]),
      r"shape \(4, \.\.\.\); got shape \(1, 3\)",
    ),
    (
      lambda: flow.sample(params, KEY, 2, context=context),
      r"shape \(2, \.\.\.\); got shape \(4, 3\)",
    ),
  ]
  for call, message in cases:
    with pytest.raises(ValueError, match=message):
      call()
  # None of them is a Flax scope error, under jit either.
  log_prob = jax.jit(flow.log_prob)
  for given, message in (
    (None, "got no context"),
    (jnp.ones((BATCH, 5)), r"got a context of shape \(batch, 5\)"),
    (jnp.arange(BATCH), "dtype int32"),
    (context[:1], r"got shape \(1, 3\)"),
  ):
    with pytest.raises(ValueError, match=message):
      log_prob(params, x, given)


def test_unconditional_flow_refuses_a_context(unconditional):
  flow, params, x = unconditional
  context = jax.nn.one_hot(jnp.arange(BATCH) % 3, 3)
  with pytest.raises(ValueError, match="initialised with no context"):
    flow.log_prob(params, x, context)
  # A flow rebuilt for these params (init never called on it) tells from
  # the params alone.
  with pytest.raises(ValueError, match="unconditional flow.*Drop context"):
    tiny_glow().log_prob(params, x, context)


def test_rebuilt_flow_names_the_context_of_conditional_params(conditional):
  _, params, x, context = conditional
  rebuilt = tiny_glow()
  with pytest.raises(ValueError, match="pass the context"):
    rebuilt.log_prob(params, x)
  assert rebuilt.log_prob(params, x, context).shape == (BATCH,)


# float64 end to end.


@pytest.mark.parametrize("data_dtype", ["float32", "float64"])
def test_float64_end_to_end_and_params_of_one_dtype(data_dtype):
  with jax.enable_x64(True):
    flow = tiny_glow()
    x = preprocess.dequantize(KEY, pixels(), 8).astype(data_dtype)
    params = flow.init(KEY, x)
    dtypes = {str(leaf.dtype) for leaf in jax.tree.leaves(params)}
    assert dtypes == {data_dtype}
    assert flow.log_prob(params, x).dtype == data_dtype
    latents = flow.encode(params, x)
    assert {str(z.dtype) for z in jax.tree.leaves(latents)} == {data_dtype}
    back = flow.decode(params, latents)
    assert back.dtype == data_dtype
    np.testing.assert_allclose(np.asarray(back), np.asarray(x), atol=1e-5)
    samples = flow.sample(params, KEY, 3)
    assert samples.dtype == data_dtype and samples.shape == (3, *SHAPE)
    assert np.isfinite(np.asarray(samples)).all()
