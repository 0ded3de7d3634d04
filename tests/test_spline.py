"""Rational-quadratic splines: exact inverse over the whole line, identity
tails, continuity at the bounds and knots, and the spline coupling."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from registry import SMALL_CONV, SMALL_MLP, perturb

from flowjax_gen import bijectors as fb
from flowjax_gen.bijectors import spline
from flowjax_gen.bijectors.spline import (
  UNROLL_MAX_BINS,
  _knots,
  rational_quadratic,
  rational_quadratic_bins,
)

K, B, F = 8, 3.0, 4


def _params(seed, scale, dtype=jnp.float32, num_bins=K):
  keys = jax.random.split(jax.random.key(seed), 3)
  shapes = ((F, num_bins), (F, num_bins), (F, num_bins - 1))
  return [
    scale * jax.random.normal(k, s, dtype)
    for k, s in zip(keys, shapes, strict=True)
  ]


def _full(x, p):
  return jnp.broadcast_to(p, x.shape + p.shape[-1:])


@functools.partial(jax.jit, static_argnames="inverse")
def _spline(x, widths, heights, derivatives, inverse=False):
  return rational_quadratic(
    x,
    _full(x, widths),
    _full(x, heights),
    _full(x, derivatives),
    bound=B,
    inverse=inverse,
  )


@functools.partial(jax.jit, static_argnames="inverse")
def _stacked_spline(x, widths, heights, derivatives, inverse=False):
  """The formulation kept for more than ``UNROLL_MAX_BINS`` bins, at any
  ``K``: the reference for the bin-by-bin one."""

  params = (_full(x, widths), _full(x, heights), _full(x, derivatives))
  return spline._spline(
    x, spline._bins_stacked, *params, bound=B, inverse=inverse
  )


def _sweep(params, dtype=jnp.float32):
  """Dense points over [-2B, 2B], every knot and its float neighbours."""
  knots = np.concatenate(
    [np.asarray(_knots(params[0], B)[0]), np.asarray(_knots(params[1], B)[0])]
  ).ravel()
  points = np.concatenate(
    [
      np.linspace(-2 * B, 2 * B, 8001),
      knots,
      np.nextafter(knots, np.inf),
      np.nextafter(knots, -np.inf),
    ]
  )
  return jnp.asarray(np.broadcast_to(points[:, None], (points.size, F)), dtype)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float32_round_trip_both_ways_over_the_whole_line(seed):
  params = _params(seed, 0.5)
  x = _sweep(params)
  y, log_deriv = _spline(x, *params)
  x_back, inverse_log_deriv = _spline(y, *params, inverse=True)
  assert np.isfinite(np.asarray(y)).all()
  np.testing.assert_allclose(np.asarray(x_back), np.asarray(x), atol=1e-5)
  np.testing.assert_allclose(
    np.asarray(inverse_log_deriv), -np.asarray(log_deriv), atol=1e-4
  )
  # Inverse first: the points read as latents.
  x_mid, _ = _spline(x, *params, inverse=True)
  y_again, _ = _spline(x_mid, *params)
  np.testing.assert_allclose(np.asarray(y_again), np.asarray(x), atol=1e-5)


def test_round_trip_error_is_float32_rounding_of_y_for_steep_params():
  # Wide random params give slopes down to ~1e-4; then no float32 method
  # recovers x better than (rounding of y) / slope. The error measured in
  # y units stays at the float32 resolution of [-B, B].
  params = _params(3, 1.5)
  x = _sweep(params)
  y, log_deriv = _spline(x, *params)
  x_back, _ = _spline(y, *params, inverse=True)
  error = np.abs(np.asarray(x_back) - np.asarray(x))
  slope = np.exp(np.asarray(log_deriv))
  assert np.isfinite(error).all()
  assert float(np.max(error * np.minimum(slope, 1.0))) < 4 * B * 1.2e-7


def test_tails_are_the_identity():
  params = _params(4, 1.0)
  outside = np.concatenate(
    [np.linspace(-10 * B, -B, 101)[:-1], np.linspace(B, 10 * B, 101)[1:]]
  )
  x = jnp.asarray(np.broadcast_to(outside[:, None], (outside.size, F)))
  for inverse in (False, True):
    y, log_deriv = _spline(x, *params, inverse=inverse)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(log_deriv), 0.0)


def test_zero_params_are_the_identity():
  x = _sweep(_params(0, 0.0))
  y, log_deriv = _spline(x, *_params(0, 0.0))
  np.testing.assert_allclose(np.asarray(y), np.asarray(x), atol=2e-6)
  np.testing.assert_allclose(np.asarray(log_deriv), 0.0, atol=1e-5)


def test_derivative_is_continuous_at_the_bounds_and_knots():
  with jax.enable_x64(True):
    params = _params(5, 1.0, jnp.float64)
    knots = np.asarray(_knots(params[0], B)[0])  # (F, K + 1)

    def slope(points):
      x = jnp.asarray(np.broadcast_to(points[:, None], (points.size, F)))
      return np.exp(np.asarray(_spline(x, *params)[1]))

    for bound in (-B, B):
      below, above = slope(np.array([bound - 1e-9, bound + 1e-9]))
      np.testing.assert_allclose(below, 1.0, atol=1e-6)
      np.testing.assert_allclose(above, 1.0, atol=1e-6)
    for f in range(F):
      for knot in knots[f, 1:-1]:
        left, right = slope(np.array([knot - 1e-9, knot + 1e-9]))[:, f]
        np.testing.assert_allclose(left, right, rtol=1e-5)
    # The log-derivative is that of the map autodiff sees, knots included.
    points = np.concatenate([np.linspace(-2 * B, 2 * B, 41), knots[0, 1:-1]])

    def first_feature(v):
      x = jnp.zeros((1, F), jnp.float64).at[0, 0].set(v)
      return _spline(x, *params)[0][0, 0]

    autodiff = jax.vmap(jax.grad(first_feature))(jnp.asarray(points))
    np.testing.assert_allclose(slope(points)[:, 0], autodiff, rtol=1e-9)


@pytest.mark.parametrize("inverse", [False, True])
def test_bin_by_bin_equals_the_stacked_formulation(inverse):
  # K = 8 runs bin by bin (rational_quadratic_bins); the stacked
  # formulation computes the same knots with cumsum and selects from
  # (K + 1)-long arrays. Values, log-derivatives and gradients with
  # respect to x and every parameter agree to float64 rounding.
  assert K <= UNROLL_MAX_BINS
  with jax.enable_x64(True):
    params = _params(6, 1.0, jnp.float64)
    x = _sweep(params, jnp.float64)
    by_bin = _spline(x, *params, inverse=inverse)
    stacked = _stacked_spline(x, *params, inverse=inverse)
    for a, b in zip(by_bin, stacked, strict=True):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-12)
    # Away from the knots, where a point's bin (and so which parameters
    # it depends on) cannot change with the order of the additions.
    points = jnp.linspace(-2 * B + 0.01, 2 * B - 0.01, 197, dtype=jnp.float64)
    x = jnp.broadcast_to(points[:, None], (points.size, F))
    weights = jax.random.normal(jax.random.key(7), (2,) + x.shape, x.dtype)

    def loss(fn):
      def scalar(x, *params):
        y, log_deriv = fn(x, *params, inverse=inverse)
        return jnp.sum(weights[0] * y + weights[1] * log_deriv)

      return jax.grad(scalar, argnums=(0, 1, 2, 3))(x, *params)

    for a, b in zip(loss(_spline), loss(_stacked_spline), strict=True):
      assert np.isfinite(np.asarray(a)).all()
      np.testing.assert_allclose(
        np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12
      )


@pytest.mark.parametrize("num_bins", [1, UNROLL_MAX_BINS + 4])
def test_one_bin_and_many_bins_use_the_stacked_formulation(num_bins):
  params = _params(8, 0.5, num_bins=num_bins)
  x = _sweep(params)
  y, log_deriv = _spline(x, *params)
  x_back, inverse_log_deriv = _spline(y, *params, inverse=True)
  np.testing.assert_allclose(np.asarray(x_back), np.asarray(x), atol=1e-5)
  np.testing.assert_allclose(
    np.asarray(inverse_log_deriv), -np.asarray(log_deriv), atol=1e-4
  )
  stacked = _stacked_spline(x, *params)
  np.testing.assert_array_equal(np.asarray(y), np.asarray(stacked[0]))
  # Bin by bin in, stacked inside: the same map.
  by_bin = rational_quadratic_bins(
    x,
    *([_full(x, p)[..., k] for k in range(p.shape[-1])] for p in params),
    bound=B,
  )
  np.testing.assert_allclose(np.asarray(by_bin[0]), np.asarray(y), atol=1e-6)


def test_rational_quadratic_bins_refuses_mismatched_parameter_counts():
  x = jnp.zeros((2, F))
  widths = [x] * 4
  with pytest.raises(ValueError, match="K widths, K heights and K - 1"):
    rational_quadratic_bins(x, widths, [x] * 4, [x] * 4, bound=B)
  with pytest.raises(ValueError, match="got 4, 3 and 3"):
    rational_quadratic_bins(x, widths, [x] * 3, [x] * 3, bound=B)


def test_spline_coupling_reads_its_conditioner_parameter_major():
  # Output p * F + i of the conditioner is parameter p of entry i (K
  # widths, K heights, K - 1 derivatives, each F long), so saved
  # checkpoints keep their meaning whatever the spline computes with.
  num_bins, bound = 4, 2.0
  bijector = fb.spline_coupling(SMALL_MLP, num_bins=num_bins, bound=bound)
  x = 1.5 * jax.random.normal(jax.random.key(0), (3, 6))
  params = perturb(bijector.init(jax.random.key(1), x), jax.random.key(2))
  num_params = 3 * num_bins - 1
  h = SMALL_MLP(num_params * 3).apply(params, x[:, :3])
  theta = jnp.moveaxis(h.reshape(3, num_params, 3), 1, 2)  # (N, F, P)
  y_b, log_deriv = rational_quadratic(
    x[:, 3:],
    theta[..., :num_bins],
    theta[..., num_bins : 2 * num_bins],
    theta[..., 2 * num_bins :],
    bound=bound,
  )
  y, log_det = bijector.forward_and_log_det(params, x)
  np.testing.assert_allclose(np.asarray(y[:, :3]), np.asarray(x[:, :3]))
  np.testing.assert_allclose(np.asarray(y[:, 3:]), np.asarray(y_b), atol=1e-6)
  np.testing.assert_allclose(
    np.asarray(log_det), np.asarray(jnp.sum(log_deriv, axis=1)), atol=1e-5
  )
  assert np.abs(np.asarray(y_b - x[:, 3:])).max() > 1e-3  # not the identity


def test_elementwise_spline_bijector_params_and_identity_init():
  bijector = fb.rational_quadratic_spline(5, bound=2.0)
  x = jax.random.normal(jax.random.key(0), (3, 4, 2))
  params = bijector.init(jax.random.key(1), x)
  assert {k: v.shape for k, v in params.items()} == {
    "widths": (4, 2, 5),
    "heights": (4, 2, 5),
    "derivatives": (4, 2, 4),
  }
  y, log_det = bijector.forward_and_log_det(params, x)
  np.testing.assert_allclose(np.asarray(y), np.asarray(x), atol=1e-6)
  assert log_det.shape == (3,)


@pytest.mark.parametrize(
  "make_net, mask, shape",
  [
    (SMALL_MLP, "half", (5, 6)),
    (SMALL_MLP, "alternating", (5, 6)),
    (SMALL_CONV, "half", (2, 4, 4, 4)),
    (SMALL_CONV, "checkerboard", (2, 4, 4, 3)),
  ],
)
def test_spline_coupling_conditioner_size_and_identity_init(
  make_net, mask, shape
):
  bijector = fb.spline_coupling(make_net, mask=mask, num_bins=4)
  x = jax.random.normal(jax.random.key(0), shape)
  params = bijector.init(jax.random.key(1), x)
  transformed = shape[-1] if mask == "checkerboard" else shape[-1] // 2
  last = [leaf for leaf in jax.tree.leaves(params)][-1]  # last layer's kernel
  assert last.shape[-1] == (3 * 4 - 1) * transformed
  y, log_det = bijector.forward_and_log_det(params, x)
  np.testing.assert_allclose(np.asarray(y), np.asarray(x), atol=1e-6)
  np.testing.assert_allclose(np.asarray(log_det), 0.0, atol=1e-5)


def test_affine_coupling_keeps_its_layout_shift_first_then_scale():
  bijector = fb.affine_coupling(SMALL_MLP, scale_fn="sigmoid")
  x = jax.random.normal(jax.random.key(0), (3, 6))
  params = perturb(bijector.init(jax.random.key(1), x), jax.random.key(2))
  net = SMALL_MLP(6)
  h = net.apply(params, x[:, :3])
  shift, scale = h[:, :3], jax.nn.sigmoid(h[:, 3:] + 2.0)
  y, log_det = bijector.forward_and_log_det(params, x)
  np.testing.assert_allclose(y[:, :3], x[:, :3])
  np.testing.assert_allclose(y[:, 3:], x[:, 3:] * scale + shift, rtol=1e-6)
  np.testing.assert_allclose(
    log_det, jnp.sum(jnp.log(scale), axis=1), rtol=1e-5
  )


def test_spline_coupling_jit_vmap_and_grad():
  bijector = fb.spline_coupling(SMALL_MLP, num_bins=4, bound=2.0)
  x = jax.random.normal(jax.random.key(0), (4, 3, 6))  # 4 batches of 3
  params = perturb(bijector.init(jax.random.key(1), x[0]), jax.random.key(2))
  mapped = jax.vmap(bijector.forward_and_log_det, in_axes=(None, 0))
  y, log_det = jax.jit(mapped)(params, x)
  for i in range(4):
    y_i, log_det_i = bijector.forward_and_log_det(params, x[i])
    np.testing.assert_allclose(y[i], y_i, atol=1e-6)
    np.testing.assert_allclose(log_det[i], log_det_i, atol=1e-5)

  def loss(params):
    z, log_det = bijector.forward_and_log_det(params, x[0])
    return jnp.mean(0.5 * jnp.sum(z**2, axis=1) - log_det)

  grads = jax.jit(jax.grad(loss))(params)
  leaves = [np.asarray(g) for g in jax.tree.leaves(grads)]
  assert all(np.isfinite(g).all() for g in leaves)
  assert np.abs(leaves[-1]).max() > 0  # the zero-initialised last layer
