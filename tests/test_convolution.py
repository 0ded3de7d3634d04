"""``nets.convolution``: convolutions as GEMMs equal XLA's convolutions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax_gen.nets.conditioners import GlowConvNet, ZeroConv
from flowjax_gen.nets.convolution import conv_as_matmul, conv_function

NHWC = ("NHWC", "HWIO", "NHWC")


def _pair(c_in, c_out, k, dtype=jnp.float64):
  x = jax.random.normal(jax.random.key(0), (2, 7, 6, c_in), dtype)
  w = jax.random.normal(jax.random.key(1), (k, k, c_in, c_out), dtype)
  return x, w


@pytest.mark.parametrize(
  "c_in, c_out, k, padding",
  [
    (2, 16, 3, "SAME"),  # input side (im2col)
    (16, 4, 3, "SAME"),  # output side (col2im)
    (8, 8, 1, "SAME"),  # 1x1: one einsum
    (5, 3, 3, "VALID"),
    (3, 7, 5, [(1, 3), (2, 0)]),  # asymmetric explicit padding
    (6, 2, 4, "SAME"),  # even kernel: SAME pads more at the end
  ],
)
def test_values_and_gradients_equal_xla_convolution(c_in, c_out, k, padding):
  with jax.enable_x64(True):
    x, w = _pair(c_in, c_out, k)

    def xla(x, w):
      return jax.lax.conv_general_dilated(
        x, w, (1, 1), padding, dimension_numbers=NHWC
      )

    def ours(x, w):
      return conv_as_matmul(x, w, (1, 1), padding, dimension_numbers=NHWC)

    cotangent = jax.random.normal(jax.random.key(2), xla(x, w).shape)

    @jax.jit
    def value_and_grads(x, w):
      # One compiled program per implementation, not one per primitive.
      def run(conv):
        loss = lambda x, w: jnp.sum(conv(x, w) * cotangent)  # noqa: E731
        return conv(x, w), jax.grad(loss, (0, 1))(x, w)

      return run(ours), run(xla)

    (y, grads), (want_y, want_grads) = value_and_grads(x, w)
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, want_grads, strict=True):
      np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_other_cases_fall_back_to_xla():
  x, w = _pair(4, 4, 3, jnp.float32)
  for kwargs in (
    dict(window_strides=(2, 2), padding="SAME"),
    dict(window_strides=(1, 1), padding="SAME", rhs_dilation=(2, 2)),
  ):
    want = jax.lax.conv_general_dilated(x, w, dimension_numbers=NHWC, **kwargs)
    got = conv_as_matmul(x, w, dimension_numbers=NHWC, **kwargs)
    np.testing.assert_array_equal(got, want)


def test_glow_nets_have_the_same_params_under_both_implementations():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 4))
  for module in (GlowConvNet, ZeroConv):
    kwargs = {"hidden_channels": 16} if module is GlowConvNet else {}
    gemm = module(8, convolution="matmul", **kwargs)
    xla = module(8, convolution="xla", **kwargs)
    params = gemm.init(jax.random.key(3), x)
    same = jax.tree.map(
      lambda a, b: bool(jnp.all(a == b)), params, xla.init(jax.random.key(3), x)
    )
    assert all(jax.tree.leaves(same))
    params = jax.tree.map(
      lambda v: v + 0.1 * jax.random.normal(jax.random.key(5), v.shape), params
    )
    np.testing.assert_allclose(
      gemm.apply(params, x), xla.apply(params, x), rtol=1e-5, atol=1e-5
    )


def test_unknown_convolution_is_refused():
  with pytest.raises(ValueError, match="convolution must be one of"):
    conv_function("winograd")
