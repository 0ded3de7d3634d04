"""Elementwise nonlinear bijectors, permutations and blockwise maps: values
against closed forms, out-of-domain behaviour, static checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from registry import SMALL_MLP

from flowjax_gen import bijectors as fb

X = jnp.array([[-2.0, -0.5, 0.0, 0.7, 3.0]])


@pytest.mark.parametrize(
  "make, fn",
  [
    (fb.tanh, np.tanh),
    (fb.softplus, lambda x: np.log1p(np.exp(x))),
    (fb.exp, np.exp),
    (lambda: fb.leaky_relu(0.2), lambda x: np.where(x < 0, 0.2 * x, x)),
    (
      lambda: fb.sinh_arcsinh(skewness=0.4, tailweight=2.0),
      lambda x: np.sinh(2.0 * np.arcsinh(x) - 0.4),
    ),
  ],
)
def test_forward_is_the_named_function(make, fn):
  bijector = make()
  params = bijector.init(jax.random.key(0), X)
  y, _ = bijector.forward_and_log_det(params, X)
  np.testing.assert_allclose(y, fn(np.asarray(X)), rtol=1e-5, atol=1e-6)


def test_inverse_outside_the_range_gives_nan_or_inf_not_finite_values():
  params = {}
  x, _ = fb.tanh().inverse_and_log_det(params, jnp.array([[1.0, -1.0, 1.5]]))
  assert np.isposinf(x[0, 0]) and np.isneginf(x[0, 1]) and np.isnan(x[0, 2])
  for bijector in (fb.softplus(), fb.exp()):
    x, _ = bijector.inverse_and_log_det(params, jnp.array([[0.0, -1.0]]))
    assert np.isneginf(x[0, 0]) and np.isnan(x[0, 1])


def test_sinh_arcsinh_identity_and_learned_params():
  bijector = fb.sinh_arcsinh(learned=True)
  params = bijector.init(jax.random.key(0), jnp.zeros((2, 3, 4)))
  assert {k: v.shape for k, v in params.items()} == {
    "skewness": (3, 4),
    "log_tailweight": (3, 4),
  }
  x = jax.random.normal(jax.random.key(1), (2, 3, 4))
  y, log_det = bijector.forward_and_log_det(params, x)
  np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(log_det, 0.0, atol=1e-5)
  assert fb.sinh_arcsinh().init(jax.random.key(0), x) == {}


def test_permutation_and_its_inverse():
  bijector = fb.permutation([2, 0, 1])
  x = jnp.array([[10.0, 11.0, 12.0]])
  y, log_det = bijector.forward_and_log_det({}, x)
  np.testing.assert_array_equal(y, [[12.0, 10.0, 11.0]])
  np.testing.assert_array_equal(bijector.inverse_and_log_det({}, y)[0], x)
  assert log_det.shape == (1,)
  with pytest.raises(ValueError, match="permutation of 3 entries .* size 4"):
    bijector.forward_and_log_det({}, jnp.ones((1, 4)))


def test_reverse_and_shuffle_act_on_tabular_features():
  x = jnp.arange(5.0)[None]
  np.testing.assert_array_equal(
    fb.reverse().forward_and_log_det({}, x)[0], x[:, ::-1]
  )
  y, _ = fb.shuffle(1).forward_and_log_det({}, x)
  assert sorted(np.asarray(y[0]).tolist()) == list(range(5))


def test_concatenate_and_stack_apply_members_to_their_slices():
  x = jnp.array([[-1.0, 0.5, 2.0, -0.3]])
  both = fb.concatenate([fb.exp(), fb.tanh()], sizes=[1, 3])
  y, log_det = both.forward_and_log_det(({}, {}), x)
  np.testing.assert_allclose(y[0, :1], np.exp([-1.0]), rtol=1e-6)
  np.testing.assert_allclose(y[0, 1:], np.tanh([0.5, 2.0, -0.3]), rtol=1e-6)
  expected = -1.0 + np.sum(np.log1p(-(np.tanh([0.5, 2.0, -0.3]) ** 2)))
  np.testing.assert_allclose(log_det, [expected], rtol=1e-5)
  each = fb.stack([fb.exp(), fb.tanh(), fb.tanh(), fb.tanh()])
  y_stack, log_det_stack = each.forward_and_log_det(({},) * 4, x)
  np.testing.assert_allclose(y_stack, y, rtol=1e-6)
  np.testing.assert_allclose(log_det_stack, log_det, rtol=1e-5)
  with pytest.raises(ValueError, match="last axis of size 4"):
    both.forward_and_log_det(({}, {}), jnp.ones((1, 5)))


def test_concatenate_of_couplings_is_jittable_and_differentiable():
  bijector = fb.concatenate(
    [fb.affine_coupling(SMALL_MLP), fb.softplus()], sizes=[4, 2]
  )
  x = jax.random.normal(jax.random.key(0), (3, 6))
  params = bijector.init(jax.random.key(1), x)

  def loss(params):
    return jnp.mean(bijector.forward_and_log_det(params, x)[1])

  grads = jax.jit(jax.grad(loss))(params)
  assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
