"""The contract every bijector and flow model meets (DESIGN.md §6)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from registry import CASES, build, make_inputs, perturb

from flowjax_gen import bijectors as fb

# Each case's tests run on one xdist worker (``--dist loadgroup``), which
# compiles the case's programs once and reuses them (``registry.jitted``).
NAMES = [
  pytest.param(name, marks=pytest.mark.xdist_group(name))
  for name in sorted(CASES)
]


def flat(tree):
  """Concatenates the per-example entries of every leaf: (batch, D)."""
  leaves = jax.tree.leaves(tree)
  return jnp.concatenate([a.reshape(a.shape[0], -1) for a in leaves], axis=1)


def max_abs_diff(a, b):
  return float(np.max(np.abs(flat(a) - flat(b))))


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_both_ways(name):
  case = CASES[name]
  bijector, params, x, context = build(name, jax.random.key(0))
  y, _ = bijector.forward_and_log_det(params, x, context)
  x_back, _ = bijector.inverse_and_log_det(params, y, context)
  assert max_abs_diff(x_back, x) < 1e-4

  # Inverse first, from a different point of the latent space.
  x_other, _ = make_inputs(case, jax.random.key(1))
  y_other, _ = bijector.forward_and_log_det(params, x_other, context)
  x_mid, _ = bijector.inverse_and_log_det(params, y_other, context)
  y_again, _ = bijector.forward_and_log_det(params, x_mid, context)
  assert max_abs_diff(y_again, y_other) < 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_log_det_matches_jacobian_float64(name):
  case = CASES[name]
  with jax.enable_x64(True):
    bijector, params, x, context = build(
      name, jax.random.key(2), batch=2, dtype=jnp.float64
    )
    _, log_det = bijector.forward_and_log_det(params, x, context)
    raw = case.make()

    @jax.jit
    def jacobian_of_example(params, v, ctx):
      def per_example(v):
        out, _ = raw.forward_and_log_det(
          params, v.reshape((1,) + x.shape[1:]), ctx
        )
        return flat(out)[0]

      return jax.jacfwd(per_example)(v)

    for i in range(x.shape[0]):
      ctx = None if context is None else context[i : i + 1]
      jacobian = jacobian_of_example(params, x[i].reshape(-1), ctx)
      sign, expected = jnp.linalg.slogdet(jacobian)
      assert float(sign) != 0.0
      assert abs(float(log_det[i]) - float(expected)) < 1e-8, (
        float(log_det[i]),
        float(expected),
      )

    # Float64 all the way through: outputs keep the dtype, round trip tight.
    y, _ = bijector.forward_and_log_det(params, x, context)
    assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(y))
    x_back, _ = bijector.inverse_and_log_det(params, y, context)
    assert max_abs_diff(x_back, x) < 1e-10


@pytest.mark.parametrize("name", NAMES)
def test_inverse_log_det_is_negative_forward(name):
  bijector, params, x, context = build(name, jax.random.key(3))
  y, forward_log_det = bijector.forward_and_log_det(params, x, context)
  _, inverse_log_det = bijector.inverse_and_log_det(params, y, context)
  np.testing.assert_allclose(
    inverse_log_det, -forward_log_det, atol=2e-3, rtol=1e-5
  )


@pytest.mark.parametrize("name", NAMES)
def test_shapes_dtypes_and_jit(name):
  compiled, params, x, context = build(name, jax.random.key(4))
  eager = CASES[name].make()
  y, log_det = eager.forward_and_log_det(params, x, context)
  assert log_det.shape == x.shape[:1]
  assert log_det.dtype == x.dtype
  assert all(
    leaf.dtype == x.dtype and leaf.shape[0] == x.shape[0]
    for leaf in jax.tree.leaves(y)
  )
  assert flat(y).shape[1] == np.prod(x.shape[1:])  # bijections keep size
  y_jit, log_det_jit = compiled.forward_and_log_det(params, x, context)
  # Compiled and eager programs round differently (fused, reordered ops);
  # relative to latents of size ~5 after a deep flow, 1e-5 is float32 noise.
  np.testing.assert_allclose(flat(y_jit), flat(y), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(log_det_jit, log_det, rtol=1e-5, atol=1e-4)
  x_jit, _ = compiled.inverse_and_log_det(params, y, context)
  x_eager, _ = eager.inverse_and_log_det(params, y, context)
  # An inverse divides the rounding of y by the map's local slope: where a
  # spline bin is flat, op-by-op and fused programs differ by more than in
  # y (for the gated-attention spline coupling, 1.3e-5 at one of 96
  # entries, whose float64 error is 1.8e-5 eager and 5.7e-6 compiled).
  assert max_abs_diff(x_jit, x_eager) < 2e-5


@pytest.mark.parametrize("name", NAMES)
def test_single_events_under_vmap_match_the_batch(name):
  """The distrax/flowjax idiom ``vmap`` over single events gives one
  scalar log-det per event, the batch call's values."""
  case = CASES[name]
  bijector = case.make()
  x, context = make_inputs(case, jax.random.key(5))
  params = perturb(
    jax.jit(bijector.init)(jax.random.key(6), x, context), jax.random.key(7)
  )
  y, log_det = jax.jit(bijector.forward_and_log_det)(params, x, context)

  def per_event(function, inputs):
    if context is None:
      return jax.jit(jax.vmap(lambda v: function(params, v)))(inputs)
    return jax.jit(jax.vmap(lambda v, c: function(params, v, c)))(
      inputs, context
    )

  y_one, log_det_one = per_event(bijector.forward_and_log_det, x)
  assert log_det_one.shape == x.shape[:1]
  np.testing.assert_allclose(log_det_one, log_det, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(flat(y_one), flat(y), rtol=1e-5, atol=1e-5)
  x_one, inverse_log_det_one = per_event(bijector.inverse_and_log_det, y)
  assert inverse_log_det_one.shape == x.shape[:1]
  np.testing.assert_allclose(flat(x_one), flat(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_direct_calls_refuse_other_ranks_integers_and_foreign_params(name):
  case = CASES[name]
  bijector = case.make()
  x, context = make_inputs(case, jax.random.key(8))
  assert fb.event_shape(bijector) is None  # nothing known before init
  params = jax.jit(bijector.init)(jax.random.key(9), x, context)
  assert fb.event_shape(bijector) == case.event_shape
  forward = bijector.forward_and_log_det
  with pytest.raises(
    ValueError, match=r"^\w+\.forward_and_log_det: the input has shape"
  ) as refused:
    forward(params, x[None], context)
  assert str(case.event_shape) in str(refused.value)
  with pytest.raises(ValueError, match=r"\.inverse_and_log_det: the input"):
    bijector.inverse_and_log_det(params, jnp.zeros((2, 3, 5, 7, 11)), context)
  with pytest.raises(ValueError, match="has dtype int32"):
    forward(params, x.astype(jnp.int32), context)
  # The same refusals at trace time under jit: shapes and dtypes only.
  with pytest.raises(ValueError, match=r"\.forward_and_log_det: the input"):
    jax.jit(forward)(params, x[None], context)
  with pytest.raises(ValueError, match="params were not made by this"):
    forward({"other": jnp.zeros(3)}, x, context)
  with pytest.raises(ValueError, match=r"^\w+\.init: the example must be a"):
    bijector.init(jax.random.key(0), jnp.float32(1.0), context)
