"""Flow++'s logistic-mixture CDF transformer: the identity at zero, exact
tails in float32, and an inverse whose gradient is the implicit one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax_gen import bijectors as fb
from flowjax_gen.bijectors import mixture

K = 3


def _theta(shape, seed=0, scale=1.0):
  rng = np.random.default_rng(seed)
  return rng.normal(size=shape + (mixture.num_mixture_params(K),)) * scale


def test_zero_parameters_are_the_identity():
  x = jnp.linspace(-30.0, 30.0, 61)
  y, log_deriv = mixture.logistic_mixture_forward(
    jnp.zeros((61, mixture.num_mixture_params(K))), x, K
  )
  np.testing.assert_allclose(np.asarray(y), np.asarray(x), atol=1e-5)
  np.testing.assert_allclose(np.asarray(log_deriv), 0.0, atol=1e-5)


def test_float32_tails_stay_finite_and_invert():
  """Far in the tails F rounds to 0 or 1 in float32 (at x = 60 every
  component is beyond sigmoid(100)); in log space logit F stays finite, and
  the inverse recovers x."""
  theta = jnp.asarray(_theta((7,), seed=1), jnp.float32)
  theta = theta.at[:, 2 + 2 * K :].set(-0.5)  # components of scale 0.6
  x = jnp.asarray([-60.0, -20.0, -3.0, 0.0, 3.0, 20.0, 60.0], jnp.float32)
  y, log_deriv = mixture.logistic_mixture_forward(theta, x, K)
  assert np.all(np.isfinite(np.asarray(y)))
  assert np.all(np.isfinite(np.asarray(log_deriv)))
  back, inverse_log_deriv = mixture.logistic_mixture_inverse(theta, y, K)
  np.testing.assert_allclose(
    np.asarray(back), np.asarray(x), rtol=1e-4, atol=1e-4
  )
  np.testing.assert_allclose(
    np.asarray(inverse_log_deriv), -np.asarray(log_deriv), atol=1e-3
  )


def test_inverse_gradient_is_the_implicit_derivative():
  with jax.enable_x64(True):
    theta = jnp.asarray(_theta((), seed=2), jnp.float64)
    y = jnp.asarray(0.7, jnp.float64)

    def inverse(t, y):
      return mixture.logistic_mixture_inverse(t, y, K)[0]

    grad_theta, grad_y = jax.grad(inverse, argnums=(0, 1))(theta, y)
    x = inverse(theta, y)
    # Implicit function theorem on forward(theta, x) = y.
    forward = lambda t, x: mixture.logistic_mixture_forward(t, x, K)[0]  # noqa: E731
    dy_dtheta = jax.grad(forward, argnums=0)(theta, x)
    dy_dx = jax.grad(forward, argnums=1)(theta, x)
    np.testing.assert_allclose(
      np.asarray(grad_theta), -np.asarray(dy_dtheta) / float(dy_dx), rtol=1e-8
    )
    np.testing.assert_allclose(float(grad_y), 1.0 / float(dy_dx), rtol=1e-8)


def test_inverse_under_jit_and_vmap_matches_the_batch():
  theta = jnp.asarray(_theta((5,), seed=3), jnp.float32)
  y = jnp.linspace(-4.0, 4.0, 5)

  def inverse(t, y):
    return mixture.logistic_mixture_inverse(t, y, K)[0]

  batch = np.asarray(inverse(theta, y))
  mapped = np.asarray(jax.jit(jax.vmap(inverse))(theta, y))
  np.testing.assert_allclose(mapped, batch, rtol=1e-6, atol=1e-6)


def test_bad_component_counts_are_refused():
  for bad in (0, -1, 2.5):
    with pytest.raises(ValueError, match="num_components"):
      fb.logistic_mixture_cdf(bad)
    with pytest.raises(ValueError, match="num_components"):
      fb.logistic_mixture_coupling(lambda n: None, num_components=bad)
